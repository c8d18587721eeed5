"""A multi-dimensional asset through the CLI, on a real project (Delta tables, SQLite ledger):
``sales/daily`` (the project's daily scheme, its days declared by a manifest) feeds
``sales/by_line`` (date × product_line, each cell reads its day) which feeds ``sales/total``
(daily: a day reads every product line of that day). Gaps, plans, apply, checks, evidence,
holds and release, restore of one cell, selection by ``--dimension``, and the gap
``missing_upstream`` when a day's product-line cells do not exist (``by_line`` starts a day
later than the others)."""

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
from deltalake import DeltaTable

from backfiller.project import load_project

DAILY, BY_LINE, TOTAL = "sales/daily", "sales/by_line", "sales/total"
LINES = ("billing", "voice", "chat")
MANIFEST = "sales-manifest-001"
DAYS = [(date(2026, 3, 1) + timedelta(days=i)).isoformat() for i in range(61)]  # March, April

ASSETS = """
from backfiller import (
    Dependency,
    Dimension,
    MultiScheme,
    MultiToSingleDimensionMapping,
    StaticScheme,
    asset,
)
from backfiller.checks import unique_key
from backfiller.partitions import scheme_from_config

LINES = MultiScheme(
    (
        Dimension("date", scheme_from_config(kind="daily", start="2026-03-02", end="2026-05-01")),
        Dimension("product_line", StaticScheme(("billing", "voice", "chat"))),
    )
)


@asset("sales/daily", idempotency_key=("id",))
def daily(context):
    day = context.partition_key
    return [
        {"id": f"{day}-{line}", "line": line, "amount": i + 1}
        for i, line in enumerate(("billing", "voice", "chat"))
    ]


@asset(
    "sales/by_line",
    idempotency_key=("id",),
    deps=[Dependency("sales/daily", MultiToSingleDimensionMapping())],
    scheme=LINES,
    checks=[unique_key()],
)
def by_line(context):
    line = context.dimensions["product_line"]
    rows = context.upstream("sales/daily").to_pylist()
    return [{"id": r["id"], "amount": r["amount"] * 10} for r in rows if r["line"] == line]


@asset(
    "sales/total",
    idempotency_key=("day",),
    deps=[Dependency("sales/by_line", MultiToSingleDimensionMapping())],
)
def total(context):
    rows = context.upstream("sales/by_line").to_pylist()
    return [
        {
            "day": context.partition_key,
            "lines": ",".join(sorted(r["product_line"] for r in rows)),
            "total": sum(r["amount"] for r in rows),
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

            [policy.required_checks]
            "sales/by_line" = ["idempotency_key_unique"]
            """
        ),
        encoding="utf-8",
    )
    manifest = {
        "batch_id": "b1",
        "created_at": "2026-05-01T00:00:00+00:00",
        "manifest_id": MANIFEST,
        "partitions": [{"partition_key": d, "expected_record_count": 3} for d in DAYS],
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


def rows(root: Path, asset: str, *keys: str) -> list[dict[str, Any]]:
    table = load_project(root, environ=dict(os.environ)).store.read_partitions(asset, list(keys))
    assert table is not None
    return sorted(table.to_pylist(), key=lambda r: json.dumps(r, sort_keys=True))


def cell_files(root: Path, key: str) -> dict[str, str]:
    """The data files of one cell of ``sales/by_line`` (its partition folder)."""
    return {k: v for k, v in files(root, "data/lake/sales/by_line").items() if key in k}


@pytest.mark.slow
def test_a_multi_dimensional_asset_through_gap_plan_apply_checks_evidence_release_restore(
    capsys: pytest.CaptureFixture[str], root: Path
) -> None:
    # gaps: each cell of a declared day is missing, declared through the day it reads; the
    # total of the first day reads cells that do not exist (by_line starts a day later)
    status = states(capsys, root, "--start", "2026-03-01", "--end", "2026-03-02")
    assert status[BY_LINE]["partitions"] == {
        f"2026-03-02|{line}": "missing_partition" for line in LINES
    }
    assert status[TOTAL]["partitions"] == {
        "2026-03-01": "missing_upstream",
        "2026-03-02": "missing_partition",
    }
    gaps = run_json(capsys, root, "gaps", "--partition", "2026-04-17", "--asset", BY_LINE)
    assert [(g["partition_key"], g["gap_reason"]) for g in gaps["gaps"]] == [
        (f"2026-04-17|{line}", "missing_partition") for line in LINES
    ]
    assert MANIFEST in gaps["gaps"][0]["detail"]
    blocked = run_json(capsys, root, "gaps", "--partition", "2026-03-01", "--asset", TOTAL)
    [gap] = blocked["gaps"]
    assert gap["gap_reason"] == "missing_upstream"
    assert "2026-03-01|billing" in gap["detail"]

    # plan (dry-run): the day, its cells (each with its dimensions' values) and the total
    before = files(root)
    plan = run_json(capsys, root, "plan", "--partition", "2026-04-17")
    written = {k for k in files(root) if k not in before or files(root)[k] != before[k]}
    assert written == {plan["path"]}
    assert "|" not in plan["path"]
    entries = {e["partition_key"]: e for e in plan["plan"]["partitions"]}
    assert list(entries) == ["2026-04-17", *(f"2026-04-17|{line}" for line in LINES)]
    assert entries["2026-04-17"]["target_assets"] == [DAILY, TOTAL]
    assert "dimensions" not in entries["2026-04-17"]
    voice = entries["2026-04-17|voice"]
    assert voice["dimensions"] == {"date": "2026-04-17", "product_line": "voice"}
    assert voice["target_assets"] == [BY_LINE]
    assert (voice["window_start"], voice["window_end"]) == (
        "2026-04-17T00:00:00+00:00",
        "2026-04-17T23:59:59.999999+00:00",
    )
    assert voice["upstream_manifest_id"] == MANIFEST
    assert voice["gap_reason"] == "missing_partition"

    # apply: each cell its product line's rows; the table is partitioned by one column per
    # dimension; the total reads every product line of the day
    ok(capsys, root, "apply", str(root / plan["path"]))
    table = DeltaTable(str(root / "data/lake/sales/by_line"))
    assert table.metadata().partition_columns == ["partition_key", "date", "product_line"]
    assert rows(root, BY_LINE, "2026-04-17|voice") == [
        {
            "amount": 20,
            "date": "2026-04-17",
            "id": "2026-04-17-voice",
            "partition_key": "2026-04-17|voice",
            "product_line": "voice",
        }
    ]
    assert rows(root, TOTAL, "2026-04-17") == [
        {
            "day": "2026-04-17",
            "lines": "billing,chat,voice",
            "partition_key": "2026-04-17",
            "total": 60,
        }
    ]
    status = states(capsys, root, "--start", "2026-04-16", "--end", "2026-04-17")
    assert status[BY_LINE]["partitions"] == {
        **{f"2026-04-16|{line}": "missing_partition" for line in LINES},
        **{f"2026-04-17|{line}": "materialized" for line in LINES},
    }
    report = json.loads(
        (root / "reports/partitions/sales/by_line/2026-04-17|chat.json").read_text("utf-8")
    )
    assert report["partition_key"] == "2026-04-17|chat"
    [evidence] = sorted((root / "reports/evidence").glob("*.json"))
    published = {
        (p["asset"], p["partition_key"]) for p in json.loads(evidence.read_text())["partitions"]
    }
    assert {(BY_LINE, f"2026-04-17|{line}") for line in LINES} <= published

    # checks of one cell
    out = ok(capsys, root, "check", "--asset", BY_LINE, "--partition", "2026-04-17|voice")
    assert "idempotency_key_unique" in out
    assert ok(capsys, root, "ready", BY_LINE, "2026-04-17|voice").startswith("ready")

    # rerun one cell: one commit replacing exactly that cell; the other cells' files stay
    others = {line: cell_files(root, f"2026-04-17%7C{line}") for line in ("billing", "chat")}
    version = table.version()
    ok(
        capsys,
        root,
        "rerun",
        "--asset",
        BY_LINE,
        "--partition",
        "2026-04-17|voice",
        "--reason",
        "x",
    )
    assert DeltaTable(str(root / "data/lake/sales/by_line")).version() == version + 1
    assert {line: cell_files(root, f"2026-04-17%7C{line}") for line in others} == others
    history = run_json(capsys, root, "history", "--asset", BY_LINE)
    assert history["commits"][0]["partition_keys"] == ["2026-04-17|voice"]
    # the republished cell holds the day's total until the run is released
    code, out, _ = run(capsys, root, "ready", TOTAL, "2026-04-17")
    assert code == 1 and "held: sales/by_line 2026-04-17|voice republished" in out
    run_id = history["commits"][0]["run_id"]
    ok(capsys, root, "release", "--run", run_id)
    assert ok(capsys, root, "ready", TOTAL, "2026-04-17").startswith("ready")

    # restore one cell to the version the plan published: only that cell changes
    before_restore = {line: rows(root, BY_LINE, f"2026-04-17|{line}") for line in LINES}
    others = {line: cell_files(root, f"2026-04-17%7C{line}") for line in ("billing", "chat")}
    ok(
        capsys,
        root,
        "restore",
        "--asset",
        BY_LINE,
        "--partition",
        "2026-04-17|voice",
        "--to-version",
        str(version),
        "--reason",
        "back",
    )
    assert rows(root, BY_LINE, "2026-04-17|voice") == before_restore["voice"]
    assert {line: cell_files(root, f"2026-04-17%7C{line}") for line in others} == others
    history = run_json(capsys, root, "history", "--asset", BY_LINE)
    assert history["commits"][0]["partition_keys"] == ["2026-04-17|voice"]


@pytest.mark.slow
def test_check_restore_and_holds_take_a_dimension_value_as_the_selection_does(
    capsys: pytest.CaptureFixture[str], root: Path
) -> None:
    """``--partition DAY --dimension NAME=VALUE`` names one cell for ``check`` and ``restore``
    (several, none, or an unknown dimension: exit 2, nothing written); ``holds --dimension``
    keeps the holds on, or caused by, the cells with that value."""
    plan = run_json(capsys, root, "plan", "--partition", "2026-04-17")
    ok(capsys, root, "apply", str(root / plan["path"]))
    day = ("--partition", "2026-04-17")

    check = run_json(
        capsys, root, "check", "--asset", BY_LINE, *day, "--dimension", "product_line=voice"
    )
    assert (check["partition_key"], check["passed"]) == ("2026-04-17|voice", True)
    for args, says in (
        (
            ("--dimension", "product_line=voice", "--dimension", "product_line=chat"),
            f"names 2 partitions of {BY_LINE} (2026-04-17|voice, 2026-04-17|chat); this "
            "command acts on one",
        ),
        (("--dimension", "region=eu"), "Unknown dimension 'region'"),
        (("--dimension", "product_line=sms"), "Unknown partition key 'sms'"),
        (("--dimension", "product_line"), "expected NAME=VALUE"),
    ):
        assert says in refused(capsys, root, "check", "--asset", BY_LINE, *day, *args)
        assert says in refused(
            capsys, root, "restore", "--asset", BY_LINE, *day, *args, "--to-version", "1"
        )
    no_dimension = "no selected asset has more than one dimension"
    assert no_dimension in refused(
        capsys, root, "check", "--asset", TOTAL, *day, "--dimension", "product_line=voice"
    )

    # the day's input republished: every cell of the day and the total held, then narrowed
    version = DeltaTable(str(root / "data/lake/sales/by_line")).version()
    ok(capsys, root, "rerun", "--asset", DAILY, *day, "--reason", "x")
    every = run_json(capsys, root, "holds")["holds"]
    assert {(h["target"], h["partition_key"]) for h in every if h["kind"] == "asset"} >= {
        (BY_LINE, f"2026-04-17|{line}") for line in LINES
    }
    voice = run_json(capsys, root, "holds", "--dimension", "product_line=voice")
    assert voice["filters"]["dimensions"] == {"product_line": ["voice"]}
    kept = voice["holds"]
    assert kept and voice["left_out"] == len(every) - len(kept) > 0
    for h in every:
        cells = [(h["cause_asset"], h["cause_partition"])]
        if h["kind"] == "asset":
            cells.append((h["target"], h["partition_key"]))
        judged = [k.endswith("|voice") for a, k in cells if a == BY_LINE]
        assert (h in kept) is (not judged or any(judged))
    assert "Unknown dimension 'region'" in refused(
        capsys, root, "holds", "--dimension", "region=eu"
    )

    # restore the voice cell named by its value: only that cell changes
    others = {line: cell_files(root, f"2026-04-17%7C{line}") for line in ("billing", "chat")}
    ok(
        capsys,
        root,
        "restore",
        "--asset",
        BY_LINE,
        *day,
        "--dimension",
        "product_line=voice",
        "--to-version",
        str(version),
        "--reason",
        "back",
    )
    history = run_json(capsys, root, "history", "--asset", BY_LINE)
    assert history["commits"][0]["partition_keys"] == ["2026-04-17|voice"]
    assert {line: cell_files(root, f"2026-04-17%7C{line}") for line in others} == others


@pytest.mark.slow
def test_dimension_selection_narrows_the_multi_dimensional_cells(
    capsys: pytest.CaptureFixture[str], root: Path
) -> None:
    def keys(*args: str) -> dict[str, list[str]]:
        return {a: list(s["partitions"]) for a, s in states(capsys, root, *args).items()}

    # a range on the time dimension: every value of the other dimension
    assert keys("--asset", BY_LINE, "--start", "2026-04-16", "--end", "2026-04-17") == {
        BY_LINE: [f"{day}|{line}" for day in ("2026-04-16", "2026-04-17") for line in LINES]
    }
    # one value, then two values of a dimension
    assert keys(
        "--start", "2026-04-16", "--end", "2026-04-17", "--dimension", "product_line=billing"
    ) == {
        DAILY: ["2026-04-16", "2026-04-17"],
        BY_LINE: ["2026-04-16|billing", "2026-04-17|billing"],
        TOTAL: ["2026-04-16", "2026-04-17"],
    }
    assert keys(
        "--asset",
        BY_LINE,
        "--start",
        "2026-04-17",
        "--end",
        "2026-04-17",
        "--dimension",
        "product_line=chat",
        "--dimension",
        "product_line=voice",
    ) == {BY_LINE: ["2026-04-17|voice", "2026-04-17|chat"]}
    # status: a grid per product line over the days, and the counts of each
    grid = ok(capsys, root, "status", "--start", "2026-04-01", "--end", "2026-04-30", "--each")
    section = grid.split(BY_LINE)[1].split(TOTAL)[0]
    assert [line.strip() for line in section.splitlines()[1:7]] == [
        "product_line=billing",
        "2026-04  " + "·" * 30,
        "product_line=voice",
        "2026-04  " + "·" * 30,
        "product_line=chat",
        "2026-04  " + "·" * 30,
    ]
    by_line = states(capsys, root, "--start", "2026-04-01", "--end", "2026-04-30")[BY_LINE]
    assert by_line["grids"] == {f"product_line={line}": {"missing_partition": 30} for line in LINES}
    # a plan of one day and one product line: the day, that cell, and the total it feeds
    plan = run_json(
        capsys, root, "plan", "--partition", "2026-04-17", "--dimension", "product_line=billing"
    )["plan"]
    assert [(e["partition_key"], e["target_assets"]) for e in plan["partitions"]] == [
        ("2026-04-17", [DAILY, TOTAL]),
        ("2026-04-17|billing", [BY_LINE]),
    ]
    # rerun: the cells of a day with one product line
    ok(capsys, root, "rerun", "--asset", DAILY, "--partition", "2026-04-16", "--reason", "x")
    out = ok(
        capsys,
        root,
        "rerun",
        "--asset",
        BY_LINE,
        "--partition",
        "2026-04-16",
        "--dimension",
        "product_line=voice",
        "--reason",
        "x",
    )
    assert "2026-04-16|voice" in out and "2026-04-16|chat" not in out
    # a whole key selects that cell alone
    plan = run_json(capsys, root, "plan", "--asset", BY_LINE, "--partition", "2026-04-17|chat")
    assert plan["plan"]["request"]["keys"] == ["2026-04-17|chat"]


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (
            ("plan", "--partition", "2026-04-17", "--dimension", "product_line=gold"),
            "Unknown partition key 'gold': expected one of billing, voice, chat",
        ),
        (
            ("plan", "--partition", "2026-04-17", "--dimension", "colour=red"),
            "Unknown dimension 'colour': the selected assets' dimensions are date, product_line",
        ),
        (
            ("status", "--asset", DAILY, "--dimension", "product_line=voice"),
            "Unknown dimension 'product_line': no selected asset has more than one dimension",
        ),
        (("gaps", "--dimension", "product_line"), "expected NAME=VALUE"),
        (
            ("plan", "--asset", BY_LINE, "--partition", "2026-04-17|gold"),
            "its product_line — Unknown partition key 'gold'",
        ),
        (
            ("rerun", "--asset", BY_LINE, "--partition", "2026-04-17|voice|x"),
            "expected 2 values joined by '|'",
        ),
        (
            ("plan", "--asset", BY_LINE, "--partition", "2026-03-01|voice"),
            "its date — Partition key '2026-03-01' is before the start",
        ),
    ],
)
def test_a_bad_multi_dimensional_selection_is_exit_2_naming_it(
    capsys: pytest.CaptureFixture[str], root: Path, args: tuple[str, ...], says: str
) -> None:
    assert says in refused(capsys, root, *args)


