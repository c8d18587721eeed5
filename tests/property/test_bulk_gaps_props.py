"""The bulk gap classifier against the brute-force per-cell oracle (``tests/gap_oracle.py``):
on small generated projects and states — every mix of ledger statuses, stored rows, data files
gone, reports gone, recorded manifest checksums and row counts, consumed upstream versions
(identity and look-back mappings; their JSON as the ledger writes it, compact or indented),
declarations changed by a newer manifest or broken, stored rows without a record, protected
partitions, upstream partitions that the mappings (identity, look-back, lag, a daily asset
reading weeks) require and that are not keys of the upstream's bounded scheme
(``missing_upstream``) or are allowed to be missing — the bulk path finds, for every cell, the
same gap reason, proposed action, counts and detail as the oracle over the per-cell
observation, in the same order; and its ranges are the oracle's gaps collapsed. The states
``status`` shows are the oracle's gap reasons (``materialized`` where there is none),
collapsed into ranges: one vocabulary."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from unittest import mock

import pyarrow as pa
from fast_loop import examples
from gap_oracle import oracle_gap
from hypothesis import given, settings
from hypothesis import strategies as st

from backfiller.assets import AssetGraph, Dependency, TimeWindowMapping, asset
from backfiller.canonical import sha256_hex
from backfiller.ledger import PartitionRecord, PartitionStatus, Protection
from backfiller.ledger.partitions import STATE_COLUMNS
from backfiller.manifests import BrokenManifest, Manifest, ManifestPartition, ManifestRegistry
from backfiller.partitions import DynamicScheme, StaticScheme, scheme_from_config
from backfiller.planning import classify
from backfiller.planning.classify import bulk_gaps, gap_ranges, state_ranges
from backfiller.planning.gaps import Gap, GapReason, PartitionState
from backfiller.planning.state import observe
from backfiller.policy import Policy, ProtectedObject
from backfiller.refs import AssetPartition
from backfiller.store.base import stats_of_each

#: generated states per property: 120 in the full suite, 5 in the fast loop (``make check``:
#: each example builds tables, seconds in all)
ORACLE_EXAMPLES = examples(120, fast=5)

DAILY = scheme_from_config(kind="daily", start="2026-03-01")
#: an upstream whose days are 2026-03-03 .. 2026-03-06 only
SHORT = scheme_from_config(kind="daily", start="2026-03-03", end="2026-03-07")
#: weeks from Wednesday 2026-03-04: the days before it need a week that does not exist
WEEKS = scheme_from_config(kind="weekly", start="2026-03-04", week_starts_on=2)
KEYS = [f"2026-03-{d:02d}" for d in range(1, 9)]
A, B, C = "p/a", "p/b", "p/c"  # b reads a's same day; c reads a's day and the day before
D, E, F, G = "p/d", "p/e", "p/f", "p/g"  # d: a's previous day alone; e: f's day and the day before
W, H, L = "p/w", "p/h", "p/l"  # g: f's same day; h: the week of w holding its day; l: lag, allowed


def _graph(counts: bool) -> AssetGraph:
    def compute(context: Any) -> None:
        raise AssertionError("never computed")

    def node(key: str, *deps: str | Dependency, scheme: Any = None) -> Any:
        return asset(key, idempotency_key=("id",), deps=deps, scheme=scheme)(compute)

    return AssetGraph(
        [
            asset(A, idempotency_key=("id",), expects_manifest_count=counts)(compute),
            node(B, A),
            node(C, Dependency(A, TimeWindowMapping(1))),
            node(D, Dependency(A, TimeWindowMapping.lag())),
            node(F, scheme=SHORT),
            node(E, Dependency(F, TimeWindowMapping(lookback=1)), B),
            node(G, F),
            node(W, scheme=WEEKS),
            node(H, Dependency(W, TimeWindowMapping()), Dependency(F, TimeWindowMapping.lag())),
            node(L, Dependency(A, TimeWindowMapping.lag(2, allow_missing=True))),
        ],
        DAILY,
    )


@dataclass
class FakeStore:
    """Rows and lost files per partition, as a Delta table's log would say."""

    stats: dict[str, dict[str, tuple[int, int]]]

    def partition_counts(self, asset: str) -> dict[str, int]:
        return {k: rows for k, (rows, _) in self.stats.get(asset, {}).items()}

    def partition_signatures(self, asset: str) -> dict[str, str]:
        return {k: sha256_hex([asset, k, v]) for k, v in self.stats.get(asset, {}).items()}

    def missing_files(self, asset: str) -> dict[str, int]:
        return {k: lost for k, (_, lost) in self.stats.get(asset, {}).items() if lost}

    def release(self, assets: Iterable[str]) -> None:
        pass

    def partition_files(self, asset: str) -> pa.Table:
        found = self.stats.get(asset, {})
        return pa.table(
            {
                "partition_key": pa.array(list(found), pa.string()),
                "path": pa.array([f"{k}-{r}-{m}.parquet" for k, (r, m) in found.items()]),
            }
        )

    def partition_stats_of(self, assets: Sequence[str]) -> pa.Table:
        return stats_of_each(self, assets)

    def partition_stats(self, asset: str) -> pa.Table:
        found = self.stats.get(asset, {})
        return pa.table(
            {
                "partition_key": pa.array(list(found), pa.string()),
                "rows": pa.array([r for r, _ in found.values()], pa.int64()),
                "missing_files": pa.array([m for _, m in found.values()], pa.int64()),
            }
        )


