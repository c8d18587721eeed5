"""The bundled example (the seed's omnisupport pipeline) and laying it out in a folder."""

from __future__ import annotations

import shutil
from pathlib import Path

from backfiller.actions import Action, RunResult, RunSpec, execute
from backfiller.asset_keys import cells
from backfiller.errors import BadInputError, ConfigError
from backfiller.project import Project

__all__ = ["GAP_DAY", "example_source", "lay_out_example", "materialize_history"]

#: the day the demo and the lesson leave out of the history: the gap they find and backfill
GAP_DAY = "2026-04-17"

_IGNORE = shutil.ignore_patterns(
    "__pycache__", "*.pyc", ".backfiller", "lake", "reports", ".env.local", ".pytest_cache"
)


def example_source() -> Path:
    """Where the example lives: inside an installed wheel, or in the source tree."""
    package = Path(__file__).resolve().parent.parent  # backfiller/
    for candidate in (
        package / "_example" / "omnisupport",
        package.parent.parent / "examples" / "omnisupport",
    ):
        if (candidate / "backfiller.toml").is_file():
            return candidate
    raise ConfigError(
        "The bundled example is not installed",
        hint="reinstall backfiller from its source tree ('pip install .')",
    )


def lay_out_example(dest: Path) -> Path:
    """Copy the example into ``dest`` (which must not exist or be empty)."""
    dest = Path(dest)
    if dest.exists() and any(dest.iterdir()):
        raise BadInputError(
            f"{dest} is not empty; the demo needs a fresh working folder",
            hint="pass --dir with a new folder, or remove this one",
        )
    shutil.copytree(example_source(), dest, ignore=_IGNORE, dirs_exist_ok=True)
    return dest


def materialize_history(project: Project, keys: list[str], *, reason: str) -> RunResult:
    """Backfill every asset over ``keys`` in one run through the controlled path (the history
    the demo and the lesson start from); assets with several schemes each over their own keys
    of ``keys`` (see :func:`backfiller.asset_keys.cells`)."""
    targets = cells(project.graph, keys)
    with project.ledger() as ledger:
        return execute(
            project,
            ledger,
            RunSpec.compute(Action.BACKFILL, project.operator(), targets, reason=reason),
        )
