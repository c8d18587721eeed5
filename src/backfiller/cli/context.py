"""What every command gets: the project folder, the console, the debug flag; and the shared
reading of partition options."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from backfiller.errors import BadInputError
from backfiller.project import Project, load_project


def make_console(stderr: bool = False) -> Console:
    """Lines are not hard-wrapped when the output is piped (commands stay copyable)."""
    console = Console(highlight=False, soft_wrap=True, stderr=stderr)
    if not console.is_terminal:
        console.width = max(console.width, 160)
    return console


@dataclass
class Context:
    project_dir: Path
    console: Console
    debug: bool

    def project(self) -> Project:
        return load_project(self.project_dir, environ=os.environ)


def _keys(project: Project, partition: str | None, start: str | None, end: str | None) -> list[str]:
    """The partition keys the options name; an empty string is a bad key, never 'not given'."""
    now = project.clock()
    if partition is not None and (start is not None or end is not None):
        raise BadInputError("Pass --partition or --start/--end, not both")
    if partition is not None:
        return [project.scheme.parse(partition, now=now)]
    if start is not None or end is not None:
        if start is None or end is None:
            raise BadInputError("--start and --end go together", hint="pass both")
        project.scheme.parse(start, now=now)
        project.scheme.parse(end, now=now)
        return project.scheme.key_range(start, end)
    if project.config.default_partition:
        return [project.scheme.parse(project.config.default_partition, now=now)]
    raise BadInputError("No partition given", hint="pass --partition KEY or --start/--end")
