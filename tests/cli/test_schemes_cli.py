"""Assets partitioned by different schemes, through the CLI, on a real project (Delta tables,
SQLite ledger): ``sales/daily`` (the project's daily scheme, its days declared by
a manifest) feeds ``sales/monthly`` (a monthly scheme of its own, fan-in). ``status`` and
``gaps`` show each asset over its own keys; a plan holds the days and the months they feed,
each with its own window; apply, rerun and restore compute and publish a month as one cell,
leaving what must not change unchanged; a key that is not a key of the asset's scheme is exit 2
naming the scheme, with nothing written."""

from __future__ import annotations

import json
import os
import textwrap
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from cli_calls import ok, run, run_json
from conftest import cli_environment, environ_ledger_fingerprint, tree_fingerprint

from backfiller.project import load_project

DAILY, MONTHLY = "sales/daily", "sales/monthly"
MANIFEST = "sales-manifest-001"
DAYS = [(date(2026, 3, 1) + timedelta(days=i)).isoformat() for i in range(61)]  # March, April

ASSETS = """
from backfiller import Dependency, TimeWindowMapping, asset
from backfiller.partitions import scheme_from_config

MONTHLY = scheme_from_config(kind="monthly", start="2026-03", end="2026-05")


@asset("sales/daily", idempotency_key=("id",))
def daily(context):
    day = context.partition_key
    return [{"id": f"{day}-{i}", "day": day, "amount": i + 1} for i in range(2)]


@asset(
    "sales/monthly",
    idempotency_key=("month",),
    deps=[Dependency("sales/daily", TimeWindowMapping())],
    scheme=MONTHLY,
)
def monthly(context):
    rows = context.upstream("sales/daily").to_pylist()
    return [
        {
            "month": context.partition_key,
            "days": len({r["day"] for r in rows}),
            "total": sum(r["amount"] for r in rows),
            "window": context.window.start.isoformat() + "/" + context.window.end.isoformat(),
        }
    ]
"""


@pytest.fixture(autouse=True)
def _cli_environment(monkeypatch: pytest.MonkeyPatch, project_environ: dict[str, str]) -> None:
    cli_environment(monkeypatch, project_environ)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    folder = tmp_path / "sales"
    (folder / "manifests").mkdir(parents=True)
    (folder / "backfiller.toml").write_text(
        textwrap.dedent(
            """
            [project]
            name = "sales"
            operator = "ann"
            manifests = "manifests"

            [partitions]
            kind = "daily"
            start = "2026-03-01"
            end = "2026-05-01"

            [policy]
            backfill_assets = ["sales/daily", "sales/monthly"]
            """
        ),
        encoding="utf-8",
    )
    manifest = {
        "batch_id": "b1",
        "created_at": "2026-05-01T00:00:00+00:00",
        "manifest_id": MANIFEST,
        "partitions": [{"partition_key": d, "expected_record_count": 2} for d in DAYS],
        "schema_version": 1,
        "source": "shop/sales",
    }
    (folder / "manifests" / f"{MANIFEST}.json").write_text(json.dumps(manifest), "utf-8")
    (folder / "assets.py").write_text(ASSETS, encoding="utf-8")
    return folder


def files(root: Path, under: str = "") -> dict[str, str]:
    found = {k: v for k, v in tree_fingerprint(root / under).items() if "__pycache__" not in k}
    return found | environ_ledger_fingerprint() if not under else found


def refused(capsys: pytest.CaptureFixture[str], root: Path, *args: str) -> str:
    """Run a command that must be refused with exit 2 and write nothing; its stderr."""
    before = files(root)
    code, _, err = run(capsys, root, *args)
    assert code == 2, err
    assert files(root) == before
    return " ".join(err.split())


def states(capsys: pytest.CaptureFixture[str], root: Path, *args: str) -> dict[str, Any]:
    return {a["asset"]: a for a in run_json(capsys, root, "status", *args)["assets"]}