#: how a record's consumed upstream versions are written out: as the ledger writes them
#: (``json.dumps`` with sorted keys), or as another writer might (the classifier reads the JSON,
#: not its text)
TEXTS = {
    "canonical": {"sort_keys": True},
    "compact": {"sort_keys": True, "separators": (",", ":")},
    "indented": {"indent": 1},
}


@dataclass
class FakePartitions:
    records: dict[str, list[PartitionRecord]]
    text: str = "canonical"

    def get(self, asset: str, partition_key: str) -> PartitionRecord | None:
        found = [r for r in self.records.get(asset, []) if r.partition_key == partition_key]
        return found[0] if found else None

    def all(self, asset: str | None = None) -> list[PartitionRecord]:
        return list(self.records.get(asset or "", []))

    def state_rows(
        self, assets: Sequence[str], columns: Sequence[str] = STATE_COLUMNS
    ) -> Iterator[tuple[str, list[tuple[Any, ...]]]]:
        for name in assets:
            yield name, [tuple(row[c] for c in columns) for row in self._rows(name)]

    def stale_reasons(self, asset: str, keys: Sequence[str]) -> dict[str, str]:
        """The reason of each stale record's mark, naming its key (the oracle's detail and the
        bulk one must name it alike); the keys ending in an even character were marked with none."""
        wanted = set(keys)
        return {
            r.partition_key: f"marked by the test for {r.partition_key}"
            for r in self.records.get(asset, [])
            if r.partition_key in wanted
            and r.status is PartitionStatus.STALE
            and ord(r.partition_key[-1]) % 2
        }

    def _rows(self, name: str) -> list[dict[str, Any]]:
        return [
            {
                "partition_key": r.partition_key,
                "status": r.status.value,
                "data_version": r.data_version,
                "row_count": r.row_count,
                "manifest_id": r.manifest_id,
                "manifest_checksum": r.manifest_checksum,
                "upstream_versions": json.dumps(r.upstream_versions, **TEXTS[self.text]),
                "last_run_id": r.last_run_id,
                "last_error": r.last_error,
            }
            for r in self.records.get(name, [])
        ]


@dataclass
class FakeProtections:
    found: list[Protection]

    def all(self) -> list[Protection]:
        return list(self.found)


@dataclass
class FakeReader:
    partitions: FakePartitions
    protections: FakeProtections
    runs: Any = None


@dataclass
class FakeSource:
    graph: AssetGraph
    manifests: ManifestRegistry
    store: FakeStore
    reports: Path
    policy: Policy = field(default_factory=Policy)
    scheme: Any = DAILY

    def partition_report_dir(self, asset: str) -> Path:
        return self.reports.joinpath(*asset.split("/"))

    def partition_report_path(self, asset: str, key: str) -> Path:
        return self.partition_report_dir(asset) / f"{key}.json"