@pytest.fixture
def dynamic_root(root: Path) -> Path:
    """The same project, its product lines a dynamic dimension (none yet)."""
    assets = root / "assets.py"
    text = assets.read_text("utf-8").replace(
        'StaticScheme(("billing", "voice", "chat"))', 'DynamicScheme("product_line")'
    )
    assets.write_text(text.replace("    StaticScheme,\n", "    DynamicScheme,\n"), "utf-8")
    return root


@pytest.mark.slow
def test_a_dynamic_dimension_gets_its_values_from_the_ledger(
    capsys: pytest.CaptureFixture[str], dynamic_root: Path
) -> None:
    root = dynamic_root
    status = states(capsys, root, "--start", "2026-04-17", "--end", "2026-04-17")
    assert status[BY_LINE]["partitions"] == {}
    add = ("partitions", "add", "--dimension", "product_line", "--reason", "launch")
    ok(capsys, root, *add, "--value", "billing", "--value", "voice")
    status = states(capsys, root, "--start", "2026-04-17", "--end", "2026-04-17")
    assert list(status[BY_LINE]["partitions"]) == ["2026-04-17|billing", "2026-04-17|voice"]
    assert "2026-04-17|chat" in refused(
        capsys, root, "plan", "--asset", BY_LINE, "--partition", "2026-04-17|chat"
    )

    plan = run_json(capsys, root, "plan", "--partition", "2026-04-17")
    ok(capsys, root, "apply", str(root / plan["path"]))
    assert rows(root, TOTAL, "2026-04-17")[0]["lines"] == "billing,voice"
    # a new value: its cell of the day is a gap; the day's total is recomputed with it
    ok(capsys, root, *add, "--value", "chat")
    gaps = run_json(capsys, root, "gaps", "--partition", "2026-04-17", "--needs-action")
    assert [(g["asset"], g["partition_key"]) for g in gaps["gaps"]] == [
        (BY_LINE, "2026-04-17|chat")
    ]
    plan = run_json(capsys, root, "plan", "--partition", "2026-04-17")
    assert [
        (e["partition_key"], e["target_assets"])
        for e in plan["plan"]["partitions"]
        if e["target_assets"]
    ] == [("2026-04-17", [TOTAL]), ("2026-04-17|chat", [BY_LINE])]
    ok(capsys, root, "apply", str(root / plan["path"]))
    assert rows(root, TOTAL, "2026-04-17")[0]["lines"] == "billing,chat,voice"

    # removing a value with published cells is refused unless asked; it is recorded
    remove = ("partitions", "remove", "--dimension", "product_line", "--reason", "retired")
    code, _, err = run(capsys, root, *remove, "--value", "voice")
    assert code == 2 and "Published data in the partitions of: voice (1 asset(s))" in err
    ok(capsys, root, *remove, "--value", "voice", "--allow-published")
    status = states(capsys, root, "--start", "2026-04-17", "--end", "2026-04-17")
    assert list(status[BY_LINE]["partitions"]) == ["2026-04-17|billing", "2026-04-17|chat"]
    events = run_json(capsys, root, "partitions", "list", "--history")["events"]
    assert [(e["verb"], e["value"], e["published"]) for e in events][-1] == ("remove", "voice", 1)
    # the asset's history shows its dimension's changes, as for an asset of a dynamic scheme
    assert run_json(capsys, root, "history", "--asset", BY_LINE)["dimension_events"] == events
    out = ok(capsys, root, "history", "--asset", BY_LINE)
    assert "Values added and removed" in out and "retired" in out
    # a value removed already is named so, not refused for its published data
    err = refused(capsys, root, *remove, "--value", "voice")
    assert "Not a current value of product_line: voice" in err


