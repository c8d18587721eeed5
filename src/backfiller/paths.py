"""Configured paths stay inside the project folder: ``data/lake/../../..`` must not make a
plan, a table or the ledger land somewhere else. An absolute path, or one leading outside,
is accepted only when ``[project] allow_paths_outside = true`` says so explicitly."""

from __future__ import annotations

import os
from pathlib import Path

from backfiller.errors import ConfigError

__all__ = ["configured_path"]


def configured_path(
    root: Path, value: str, setting: str, *, allow_outside: bool, origin: str | None = None
) -> Path:
    """``value`` (relative to ``root``, or absolute) as a normalised path; refused (exit 2)
    when it leaves ``root`` and that is not allowed, naming ``origin`` (where the value came
    from, in words) if given. Symbolic links inside the project are the user's deliberate
    choice and are not followed."""
    path = Path(os.path.normpath(Path(root) / value))  # an absolute value stays absolute
    if allow_outside or path == root or path.is_relative_to(root):
        return path
    raise ConfigError(
        f"{setting} = {value!r}{f' ({origin})' if origin else ''} resolves to {path}, "
        f"outside the project folder {root}",
        hint="use a path inside the project, or set [project] allow_paths_outside = true "
        "to accept it explicitly",
    )
