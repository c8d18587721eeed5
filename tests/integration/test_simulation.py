"""Safe gap simulation on the real example: each simulation makes the gap it promises, never
touches a main table (Delta fingerprints and versions) or the real manifest (its bytes), and its
undo restores exactly — after which the gap is gone. On both ledgers: a refusal writes nothing
to the project folder nor, on PostgreSQL, to the ledger's tables."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import pytest
from conftest import GAP_DAY, both_backends, ledger_fingerprint, tree_fingerprint

from backfiller import Project
from backfiller.actions.apply import apply_plan
from backfiller.actions.recovery import replay, rerun
from backfiller.errors import (
    BadInputError,
    ExitCode,
    GraphError,
    InvalidPartitionKeyError,
    ManifestError,
    PreconditionError,
)
from backfiller.lab.simulation import (
    SimulationKind,
    active_simulations,
    forced_failures,
    read_simulations,
    simulate_broken_manifest,
    simulate_failing_check,
    simulate_move_report,
    undo_simulation,
    with_simulations,
)
from backfiller.ledger import PartitionStatus, RunState
from backfiller.planning import GapReason, Mode, ProposedAction, find_gaps, make_plan, write_plan
from backfiller.planning.planner import request_for

RAW = "week06/ingestion/raw_ticket_events_partitioned"
SILVER = "week06/silver/ticket_fact_partitioned"
MANIFEST_ID = "week06-seed-manifest-001"
APRIL = [f"2026-04-{d}" for d in range(14, 21)]
MATERIALIZED = [k for k in APRIL if k != GAP_DAY]
CONSUMERS = ("week07/retrieval_index", "week08/eval_metrics")
KEY = "2026-04-15"
CHECK = "in_window(event_time)"


pytestmark = both_backends


# -- helpers --------------------------------------------------------------------------------


def main_tables(project: Project) -> dict[str, Any]:
    """Every main-table fact a simulation must not change: each asset's Delta version and the
    content fingerprint of every materialized partition."""
    state: dict[str, Any] = {}
    for asset in project.graph.keys:
        state[asset] = project.store.version(asset)
        for key in APRIL:
            state[f"{asset}|{key}"] = project.store.fingerprint(asset, key)
    return state


def manifest_bytes(project: Project) -> bytes:
    return (project.config.manifests_dir / f"{MANIFEST_ID}.json").read_bytes()


def allowed(project: Project) -> Project:
    """The project under its simulations, with applying allowed all the same."""
    return with_simulations(project, apply_allowed=True)


def gap_reasons(project: Project, keys: list[str] = APRIL) -> dict[tuple[str, str], GapReason]:
    return {
        (g.asset, g.partition_key): g.reason for g in find_gaps(project, project.reader(), keys)
    }


BASELINE = {
    (RAW, GAP_DAY): GapReason.MISSING_PARTITION,
    (SILVER, GAP_DAY): GapReason.MISSING_PARTITION,
}


def files(project: Project) -> dict[str, str]:
    """The project folder's files (the SQLite ledger among them) and, on PostgreSQL, the
    ledger's tables, as digests."""
    found = {k: v for k, v in tree_fingerprint(project.root).items() if "__pycache__" not in k}
    if project.config.ledger_url:
        found.update({f"ledger table {k}": v for k, v in ledger_fingerprint(project).items()})
    return found


def changed(before: dict[str, str], after: dict[str, str]) -> list[str]:
    return sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))


@pytest.fixture
def guarded(april_project: Project) -> Callable[[], None]:
    """Asserts, when called, that the main tables and the manifest are as they were."""
    tables, manifest = main_tables(april_project), manifest_bytes(april_project)

    def check() -> None:
        assert main_tables(april_project) == tables
        assert manifest_bytes(april_project) == manifest

    return check


# -- move-report ----------------------------------------------------------------------------


