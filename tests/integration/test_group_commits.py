"""Group commits: the compute steps of one asset published by one Delta commit, with the same
per-partition guarantees as one commit per partition — on real Delta tables and both ledgers.

The bundled example with 2026-04-14 .. 2026-04-20 materialized except 2026-04-17; runs over
those seven days with groups of four (so each asset's seven partitions take two commits).
"""

from __future__ import annotations

import gc
import json
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from conftest import GAP_DAY, both_backends, run_steps

from backfiller import PartitionStatus, Project, RunState
from backfiller.actions import GroupLimits, RunOptions, Step, StepOutcome, StepSource
from backfiller.actions.computation import StepTask, compute_step
from backfiller.actions.run import _groups
from backfiller.ledger import Ledger
from backfiller.refs import AssetPartition
from backfiller.reports import read_partition_report
from backfiller.store import CommitInfo, CommitKey, FencedError

pytestmark = both_backends

RAW = "week06/ingestion/raw_ticket_events_partitioned"
SILVER = "week06/silver/ticket_fact_partitioned"
ASSETS = (RAW, SILVER)
KEYS = ["2026-04-14", "2026-04-15", "2026-04-16", GAP_DAY, "2026-04-18", "2026-04-19"]
KEYS.append("2026-04-20")
CHECK = "in_window(event_time)"
GROUPS_OF_FOUR = RunOptions(group=GroupLimits(size=4))


def _steps(keys: list[str] = KEYS) -> list[tuple[str, str]]:
    return [(asset, key) for key in keys for asset in ASSETS]


def _run_commits(project: Project, asset: str, run_id: str) -> dict[int, list[str]]:
    """The commits ``run_id`` made to ``asset``: version → the partition keys it replaced."""
    return {
        c.version: c.metadata[CommitKey.PARTITION_KEYS.value].split(",")
        for c in project.store.history(asset)
        if c.metadata.get(CommitKey.RUN_ID.value) == run_id
    }


def _assert_recorded_exactly(project: Project, ledger: Ledger, run_id: str) -> None:
    """Each partition the run published: its recorded version is the commit that carried it,
    its fingerprint is the stored rows', its report says the same."""
    for asset in ASSETS:
        carried = {
            key: version
            for version, keys in _run_commits(project, asset, run_id).items()
            for key in keys
        }
        for key, version in carried.items():
            record = ledger.partitions.get(asset, key)
            assert record is not None and record.status is PartitionStatus.MATERIALIZED
            assert (record.last_run_id, record.data_version) == (run_id, version), (asset, key)
            assert record.fingerprint == project.store.fingerprint(asset, key)
            assert record.row_count == project.store.partition_counts(asset)[key]
            report = read_partition_report(project.partition_report_path(asset, key))
            assert report is not None
            assert (report.run_id, report.data_version, report.fingerprint) == (
                run_id,
                version,
                record.fingerprint,
            )


@pytest.mark.slow
def test_a_group_publishes_its_partitions_by_one_commit_each_recorded_exactly(
    april_project: Project,
) -> None:
    project = april_project
    before = {(a, k): project.store.fingerprint(a, k) for a, k in _steps() if k != GAP_DAY}
    with project.ledger() as ledger:
        result = run_steps(project, ledger, _steps(), options=GROUPS_OF_FOUR)

        assert result.state is RunState.SUCCEEDED
        assert {s.outcome for s in result.steps} == {StepOutcome.PUBLISHED}
        for asset in ASSETS:  # seven partitions, groups of four: two commits per asset
            assert sorted(_run_commits(project, asset, result.run_id).values()) == [
                KEYS[:4],
                KEYS[4:],
            ]
        _assert_recorded_exactly(project, ledger, result.run_id)
        # the same rows a commit per partition had published
        assert {k: project.store.fingerprint(*k) for k in before} == before
        assert ledger.leases.held() == []
        versions = {s.target: s.version for s in result.steps}
        assert versions[AssetPartition(RAW, KEYS[0])] == versions[AssetPartition(RAW, KEYS[3])]