PER_LINE = """

@asset(
    "sales/per_line",
    idempotency_key=("line",),
    deps=[Dependency("sales/by_line", MultiToSingleDimensionMapping(dimension="product_line"))],
    scheme=DynamicScheme("product_line"),
)
def per_line(context):
    rows = context.upstream("sales/by_line").to_pylist()
    return [{"line": context.partition_key, "total": sum(r["amount"] for r in rows)}]
"""


def test_an_asset_of_its_own_dynamic_scheme_gets_the_values_from_the_ledger(
    capsys: pytest.CaptureFixture[str], dynamic_root: Path
) -> None:
    """A per-product-line asset (``scheme=DynamicScheme("product_line")``, reading every day
    of its line) has the values ``partitions add`` recorded, as the multi-dimensional asset
    beside it does: it was left with none, so the value just added was refused as unknown."""
    root = dynamic_root
    with (root / "assets.py").open("a", encoding="utf-8") as assets:
        assets.write(PER_LINE)
    add = ("partitions", "add", "--dimension", "product_line", "--reason", "launch")
    ok(capsys, root, *add, "--value", "billing", "--value", "voice")

    project = load_project(root)
    assert project.scheme_of("sales/per_line").keys() == ["billing", "voice"]
    assert project.scheme_of(BY_LINE).keys()[:2] == ["2026-03-02|billing", "2026-03-02|voice"]
    plan = run_json(capsys, root, "plan", "--asset", "sales/per_line", "--partition", "billing")
    assert [e["partition_key"] for e in plan["plan"]["partitions"]] == ["billing"]