def month_rows(root: Path, key: str) -> list[dict[str, Any]]:
    table = load_project(root, environ=dict(os.environ)).store.read_partitions(MONTHLY, [key])
    assert table is not None
    return [{k: v for k, v in r.items() if k != "partition_key"} for r in table.to_pylist()]


@pytest.mark.slow
def test_a_daily_asset_and_its_monthly_rollup_through_every_command(
    capsys: pytest.CaptureFixture[str], root: Path
) -> None:
    # status and gaps: each asset over its own keys; a month whose days are declared is missing
    status = states(capsys, root)
    assert status[DAILY]["window"] == {"first": "2026-03-01", "last": "2026-04-30", "count": 61}
    assert status[MONTHLY]["window"] == {"first": "2026-03", "last": "2026-04", "count": 2}
    assert status[MONTHLY]["scheme"] == "monthly from 2026-03 (UTC)"
    assert status[MONTHLY]["partitions"] == {
        "2026-03": "missing_partition",
        "2026-04": "missing_partition",
    }
    assert set(status[DAILY]["partitions"].values()) == {"missing_partition"}
    gaps = run_json(capsys, root, "gaps", "--asset", MONTHLY)
    assert [(g["partition_key"], g["gap_reason"]) for g in gaps["gaps"]] == [
        ("2026-03", "missing_partition"),
        ("2026-04", "missing_partition"),
    ]
    assert MANIFEST in gaps["gaps"][0]["detail"]
    grid = ok(capsys, root, "status", "--each")
    assert "monthly from 2026-03 (UTC); 2 partitions 2026-03 .. 2026-04" in grid

    # plan (dry-run): the days, and the months they feed, each with its own window
    before = files(root)
    plan = run_json(capsys, root, "plan", "--start", "2026-03-30", "--end", "2026-04-01")
    written = {k for k in files(root) if k not in before or files(root)[k] != before[k]}
    assert written == {plan["path"]}
    document = plan["plan"]
    entries = {e["partition_key"]: e for e in document["partitions"]}
    assert list(entries) == ["2026-03-30", "2026-03-31", "2026-04-01", "2026-03", "2026-04"]
    assert entries["2026-03"]["target_assets"] == [MONTHLY]
    assert entries["2026-03"]["window_start"] == "2026-03-01T00:00:00+00:00"
    assert entries["2026-03"]["window_end"] == "2026-03-31T23:59:59.999999+00:00"
    assert entries["2026-03"]["upstream_manifest_id"] == MANIFEST
    assert entries["2026-03-31"]["target_assets"] == [DAILY]
    assert (document["window_start"], document["window_end"]) == (
        "2026-03-01T00:00:00+00:00",
        "2026-04-30T23:59:59.999999+00:00",
    )
    assert plan["warnings"] == []

    # apply: a month is computed from its days, with the month as its window
    ok(capsys, root, "apply", str(root / plan["path"]))
    march = [
        {
            "month": "2026-03",
            "days": 2,
            "total": 6,
            "window": "2026-03-01T00:00:00+00:00/2026-04-01T00:00:00+00:00",
        }
    ]
    assert month_rows(root, "2026-03") == march
    status = states(capsys, root)
    assert status[MONTHLY]["partitions"] == {"2026-03": "materialized", "2026-04": "materialized"}
    assert status[DAILY]["counts"] == {"materialized": 3, "missing_partition": 58}
    report = json.loads((root / "reports/partitions/sales/monthly/2026-03.json").read_text())
    assert (report["window_start"], report["window_end"]) == (
        "2026-03-01T00:00:00+00:00",
        "2026-03-31T23:59:59.999999+00:00",
    )
    [evidence] = sorted((root / "reports/evidence").glob("*.json"))
    windows = {
        (p["asset"], p["partition_key"]): p["window"]
        for p in json.loads(evidence.read_text())["partitions"]
    }
    assert windows[(MONTHLY, "2026-04")] == {
        "start": "2026-04-01T00:00:00Z",
        "end": "2026-05-01T00:00:00Z",
    }
    assert ok(capsys, root, "ready", MONTHLY, "2026-03").startswith("ready")
    ok(capsys, root, "check", "--asset", MONTHLY, "--partition", "2026-03")

    # a new day: its month is recomputed with it
    ok(capsys, root, "rerun", "--asset", DAILY, "--partition", "2026-03-01", "--reason", "late")
    assert month_rows(root, "2026-03") == [march[0] | {"days": 3, "total": 9}]
    # a republished day: its month too, held until the run is released
    out = ok(capsys, root, "rerun", "--asset", DAILY, "--partition", "2026-03-30", "--reason", "x")
    assert "held until release: sales/monthly 2026-03" in out
    code, out, _ = run(capsys, root, "ready", MONTHLY, "2026-03")
    assert code == 1 and "held: sales/daily 2026-03-30 republished" in out
    ok(capsys, root, "release", "--run", out.split(" in run ")[1].split()[0])
    assert ok(capsys, root, "ready", MONTHLY, "2026-03").startswith("ready")
    # a missing day: the plan proposes it and the month it feeds (fan-in)
    proposed = run_json(capsys, root, "plan", "--partition", "2026-03-02")["plan"]
    assert [(e["partition_key"], e["target_assets"]) for e in proposed["partitions"]] == [
        ("2026-03-02", [DAILY]),
        ("2026-03", [MONTHLY]),
    ]

    # rerun one month: only that month's cell changes
    daily_table = files(root, "data/lake/sales/daily")
    ok(capsys, root, "rerun", "--asset", MONTHLY, "--partition", "2026-03", "--reason", "refresh")
    assert month_rows(root, "2026-03") == [march[0] | {"days": 3, "total": 9}]
    assert files(root, "data/lake/sales/daily") == daily_table
    status = states(capsys, root)
    assert status[MONTHLY]["partitions"] == {"2026-03": "materialized", "2026-04": "materialized"}
    history = run_json(capsys, root, "history", "--asset", MONTHLY)
    assert [c["partition_keys"] for c in history["commits"]][:3] == [["2026-03"]] * 3

    # restore one month to the version the plan published: the other month and the days stay
    april = month_rows(root, "2026-04")
    ok(capsys, root, "restore", "--asset", MONTHLY, "--partition", "2026-03", "--to-version", "1")
    assert month_rows(root, "2026-03") == march
    assert month_rows(root, "2026-04") == april
    assert files(root, "data/lake/sales/daily") == daily_table


