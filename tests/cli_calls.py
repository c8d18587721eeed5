"""The command line called in-process on a project, as the CLI tests call it: the exit code
and what it printed, a call that must succeed, and one that must print a JSON document."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from backfiller.cli.main import main


def run(capsys: pytest.CaptureFixture[str], root: Path, *args: str) -> tuple[int, str, str]:
    """``backfiller --project ROOT ARGS…``: its exit code, stdout and stderr."""
    code = main(["--project", str(root), *args])
    out, err = capsys.readouterr()
    return code, out, err


def ok(capsys: pytest.CaptureFixture[str], root: Path, *args: str) -> str:
    """The stdout of a call that exits 0 (else the test fails with its stderr)."""
    code, out, err = run(capsys, root, *args)
    assert code == 0, err
    return out


def run_json(capsys: pytest.CaptureFixture[str], root: Path, *args: str) -> dict[str, Any]:
    """The JSON document a call with ``--json`` prints, exiting 0."""
    doc = json.loads(ok(capsys, root, *args, "--json"))
    assert isinstance(doc, dict)
    return doc