@pytest.mark.slow
def test_a_failing_check_leaves_its_partition_old_while_the_rest_of_the_group_publishes(
    april_project: Project,
) -> None:
    project = april_project
    bad = "2026-04-15"
    old_version = project.store.version(SILVER)
    old = project.store.fingerprint(SILVER, bad)
    with project.ledger() as ledger:
        old_record = ledger.partitions.get(SILVER, bad)
        result = run_steps(
            project,
            ledger,
            _steps(),
            options=GROUPS_OF_FOUR,
            forced_failures=frozenset({(SILVER, CHECK, bad)}),
        )
        outcomes = {(s.asset, s.partition_key): s.outcome for s in result.steps}
        assert outcomes.pop((SILVER, bad)) is StepOutcome.CHECK_FAILED
        assert set(outcomes.values()) == {StepOutcome.PUBLISHED}
        assert result.state is RunState.CHECKS_FAILED

        commits = _run_commits(project, SILVER, result.run_id)
        assert sorted(commits.values()) == [[KEYS[0], KEYS[2], KEYS[3]], KEYS[4:]]
        assert min(commits) > (old_version or 0)
        # the partition that failed its check: its old version is still the visible one
        assert project.store.fingerprint(SILVER, bad) == old
        record = ledger.partitions.get(SILVER, bad)
        assert record is not None and old_record is not None
        assert record.data_version == old_record.data_version
        assert record.fingerprint == old_record.fingerprint
        _assert_recorded_exactly(project, ledger, result.run_id)


@pytest.mark.slow
def test_a_failed_upstream_skips_only_its_own_downstream_partition(
    april_project: Project,
) -> None:
    project = april_project
    bad = "2026-04-18"
    declared = project.manifests.for_partition(bad)
    assert declared is not None
    tampered = project.root / declared[1].input_files[0].path
    tampered.write_text(tampered.read_text(encoding="utf-8") + "\n", encoding="utf-8")
    with project.ledger() as ledger:
        result = run_steps(project, ledger, _steps(), options=GROUPS_OF_FOUR)
        outcomes = {(s.asset, s.partition_key): s for s in result.steps}
        assert outcomes[(RAW, bad)].outcome is StepOutcome.FAILED
        assert "input files do not match manifest" in (outcomes[(RAW, bad)].error or "")
        skipped = outcomes[(SILVER, bad)]
        assert skipped.outcome is StepOutcome.SKIPPED
        assert skipped.error == f"upstream {AssetPartition(RAW, bad)} did not succeed in this run"
        others = {o.outcome for t, o in outcomes.items() if t[1] != bad}
        assert others == {StepOutcome.PUBLISHED}
        assert sorted(_run_commits(project, SILVER, result.run_id).values()) == [
            KEYS[:4],
            [KEYS[5], KEYS[6]],
        ]
        _assert_recorded_exactly(project, ledger, result.run_id)
        assert ledger.leases.held() == []


@pytest.mark.slow
def test_a_partition_leased_by_another_run_is_a_conflict_and_the_rest_publishes(
    april_project: Project,
) -> None:
    project = april_project
    held = "2026-04-16"
    with project.ledger() as ledger:
        other = ledger.leases.acquire(
            RAW, held, holder="night", plan_id=None, run_id="run-night", ttl_seconds=600
        )
        result = run_steps(project, ledger, _steps(), options=GROUPS_OF_FOUR)
        outcomes = {(s.asset, s.partition_key): s for s in result.steps}
        assert outcomes[(RAW, held)].outcome is StepOutcome.CONFLICT
        assert "leased by night" in (outcomes[(RAW, held)].error or "")
        assert outcomes[(SILVER, held)].outcome is StepOutcome.SKIPPED
        assert sorted(_run_commits(project, RAW, result.run_id).values()) == [
            [KEYS[0], KEYS[1], KEYS[3]],
            KEYS[4:],
        ]
        _assert_recorded_exactly(project, ledger, result.run_id)
        assert ledger.leases.held() == [other]  # its own released, the other run's kept


