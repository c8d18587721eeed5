"""The recovery actions on real Delta tables and a real ledger — every test runs on both, SQLite
and PostgreSQL: rerun, replay, retry, resume, restore, and the protections and leases that guard
them.

Every action is shown working, and every refusal is shown to name the missing precondition (and
the command that would satisfy it) and to write nothing: the project folder's files, and a
PostgreSQL ledger's tables, are fingerprinted before and after.

Most tests use the bundled example (``april_project``: 2026-04-14 .. 2026-04-20 materialized
except 2026-04-17). Retry needs failures, so it runs on a small project written here
(``lab``): a daily scheme from 2026-01-01, an asset that raises ``OSError`` (transient) until a
marker file exists, one that raises ``ValueError`` (not transient), and a steady one.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import json
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from conftest import GAP_DAY, both_backends, ledger_fingerprint, run_steps, tree_fingerprint
from deltalake import DeltaTable
from lab_project import (
    BROKEN,
    FLAKY,
    FLAKY_DOWN,
    LAB_KEY,
    LAB_KEY_2,
    LAB_MODULE,
    SLOW,
    STEADY,
    write_lab,
)

from backfiller import (
    BadInputError,
    ConflictError,
    ExitCode,
    FixedClock,
    ManifestError,
    PartitionStatus,
    PreconditionError,
    Project,
    RunState,
    StepOutcome,
)
from backfiller.actions import Action, RunSpec, Step
from backfiller.actions.recovery import conflict_error, replay, rerun, restore, resume, retry
from backfiller.actions.runner import StepRunner
from backfiller.holds import holds_file, is_ready, release
from backfiller.ledger import AttemptStatus, DatabaseLedger
from backfiller.refs import AssetPartition

RAW = "week06/ingestion/raw_ticket_events_partitioned"
SILVER = "week06/silver/ticket_fact_partitioned"
ASSETS = (RAW, SILVER)
KEY = "2026-04-15"
OTHER_KEY = "2026-04-16"
MATERIALIZED_KEYS = (
    "2026-04-14",
    "2026-04-15",
    "2026-04-16",
    "2026-04-18",
    "2026-04-19",
    "2026-04-20",
)
CONSUMERS = ("week07/retrieval_index", "week08/eval_metrics")
MANIFEST_ID = "week06-seed-manifest-001"
CORRECTION_ID = "week06-seed-manifest-002"
SEED_FILE = "data/seed/ticket_events/2026-04-15.jsonl"
CORRECTED_FILE = "data/seed/ticket_events/2026-04-15-corrected.jsonl"
IDEMPOTENCY_KEY = ("ticket_id", "partition_key")

P = StepOutcome.PUBLISHED


pytestmark = both_backends


# -- helpers -------------------------------------------------------------------------------


def files(project: Project) -> dict[str, str]:
    """Every file of the project folder, except Python's bytecode caches (importing an assets
    module may write them) and SQLite side files; and a PostgreSQL ledger's tables."""
    found = {
        k: v
        for k, v in tree_fingerprint(project.root).items()
        if "__pycache__" not in k and not k.endswith(("-wal", "-shm", "-journal"))
    }
    if project.config.ledger_url:
        found.update({f"ledger table {k}": v for k, v in ledger_fingerprint(project).items()})
    return found


def changed(before: dict[str, str], after: dict[str, str]) -> list[str]:
    return sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))


def first_version_holding(project: Project, asset: str, key: str) -> int:
    """The version of the first commit that published ``key`` (a group commit lists its
    partitions' keys)."""
    return min(
        c.version
        for c in project.store.history(asset)
        if key in c.metadata.get("backfiller.partition_keys", "").split(",")
    )


def outcomes(result: Any) -> list[tuple[str, str, StepOutcome]]:
    return [(s.asset, s.partition_key, s.outcome) for s in result.steps]


def rows(project: Project, asset: str) -> Counter[str]:
    """The multiset of every row of ``asset``, read with ``deltalake`` directly."""
    table = DeltaTable(str(project.store.path(asset))).to_pyarrow_table()
    return Counter(json.dumps(r, sort_keys=True, default=str) for r in table.to_pylist())


def duplicate_keys(project: Project, asset: str) -> list[dict[str, Any]]:
    table = DeltaTable(str(project.store.path(asset))).to_pyarrow_table()
    counted = table.group_by(list(IDEMPOTENCY_KEY)).aggregate([([], "count_all")])
    return [r for r in counted.to_pylist() if r["count_all"] > 1]


def store_fingerprints(project: Project) -> dict[tuple[str, str], str | None]:
    return {(a, k): project.store.fingerprint(a, k) for a in ASSETS for k in MATERIALIZED_KEYS}


def ledger_state(ledger: DatabaseLedger) -> dict[tuple[str, str], tuple[Any, ...]]:
    return {
        (r.asset, r.partition_key): (r.status, r.row_count, r.fingerprint)
        for r in ledger.partitions.all()
    }


def column(table: pa.Table | None, name: str) -> list[Any]:
    assert table is not None
    return table.column(name).to_pylist()


def declare_correction(project: Project) -> list[str]:
    """A second manifest, newer than the seed's, re-declaring 2026-04-15 with one more event
    (a corrected delivery); returns the ticket ids of the corrected input."""
    root = project.root
    lines = (root / SEED_FILE).read_text(encoding="utf-8").splitlines()
    extra = json.loads(lines[0])
    extra["ticket_id"] = "TCK-20260415-0099"
    extra["event_time"] = "2026-04-15T23:00:00+00:00"
    corrected = root / CORRECTED_FILE
    corrected.write_text("\n".join([*lines, json.dumps(extra, sort_keys=True)]) + "\n")
    manifest = {
        "manifest_id": CORRECTION_ID,
        "batch_id": "week06-seed-batch-002",
        "created_at": "2026-06-01T00:00:00+00:00",
        "schema_version": 1,
        "source": "omnisupport/ticket_events",
        "partitions": [
            {
                "partition_key": KEY,
                "expected_record_count": len(lines) + 1,
                "input_files": [
                    {
                        "path": CORRECTED_FILE,
                        "sha256": hashlib.sha256(corrected.read_bytes()).hexdigest(),
                    }
                ],
            }
        ],
    }
    (root / "data/manifests" / f"{CORRECTION_ID}.json").write_text(
        json.dumps(manifest, indent=2) + "\n", encoding="utf-8"
    )
    project.reload_manifests()
    return [json.loads(line)["ticket_id"] for line in [*lines, json.dumps(extra)]]


def withdraw_correction(project: Project) -> None:
    """The correction was wrong: its manifest and input are withdrawn (the seed's declaration
    of 2026-04-15 is the newest again)."""
    (project.root / "data/manifests" / f"{CORRECTION_ID}.json").unlink()
    (project.root / CORRECTED_FILE).unlink()
    project.reload_manifests()


