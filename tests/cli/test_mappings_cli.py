"""Mappings through the CLI, on a real project (Delta tables, SQLite ledger): an asset that reads
the previous day of its upstream (a lag) has no upstream for the scheme's first day — ``status``
and ``gaps`` say ``missing_upstream`` and name the key, the plan leaves it out, ``rerun``
refuses it (exit 2, nothing written) — while the next day reads exactly the day before; an
invalid mapping in the assets module is exit 2 naming it, with nothing written."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest
from cli_calls import run, run_json
from conftest import cli_environment, environ_ledger_fingerprint, tree_fingerprint
from plan_views import per_key

from backfiller.planning import parse_plan
from backfiller.project import load_project

RAW, LAGGED = "m/raw", "m/lagged"

ASSETS = """
from backfiller import Dependency, TimeWindowMapping, asset


@asset("m/raw", idempotency_key=("id",))
def raw(context):
    return [{"id": f"{context.partition_key}-{i}", "n": i} for i in range(3)]


@asset("m/lagged", idempotency_key=("id",), deps=[Dependency("m/raw", MAPPING)])
def lagged(context):
    return [{"id": r["id"], "n": r["n"]} for r in context.upstream("m/raw").to_pylist()]
"""


@pytest.fixture(autouse=True)
def _cli_environment(monkeypatch: pytest.MonkeyPatch, project_environ: dict[str, str]) -> None:
    cli_environment(monkeypatch, project_environ)


def make_project(folder: Path, mapping: str) -> Path:
    folder.mkdir()
    (folder / "backfiller.toml").write_text(
        textwrap.dedent(
            """
            [project]
            name = "mapped"
            operator = "ann"

            [partitions]
            kind = "daily"
            start = "2026-03-01"
            end = "2026-03-06"

            [policy]
            backfill_assets = ["m/raw", "m/lagged"]
            """
        ),
        encoding="utf-8",
    )
    (folder / "assets.py").write_text(ASSETS.replace("MAPPING", mapping), encoding="utf-8")
    return folder


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return make_project(tmp_path / "mapped", "TimeWindowMapping.lag()")


def refused(capsys: pytest.CaptureFixture[str], root: Path, *args: str) -> str:
    """Run a command that must be refused with exit 2 and write nothing; its stderr."""

    def files() -> dict[str, str]:
        found = {k: v for k, v in tree_fingerprint(root).items() if "__pycache__" not in k}
        return found | environ_ledger_fingerprint()

    before = files()
    code, _, err = run(capsys, root, *args)
    assert code == 2, err
    assert files() == before
    return " ".join(err.split())


def test_a_lag_has_no_upstream_on_the_first_day_and_reads_the_day_before_after(
    capsys: pytest.CaptureFixture[str], root: Path
) -> None:
    status = run_json(capsys, root, "status")
    lagged = next(a for a in status["assets"] if a["asset"] == LAGGED)
    assert lagged["partitions"]["2026-03-01"] == "missing_upstream"
    assert lagged["partitions"]["2026-03-02"] == "no_expected_input"

    gaps = run_json(capsys, root, "gaps", "--reason", "missing_upstream")
    assert [(g["asset"], g["partition_key"], g["proposed_action"]) for g in gaps["gaps"]] == [
        (LAGGED, "2026-03-01", "blocked_until_the_upstream_partitions_exist")
    ]
    assert "m/raw 2026-02-28" in gaps["gaps"][0]["detail"]

    code, _, err = run(capsys, root, "rerun", "--asset", RAW, "--partition", "2026-03-01")
    assert code == 0, err
    err = refused(capsys, root, "rerun", "--asset", LAGGED, "--partition", "2026-03-01")
    assert "upstream partitions do not exist (missing_upstream)" in err
    assert "m/lagged 2026-03-01 needs m/raw 2026-02-28" in err
    assert "allow_missing=True" in err
    code, _, err = run(capsys, root, "rerun", "--asset", LAGGED, "--partition", "2026-03-02")
    assert code == 0, err
    status = run_json(capsys, root, "status")
    states = {a["asset"]: a["partitions"] for a in status["assets"]}
    assert states[RAW]["2026-03-01"] == "materialized"
    assert states[LAGGED]["2026-03-02"] == "materialized"
    assert states[LAGGED]["2026-03-01"] == "missing_upstream"
    history = run_json(capsys, root, "history", "--asset", LAGGED)
    assert {k for c in history["commits"] for k in c["partition_keys"]} == {"2026-03-02"}
    # 2026-03-02 holds the rows of the day before, and of no other day
    store = load_project(root, environ=dict(os.environ)).store
    table = store.read_partitions(LAGGED, ["2026-03-02"])
    assert table is not None
    assert sorted(table.column("id").to_pylist()) == [f"2026-03-01-{i}" for i in range(3)]


def test_the_plan_leaves_out_a_partition_whose_upstream_does_not_exist(
    capsys: pytest.CaptureFixture[str], root: Path
) -> None:
    for asset, day in ((RAW, "2026-03-01"), (RAW, "2026-03-02"), (LAGGED, "2026-03-02")):
        code, _, err = run(capsys, root, "rerun", "--asset", asset, "--partition", day)
        assert code == 0, err
    plan = run_json(
        capsys, root, "plan", "--start", "2026-03-01", "--end", "2026-03-02",
        "--include-materialized", "--reason", "refresh", "--mode", "dry-run",
    )  # fmt: skip
    entries = per_key(parse_plan(plan["plan"]))  # a plan over two days: ranges
    assert entries["2026-03-01"]["target_assets"] == [RAW]
    assert [(a, r.value) for a, r, _ in entries["2026-03-01"]["gaps"]] == [
        (LAGGED, "missing_upstream")
    ]
    assert entries["2026-03-02"]["target_assets"] == [RAW, LAGGED]


def test_allow_missing_reads_only_what_exists(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    root = make_project(tmp_path / "allowed", "TimeWindowMapping(lookback=1, allow_missing=True)")
    status = run_json(capsys, root, "status")
    lagged = next(a for a in status["assets"] if a["asset"] == LAGGED)
    assert "missing_upstream" not in lagged["counts"]
    code, _, err = run(capsys, root, "rerun", "--asset", RAW, "--partition", "2026-03-01")
    assert code == 0, err
    code, _, err = run(capsys, root, "rerun", "--asset", LAGGED, "--partition", "2026-03-01")
    assert code == 0, err


@pytest.mark.parametrize(
    ("mapping", "says"),
    [
        ("TimeWindowMapping(start_offset=0, end_offset=-1)", "start_offset 0 is after end_offset"),
        ("TimeWindowMapping(lookback=1, start_offset=-1)", "both set where the span starts"),
        ("'previous day'", "'previous day' is not a partition mapping"),
    ],
)
def test_an_invalid_mapping_is_exit_2_naming_it(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, mapping: str, says: str
) -> None:
    root = make_project(tmp_path / "bad", mapping)
    err = refused(capsys, root, "status")
    assert says in err


def test_a_partition_reading_a_blocked_partition_is_refused_too(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A lag of a lag: m/twice 2026-03-02 reads m/lagged 2026-03-01, which can never be built
    (its own upstream day does not exist): rerun refuses it (exit 2, nothing written) instead
    of computing it from nothing; 2026-03-03 reads a partition that can be built, and runs."""
    root = make_project(tmp_path / "twice", "TimeWindowMapping.lag()")
    config = root / "backfiller.toml"
    config.write_text(
        config.read_text(encoding="utf-8").replace('"m/lagged"]', '"m/lagged", "m/twice"]'),
        encoding="utf-8",
    )
    with (root / "assets.py").open("a", encoding="utf-8") as module:
        module.write(
            textwrap.dedent(
                """

                @asset("m/twice", idempotency_key=("id",),
                       deps=[Dependency("m/lagged", TimeWindowMapping.lag())])
                def twice(context):
                    rows = context.upstream("m/lagged").to_pylist()
                    return [{"id": r["id"], "n": r["n"]} for r in rows]
                """
            )
        )
    for day in ("2026-03-01", "2026-03-02"):
        code, _, err = run(capsys, root, "rerun", "--asset", RAW, "--partition", day)
        assert code == 0, err
    code, _, err = run(capsys, root, "rerun", "--asset", LAGGED, "--partition", "2026-03-02")
    assert code == 0, err
    err = refused(capsys, root, "rerun", "--asset", "m/twice", "--partition", "2026-03-02")
    assert "m/twice 2026-03-02 needs m/lagged 2026-03-01" in err
    code, _, err = run(capsys, root, "rerun", "--asset", "m/twice", "--partition", "2026-03-03")
    assert code == 0, err