def test_partition_options_select_each_asset_keys_by_overlapping_windows(
    capsys: pytest.CaptureFixture[str], root: Path
) -> None:
    def keys(*args: str) -> dict[str, list[str]]:
        status = states(capsys, root, *args)
        return {a: list(s["partitions"]) for a, s in status.items()}

    # a range of days selects the months any of them is in
    assert keys("--start", "2026-03-31", "--end", "2026-04-01") == {
        DAILY: ["2026-03-31", "2026-04-01"],
        MONTHLY: ["2026-03", "2026-04"],
    }
    # a month as a bound selects its days
    assert keys("--start", "2026-04", "--end", "2026-04") == {
        DAILY: DAYS[31:],
        MONTHLY: ["2026-04"],
    }
    # one asset: its own keys only
    assert keys("--asset", MONTHLY, "--start", "2026-03", "--end", "2026-04") == {
        MONTHLY: ["2026-03", "2026-04"]
    }
    # --partition: the key for the assets that have it, the overlapping keys for the others
    plan = run_json(capsys, root, "plan", "--partition", "2026-04")["plan"]
    assert [e["partition_key"] for e in plan["partitions"]] == [*DAYS[31:], "2026-04"]
    assert plan["request"]["keys"] == [*DAYS[31:], "2026-04"]
    # the project's default partition is read like --partition
    config = root / "backfiller.toml"
    config.write_text(
        config.read_text().replace(
            'end = "2026-05-01"', 'end = "2026-05-01"\ndefault = "2026-03-05"'
        )
    )
    plan = run_json(capsys, root, "plan")["plan"]
    assert plan["request"]["keys"] == ["2026-03-05", "2026-03"]
    # the months alone: a plan over the monthly scheme, each month declared through its days
    months = run_json(
        capsys, root, "plan", "--asset", MONTHLY, "--start", "2026-03", "--end", "2026-04"
    )["plan"]
    assert [
        (e["partition_key"], e["window_start"], e["upstream_manifest_id"], e["target_assets"])
        for e in months["partitions"]
    ] == [
        ("2026-03", "2026-03-01T00:00:00+00:00", MANIFEST, [MONTHLY]),
        ("2026-04", "2026-04-01T00:00:00+00:00", MANIFEST, [MONTHLY]),
    ]


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (
            ("rerun", "--asset", MONTHLY, "--partition", "2026-03-01"),
            "Invalid partition key '2026-03-01' for monthly from 2026-03 (UTC): expected YYYY-MM",
        ),
        (
            ("rerun", "--asset", DAILY, "--partition", "2026-03"),
            "for daily from 2026-03-01 (UTC): expected YYYY-MM-DD",
        ),
        (
            ("restore", "--asset", MONTHLY, "--partition", "2026-03-02", "--to-version", "1"),
            "for monthly from 2026-03 (UTC): expected YYYY-MM",
        ),
        (("check", "--asset", MONTHLY, "--partition", "2026-3"), "expected YYYY-MM"),
        (
            ("plan", "--partition", "2026-13"),
            "'2026-13' is not a key of any selected asset's scheme (sales/daily: daily from "
            "2026-03-01 (UTC) (YYYY-MM-DD); sales/monthly: monthly from 2026-03 (UTC) (YYYY-MM))",
        ),
        (("status", "--start", "2026-03", "--end", "march"), "'march' is not a key of any"),
        (("plan", "--asset", MONTHLY, "--partition", "2026-05"), "past the end of monthly"),
    ],
)
def test_a_key_that_is_not_the_asset_scheme_is_exit_2_naming_the_scheme(
    capsys: pytest.CaptureFixture[str], root: Path, args: tuple[str, ...], says: str
) -> None:
    ok(capsys, root, "rerun", "--asset", DAILY, "--partition", "2026-03-02")
    assert says in refused(capsys, root, *args)


def test_the_web_pages_show_each_asset_over_its_own_keys(
    capsys: pytest.CaptureFixture[str], root: Path
) -> None:
    from backfiller.web import pages

    plan = run_json(capsys, root, "plan", "--start", "2026-03-31", "--end", "2026-04-01")
    ok(capsys, root, "apply", str(root / plan["path"]))
    project = load_project(root, environ=dict(os.environ))
    reader = project.reader()
    overview = {a["asset"]: a for a in pages.overview(project, reader)["assets"]}
    assert overview[MONTHLY]["window"] == {"first": "2026-03", "last": "2026-04", "count": 2}
    assert overview[MONTHLY]["counts"] == {"materialized": 2}
    assert overview[DAILY]["counts"] == {"materialized": 2, "missing_partition": 59}
    grid = pages.asset_page(project, reader, MONTHLY)["grid"]
    assert grid == [
        {"key": "2026-03", "state": "materialized"},
        {"key": "2026-04", "state": "materialized"},
    ]
    assert pages.partition_page(project, reader, MONTHLY, "2026-04")["state"] == "materialized"
    with pytest.raises(pages.NotFound, match="expected YYYY-MM"):
        pages.partition_page(project, reader, MONTHLY, "2026-04-01")