def _manifest(mid: str, created: str, declared: dict[str, int]) -> Manifest:
    return Manifest(
        schema_version=1,
        manifest_id=mid,
        source="tests",
        batch_id=mid,
        created_at=datetime.fromisoformat(created).replace(tzinfo=UTC),
        partitions=[
            ManifestPartition(partition_key=k, expected_record_count=n) for k, n in declared.items()
        ],
    )


maybe_count = st.sampled_from([None, 0, 3, 5])


def _cell(draw: st.DrawFn) -> dict[str, Any]:
    cell = {
        "status": draw(st.sampled_from([None, *PartitionStatus, "materialized"])),
        "version": draw(st.sampled_from([None, 1, 2])),
        "recorded_rows": draw(maybe_count),
        "checksum": draw(st.sampled_from([None, "", "current", "other"])),
        "stored": draw(st.sampled_from([None, 0, 3, 5, 5])),
        "lost": draw(st.sampled_from([0, 0, 0, 1])),
        "report": draw(st.booleans()),
        "consumed": draw(st.sampled_from(["current", "current", "other", "none", "gone"])),
        "protected": draw(st.integers(0, 5)) == 0,
    }
    if draw(st.booleans()):  # a coherent cell, so that the later rules are reached
        cell.update(
            status="materialized", version=draw(st.sampled_from([1, 2])), lost=0,
            checksum="current", recorded_rows=5, stored=5, report=draw(st.integers(0, 5)) > 0,
        )  # fmt: skip
    return cell


def _window(draw: st.DrawFn, keys: Sequence[str]) -> list[str]:
    low = draw(st.integers(0, len(keys) - 1))
    high = draw(st.integers(low, len(keys) - 1))
    return list(keys[low : high + 1])


@st.composite
def states(draw: st.DrawFn) -> dict[str, Any]:
    first = {k: n for k in KEYS if (n := draw(maybe_count)) is not None}
    newer = {k: n for k in KEYS if draw(st.integers(0, 3)) == 0 and (n := draw(maybe_count))}
    broken = bool(newer) and draw(st.booleans())
    cells = {(a, k): _cell(draw) for a in (A, B, C, D, E, F, G, W, H, L) for k in KEYS}
    return {
        "first": first,
        "newer": newer,
        "broken": broken,
        "cells": cells,
        "counts": draw(st.booleans()),
        "window": _window(draw, KEYS),
        "text": draw(st.sampled_from(["canonical", "canonical", *TEXTS])),
    }