@pytest.mark.slow
def test_move_report_makes_a_missing_report_gap_and_undo_puts_it_back(
    april_project: Project, guarded: Callable[[], None]
) -> None:
    project = april_project
    report = project.partition_report_path(RAW, KEY)
    original = report.read_bytes()
    assert gap_reasons(project) == BASELINE

    record = simulate_move_report(project, asset=RAW, key=KEY, operator="ana", note="drill")
    project = with_simulations(project)

    assert re.fullmatch(r"sim-[0-9a-f]{16}", record.simulation_id)
    assert record.kind is SimulationKind.MOVE_REPORT
    assert not report.exists()
    copy = project.root / str(record.copy_path)
    assert copy.is_relative_to(project.config.state_dir / "simulations" / record.simulation_id)
    assert copy.read_bytes() == original
    assert gap_reasons(project) == {**BASELINE, (RAW, KEY): GapReason.MISSING_PARTITION_REPORT}
    assert [r.simulation_id for r in active_simulations(project.config.state_dir)] == [
        record.simulation_id
    ]
    guarded()

    done = undo_simulation(project, record.simulation_id, operator="ana")
    project = with_simulations(project)

    assert report.read_bytes() == original
    assert gap_reasons(project) == BASELINE
    assert done.undone_at is not None and done.undone_by == "ana"
    assert "byte-identical" in str(done.undo_outcome)
    assert active_simulations(project.config.state_dir) == []
    assert not (project.config.state_dir / "simulations").exists()
    guarded()


def test_the_simulations_file_records_each_simulation(april_project: Project) -> None:
    project = april_project
    moved = simulate_move_report(project, asset=SILVER, key=KEY, operator="ana")
    project = with_simulations(project)
    failing = simulate_failing_check(project, asset=RAW, check=CHECK, key=KEY, operator="bo")
    project = with_simulations(project)
    document = json.loads((project.config.state_dir / "simulations.json").read_text("utf-8"))
    assert document["schema_version"] == 1
    assert [(s["simulation_id"], s["kind"], s["operator"]) for s in document["simulations"]] == [
        (moved.simulation_id, "move_report", "ana"),
        (failing.simulation_id, "failing_check", "bo"),
    ]
    undo_simulation(project, moved.simulation_id, operator="ana")
    project = with_simulations(project)
    recorded = read_simulations(project.config.state_dir)
    assert [r.active for r in recorded] == [False, True]
    assert moved.simulation_id != failing.simulation_id


@pytest.mark.slow
def test_applying_the_reissue_then_undo_restores_the_original_report(
    april_project: Project, guarded: Callable[[], None]
) -> None:
    project = april_project
    report = project.partition_report_path(RAW, KEY)
    original = report.read_bytes()
    record = simulate_move_report(project, asset=RAW, key=KEY, operator="ana")
    project = with_simulations(project)
    document = make_plan(project, project.reader(), request_for([KEY], Mode.DRY_RUN, "ana"))
    assert document.partitions[0].proposed_action is ProposedAction.REISSUE_PARTITION_REPORT
    assert document.work == []  # nothing is recomputed

    result = apply_plan(allowed(project), document, operator="ana")

    assert result.state is RunState.SUCCEEDED
    reissued = report.read_bytes()
    assert reissued != original and "reissued_by_run_id" in reissued.decode()
    assert gap_reasons(project) == BASELINE
    guarded()

    done = undo_simulation(project, record.simulation_id, operator="ana")
    project = with_simulations(project)

    assert report.read_bytes() == original
    assert "restored over the re-issued one" in str(done.undo_outcome)
    guarded()


def test_undo_keeps_a_newer_report_when_the_partition_was_republished(
    april_project: Project,
) -> None:
    project = april_project
    report = project.partition_report_path(RAW, KEY)
    original = report.read_bytes()
    record = simulate_move_report(project, asset=RAW, key=KEY, operator="ana")
    project = with_simulations(project)
    with project.ledger() as ledger:
        result = rerun(project, ledger, asset=RAW, keys=[KEY], operator="ana")
    assert result.state is RunState.SUCCEEDED
    newer = report.read_bytes()

    done = undo_simulation(project, record.simulation_id, operator="ana")
    project = with_simulations(project)

    assert report.read_bytes() == newer != original
    assert "kept the newer report" in str(done.undo_outcome)
    kept = project.root / str(record.copy_path)
    assert kept.read_bytes() == original  # nothing is lost


def test_move_report_refusals_write_nothing(april_project: Project) -> None:
    project = april_project
    before = files(project)
    cases: list[tuple[type[Exception], dict[str, str], str]] = [
        (GraphError, {"asset": "week06/nope", "key": KEY}, f"known assets: {RAW}, {SILVER}"),
        (InvalidPartitionKeyError, {"asset": RAW, "key": "2026-4-15"}, "2026-4-15"),
        (BadInputError, {"asset": RAW, "key": GAP_DAY}, "nothing to move"),
    ]
    for error, kwargs, text in cases:
        with pytest.raises(error) as info:
            simulate_move_report(project, operator="ana", **kwargs)
        assert text in f"{info.value.message} {info.value.hint}"
        assert info.value.exit_code == ExitCode.BAD_INPUT
    assert changed(before, files(project)) == []


