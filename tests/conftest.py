"""Shared fixtures: the bundled example laid out in a temporary folder, a frozen clock."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from backfiller import FixedClock, Project, execute, load_project
from backfiller.example import lay_out_example

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
GAP_DAY = "2026-04-17"


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


@pytest.fixture
def example_dir(tmp_path: Path) -> Path:
    """A fresh copy of examples/omnisupport (nothing materialized)."""
    return lay_out_example(tmp_path / "omni")


@pytest.fixture
def load(clock: FixedClock) -> Callable[[Path], Project]:
    def _load(root: Path) -> Project:
        return load_project(root, environ={}, clock=clock)

    return _load


def materialize(project: Project, keys: list[str], assets: list[str] | None = None) -> None:
    """Publish ``keys`` of every asset (or of ``assets``) through the real runner."""
    names = assets or project.graph.keys
    with project.ledger() as ledger:
        result = execute(
            project,
            ledger,
            [(a, k) for k in keys for a in names],
            action="backfill",
            operator="tests",
        )
    assert result.state.value == "succeeded", [s.error for s in result.steps if s.error]


@pytest.fixture
def april_project(example_dir: Path, load: Callable[[Path], Project]) -> Project:
    """The example with 2026-04-14 .. 2026-04-20 materialized except 2026-04-17."""
    project = load(example_dir)
    keys = [k for k in project.scheme.key_range("2026-04-14", "2026-04-20") if k != GAP_DAY]
    materialize(project, keys)
    return project


def tree_fingerprint(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root`` (relative path -> digest); empty if it is absent."""
    result: dict[str, str] = {}
    if not root.exists():
        return result
    for dirpath, _, files in os.walk(root):
        for name in files:
            path = Path(dirpath, name)
            result[path.relative_to(root).as_posix()] = hashlib.sha256(
                path.read_bytes()
            ).hexdigest()
    return result
