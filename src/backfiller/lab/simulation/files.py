"""Where the record of simulations lives (nothing else, so that reading a project with none
imports no more than this)."""

from __future__ import annotations

from pathlib import Path

__all__ = ["SIMULATIONS_FILE", "simulations_path"]

SIMULATIONS_FILE = "simulations.json"


def simulations_path(state_dir: Path) -> Path:
    return Path(state_dir) / SIMULATIONS_FILE