def test_moving_the_same_report_twice_names_the_first_simulation(april_project: Project) -> None:
    project = april_project
    first = simulate_move_report(project, asset=RAW, key=KEY, operator="ana")
    project = with_simulations(project)
    before = files(project)
    with pytest.raises(BadInputError, match=first.simulation_id):
        simulate_move_report(project, asset=RAW, key=KEY, operator="ana")
    assert changed(before, files(project)) == []


def test_undo_of_an_unknown_or_undone_simulation_is_bad_input(april_project: Project) -> None:
    project = april_project
    record = simulate_move_report(project, asset=RAW, key=KEY, operator="ana")
    project = with_simulations(project)
    with pytest.raises(BadInputError, match=rf"Unknown simulation 'sim-0'.*{record.simulation_id}"):
        undo_simulation(project, "sim-0", operator="ana")
    undo_simulation(project, record.simulation_id, operator="ana")
    project = with_simulations(project)
    before = files(project)
    with pytest.raises(BadInputError, match="already undone") as info:
        undo_simulation(project, record.simulation_id, operator="ana")
    assert info.value.exit_code == ExitCode.BAD_INPUT
    assert changed(before, files(project)) == []


# -- broken-manifest ------------------------------------------------------------------------


@pytest.mark.slow
def test_a_broken_manifest_shows_as_manifest_changed_naming_the_missing_field(
    april_project: Project, guarded: Callable[[], None]
) -> None:
    project = april_project
    record = simulate_broken_manifest(
        project, manifest_id=MANIFEST_ID, fields=["expected_record_count"], operator="ana"
    )
    project = with_simulations(project)
    stand_in = project.root / str(record.copy_path)
    assert stand_in.name == f"{MANIFEST_ID}.json"
    assert all(
        "expected_record_count" not in p for p in json.loads(stand_in.read_text())["partitions"]
    )

    found = find_gaps(project, project.reader(), APRIL)

    assert {(g.asset, g.partition_key) for g in found} == {
        (a, k) for a in (RAW, SILVER) for k in APRIL
    }
    assert {g.reason for g in found} == {GapReason.MANIFEST_CHANGED}
    assert {g.proposed_action for g in found} == {ProposedAction.REPLAY_WITH_NEW_MANIFEST}
    detail = found[0].detail
    assert f"manifest {MANIFEST_ID} is broken (simulation {record.simulation_id})" in detail
    assert "partitions[].expected_record_count (every partition)" in detail
    assert [g.current_count for g in found if g.partition_key == KEY] == [5, 5]
    guarded()

    undo_simulation(project, record.simulation_id, operator="ana")
    project = with_simulations(project)

    assert gap_reasons(project) == BASELINE
    assert not stand_in.exists()
    guarded()


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        pytest.param(["input_files"], "partitions[].input_files (every partition)", id="defaulted"),
        pytest.param(["source", "batch_id"], "source, batch_id", id="top-level"),
        pytest.param(["partitions"], "partitions", id="all-partitions"),
    ],
)
def test_every_kind_of_missing_field_is_a_broken_manifest(
    april_project: Project, guarded: Callable[[], None], fields: list[str], named: str
) -> None:
    project = april_project
    simulate_broken_manifest(project, manifest_id=MANIFEST_ID, fields=fields, operator="ana")
    project = with_simulations(project)
    found = find_gaps(project, project.reader(), [KEY])
    assert {g.reason for g in found} == {GapReason.MANIFEST_CHANGED}
    assert named in found[0].detail
    guarded()


@pytest.mark.slow
def test_a_dry_run_plan_proceeds_and_applying_it_is_refused_naming_every_field(
    april_project: Project, guarded: Callable[[], None]
) -> None:
    project = april_project
    record = simulate_broken_manifest(
        project,
        manifest_id=MANIFEST_ID,
        fields=["expected_record_count", "source"],
        operator="ana",
    )
    project = with_simulations(project)
    document = make_plan(project, project.reader(), request_for([KEY], Mode.DRY_RUN, "ana"))
    entry = document.partitions[0]
    assert entry.gap_reason is GapReason.MANIFEST_CHANGED
    assert entry.upstream_manifest_id == MANIFEST_ID
    assert entry.expected_input_count is None
    assert entry.target_assets == [RAW, SILVER]
    assert document.reason == f"[made during simulation(s) {record.simulation_id}]"
    write_plan(project, document)
    before = files(project)

    with pytest.raises(ManifestError) as info:
        apply_plan(allowed(project), document, operator="ana")

    message = info.value.message
    assert "missing field: source" in message
    assert "missing field: partitions[].expected_record_count (every partition)" in message
    assert f"{MANIFEST_ID}: {KEY}" in message
    assert info.value.exit_code == ExitCode.BAD_INPUT
    assert changed(before, files(project)) == []
    guarded()


