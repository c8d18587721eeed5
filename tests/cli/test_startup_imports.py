"""Start-up stays cheap by construction: ``backfiller --help`` and every ``backfiller <cmd>
--help`` import none of DuckDB, Arrow, Delta Lake, jsonschema, the OpenLineage client, the web
view's FastAPI, Starlette, Jinja2 or uvicorn (nor
pydantic); ``status`` imports neither jsonschema, the OpenLineage client, ``deltalake`` (it
reads the tables' logs itself) nor ``pyarrow.compute`` (some 30 ms of building its functions:
Arrow carries the data, DuckDB computes), on either ledger (it does import DuckDB: its states
are the gap classifier's reasons, one query with ``gaps``).
Structural tests in a fresh interpreter, no time limit (``benchmarks/startup.py`` measures the
times)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import both_backends

from backfiller import Project

HEAVY = (
    "duckdb",
    "pyarrow",
    "deltalake",
    "jsonschema",
    "pydantic",
    "openlineage",
    "fastapi",
    "starlette",
    "jinja2",
    "uvicorn",
)

pytestmark = pytest.mark.slow


def _run(
    code: str, cwd: Path | None = None, ledger: dict[str, str] | None = None
) -> dict[str, list[str]]:
    """Run ``code`` in a fresh interpreter with no project settings from this process's
    environment but ``ledger`` (a PostgreSQL ledger's URL); return its last line's JSON."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WEEK06_", "BACKFILLER_"))}
    env.update(ledger or {})
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    found: dict[str, list[str]] = json.loads(result.stdout.strip().splitlines()[-1])
    return found


def test_help_of_every_command_imports_no_heavy_library() -> None:
    found = _run(
        f"""
        import contextlib, io, json, sys
        import click
        from backfiller.cli.main import cli, main

        HEAVY = {HEAVY!r}

        def commands(group, prefix):
            for name, command in sorted(group.commands.items()):
                yield [*prefix, name]
                if isinstance(command, click.Group):
                    yield from commands(command, [*prefix, name])

        loaded = {{}}
        for args in [[], *commands(cli, [])]:
            with contextlib.redirect_stdout(io.StringIO()) as out:
                code = main([*args, "--help"])
            assert code == 0 and "Usage:" in out.getvalue(), (args, code)
            heavy = sorted({{m.split(".")[0] for m in sys.modules}} & set(HEAVY))
            loaded[" ".join(args) or "(none)"] = heavy
        print(json.dumps(loaded))
        """
    )
    assert len(found) > 20  # every command and subcommand was asked for its help
    assert {"(none)", "status", "gaps", "plan", "evidence show", "simulate undo"} <= set(found)
    assert {command: heavy for command, heavy in found.items() if heavy} == {}


def test_import_backfiller_imports_no_heavy_library() -> None:
    found = _run(
        f"""
        import json, sys
        import backfiller
        assert backfiller.__version__
        print(json.dumps({{"import": sorted({{m.split(".")[0] for m in sys.modules}}
                                             & set({HEAVY!r}))}}))
        """
    )
    assert found == {"import": []}


def _imported_by(
    args: list[str], shows: str, project: Project, ledger: dict[str, str]
) -> tuple[set[str], list[str]]:
    """The top-level packages and the ``pyarrow.*`` modules a fresh interpreter has imported
    once the command ``args`` has run in ``project`` (its output shows ``shows``)."""
    found = _run(
        f"""
        import contextlib, io, json, sys
        from backfiller.cli.main import main
        with contextlib.redirect_stdout(io.StringIO()) as out:
            code = main({args!r})
        assert code == 0 and {shows!r} in out.getvalue(), (code, out.getvalue())
        print(json.dumps({{"packages": sorted({{m.split(".")[0] for m in sys.modules}}),
                          "arrow": sorted(m for m in sys.modules if m.startswith("pyarrow."))}}))
        """,
        cwd=project.root,
        ledger=ledger,
    )
    return set(found["packages"]), found["arrow"]


@both_backends
def test_status_imports_neither_jsonschema_nor_openlineage_nor_deltalake_nor_arrow_compute(
    april_project: Project, project_environ: dict[str, str]
) -> None:
    args = ["status", "--start", "2026-04-14", "--end", "2026-04-20"]
    packages, arrow = _imported_by(args, "materialized", april_project, project_environ)
    assert "pyarrow" in packages  # it read the tables' logs
    # and its ledger: the PostgreSQL one through psycopg, else the SQLite file
    assert ("psycopg" in packages) is bool(project_environ)
    assert "duckdb" in packages  # the classifier that gaps uses too
    assert not {"jsonschema", "openlineage", "deltalake"} & packages
    assert "pyarrow.compute" not in arrow, arrow


@both_backends
def test_a_dry_run_plan_imports_neither_jsonschema_nor_deltalake_nor_arrow_compute(
    april_project: Project, project_environ: dict[str, str]
) -> None:
    args = ["plan", "--start", "2026-04-14", "--end", "2026-04-20", "--mode", "dry-run"]
    packages, arrow = _imported_by(args, "Plan written to", april_project, project_environ)
    assert {"duckdb", "pyarrow"} <= packages  # it classified and read the logs
    assert not {"jsonschema", "openlineage", "deltalake"} & packages
    assert "pyarrow.compute" not in arrow, arrow