def _build(
    state: dict[str, Any], reports: Path, graph: AssetGraph | None = None
) -> tuple[FakeSource, FakeReader]:
    graph = graph or _graph(state["counts"])
    m1 = _manifest("m1", "2026-01-01T00:00:00", state["first"])
    manifests = [m1]
    broken: dict[str, BrokenManifest] = {}
    if state["newer"]:
        m2 = _manifest("m2", "2026-02-01T00:00:00", state["newer"])
        manifests.append(m2)
        if state["broken"]:
            broken["m2"] = BrokenManifest(
                "m2",
                reports / "m2.json",
                reports / "m2-real.json",
                "tests",
                tuple(state["newer"]),
                ("source",),
                ("'source' is a required property",),
                "0" * 64,
            )
    registry = ManifestRegistry(manifests, broken=broken)
    records: dict[str, list[PartitionRecord]] = {}
    stats: dict[str, dict[str, tuple[int, int]]] = {}
    protections = []
    versions = {}  # (asset, key) -> the data version its record holds
    for (a, k), cell in state["cells"].items():
        if cell["status"] is not None:
            versions[(a, k)] = cell["version"]
    for (a, k), cell in sorted(state["cells"].items()):
        if cell["stored"] is not None:
            stats.setdefault(a, {})[k] = (cell["stored"], cell["lost"])
        if cell["report"]:
            path = reports.joinpath(*a.split("/"), f"{k}.json")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("{}", "utf-8")
        if cell["protected"]:
            protections.append(Protection(a, k, "baseline", "tests", ""))
        if cell["status"] is None:
            continue
        declared = registry.for_partition(k)
        checksum = {
            "current": declared[1].checksum if declared else None,
            "other": "f" * 64,
        }.get(cell["checksum"], cell["checksum"])
        consumed: dict[str, dict[str, int | None]] = {}
        for up, up_keys in graph.upstream_partitions(a, k).items():
            for uk in up_keys:
                now = versions.get((up, uk))
                choice = cell["consumed"]
                if choice == "gone":
                    continue
                value = {"current": now, "other": (now or 0) + 1, "none": None}[choice]
                consumed.setdefault(up, {})[uk] = value
        records.setdefault(a, []).append(
            PartitionRecord(
                asset=a,
                partition_key=k,
                status=PartitionStatus(cell["status"]),
                data_version=cell["version"],
                row_count=cell["recorded_rows"],
                fingerprint=None,
                manifest_id="m1" if checksum else None,
                manifest_checksum=checksum,
                upstream_versions=consumed,
                last_run_id="run-1",
                last_error="boom" if cell["version"] == 2 else None,
            )
        )
    policy = Policy(protected=(ProtectedObject(B),))
    source = FakeSource(graph, registry, FakeStore(stats), reports, policy)
    partitions = FakePartitions(records, state.get("text", "canonical"))
    reader = FakeReader(partitions, FakeProtections(protections))
    return source, reader


def _own(source: FakeSource, asset: str, keys: Sequence[str]) -> list[str]:
    """The keys of ``keys`` that are keys of ``asset``'s scheme."""
    return [k for k in keys if source.graph.scheme(asset).contains(k)]


def _oracle(
    source: FakeSource,
    reader: FakeReader,
    keys: Sequence[str],
    assets: Sequence[str] | None = None,
) -> list[Gap]:
    graph = source.graph
    chosen = [a for a in graph.assets if assets is None or a.key in assets]
    # each asset over the keys of its own scheme (a weekly asset: the Wednesdays among them)
    targets = [
        t
        for k in keys
        for a in chosen
        if graph.scheme(a.key).contains(k) and (t := AssetPartition(a.key, k))
    ]
    observations = observe(source, reader, targets)  # type: ignore[arg-type]
    found = []
    for a_key, k in targets:
        gap = oracle_gap(
            graph.get(a_key), observations[AssetPartition(a_key, k)], source.manifests.broken_for(k)
        )
        if gap is not None:
            found.append(gap)
    return found