def test_rerun_and_replay_of_a_broken_manifest_are_refused(
    april_project: Project, guarded: Callable[[], None]
) -> None:
    project = april_project
    simulate_broken_manifest(
        project, manifest_id=MANIFEST_ID, fields=["input_files"], operator="ana"
    )
    project = with_simulations(project)
    before = files(project)
    with project.ledger() as ledger:
        with pytest.raises(ManifestError, match=r"missing field: partitions\[\]\.input_files"):
            rerun(project, ledger, asset=SILVER, keys=[KEY], operator="ana")
        with pytest.raises(ManifestError, match=r"missing field: partitions\[\]\.input_files"):
            replay(project, ledger, manifest_id=MANIFEST_ID, keys=[KEY], operator="ana")
    assert changed(before, files(project)) == []  # the ledger included
    guarded()


def test_broken_manifest_refusals_write_nothing(april_project: Project) -> None:
    project = april_project
    before = files(project)
    with pytest.raises(ManifestError, match=rf"Unknown manifest 'nope' \(known: {MANIFEST_ID}\)"):
        simulate_broken_manifest(project, manifest_id="nope", fields=["source"], operator="a")
    with pytest.raises(BadInputError) as info:
        simulate_broken_manifest(project, manifest_id=MANIFEST_ID, fields=["nope"], operator="a")
    assert info.value.message == "Unknown manifest field(s): nope"
    assert "expected_record_count" in str(info.value.hint)
    with pytest.raises(BadInputError, match="at least one field"):
        simulate_broken_manifest(project, manifest_id=MANIFEST_ID, fields=[], operator="a")
    assert changed(before, files(project)) == []
    first = simulate_broken_manifest(
        project, manifest_id=MANIFEST_ID, fields=["source"], operator="a"
    )
    project = with_simulations(project)
    before = files(project)
    with pytest.raises(BadInputError, match=first.simulation_id):
        simulate_broken_manifest(project, manifest_id=MANIFEST_ID, fields=["source"], operator="a")
    assert changed(before, files(project)) == []


# -- failing-check --------------------------------------------------------------------------


@pytest.mark.slow
def test_a_failing_check_fails_the_rerun_keeps_the_data_and_holds_consumers(
    april_project: Project, guarded: Callable[[], None]
) -> None:
    project = april_project
    record = simulate_failing_check(project, asset=SILVER, check=CHECK, key=KEY, operator="ana")
    project = with_simulations(project)
    assert forced_failures(project.config.state_dir) == {(SILVER, CHECK, KEY)}
    assert gap_reasons(project) == BASELINE  # nothing shows until the partition is recomputed
    guarded()

    with project.ledger() as ledger:
        result = rerun(project, ledger, asset=SILVER, keys=[KEY], operator="ana")
        record_after = ledger.partitions.get(SILVER, KEY)
        holds = [
            (h.target, h.partition_key)
            for h in ledger.holds.all()
            if h.cause_run_id == result.run_id
        ]

    assert result.state is RunState.CHECKS_FAILED
    assert [s.outcome.value for s in result.steps] == ["check_failed"]
    assert f"{CHECK}: expected" in str(result.steps[0].error)
    assert record_after is not None and record_after.status is PartitionStatus.CHECK_FAILED
    assert sorted(holds) == [(c, KEY) for c in CONSUMERS]
    guarded()  # the previous data stays visible: same fingerprint, same version
    assert gap_reasons(project) == {**BASELINE, (SILVER, KEY): GapReason.CHECK_FAILED}

    undo_simulation(project, record.simulation_id, operator="ana")
    project = with_simulations(project)
    assert forced_failures(project.config.state_dir) == frozenset()
    with project.ledger() as ledger:
        again = rerun(project, ledger, asset=SILVER, keys=[KEY], operator="ana")
    assert again.state is RunState.SUCCEEDED
    assert gap_reasons(project) == BASELINE
    assert main_tables(project)[f"{SILVER}|{KEY}"] == project.store.fingerprint(SILVER, KEY)