def test_a_partition_fenced_at_the_table_is_left_out_and_the_rest_commits(
    april_project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Between this run's lease and its commit, a newer holder of one partition publishes to
    the table: the group's commit is refused for that partition, which becomes a conflict
    (its rows stay the newer holder's), and the others are committed without it."""
    project = april_project
    fenced = "2026-04-19"
    store = project.store
    write = store.write_partitions
    newer: dict[str, str] = {}

    def first_a_newer_holder(
        asset: str, data: pa.Table, keys: list[str], commit: CommitInfo
    ) -> int:
        if asset == RAW and fenced in keys and not newer:
            rows = store.read_partition(RAW, fenced)
            assert rows is not None
            write(RAW, rows, [fenced], CommitInfo(run_id="run-newer", fences=((fenced, 10**6),)))
            newer["fingerprint"] = store.fingerprint(RAW, fenced) or ""
        return write(asset, data, keys, commit)

    monkeypatch.setattr(store, "write_partitions", first_a_newer_holder)
    with project.ledger() as ledger:
        result = run_steps(project, ledger, _steps(KEYS[4:]), options=GROUPS_OF_FOUR)
        outcomes = {(s.asset, s.partition_key): s for s in result.steps}
        lost = outcomes[(RAW, fenced)]
        assert lost.outcome is StepOutcome.CONFLICT
        assert "refused" in (lost.error or "") or "taken over" in (lost.error or "")
        assert outcomes[(SILVER, fenced)].outcome is StepOutcome.SKIPPED
        assert _run_commits(project, RAW, result.run_id) == {store.version(RAW): [KEYS[4], KEYS[6]]}
        assert store.fingerprint(RAW, fenced) == newer["fingerprint"]
        history = store.history(RAW)
        assert history[1].metadata[CommitKey.RUN_ID.value] == "run-newer"
        _assert_recorded_exactly(project, ledger, result.run_id)
        assert ledger.leases.held() == []


@pytest.mark.slow
def test_a_group_commits_early_when_its_staged_rows_or_bytes_reach_the_limit(
    april_project: Project,
) -> None:
    project = april_project
    per_day = {k: project.store.partition_counts(RAW).get(k, 0) for k in KEYS}
    assert min(per_day[k] for k in KEYS if k != GAP_DAY) > 0
    with project.ledger() as ledger:
        by_rows = run_steps(
            project,
            ledger,
            [(RAW, k) for k in KEYS[:3]],
            action="rerun",
            options=RunOptions(group=GroupLimits(size=7, rows=1)),
        )
        # every partition reaches the limit alone: one commit each, still recorded exactly
        assert sorted(_run_commits(project, RAW, by_rows.run_id).values()) == [
            [k] for k in KEYS[:3]
        ]
        by_bytes = run_steps(
            project,
            ledger,
            [(RAW, k) for k in KEYS[:3]],
            action="rerun",
            options=RunOptions(group=GroupLimits(size=7, bytes=1)),
        )
        assert sorted(_run_commits(project, RAW, by_bytes.run_id).values()) == [
            [k] for k in KEYS[:3]
        ]
        whole = run_steps(
            project,
            ledger,
            [(RAW, k) for k in KEYS[:3]],
            action="rerun",
            options=RunOptions(group=GroupLimits(size=7)),
        )
        assert list(_run_commits(project, RAW, whole.run_id).values()) == [KEYS[:3]]
        for result in (by_rows, by_bytes, whole):
            assert result.state is RunState.SUCCEEDED
        _assert_recorded_exactly(project, ledger, whole.run_id)


# -- a group's checks, run once for the group --------------------------------------------------

SHOP = "shop/orders"
SHOP_DAYS = [f"2026-01-0{d}" for d in range(1, 6)]
SHOP_TOML = """\
[project]
name = "shop"
assets_module = "grouped_checks_shop_assets"
store = "data/lake"
manifests = "data/manifests"
report_dir = "reports"
operator = "tests"

[partitions]
kind = "daily"
start = "2026-01-01"
"""
SHOP_ASSETS = '''\
"""Orders of each day, read from orders.json ({day: [rows]}), which the test writes."""

import json
import json
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa

from backfiller import AssetContext, asset
from backfiller.checks import accepted_values, in_window, not_null, python_check, unique_key

SCHEMA = pa.schema(
    [
        ("order_id", pa.string()),
        ("amount", pa.int64()),
        ("status", pa.string()),
        ("at", pa.string()),
    ]
)


def big_orders(table):
    return table.filter(pa.compute.greater(table.column("amount"), 1000))


@asset(
    "shop/orders",
    idempotency_key=("order_id", "partition_key"),
    checks=[
        unique_key(),
        not_null("order_id", "amount"),
        accepted_values("status", ("open", "paid"), severity="warn"),
        in_window("at"),
        python_check("no_big_orders", big_orders, severity="warn"),
    ],
)
def orders(context: AssetContext) -> pa.Table:
    days = json.loads(Path(context.project_root, "orders.json").read_text(encoding="utf-8"))
    return pa.Table.from_pylist(days[context.partition_key], schema=SCHEMA)
'''


def _orders(day: str) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = [
        {"order_id": f"o-{day}-{n}", "amount": 10 * n, "status": "paid", "at": f"{day}T0{n}:00Z"}
        for n in range(1, 4)
    ]
    if day == SHOP_DAYS[1]:  # a late order: outside the day (blocking)
        rows[0]["at"] = "2026-01-03T00:00:00Z"
    if day == SHOP_DAYS[2]:  # a null amount (blocking) and an unknown status (a warning)
        rows[1]["amount"] = None
        rows[2]["status"] = "lost"
    if day == SHOP_DAYS[3]:  # an unknown status and a big order: warnings only
        rows[0]["status"] = "refunded"
        rows[1]["amount"] = 5000
    return rows


@pytest.fixture
def shop_project(tmp_path: Path, load: Callable[[Path], Project]) -> Project:
    root = tmp_path / "shop"
    (root / "data/manifests").mkdir(parents=True)
    (root / "backfiller.toml").write_text(SHOP_TOML, encoding="utf-8")
    (root / "grouped_checks_shop_assets.py").write_text(SHOP_ASSETS, encoding="utf-8")
    days = {day: _orders(day) for day in SHOP_DAYS}
    (root / "orders.json").write_text(json.dumps(days), encoding="utf-8")
    return load(root)


def _check_results(ledger: Ledger, run_id: str) -> dict[str, list[tuple[object, ...]]]:
    found: dict[str, list[tuple[object, ...]]] = {}
    for r in ledger.checks.results(run_id=run_id):
        found.setdefault(r.partition_key, []).append(
            (r.check_name, r.status, r.severity, r.blocking, r.expected, r.actual, r.sample)
        )
    return found


def test_a_groups_checks_record_each_partitions_own_results_and_block_only_its_failures(
    shop_project: Project,
) -> None:
    """The built-in checks run once for the group of five days: each day's results are the
    ones a run partition by partition records (failing rows, samples and windows included);
    the two days whose blocking checks fail are left out of the group's one commit, the day
    with warnings only is published."""
    project = shop_project
    steps = [(SHOP, day) for day in SHOP_DAYS]
    with project.ledger() as ledger:
        grouped = run_steps(project, ledger, steps, options=RunOptions(group=GroupLimits(5)))
        outcomes = {s.partition_key: s.outcome for s in grouped.steps}
        blocked = {SHOP_DAYS[1], SHOP_DAYS[2]}
        assert {k for k, o in outcomes.items() if o is StepOutcome.CHECK_FAILED} == blocked
        assert {o for k, o in outcomes.items() if k not in blocked} == {StepOutcome.PUBLISHED}
        published = [k for k in SHOP_DAYS if k not in blocked]
        assert list(_run_commits(project, SHOP, grouped.run_id).values()) == [published]
        assert set(project.store.partition_counts(SHOP)) == set(published)
        for key in published:
            record = ledger.partitions.get(SHOP, key)
            assert record is not None and record.fingerprint == project.store.fingerprint(SHOP, key)

        alone = run_steps(project, ledger, steps, options=RunOptions(group=GroupLimits(1)))
        assert {s.partition_key: s.outcome for s in alone.steps} == outcomes
        results = _check_results(ledger, grouped.run_id)
        assert results == _check_results(ledger, alone.run_id)

    assert sorted(results) == SHOP_DAYS
    failed = {
        (key, name): (actual, sample)
        for key, rows in results.items()
        for name, status, _, _, _, actual, sample in rows
        if status.value == "failed"
    }
    assert sorted(failed) == [
        (SHOP_DAYS[1], "in_window(at)"),
        (SHOP_DAYS[2], "accepted_values(status)"),
        (SHOP_DAYS[2], "not_null(order_id, amount)"),
        (SHOP_DAYS[3], "accepted_values(status)"),
        (SHOP_DAYS[3], "no_big_orders"),
    ]
    actual, sample = failed[(SHOP_DAYS[2], "not_null(order_id, amount)")]
    assert actual == 1 and [row["order_id"] for row in sample] == [f"o-{SHOP_DAYS[2]}-2"]
    window = next(r for r in results[SHOP_DAYS[0]] if r[0] == "in_window(at)")
    assert window[4] == list(project.scheme.window(SHOP_DAYS[0]).render())  # type: ignore[union-attr]


# -- forming groups --------------------------------------------------------------------------


def _step(asset: str, key: str, source: StepSource = StepSource.COMPUTE) -> Step:
    return Step(AssetPartition(asset, key), source, 3 if source is StepSource.VERSION else None)


def test_groups_gather_an_assets_compute_steps_up_to_the_size(tmp_path: Path) -> None:
    days = [f"2026-01-0{d}" for d in range(1, 8)]
    ordered = [_step(a, k) for k in days for a in ("up", "down")]
    depends = {s: set() for s in ordered}
    for s in ordered:
        if s.target.asset == "down":
            depends[s] = {_step("up", s.target.partition_key)}
    units = _groups(ordered, depends, 3)
    assert [[(s.target.asset, s.target.partition_key[-1]) for s in u] for u in units] == [
        [("up", "1"), ("up", "2"), ("up", "3")],
        [("down", "1"), ("down", "2"), ("down", "3")],
        [("up", "4"), ("up", "5"), ("up", "6")],
        [("down", "4"), ("down", "5"), ("down", "6")],
        [("up", "7")],
        [("down", "7")],
    ]


def test_a_step_reading_its_own_assets_earlier_partition_starts_a_new_group(
    tmp_path: Path,
) -> None:
    days = [f"2026-01-0{d}" for d in range(1, 5)]
    ordered = [_step("cumulative", k) for k in days]
    depends = {s: set() for s in ordered}
    depends[ordered[2]] = {ordered[1]}  # day 3 reads day 2
    restore = _step("cumulative", "2026-01-09", StepSource.VERSION)
    comma = _step("static", "a,b")
    units = _groups([*ordered, restore, comma], {**depends, restore: set(), comma: set()}, 10)
    assert [len(u) for u in units] == [2, 2, 1, 1]
    assert units[1] == (ordered[2], ordered[3])
    assert units[2] == (restore,) and units[3] == (comma,)


def test_group_limits_must_be_positive() -> None:
    for bad in ({"size": 0}, {"rows": 0}, {"bytes": 0}, {"seconds": 0.0}):
        with pytest.raises(ValueError, match="positive"):
            GroupLimits(**bad)  # type: ignore[arg-type]


def test_a_fenced_error_names_its_partition() -> None:
    error = FencedError(RAW, "2026-04-19", 3, 4)
    assert error.partition == "2026-04-19"


# -- what a group holds in memory ------------------------------------------------------------


class _Tracked:
    """A computation run when its result is asked for, which a test can watch being let go."""

    def __init__(self, compute: Callable[[], pa.Table], taken: list[int], alive: list[int]) -> None:
        self._compute, self._taken, self._alive = compute, taken, alive
        self.rows: pa.Table | None = None

    def result(self) -> pa.Table:
        gc.collect()
        # how many earlier computations of the run something still holds
        self._alive.append(sum(1 for ref in self._taken_refs if ref() is not None))
        self.rows = self.rows if self.rows is not None else self._compute()
        return self.rows


class _TrackingExecutor:
    """The local executor, keeping a weak reference to every computation it hands out."""

    def __init__(self) -> None:
        self.refs: list[weakref.ref[_Tracked]] = []
        self.alive: list[int] = []

    def submit(
        self, task: StepTask, read_upstream: Callable[[str], pa.Table] | None = None
    ) -> _Tracked:
        future = _Tracked(lambda: compute_step(task, read_upstream), [], self.alive)
        future._taken_refs = list(self.refs)  # type: ignore[attr-defined]
        self.refs.append(weakref.ref(future))
        return future

    def close(self) -> None:
        return None


@pytest.mark.slow
def test_a_group_lets_go_of_each_computation_once_its_rows_are_published(
    april_project: Project,
) -> None:
    # each partition reaches the row limit alone, so each is published before the next is
    # computed: a computation that kept its rows after that (the group held every member's
    # rows until the group's end) is still alive when the next one is asked for
    executor = _TrackingExecutor()
    options = RunOptions(group=GroupLimits(size=7, rows=1), executor=executor, max_parallel=1)
    with april_project.ledger() as ledger:
        result = run_steps(
            april_project, ledger, [(RAW, k) for k in KEYS], action="rerun", options=options
        )
    assert result.state is RunState.SUCCEEDED
    assert len(executor.alive) == len(KEYS)
    assert executor.alive == [0] * len(KEYS)


@pytest.mark.slow
def test_a_downstream_group_reads_what_the_run_just_published_from_memory(
    april_project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = april_project
    pinned_reads: list[tuple[str, tuple[str, ...]]] = []
    store = type(project.store)
    original = store.read_partitions

    def counted(self: Any, asset: str, keys: Sequence[str], **kw: Any) -> pa.Table | None:
        if kw.get("version") is not None:  # a computation's read (a check reads the latest)
            pinned_reads.append((asset, tuple(keys)))
        return original(self, asset, keys, **kw)

    monkeypatch.setattr(store, "read_partitions", counted)
    with project.ledger() as ledger:
        result = run_steps(project, ledger, _steps(), action="rerun", options=GROUPS_OF_FOUR)
        assert result.state is RunState.SUCCEEDED
        # the first silver step reads its raw day from the store (which says what schema a
        # read gives); the six others read the raw days the run kept in memory for them, for
        # their computation and for their checks
        assert pinned_reads == [(RAW, (KEYS[0],))]
        _assert_recorded_exactly(project, ledger, result.run_id)
