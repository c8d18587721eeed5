"""Write–audit–publish and holds on the example: a failing check keeps the old data visible,
holds what depends on it and blocks release; a passing rerun lets release proceed."""

from __future__ import annotations

import json

from conftest import both_backends, run_steps

from backfiller import Project
from backfiller.holds import holds_file, is_ready, release
from backfiller.ledger import PartitionStatus, RunState

RAW = "week06/ingestion/raw_ticket_events_partitioned"
SILVER = "week06/silver/ticket_fact_partitioned"
KEY = "2026-04-15"
CONSUMERS = ("week07/retrieval_index", "week08/eval_metrics")


def _rerun(project: Project, forced: frozenset[tuple[str, str, str]] = frozenset()):
    with project.ledger() as ledger:
        return run_steps(
            project,
            ledger,
            [(RAW, KEY), (SILVER, KEY)],
            action="rerun",
            operator="tests",
            forced_failures=forced,
        )


@both_backends
def test_a_failing_blocking_check_keeps_old_data_and_holds_downstream(
    april_project: Project,
) -> None:
    project = april_project
    before = {a: project.store.fingerprint(a, KEY) for a in (RAW, SILVER)}
    versions = {a: project.store.version(a) for a in (RAW, SILVER)}

    result = _rerun(project, frozenset({(RAW, "idempotency_key_unique", KEY)}))

    assert result.state is RunState.CHECKS_FAILED
    assert [s.outcome.value for s in result.steps] == ["check_failed", "skipped"]
    # the previous version stays what readers see
    assert {a: project.store.fingerprint(a, KEY) for a in (RAW, SILVER)} == before
    assert {a: project.store.version(a) for a in (RAW, SILVER)} == versions
    with project.ledger() as ledger:
        record = ledger.partitions.get(RAW, KEY)
        assert record is not None and record.status is PartitionStatus.CHECK_FAILED
        assert "idempotency_key_unique" in (record.last_error or "")
        failed = [r for r in ledger.checks.results(run_id=result.run_id) if r.blocking]
        assert [(r.check_name, r.actual) for r in failed] == [
            ("idempotency_key_unique", "simulated failure")
        ]
        held = {(h.target, h.partition_key) for h in ledger.holds.all()}
        assert {(SILVER, KEY), *((c, KEY) for c in CONSUMERS)} <= held
        assert is_ready(project, ledger, CONSUMERS[0], KEY)
        outcome = release(project, ledger, operator="tests", run_id=result.run_id)
        assert outcome.released == []
        reasons = " ".join(" ".join(m) for _, m in outcome.blocked)
        assert f"{RAW} {KEY} is check_failed" in reasons
    holds_doc = json.loads(holds_file(project).read_text(encoding="utf-8"))
    assert {(h["target"], h["partition_key"]) for h in holds_doc["holds"]} == held


@both_backends
def test_a_passing_rerun_can_be_released_once_evidence_exists(april_project: Project) -> None:
    project = april_project
    _rerun(project, frozenset({(RAW, "idempotency_key_unique", KEY)}))
    fixed = _rerun(project)
    assert fixed.state is RunState.SUCCEEDED
    with project.ledger() as ledger:
        assert ledger.partitions.get(RAW, KEY).status is PartitionStatus.MATERIALIZED  # type: ignore[union-attr]
        outcome = release(project, ledger, operator="tests")
        # every run wrote its evidence at its end: the acceptance order is complete
        assert ledger.evidence.of_run(fixed.run_id) is not None
        # holds caused by the failed run are released too once their cause is fixed
        assert outcome.blocked == []
        assert ledger.holds.all() == []
        assert is_ready(project, ledger, CONSUMERS[1], KEY) == []


@both_backends
def test_forced_release_is_recorded(april_project: Project) -> None:
    project = april_project
    _rerun(project, frozenset({(SILVER, "in_window(event_time)", KEY)}))
    with project.ledger() as ledger:
        outcome = release(project, ledger, operator="ops", force_reason="incident 42 accepted")
        assert outcome.released and not outcome.blocked
        closed = ledger.holds.all(open_only=False)
        assert all(h.released_by == "ops" for h in closed)
        assert all(h.release_reason == "incident 42 accepted" for h in closed)
        # the holds whose conditions were not met are marked as forced
        forced = {(h.target, h.partition_key) for h in closed if h.forced}
        assert forced >= {("week07/retrieval_index", KEY), ("week08/eval_metrics", KEY)}
        assert (RAW, KEY) not in forced


@both_backends
def test_a_downstream_partition_another_run_began_recomputing_is_held_not_an_error(
    april_project: Project,
) -> None:
    """Placing holds reads the downstream partition (materialized), then marks it stale; an
    operator who begins recomputing it in between made this exit 1 ('Cannot mark_stale a
    partition in state materializing'). Now the partition is left to that run and held."""
    from backfiller.holds import place_holds
    from backfiller.refs import AssetPartition

    project = april_project
    with project.ledger() as ledger:
        read = ledger.partitions.get

        def read_then_another_operator_starts(asset: str, key: str):  # type: ignore[no-untyped-def]
            record = read(asset, key)
            if (
                (asset, key) == (SILVER, KEY)
                and record is not None
                and record.status is PartitionStatus.MATERIALIZED
            ):
                ledger.partitions.start(SILVER, KEY, run_id="run-b", attempt=1, operator="other")
            return record

        ledger.partitions.get = read_then_another_operator_starts  # type: ignore[method-assign]
        placed = place_holds(
            project,
            ledger,
            run_id="run-upstream",
            operator="tests",
            changed=[AssetPartition(RAW, KEY)],
        )
        ledger.partitions.get = read  # type: ignore[method-assign]

        assert (SILVER, KEY, False) in placed
        record = ledger.partitions.get(SILVER, KEY)
        assert record is not None and record.status is PartitionStatus.MATERIALIZING
        assert any(h.target == SILVER and h.partition_key == KEY for h in ledger.holds.all())