def test_a_failing_raw_check_holds_silver_too(april_project: Project) -> None:
    project = april_project
    simulate_failing_check(
        project, asset=RAW, check="idempotency_key_unique", key=KEY, operator="ana"
    )
    project = with_simulations(project)
    with project.ledger() as ledger:
        result = rerun(project, ledger, asset=RAW, keys=[KEY], operator="ana")
        held = {(h.target, h.partition_key) for h in ledger.holds.all()}
    assert [s.outcome.value for s in result.steps] == ["check_failed", "skipped"]
    assert result.state is RunState.CHECKS_FAILED
    assert {(SILVER, KEY), *((c, KEY) for c in CONSUMERS)} <= held


def test_an_overlay_fails_checks_without_any_simulation(april_project: Project) -> None:
    from conftest import run_steps

    project = april_project
    before = gap_reasons(project)
    with project.ledger() as ledger:
        result = run_steps(
            project,
            ledger,
            [(SILVER, KEY)],
            action="rerun",
            operator="t",
            forced_failures=frozenset({(SILVER, CHECK, KEY)}),
        )
        assert result.state is RunState.CHECKS_FAILED
        assert read_simulations(project.config.state_dir) == []
        # the same project without the overlay: the checks pass again
        again = run_steps(project, ledger, [(SILVER, KEY)], action="rerun", operator="t")
    assert again.state is RunState.SUCCEEDED
    assert gap_reasons(project) == before


def test_failing_check_refusals_name_what_exists(april_project: Project) -> None:
    project = april_project
    before = files(project)
    with pytest.raises(BadInputError) as info:
        simulate_failing_check(project, asset=SILVER, check="nope", key=KEY, operator="a")
    assert info.value.message == f"{SILVER} has no check 'nope'"
    assert CHECK in str(info.value.hint) and "schema_matches" in str(info.value.hint)
    with pytest.raises(GraphError, match="known assets"):
        simulate_failing_check(project, asset="x", check=CHECK, key=KEY, operator="a")
    with pytest.raises(InvalidPartitionKeyError):
        simulate_failing_check(project, asset=SILVER, check=CHECK, key="April", operator="a")
    assert changed(before, files(project)) == []
    first = simulate_failing_check(project, asset=SILVER, check=CHECK, key=KEY, operator="a")
    project = with_simulations(project)
    with pytest.raises(BadInputError, match=first.simulation_id):
        simulate_failing_check(project, asset=SILVER, check=CHECK, key=KEY, operator="a")


# -- plans are dry runs while a simulation is active -----------------------------------------


def test_mode_apply_is_refused_while_a_simulation_is_active(april_project: Project) -> None:
    project = april_project
    a = simulate_failing_check(project, asset=SILVER, check=CHECK, key=KEY, operator="a")
    project = with_simulations(project)
    b = simulate_move_report(project, asset=RAW, key=KEY, operator="a")
    project = with_simulations(project)
    request = request_for([GAP_DAY], Mode.APPLY, "ana")
    with pytest.raises(PreconditionError) as info:
        make_plan(project, project.reader(), request)
    assert f"simulation(s) {a.simulation_id}, {b.simulation_id} are active" in info.value.message
    assert "--allow-apply-during-simulation" in str(info.value.hint)
    assert info.value.exit_code == ExitCode.BAD_INPUT

    document = make_plan(allowed(project), project.reader(), request)
    assert document.reason == (
        f"[made during simulation(s) {a.simulation_id}, {b.simulation_id}; apply allowed by "
        "--allow-apply-during-simulation]"
    )

    undo_simulation(project, a.simulation_id, operator="a")
    project = with_simulations(project)
    undo_simulation(project, b.simulation_id, operator="a")
    project = with_simulations(project)
    assert make_plan(project, project.reader(), request).reason is None


@pytest.mark.slow
def test_applying_a_dry_run_plan_is_refused_then_allowed_explicitly(
    april_project: Project,
) -> None:
    project = april_project
    record = simulate_failing_check(
        project, asset=SILVER, check="schema_matches", key=KEY, operator="a"
    )
    project = with_simulations(project)
    document = make_plan(
        project, project.reader(), request_for([GAP_DAY], Mode.DRY_RUN, "ana", reason="fill it")
    )
    assert document.reason == f"fill it [made during simulation(s) {record.simulation_id}]"
    before = files(project)
    with pytest.raises(PreconditionError, match=f"Applying plan {document.plan_id} refused"):
        apply_plan(project, document, operator="ana")
    assert changed(before, files(project)) == []

    result = apply_plan(allowed(project), document, operator="ana")
    assert result.state is RunState.SUCCEEDED  # the forced check is on another partition
    assert gap_reasons(project) == {}