@settings(max_examples=ORACLE_EXAMPLES, deadline=None, database=None)
@given(states())
def test_bulk_gaps_equal_the_per_cell_oracle(state: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        source, reader = _build(state, Path(folder))
        keys = state["window"]

        expected = _oracle(source, reader, keys)
        found = bulk_gaps(source, reader, keys)  # type: ignore[arg-type]
        ranges = gap_ranges(source, reader, keys)  # type: ignore[arg-type]

    assert found == expected
    collapsed = []
    for a in source.graph.keys:
        mine = {g.partition_key: g.reason for g in expected if g.asset == a}
        run: list[Any] = []
        for k in _own(source, a, keys):
            reason = mine.get(k)
            if run and reason is run[-1][1] and reason is not None:
                run[-1][0].append(k)
            else:
                run.append(([k], reason))
        collapsed += [(a, ks[0], ks[-1], len(ks), r) for ks, r in run if r is not None]
    assert [(r.asset, r.first, r.last, r.count, r.value) for r in ranges] == collapsed


@settings(max_examples=ORACLE_EXAMPLES, deadline=None, database=None)
@given(states(), st.integers(1, 3))
def test_in_batches_of_a_few_assets_the_gaps_and_states_are_the_same(
    state: dict[str, Any], per_batch: int
) -> None:
    """A large project is classified in batches of assets, the next batch's tables and reports
    read in a thread of their own while the last one is classified: the same gaps (the
    oracle's) and the same states as in one batch."""
    with tempfile.TemporaryDirectory() as folder:
        source, reader = _build(state, Path(folder))
        keys = state["window"]
        expected = _oracle(source, reader, keys)
        whole = state_ranges(source, reader, keys)  # type: ignore[arg-type]
        with mock.patch.object(classify, "BATCH_CELLS", per_batch * len(keys)):
            found = bulk_gaps(source, reader, keys)  # type: ignore[arg-type]
            ranges = state_ranges(source, reader, keys)  # type: ignore[arg-type]
    assert found == expected
    assert ranges == whole


@settings(max_examples=ORACLE_EXAMPLES, deadline=None, database=None)
@given(states())
def test_status_states_are_the_oracles_gap_reasons(state: dict[str, Any]) -> None:
    """One vocabulary: the state ``status`` shows for every cell is the oracle's gap reason,
    or ``materialized`` where the oracle finds no gap; ranges cover every key in order."""
    with tempfile.TemporaryDirectory() as folder:
        source, reader = _build(state, Path(folder))
        keys = state["window"]
        gaps = {(g.asset, g.partition_key): g.reason for g in _oracle(source, reader, keys)}
        ranges = state_ranges(source, reader, keys)  # type: ignore[arg-type]

    for a in source.graph.keys:
        own = _own(source, a, keys)
        mine = [r for r in ranges if r.asset == a]
        found = [r.value for r in mine for _ in range(r.count)]
        assert found == [PartitionState.of(gaps.get((a, k))) for k in own]
        assert all(r.value != mine[i + 1].value for i, r in enumerate(mine[:-1]))
        assert [(r.first, r.last) for r in mine] == [
            (
                own[sum(x.count for x in mine[:i])],
                own[sum(x.count for x in mine[: i + 1]) - 1],
            )
            for i in range(len(mine))
        ]
    assert [r.asset for r in ranges] == sorted(
        (r.asset for r in ranges), key=source.graph.keys.index
    )


@settings(max_examples=ORACLE_EXAMPLES, deadline=None, database=None)
@given(states(), st.sampled_from([[A], [B], [C], [A, C]]))
def test_status_of_chosen_assets_is_their_share_of_the_whole(
    state: dict[str, Any], chosen: list[str]
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        source, reader = _build(state, Path(folder))
        keys = state["window"]
        whole = state_ranges(source, reader, keys)  # type: ignore[arg-type]
        part = state_ranges(source, reader, keys, chosen)  # type: ignore[arg-type]
    assert part == [r for r in whole if r.asset in chosen]


# -- fan-in and fan-out: assets whose keys are months, or days reading months ------------------

UP_MONTHS = scheme_from_config(kind="monthly", start="2026-03", end="2026-05")  # March, April
MONTHS = scheme_from_config(kind="monthly", start="2026-02")
DAYS = [f"2026-03-{d:02d}" for d in range(1, 32)] + [f"2026-04-{d:02d}" for d in range(1, 31)]
FAN_MONTHS = ["2026-02", "2026-03", "2026-04"]
FAN_DAYS = [*DAYS[-6:], "2026-05-01", "2026-05-02"]
#: the cells whose upstream keys do not all exist
NOT_THERE = [("f/m", "2026-02"), ("f/n", "2026-02"), ("f/n", "2026-03"), ("f/p", "2026-05-01")]
U, M, N, P = "f/u", "f/m", "f/n", "f/p"  # m: a's days of its month; n: of the month before;
#                                          p: the month of u holding its day (u ends in April)


def _fan_graph() -> AssetGraph:
    def compute(context: Any) -> None:
        raise AssertionError("never computed")

    def node(key: str, *deps: str | Dependency, scheme: Any = None) -> Any:
        return asset(key, idempotency_key=("id",), deps=deps, scheme=scheme)(compute)

    return AssetGraph(
        [
            node(A),
            node(U, scheme=UP_MONTHS),
            node(M, Dependency(A, TimeWindowMapping()), scheme=MONTHS),
            node(N, Dependency(A, TimeWindowMapping.lag()), scheme=MONTHS),
            node(P, Dependency(U, TimeWindowMapping())),
        ],
        DAILY,
    )


@st.composite
def fan_states(draw: st.DrawFn) -> dict[str, Any]:
    cells = {(A, k): _cell(draw) for k in DAYS}
    cells |= {(U, k): _cell(draw) for k in FAN_MONTHS[1:]}
    cells |= {(a, k): _cell(draw) for a in (M, N) for k in FAN_MONTHS}
    cells |= {(P, k): _cell(draw) for k in FAN_DAYS}
    declared = {k: n for k in FAN_DAYS if (n := draw(maybe_count)) is not None}
    return {
        "first": declared,
        "newer": {},
        "broken": False,
        "cells": cells,
        "counts": False,
        "months": _window(draw, FAN_MONTHS),
        "days": _window(draw, FAN_DAYS),
    }


@settings(max_examples=ORACLE_EXAMPLES, deadline=None, database=None)
@given(fan_states())
def test_fan_in_and_fan_out_cells_equal_the_per_cell_oracle(state: dict[str, Any]) -> None:
    """A month reading its days (fan-in; February's days do not exist), a month reading the
    month before's days, a day reading its month (fan-out; May does not exist upstream):
    classified over their own keys, the bulk path agrees with the oracle, gap for gap."""
    with tempfile.TemporaryDirectory() as folder:
        source, reader = _build(state, Path(folder), _fan_graph())
        for keys, chosen in ((state["months"], [M, N]), (state["days"], [P])):
            expected = _oracle(source, reader, keys, chosen)
            found = bulk_gaps(source, reader, keys, assets=chosen)  # type: ignore[arg-type]
            assert found == expected
            states = state_ranges(source, reader, keys, chosen)  # type: ignore[arg-type]
            gaps = {(g.asset, g.partition_key): g.reason for g in expected}
            for a in chosen:
                shown = [r.value for r in states if r.asset == a for _ in range(r.count)]
                assert shown == [PartitionState.of(gaps.get((a, k))) for k in keys]
            for a, k in NOT_THERE:  # no broken manifest here: missing_upstream comes first
                if a in chosen and k in keys:
                    assert gaps[(a, k)] is GapReason.MISSING_UPSTREAM


# -- identity on values: a static list read from a dynamic dimension ---------------------------

LINES = DynamicScheme("product_line", ("billing", "voice"))  # chat was removed, or never added
LISTED = StaticScheme(("billing", "voice", "chat"))
VALUES = ["billing", "voice", "chat"]
V, S = "v/lines", "v/static"


def _values_graph() -> AssetGraph:
    def compute(context: Any) -> None:
        raise AssertionError("never computed")

    return AssetGraph(
        [
            asset(V, idempotency_key=("id",), scheme=LINES)(compute),
            asset(S, idempotency_key=("id",), deps=[V], scheme=LISTED)(compute),
        ],
        LINES,
    )


@st.composite
def value_states(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "first": {k: n for k in VALUES if (n := draw(maybe_count)) is not None},
        "newer": {},
        "broken": False,
        "cells": {(a, k): _cell(draw) for a in (V, S) for k in VALUES},
        "counts": False,
        "window": _window(draw, VALUES),
    }


@settings(max_examples=ORACLE_EXAMPLES, deadline=None, database=None)
@given(value_states())
def test_identity_on_values_equals_the_per_cell_oracle(state: dict[str, Any]) -> None:
    """A static value the dynamic upstream does not list (chat) is missing_upstream; the
    others are classified like any identity cell."""
    with tempfile.TemporaryDirectory() as folder:
        source, reader = _build(state, Path(folder), _values_graph())
        keys = state["window"]
        expected = _oracle(source, reader, keys, [S])
        assert bulk_gaps(source, reader, keys, assets=[S]) == expected  # type: ignore[arg-type]
    reasons = {g.partition_key: g.reason for g in expected}
    if "chat" in keys:
        assert reasons["chat"] is GapReason.MISSING_UPSTREAM
    assert all(r is not GapReason.MISSING_UPSTREAM for k, r in reasons.items() if k != "chat")