@pytest.fixture
def ledger(april_project: Project) -> Iterator[DatabaseLedger]:
    with april_project.ledger() as opened:
        yield opened


# -- rerun ---------------------------------------------------------------------------------


def test_rerun_recomputes_the_partition_and_its_downstream_as_a_new_run(
    april_project: Project, ledger: DatabaseLedger
) -> None:
    project = april_project
    runs_before = {r.run_id for r in ledger.runs.all()}
    versions = {a: project.store.version(a) for a in ASSETS}
    untouched = {a: ledger.partitions.get(a, OTHER_KEY) for a in ASSETS}

    result = rerun(
        project, ledger, asset=RAW, keys=[KEY], operator="alice", reason="re-delivered events"
    )

    assert result.state is RunState.SUCCEEDED
    assert outcomes(result) == [(RAW, KEY, P), (SILVER, KEY, P)]
    assert result.run_id not in runs_before
    assert {r.run_id for r in ledger.runs.all()} == runs_before | {result.run_id}
    run = ledger.runs.get(result.run_id)
    assert run is not None
    assert (run.action, run.operator, run.reason, run.state) == (
        "rerun",
        "alice",
        "re-delivered events",
        RunState.SUCCEEDED,
    )
    assert run.arguments["asset"] == RAW
    assert run.arguments["partitions"] == [KEY]
    assert [Step.from_json(s).target for s in run.arguments["steps"]] == [(RAW, KEY), (SILVER, KEY)]
    for asset in ASSETS:
        # one new commit per asset, made by this run for exactly this partition
        assert project.store.version(asset) == versions[asset] + 1  # type: ignore[operator]
        meta = project.store.history(asset)[0].metadata
        assert meta["backfiller.run_id"] == result.run_id
        assert meta["backfiller.action"] == "rerun"
        assert meta["backfiller.partition_keys"] == KEY
        record = ledger.partitions.get(asset, KEY)
        assert record is not None
        assert record.status is PartitionStatus.MATERIALIZED
        assert record.last_run_id == result.run_id
        assert record.data_version == project.store.version(asset)
        # a partition that was not named is not touched
        assert ledger.partitions.get(asset, OTHER_KEY) == untouched[asset]


@pytest.mark.slow
def test_rerun_is_idempotent_no_duplicates_and_the_same_fingerprints(
    april_project: Project, ledger: DatabaseLedger
) -> None:
    project = april_project
    before_rows = {a: rows(project, a) for a in ASSETS}
    before_counts = {a: project.store.partition_counts(a) for a in ASSETS}
    before_fps = store_fingerprints(project)
    before_ledger = ledger_state(ledger)
    assert before_counts[RAW][KEY] == 5

    for _ in range(2):
        result = rerun(project, ledger, asset=RAW, keys=[KEY, OTHER_KEY], operator="tests")
        assert result.state is RunState.SUCCEEDED
        assert result.count(P) == 4

    for asset in ASSETS:
        assert rows(project, asset) == before_rows[asset]
        assert project.store.partition_counts(asset) == before_counts[asset]
        assert duplicate_keys(project, asset) == []
    assert store_fingerprints(project) == before_fps
    assert ledger_state(ledger) == before_ledger


def test_rerun_always_runs_the_checks_of_every_asset(
    april_project: Project, ledger: DatabaseLedger
) -> None:
    project = april_project
    result = rerun(project, ledger, asset=RAW, keys=[KEY], operator="tests")

    recorded = ledger.checks.results(run_id=result.run_id)
    assert recorded, "a rerun recorded no check results"
    for asset in ASSETS:
        declared = {c.name for c in project.graph.get(asset).checks}
        ran = {(r.check_name, r.partition_key, r.on_staged) for r in recorded if r.asset == asset}
        assert ran == {(name, KEY, True) for name in declared}
    assert [r for r in recorded if r.blocking] == []
    # there is no switch to skip them
    parameters = inspect.signature(rerun).parameters
    assert not [p for p in parameters if "check" in p or "skip" in p]


def test_rerun_of_the_downstream_asset_leaves_the_upstream_alone(
    april_project: Project, ledger: DatabaseLedger
) -> None:
    project = april_project
    raw_version = project.store.version(RAW)
    raw_record = ledger.partitions.get(RAW, KEY)

    result = rerun(project, ledger, asset=SILVER, keys=[KEY], operator="tests")

    assert outcomes(result) == [(SILVER, KEY, P)]
    assert project.store.version(RAW) == raw_version
    assert ledger.partitions.get(RAW, KEY) == raw_record


def test_rerun_of_a_protected_partition_is_refused_and_writes_nothing(
    april_project: Project, ledger: DatabaseLedger
) -> None:
    project = april_project
    ledger.protections.protect(RAW, KEY, reason="baseline for week07", operator="lead")
    runs = len(ledger.runs.all())
    before = files(project)

    with pytest.raises(PreconditionError) as refused:
        rerun(project, ledger, asset=RAW, keys=[KEY], operator="tests")

    text = str(refused.value)
    assert f"{RAW} {KEY} (baseline for week07, by lead)" in text
    assert "--override-protected" in text
    assert refused.value.exit_code == ExitCode.BAD_INPUT == 2
    assert changed(before, files(project)) == []
    assert len(ledger.runs.all()) == runs
    assert ledger.protections.overrides() == []


def test_a_protected_downstream_partition_refuses_the_rerun_of_its_upstream(
    april_project: Project, ledger: DatabaseLedger
) -> None:
    project = april_project
    ledger.protections.protect(SILVER, KEY, reason="week08 metrics baseline", operator="lead")
    before = files(project)

    with pytest.raises(PreconditionError) as refused:
        rerun(project, ledger, asset=RAW, keys=[KEY], operator="tests")

    assert f"{SILVER} {KEY} (week08 metrics baseline, by lead)" in str(refused.value)
    assert changed(before, files(project)) == []


def test_rerun_with_an_override_reason_proceeds_and_records_who_and_why(
    april_project: Project, ledger: DatabaseLedger
) -> None:
    project = april_project
    ledger.protections.protect(RAW, KEY, reason="baseline for week07", operator="lead")

    result = rerun(
        project,
        ledger,
        asset=RAW,
        keys=[KEY],
        operator="alice",
        override_reason="approved by lead: re-delivered events",
    )

    assert result.state is RunState.SUCCEEDED
    assert outcomes(result) == [(RAW, KEY, P), (SILVER, KEY, P)]
    recorded = [
        {k: o[k] for k in ("run_id", "asset", "partition_key", "reason", "operator")}
        for o in ledger.protections.overrides()
    ]
    assert recorded == [
        {
            "run_id": result.run_id,
            "asset": RAW,
            "partition_key": KEY,
            "reason": "approved by lead: re-delivered events",
            "operator": "alice",
        }
    ]
    # the protection stays for the next action
    protection = ledger.protections.get(RAW, KEY)
    assert protection is not None and protection.reason == "baseline for week07"


# -- replay --------------------------------------------------------------------------------


def test_replay_reingests_exactly_the_manifest_input(
    april_project: Project, ledger: DatabaseLedger
) -> None:
    project = april_project
    declared = project.manifests.get(MANIFEST_ID).partition(KEY)
    assert declared is not None
    seed_ids = [
        json.loads(line)["ticket_id"]
        for line in (project.root / SEED_FILE).read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    other = ledger.partitions.get(RAW, OTHER_KEY)

    result = replay(project, ledger, manifest_id=MANIFEST_ID, keys=[KEY], operator="tests")

    assert result.state is RunState.SUCCEEDED
    assert outcomes(result) == [(RAW, KEY, P), (SILVER, KEY, P)]
    run = ledger.runs.get(result.run_id)
    assert run is not None and run.action == "replay"
    assert run.arguments["manifest_id"] == MANIFEST_ID
    assert run.arguments["partitions"] == [KEY]
    data = project.store.read_partition(RAW, KEY)
    assert sorted(column(data, "ticket_id")) == sorted(seed_ids)
    assert set(column(data, "source_file")) == {f.path for f in declared.input_files} == {SEED_FILE}
    assert set(column(data, "manifest_id")) == {MANIFEST_ID}
    assert len(column(data, "ticket_id")) == declared.expected_record_count == 5
    meta = project.store.history(RAW)[0].metadata
    assert meta["backfiller.manifest_ids"] == MANIFEST_ID
    assert meta["backfiller.action"] == "replay"
    assert ledger.partitions.get(RAW, OTHER_KEY) == other


def test_replay_is_refused_when_an_input_file_no_longer_matches_its_checksum(
    april_project: Project, ledger: DatabaseLedger
) -> None:
    project = april_project
    declared = project.manifests.get(MANIFEST_ID).partition(KEY)
    assert declared is not None
    expected_sha = declared.input_files[0].sha256
    seed = project.root / SEED_FILE
    with seed.open("a", encoding="utf-8") as handle:
        handle.write('{"ticket_id": "TCK-20260415-0777", "event_time": "2026-04-15T10:00:00Z"}\n')
    actual_sha = hashlib.sha256(seed.read_bytes()).hexdigest()
    runs = len(ledger.runs.all())
    before = files(project)

    with pytest.raises(PreconditionError) as refused:
        replay(project, ledger, manifest_id=MANIFEST_ID, keys=[KEY], operator="tests")

    message = refused.value.message
    assert f"Cannot replay {MANIFEST_ID}" in message
    assert SEED_FILE in message
    assert f"sha256 {actual_sha[:12]}" in message
    assert f"declared {expected_sha[:12]}" in message
    assert refused.value.hint is not None and "new manifest" in refused.value.hint
    assert refused.value.exit_code == 2
    assert changed(before, files(project)) == []
    assert len(ledger.runs.all()) == runs


def test_replay_of_an_unknown_manifest_is_refused_naming_the_known_ones(
    april_project: Project, ledger: DatabaseLedger
) -> None:
    before = files(april_project)

    with pytest.raises(ManifestError) as refused:
        replay(april_project, ledger, manifest_id="week06-nope", keys=[KEY], operator="tests")

    assert refused.value.message == f"Unknown manifest 'week06-nope' (known: {MANIFEST_ID})"
    assert refused.value.exit_code == 2
    assert changed(before, files(april_project)) == []


def test_replay_of_a_partition_the_manifest_does_not_declare_is_refused(
    april_project: Project, ledger: DatabaseLedger
) -> None:
    before = files(april_project)

    with pytest.raises(PreconditionError) as refused:
        replay(
            april_project,
            ledger,
            manifest_id=MANIFEST_ID,
            keys=[KEY, "2026-05-02"],
            operator="tests",
        )

    assert refused.value.message == f"Manifest {MANIFEST_ID} declares no input for 2026-05-02"
    assert refused.value.hint == f"pass a partition that {MANIFEST_ID} declares"
    assert changed(before, files(april_project)) == []


def test_replay_of_a_superseded_declaration_names_the_newer_manifest(
    april_project: Project, ledger: DatabaseLedger
) -> None:
    declare_correction(april_project)
    before = files(april_project)

    with pytest.raises(PreconditionError) as refused:
        replay(april_project, ledger, manifest_id=MANIFEST_ID, keys=[KEY], operator="tests")

    assert refused.value.message == f"{KEY} is now declared by {CORRECTION_ID}, not {MANIFEST_ID}"
    assert refused.value.hint == f"replay --manifest {CORRECTION_ID}"
    assert changed(before, files(april_project)) == []


# -- retry: a small project whose assets fail on demand ---------------------------------------


@pytest.fixture
def lab(tmp_path: Path, load: Callable[[Path], Project]) -> Project:
    return load(write_lab(tmp_path / "lab"))


def lab_values(project: Project, asset: str, key: str = LAB_KEY) -> list[str]:
    return sorted(column(project.store.read_partition(asset, key), "value"))


def test_retry_reexecutes_only_the_failed_transient_attempt_in_the_same_run(lab: Project) -> None:
    with lab.ledger() as ledger:
        first = run_steps(
            lab,
            ledger,
            [(STEADY, LAB_KEY), (FLAKY, LAB_KEY)],
            action="backfill",
            operator="night-shift",
            plan_id="plan-lab-001",
        )
        assert first.state is RunState.FAILED
        assert outcomes(first) == [
            (STEADY, LAB_KEY, P),
            (FLAKY, LAB_KEY, StepOutcome.FAILED),
        ]
        steady_version = lab.store.version(STEADY)
        steady_commits = len(lab.store.history(STEADY))
        steady_fp = lab.store.fingerprint(STEADY, LAB_KEY)
        (lab.root / "flaky.ok").touch()
        delays: list[float] = []

        result = retry(lab, ledger, run_id=first.run_id, operator="day-shift", sleep=delays.append)

        assert (result.run_id, result.plan_id) == (first.run_id, "plan-lab-001")
        # the whole run's steps: what succeeded before is reported, not recomputed
        assert outcomes(result) == [
            (STEADY, LAB_KEY, StepOutcome.ALREADY_PUBLISHED),
            (FLAKY, LAB_KEY, P),
        ]
        assert delays == [1.0]
        attempts = [
            (a.asset, a.attempt, a.status, a.transient) for a in ledger.runs.attempts(first.run_id)
        ]
        assert attempts == [
            (FLAKY, 1, AttemptStatus.FAILED, True),
            (FLAKY, 2, AttemptStatus.SUCCEEDED, False),
            (STEADY, 1, AttemptStatus.SUCCEEDED, False),
        ]
        # the same run, now succeeded; no new run was made
        assert [r.run_id for r in ledger.runs.all()] == [first.run_id]
        run = ledger.runs.get(first.run_id)
        assert run is not None and run.state is RunState.SUCCEEDED
        # pinned to the run's plan: the retried commit carries its run id and plan id
        meta = lab.store.history(FLAKY)[0].metadata
        assert meta["backfiller.run_id"] == first.run_id
        assert meta["backfiller.plan_id"] == "plan-lab-001"
        record = ledger.partitions.get(FLAKY, LAB_KEY)
        assert record is not None
        assert (record.status, record.last_run_id, record.last_attempt) == (
            PartitionStatus.MATERIALIZED,
            first.run_id,
            2,
        )
        assert lab_values(lab, FLAKY) == ["flaky-1"] * 3
        # what succeeded was not recomputed
        assert lab.store.version(STEADY) == steady_version
        assert len(lab.store.history(STEADY)) == steady_commits
        assert lab.store.fingerprint(STEADY, LAB_KEY) == steady_fp


def test_retry_backs_off_exponentially_and_enforces_the_attempt_bound(lab: Project) -> None:
    steps = [(FLAKY, LAB_KEY), (FLAKY, LAB_KEY_2)]
    with lab.ledger() as ledger:
        first = run_steps(lab, ledger, steps, action="backfill", operator="tests")
        assert first.count(StepOutcome.FAILED) == 2
        delays: list[float] = []

        second = retry(lab, ledger, run_id=first.run_id, operator="tests", sleep=delays.append)
        third = retry(lab, ledger, run_id=first.run_id, operator="tests", sleep=delays.append)

        # one wait before each retry, doubling with the attempts used
        assert delays == [1.0, 2.0]
        assert second.count(StepOutcome.FAILED) == third.count(StepOutcome.FAILED) == 2
        assert [
            (a.partition_key, a.attempt, a.status) for a in ledger.runs.attempts(first.run_id)
        ] == [
            (LAB_KEY, 1, AttemptStatus.FAILED),
            (LAB_KEY, 2, AttemptStatus.FAILED),
            (LAB_KEY, 3, AttemptStatus.FAILED),
            (LAB_KEY_2, 1, AttemptStatus.FAILED),
            (LAB_KEY_2, 2, AttemptStatus.FAILED),
            (LAB_KEY_2, 3, AttemptStatus.FAILED),
        ]
        run = ledger.runs.get(first.run_id)
        assert run is not None and run.state is RunState.FAILED

        before = files(lab)
        with pytest.raises(PreconditionError) as refused:
            retry(lab, ledger, run_id=first.run_id, operator="tests", sleep=delays.append)
        assert refused.value.message == (
            f"Run {first.run_id}: {FLAKY} {LAB_KEY}, {FLAKY} {LAB_KEY_2} already used 3 attempts"
        )
        assert refused.value.hint == "investigate, then rerun"
        assert delays == [1.0, 2.0]  # a refused retry does not wait
        assert changed(before, files(lab)) == []

        # the bound is a parameter: one more attempt allowed, with the next backoff
        (lab.root / "flaky.ok").touch()
        fourth = retry(
            lab, ledger, run_id=first.run_id, operator="tests", max_attempts=4, sleep=delays.append
        )
        assert delays[2:] == [4.0]
        assert outcomes(fourth) == [(FLAKY, LAB_KEY, P), (FLAKY, LAB_KEY_2, P)]
        assert {
            a.attempt
            for a in ledger.runs.attempts(first.run_id)
            if a.status is AttemptStatus.SUCCEEDED
        } == {4}


def test_retry_backoff_scales_with_backoff_seconds(lab: Project) -> None:
    with lab.ledger() as ledger:
        first = run_steps(lab, ledger, [(FLAKY, LAB_KEY)], action="backfill", operator="tests")
        delays: list[float] = []
        for _ in range(2):
            retry(
                lab,
                ledger,
                run_id=first.run_id,
                operator="tests",
                backoff_seconds=0.25,
                max_attempts=5,
                sleep=delays.append,
            )
        assert delays == [0.25, 0.5]


def test_retry_of_a_non_transient_failure_is_refused_suggesting_a_rerun(lab: Project) -> None:
    with lab.ledger() as ledger:
        first = run_steps(
            lab,
            ledger,
            [(BROKEN, LAB_KEY), (FLAKY, LAB_KEY)],
            action="backfill",
            operator="tests",
        )
        attempts = {(a.asset, a.transient) for a in ledger.runs.attempts(first.run_id)}
        assert attempts == {(BROKEN, False), (FLAKY, True)}
        (lab.root / "flaky.ok").touch()
        before = files(lab)
        delays: list[float] = []

        with pytest.raises(PreconditionError) as refused:
            retry(lab, ledger, run_id=first.run_id, operator="tests", sleep=delays.append)

        assert refused.value.message == (
            f"Run {first.run_id}: 1 attempt(s) failed with a non-transient error "
            f"({BROKEN} {LAB_KEY}); a retry would fail the same way"
        )
        assert refused.value.hint is not None and "backfiller rerun" in refused.value.hint
        assert refused.value.exit_code == 2
        assert delays == []
        assert changed(before, files(lab)) == []
        assert len(ledger.runs.attempts(first.run_id)) == 2


def test_retry_of_a_run_without_a_failed_attempt_is_refused(lab: Project) -> None:
    with lab.ledger() as ledger:
        done = run_steps(lab, ledger, [(STEADY, LAB_KEY)], action="backfill", operator="tests")
        assert done.state is RunState.SUCCEEDED
        before = files(lab)

        with pytest.raises(PreconditionError) as refused:
            retry(lab, ledger, run_id=done.run_id, operator="tests", sleep=lambda _: None)

        assert refused.value.message == f"Run {done.run_id} has no failed attempt to retry"
        assert changed(before, files(lab)) == []


def test_retry_of_an_unknown_run_is_refused(lab: Project) -> None:
    with lab.ledger() as ledger:
        before = files(lab)
        with pytest.raises(BadInputError) as refused:
            retry(lab, ledger, run_id="run-nope", operator="tests", sleep=lambda _: None)
        assert refused.value.message == "No run 'run-nope' in the ledger"
        assert refused.value.exit_code == 2
        assert changed(before, files(lab)) == []


def _failed_republish(lab: Project, ledger: DatabaseLedger) -> str:
    """flaky and its downstream materialized from input version 1 (holds released); then the
    input changes to version 2 and a rerun of flaky fails transiently (its downstream step is
    skipped); the marker is put back. Returns the failed run's id."""
    (lab.root / "flaky.ok").touch()
    base = run_steps(
        lab, ledger, [(FLAKY, LAB_KEY), (FLAKY_DOWN, LAB_KEY)], action="backfill", operator="t"
    )
    assert base.state is RunState.SUCCEEDED
    assert release(lab, ledger, operator="t").blocked == []
    (lab.root / "flaky.ok").unlink()
    (lab.root / "version.txt").write_text("2")
    failed = rerun(lab, ledger, asset=FLAKY, keys=[LAB_KEY], operator="t")
    assert outcomes(failed) == [
        (FLAKY, LAB_KEY, StepOutcome.FAILED),
        (FLAKY_DOWN, LAB_KEY, StepOutcome.SKIPPED),
    ]
    (lab.root / "flaky.ok").touch()
    return failed.run_id


def test_a_retried_run_is_not_succeeded_while_its_skipped_steps_never_ran(lab: Project) -> None:
    with lab.ledger() as ledger:
        run_id = _failed_republish(lab, ledger)
        retry(lab, ledger, run_id=run_id, operator="t", sleep=lambda _: None)
        run = ledger.runs.get(run_id)
        assert run is not None
        planned = {Step.from_json(s).target for s in run.arguments["steps"]}
        done = {
            (a.asset, a.partition_key)
            for a in ledger.runs.attempts(run_id)
            if a.status is AttemptStatus.SUCCEEDED
        }
        assert run.state is not RunState.SUCCEEDED or planned <= done, (
            f"run {run.state.value} but {sorted(planned - done)} never ran"
        )


def test_a_retry_that_republishes_does_not_leave_stale_downstream_ready(lab: Project) -> None:
    with lab.ledger() as ledger:
        run_id = _failed_republish(lab, ledger)
        retry(lab, ledger, run_id=run_id, operator="t", sleep=lambda _: None)
        assert lab_values(lab, FLAKY) == ["flaky-2"] * 3
        stale_but_ready = (
            is_ready(lab, ledger, FLAKY_DOWN, LAB_KEY) == []
            and lab_values(lab, FLAKY_DOWN) == ["flaky-1-down"] * 3
        )
        assert not stale_but_ready


# -- resume --------------------------------------------------------------------------------


def test_resume_of_a_finished_run_writes_no_new_commit(
    april_project: Project, ledger: DatabaseLedger
) -> None:
    project = april_project
    first = rerun(project, ledger, asset=RAW, keys=[KEY], operator="tests")
    versions = {a: project.store.version(a) for a in ASSETS}
    commits = {a: len(project.store.history(a)) for a in ASSETS}
    fps = store_fingerprints(project)
    runs = [r.run_id for r in ledger.runs.all()]

    resumed = resume(project, ledger, run_id=first.run_id, operator="tests")

    assert resumed.run_id == first.run_id
    # every step is already published (reported as such, or nothing left to do at all)
    assert outcomes(resumed) in (
        [],
        [(RAW, KEY, StepOutcome.ALREADY_PUBLISHED), (SILVER, KEY, StepOutcome.ALREADY_PUBLISHED)],
    )
    assert all(s.version == versions[s.asset] for s in resumed.steps)
    assert {a: project.store.version(a) for a in ASSETS} == versions
    assert {a: len(project.store.history(a)) for a in ASSETS} == commits
    assert store_fingerprints(project) == fps
    assert [r.run_id for r in ledger.runs.all()] == runs
    assert [a.attempt for a in ledger.runs.attempts(first.run_id)] == [1, 1]
    run = ledger.runs.get(first.run_id)
    assert run is not None and run.state is RunState.SUCCEEDED


class _Interrupted(BaseException):
    """Stands in for the process dying mid-run: not an Exception, so nothing catches it."""


def test_resume_finishes_an_interrupted_run_without_recomputing_what_landed(
    lab: Project,
) -> None:
    module = sys.modules[LAB_MODULE]

    def die(context: Any) -> None:
        raise _Interrupted

    with lab.ledger() as ledger:
        module.HOOK = die
        try:
            with pytest.raises(_Interrupted):
                run_steps(
                    lab,
                    ledger,
                    [(STEADY, LAB_KEY), (SLOW, LAB_KEY)],
                    action="backfill",
                    operator="night-shift",
                    run_id="run-crashed-001",
                )
        finally:
            module.HOOK = None
        crashed = ledger.runs.get("run-crashed-001")
        assert crashed is not None and crashed.state is RunState.RUNNING
        slow = ledger.partitions.get(SLOW, LAB_KEY)
        assert slow is not None and slow.status is PartitionStatus.MATERIALIZING
        assert not lab.store.exists(SLOW)
        steady_version = lab.store.version(STEADY)
        steady_commits = len(lab.store.history(STEADY))

        result = resume(lab, ledger, run_id="run-crashed-001", operator="day-shift")

        assert result.run_id == "run-crashed-001"
        assert outcomes(result) == [
            (STEADY, LAB_KEY, StepOutcome.ALREADY_PUBLISHED),
            (SLOW, LAB_KEY, P),
        ]
        assert lab.store.version(STEADY) == steady_version
        assert len(lab.store.history(STEADY)) == steady_commits
        assert lab_values(lab, SLOW) == ["slow-1"] * 3
        assert lab.store.history(SLOW)[0].metadata["backfiller.run_id"] == "run-crashed-001"
        slow = ledger.partitions.get(SLOW, LAB_KEY)
        assert slow is not None
        assert (slow.status, slow.last_run_id) == (PartitionStatus.MATERIALIZED, "run-crashed-001")
        resumed = ledger.runs.get("run-crashed-001")
        assert resumed is not None and resumed.state is RunState.SUCCEEDED
        assert [r.run_id for r in ledger.runs.all()] == ["run-crashed-001"]


def test_resume_of_an_unknown_run_is_refused(
    april_project: Project, ledger: DatabaseLedger
) -> None:
    before = files(april_project)
    with pytest.raises(BadInputError) as refused:
        resume(april_project, ledger, run_id="run-nope", operator="tests")
    assert refused.value.message == "No run 'run-nope' in the ledger"
    assert refused.value.hint == "see 'backfiller runs'"
    assert refused.value.exit_code == 2
    assert changed(before, files(april_project)) == []


def test_resuming_a_superseded_run_keeps_the_newer_version_in_the_ledger(
    april_project: Project, ledger: DatabaseLedger
) -> None:
    project = april_project
    # (at 4345486 resume re-recorded the older run's commit as the current version)
    older = rerun(project, ledger, asset=RAW, keys=[KEY], operator="tests")
    newer = rerun(project, ledger, asset=RAW, keys=[KEY], operator="tests")
    current = project.store.version(RAW)
    assert newer.steps[0].version == current
    with contextlib.suppress(PreconditionError):  # refusing it would be fine too
        resume(project, ledger, run_id=older.run_id, operator="tests")
    record = ledger.partitions.get(RAW, KEY)
    assert record is not None
    assert (record.data_version, record.last_run_id) == (current, newer.run_id)
    assert record.fingerprint == project.store.fingerprint(RAW, KEY)
    assert project.store.version(RAW) == current


# -- restore -------------------------------------------------------------------------------


def test_restore_publishes_the_earlier_rows_and_holds_what_consumed_the_replaced_version(
    april_project: Project, ledger: DatabaseLedger
) -> None:
    project = april_project
    original_version = project.store.version(RAW)
    assert original_version is not None
    original_fp = project.store.fingerprint(RAW, KEY)
    original_ids = sorted(column(project.store.read_partition(RAW, KEY), "ticket_id"))
    neighbour_fp = project.store.fingerprint(RAW, OTHER_KEY)
    corrected_ids = declare_correction(project)
    fix = rerun(project, ledger, asset=RAW, keys=[KEY], operator="tests")
    assert fix.state is RunState.SUCCEEDED
    assert project.store.partition_counts(RAW)[KEY] == 6
    assert sorted(column(project.store.read_partition(RAW, KEY), "ticket_id")) == sorted(
        corrected_ids
    )
    assert release(project, ledger, operator="tests").blocked == []
    assert ledger.holds.all() == []
    withdraw_correction(project)

    result = restore(
        project,
        ledger,
        asset=RAW,
        key=KEY,
        operator="oncall",
        to_version=original_version,
        reason="the correction was wrong",
    )

    expected_fp = project.store.fingerprint(RAW, KEY, version=original_version)
    assert expected_fp == original_fp
    assert project.store.fingerprint(RAW, KEY) == expected_fp
    assert sorted(column(project.store.read_partition(RAW, KEY), "ticket_id")) == original_ids
    [step] = result.steps
    assert (step.asset, step.partition_key, step.outcome) == (RAW, KEY, P)
    assert (step.rows, step.rows_before) == (5, 6)
    assert step.version == project.store.version(RAW)
    assert step.fingerprint == expected_fp
    meta = project.store.history(RAW)[0].metadata
    assert meta["backfiller.action"] == "restore"
    assert meta["backfiller.run_id"] == result.run_id
    assert meta["backfiller.restored_from_version"] == str(original_version)
    record = ledger.partitions.get(RAW, KEY)
    assert record is not None
    assert (record.status, record.data_version, record.row_count, record.fingerprint) == (
        PartitionStatus.MATERIALIZED,
        step.version,
        5,
        expected_fp,
    )
    run = ledger.runs.get(result.run_id)
    assert run is not None
    assert (run.action, run.operator, run.reason, run.state) == (
        "restore",
        "oncall",
        "the correction was wrong",
        RunState.SUCCEEDED,
    )
    assert run.arguments["to_version"] == original_version
    # the downstream partition consumed the replaced version: stale and held
    assert result.held == [(SILVER, KEY)]
    silver = ledger.partitions.get(SILVER, KEY)
    assert silver is not None and silver.status is PartitionStatus.STALE
    held = {(h.target, h.partition_key, h.external) for h in ledger.holds.all()}
    assert held == {(SILVER, KEY, False), *((c, KEY, True) for c in CONSUMERS)}
    assert {h.cause_run_id for h in ledger.holds.all()} == {result.run_id}
    for target in (SILVER, *CONSUMERS):
        assert is_ready(project, ledger, target, KEY) != []
    document = json.loads(holds_file(project).read_text(encoding="utf-8"))
    assert {(h["target"], h["partition_key"]) for h in document["holds"]} == {
        (t, k) for t, k, _ in held
    }
    # nothing else moved
    assert project.store.fingerprint(RAW, OTHER_KEY) == neighbour_fp


def test_restore_before_a_run_picks_the_version_before_its_first_commit(
    april_project: Project, ledger: DatabaseLedger
) -> None:
    project = april_project
    original_version = project.store.version(RAW)
    original_fp = project.store.fingerprint(RAW, KEY)
    declare_correction(project)
    fix = rerun(project, ledger, asset=RAW, keys=[KEY], operator="tests")
    fix_commits = [
        c.version
        for c in project.store.history(RAW)
        if c.metadata.get("backfiller.run_id") == fix.run_id
    ]
    assert fix_commits == [original_version + 1]  # type: ignore[operator]
    withdraw_correction(project)

    result = restore(project, ledger, asset=RAW, key=KEY, operator="oncall", before_run=fix.run_id)

    run = ledger.runs.get(result.run_id)
    assert run is not None and run.arguments["to_version"] == original_version
    assert project.store.fingerprint(RAW, KEY) == original_fp
    assert project.store.partition_counts(RAW)[KEY] == 5


def test_restore_of_a_version_that_fails_todays_checks_publishes_nothing(
    april_project: Project, ledger: DatabaseLedger
) -> None:
    project = april_project
    original_version = project.store.version(RAW)
    declare_correction(project)  # now 6 records are expected for 2026-04-15
    rerun(project, ledger, asset=RAW, keys=[KEY], operator="tests")
    corrected_fp = project.store.fingerprint(RAW, KEY)
    versions = {a: project.store.version(a) for a in ASSETS}

    result = restore(
        project, ledger, asset=RAW, key=KEY, operator="oncall", to_version=original_version
    )

    [step] = result.steps
    assert (step.asset, step.partition_key, step.outcome) == (RAW, KEY, StepOutcome.CHECK_FAILED)
    # as for any action, a failed check holds what consumes the partition; nothing replaced
    assert result.held == [(SILVER, KEY)]
    assert project.store.fingerprint(RAW, KEY) == corrected_fp
    assert {a: project.store.version(a) for a in ASSETS} == versions
    failing = [r.check_name for r in ledger.checks.results(run_id=result.run_id) if r.blocking]
    assert failing == ["row_count_matches_manifest"]
    run = ledger.runs.get(result.run_id)
    assert run is not None and run.state is RunState.CHECKS_FAILED


def test_restore_before_a_run_that_made_no_commit_is_refused(
    april_project: Project, ledger: DatabaseLedger
) -> None:
    before = files(april_project)
    with pytest.raises(PreconditionError) as refused:
        restore(april_project, ledger, asset=RAW, key=KEY, operator="t", before_run="run-nope")
    assert refused.value.message == f"Run run-nope made no commit to {RAW}"
    assert changed(before, files(april_project)) == []


@pytest.mark.parametrize("version", [99, -1])
def test_restore_to_a_version_that_does_not_exist_is_refused(
    april_project: Project, ledger: DatabaseLedger, version: int
) -> None:
    current = april_project.store.version(RAW)
    before = files(april_project)

    with pytest.raises(PreconditionError) as refused:
        restore(april_project, ledger, asset=RAW, key=KEY, operator="t", to_version=version)

    assert refused.value.message == f"{RAW} has no version {version} (current: {current})"
    assert refused.value.hint == "pick a version from 'backfiller history --asset A'"
    assert changed(before, files(april_project)) == []


def test_restore_of_a_vacuumed_version_is_refused_naming_it(
    april_project: Project, ledger: DatabaseLedger
) -> None:
    project = april_project
    old_version = project.store.version(RAW)
    table_path = str(project.store.path(RAW))
    old_files = {
        uri
        for uri in DeltaTable(table_path, version=old_version).file_uris()
        if f"partition_key={KEY}/" in uri
    }
    assert len(old_files) == 1
    rerun(project, ledger, asset=RAW, keys=[KEY], operator="tests")  # new files for 04-15
    removed = DeltaTable(table_path).vacuum(
        retention_hours=0, enforce_retention_duration=False, dry_run=False
    )
    assert any(f"partition_key={KEY}/" in f for f in removed)
    assert not any(Path(uri.removeprefix("file://")).exists() for uri in old_files)
    before = files(project)
    versions = {a: project.store.version(a) for a in ASSETS}

    with pytest.raises(PreconditionError) as refused:
        restore(project, ledger, asset=RAW, key=KEY, operator="t", to_version=old_version)

    assert refused.value.message.startswith(f"Version {old_version} of {RAW} is no longer retained")
    assert refused.value.hint == "restore needs a snapshot that still exists"
    assert refused.value.exit_code == 2
    assert changed(before, files(project)) == []
    assert {a: project.store.version(a) for a in ASSETS} == versions


@pytest.mark.parametrize(
    ("to_version", "before_run"), [(None, None), (1, "run-x")], ids=["neither", "both"]
)
def test_restore_needs_exactly_one_of_a_version_and_a_run(
    april_project: Project, ledger: DatabaseLedger, to_version: int | None, before_run: str | None
) -> None:
    before = files(april_project)
    with pytest.raises(BadInputError) as refused:
        restore(
            april_project,
            ledger,
            asset=RAW,
            key=KEY,
            operator="t",
            to_version=to_version,
            before_run=before_run,
        )
    assert refused.value.message == "Pass exactly one of --to-version V or --before-run RUN_ID"
    assert refused.value.exit_code == 2
    assert changed(before, files(april_project)) == []


def test_restore_of_a_protected_partition_needs_a_recorded_override(
    april_project: Project, ledger: DatabaseLedger
) -> None:
    project = april_project
    ledger.protections.protect(RAW, KEY, reason="audited baseline", operator="lead")
    version = project.store.version(RAW)
    earlier = first_version_holding(project, RAW, KEY)
    before = files(project)

    with pytest.raises(PreconditionError) as refused:
        restore(project, ledger, asset=RAW, key=KEY, operator="t", to_version=earlier)
    assert f"protected baseline(s): {RAW} {KEY} (audited baseline, by lead)" in (
        refused.value.message
    )
    assert refused.value.hint is not None and "--override-protected" in refused.value.hint
    assert changed(before, files(project)) == []

    result = restore(
        project,
        ledger,
        asset=RAW,
        key=KEY,
        operator="oncall",
        to_version=earlier,
        override_reason="ok",
    )
    assert project.store.version(RAW) == version + 1  # type: ignore[operator]
    assert [(o["run_id"], o["operator"], o["reason"]) for o in ledger.protections.overrides()] == [
        (result.run_id, "oncall", "ok")
    ]


def test_restore_to_a_version_before_the_partition_existed_is_refused(
    april_project: Project, ledger: DatabaseLedger
) -> None:
    project = april_project
    # the example's days but the gap day are published by one commit (version 1); the gap day
    # is published now, alone (version 2)
    published = run_steps(project, ledger, [(RAW, GAP_DAY)])
    assert published.state.value == "succeeded"
    created, others, first = reversed(project.store.history(RAW))
    assert created.version == 0 and created.metadata == {"backfiller.created": "1"}
    assert (others.version, first.version) == (1, 2)
    assert GAP_DAY not in others.metadata["backfiller.partition_keys"].split(",")
    assert first.metadata["backfiller.partition_keys"] == GAP_DAY
    rows = project.store.partition_counts(RAW)[GAP_DAY]
    before = files(project)
    # (at 4345486 this published 0 rows: the partition was wiped)
    try:
        for version in (0, 1):  # the empty creation, and a commit of other partitions
            with pytest.raises(PreconditionError, match=f"version {version}"):
                restore(project, ledger, asset=RAW, key=GAP_DAY, operator="t", to_version=version)
    finally:
        assert project.store.partition_counts(RAW).get(GAP_DAY) == rows
        assert changed(before, files(project)) == []


def test_restore_of_a_partition_leased_by_another_run_is_a_conflict(
    april_project: Project, ledger: DatabaseLedger
) -> None:
    project = april_project
    ledger.leases.acquire(
        RAW,
        KEY,
        holder="night-shift",
        plan_id="plan-night-001",
        run_id="run-night-001",
        ttl_seconds=600,
    )
    version = project.store.version(RAW)
    earlier = first_version_holding(project, RAW, KEY)
    before = files(project)
    # (at 4345486 restore took no lease and overwrote the partition)
    try:
        with pytest.raises(ConflictError) as refused:
            restore(project, ledger, asset=RAW, key=KEY, operator="t", to_version=earlier)
        assert refused.value.exit_code == 4
        assert "night-shift" in refused.value.message
        assert "run-night-001" in refused.value.message
    finally:
        assert project.store.version(RAW) == version
    assert changed(before, files(project)) == []


def test_holds_placed_by_a_restore_can_be_released_once_downstream_is_rerun(
    april_project: Project, ledger: DatabaseLedger
) -> None:
    # (at 4345486 restore recorded no check results, so its holds could only be forced)
    project = april_project
    fix = rerun(project, ledger, asset=RAW, keys=[KEY], operator="tests")
    release(project, ledger, operator="tests")
    restore(project, ledger, asset=RAW, key=KEY, operator="oncall", before_run=fix.run_id)
    assert rerun(project, ledger, asset=SILVER, keys=[KEY], operator="oncall").state is (
        RunState.SUCCEEDED
    )
    outcome = release(project, ledger, operator="oncall")
    assert [(h.target, m) for h, m in outcome.blocked] == []
    assert is_ready(project, ledger, CONSUMERS[0], KEY) == []


# -- leases --------------------------------------------------------------------------------


def test_a_leased_partition_conflicts_while_other_partitions_of_the_run_proceed(
    april_project: Project, ledger: DatabaseLedger
) -> None:
    project = april_project
    held = ledger.leases.acquire(
        RAW,
        KEY,
        holder="night-shift",
        plan_id="plan-night-001",
        run_id="run-night-001",
        ttl_seconds=600,
    )
    raw_record = ledger.partitions.get(RAW, KEY)
    raw_fp = project.store.fingerprint(RAW, KEY)

    result = rerun(project, ledger, asset=RAW, keys=[KEY, OTHER_KEY], operator="day-shift")

    assert outcomes(result) == [
        (RAW, KEY, StepOutcome.CONFLICT),
        (SILVER, KEY, StepOutcome.SKIPPED),
        (RAW, OTHER_KEY, P),
        (SILVER, OTHER_KEY, P),
    ]
    assert result.state is RunState.FAILED
    run = ledger.runs.get(result.run_id)
    assert run is not None and run.state is RunState.FAILED
    error = conflict_error(result)
    assert isinstance(error, ConflictError)
    assert error.exit_code == ExitCode.CONFLICT == 4
    assert error.message.startswith("1 partition(s) are leased by another operator")
    assert f"{RAW} {KEY}: leased by night-shift (plan plan-night-001, run run-night-001)" in (
        error.message
    )
    assert f"since {held.acquired_at}" in error.message
    # the leased partition was not touched, and the lease is still the holder's
    assert ledger.partitions.get(RAW, KEY) == raw_record
    assert project.store.fingerprint(RAW, KEY) == raw_fp
    assert [(a.asset, a.partition_key) for a in ledger.runs.attempts(result.run_id)] == [
        (RAW, OTHER_KEY),
        (SILVER, OTHER_KEY),
    ]
    assert ledger.leases.held() == [held]
    # a run without conflicts has no conflict error
    assert conflict_error(rerun(project, ledger, asset=RAW, keys=[OTHER_KEY], operator="t")) is None


def test_an_expired_lease_is_taken_over_and_the_stale_holder_is_fenced(
    april_project: Project, ledger: DatabaseLedger, clock: FixedClock
) -> None:
    project = april_project
    assert project.clock is clock
    old = ledger.leases.acquire(
        RAW,
        KEY,
        holder="night-shift",
        plan_id="plan-night-001",
        run_id="run-night-001",
        ttl_seconds=600,
    )
    assert ledger.leases.is_current(old)
    clock.advance(seconds=601)

    taken = rerun(project, ledger, asset=RAW, keys=[KEY], operator="day-shift")

    assert outcomes(taken) == [(RAW, KEY, P), (SILVER, KEY, P)]
    assert not ledger.leases.is_current(old)
    assert ledger.leases.held() == []  # released at the end of the step
    probe = ledger.leases.acquire(
        RAW, KEY, holder="probe", plan_id=None, run_id="run-probe", ttl_seconds=1
    )
    assert probe.token == old.token + 2  # the takeover got old.token + 1
    ledger.leases.release(probe)

    version = project.store.version(RAW)
    fingerprint = project.store.fingerprint(RAW, KEY)
    late = _night_runner(project, ledger).run_leased(Step(AssetPartition(RAW, KEY)), 1, old)

    assert late.outcome is StepOutcome.CONFLICT
    assert late.error is not None
    assert (
        f"{RAW} {KEY}: the lease (token {old.token}) was taken over by another run; "
        "refusing this late publish"
    ) in late.error
    assert project.store.version(RAW) == version
    assert project.store.fingerprint(RAW, KEY) == fingerprint


def _night_runner(project: Project, ledger: DatabaseLedger) -> StepRunner:
    """The runner of a night run whose lease on (RAW, KEY) was taken over."""
    spec = RunSpec.compute(Action.BACKFILL, "night-shift", [(RAW, KEY)], plan_id="plan-night-001")
    return StepRunner(project, ledger, "run-night-001", spec)


def test_a_fenced_late_publish_leaves_the_new_holders_record_alone(
    april_project: Project, ledger: DatabaseLedger, clock: FixedClock
) -> None:
    project = april_project
    old = ledger.leases.acquire(
        RAW,
        KEY,
        holder="night-shift",
        plan_id="plan-night-001",
        run_id="run-night-001",
        ttl_seconds=600,
    )
    clock.advance(seconds=601)
    taken = rerun(project, ledger, asset=RAW, keys=[KEY], operator="day-shift")
    late = _night_runner(project, ledger).run_leased(Step(AssetPartition(RAW, KEY)), 1, old)
    assert late.outcome is StepOutcome.CONFLICT
    record = ledger.partitions.get(RAW, KEY)
    assert record is not None
    assert (record.status, record.last_run_id) == (PartitionStatus.MATERIALIZED, taken.run_id)
    # the new holder's run is releasable as usual: the fenced attempt left nothing in its way
    assert release(project, ledger, operator="t").blocked == []
    assert is_ready(project, ledger, SILVER, KEY) == []


def test_a_run_whose_lease_is_taken_over_mid_step_finishes_as_failed(
    lab: Project, clock: FixedClock
) -> None:
    # (at 4345486 the fenced step's ledger.fail raised IllegalTransitionError out of execute)
    module = sys.modules[LAB_MODULE]
    with lab.ledger() as ledger:
        assert run_steps(lab, ledger, [(SLOW, LAB_KEY)], action="backfill", operator="t").state is (
            RunState.SUCCEEDED
        )
        inner: dict[str, Any] = {}

        def take_over(context: Any) -> None:
            if context.run_id != "run-night-001":
                return
            module.HOOK = None
            clock.advance(seconds=601)  # the night run's lease expires while it computes
            inner["result"] = run_steps(
                lab,
                ledger,
                [(SLOW, LAB_KEY)],
                action="backfill",
                operator="day-shift",
                run_id="run-day-002",
            )

        module.HOOK = take_over
        try:
            result = run_steps(
                lab,
                ledger,
                [(SLOW, LAB_KEY)],
                action="backfill",
                operator="night-shift",
                run_id="run-night-001",
            )
        finally:
            module.HOOK = None
        assert inner["result"].state is RunState.SUCCEEDED
        assert [s.outcome for s in result.steps] == [StepOutcome.CONFLICT]
        assert "taken over" in (result.steps[0].error or "")
        night = ledger.runs.get("run-night-001")
        assert night is not None and night.state is RunState.FAILED
        record = ledger.partitions.get(SLOW, LAB_KEY)
        assert record is not None
        assert (record.status, record.last_run_id) == (PartitionStatus.MATERIALIZED, "run-day-002")


def test_resume_writes_the_evidence_of_a_finished_run_that_has_none(
    april_project: Project, ledger: DatabaseLedger
) -> None:
    """A ledger from before runs needed evidence: a succeeded run without a document."""
    from backfiller.evidence.chain import ProblemKind, indexed_path, verify_chain

    project = april_project
    done = rerun(project, ledger, asset=RAW, keys=[KEY], operator="tests")
    record = ledger.evidence.of_run(done.run_id)
    assert record is not None
    indexed_path(project, record).unlink()
    if project.config.ledger_url:
        import psycopg

        with psycopg.connect(project.config.ledger_url) as pg:
            pg.execute("DELETE FROM evidence WHERE run_id = %s", (done.run_id,))
    else:
        import sqlite3

        with sqlite3.connect(project.config.ledger_path) as conn:
            conn.execute("DELETE FROM evidence WHERE run_id = ?", (done.run_id,))
    assert [p.kind for p in verify_chain(project, ledger)] == [ProblemKind.MISSING]
    versions = {a: project.store.version(a) for a in ASSETS}

    resumed = resume(project, ledger, run_id=done.run_id, operator="tests")

    assert resumed.state is RunState.SUCCEEDED
    assert ledger.evidence.of_run(done.run_id) is not None
    assert verify_chain(project, ledger) == []
    assert {a: project.store.version(a) for a in ASSETS} == versions  # nothing recomputed
