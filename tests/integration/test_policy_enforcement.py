"""The engine enforces the recovery policy: assets not allowed to be backfilled are refused by
plan, rerun, replay and apply (exit 2, nothing written); policy-protected objects that hold
published data are refused unless overridden, and the override is recorded. On both ledgers:
"nothing written" covers the project folder and, on PostgreSQL, the ledger's tables."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import GAP_DAY, both_backends, ledger_fingerprint, materialize, tree_fingerprint

from backfiller import Project
from backfiller.actions.apply import apply_plan
from backfiller.actions.recovery import replay, rerun
from backfiller.errors import ExitCode, PreconditionError, StalePlanError
from backfiller.ledger import RunState
from backfiller.planning import GapReason, Mode, PlanDocument, ProposedAction, make_plan
from backfiller.planning.planner import request_for
from backfiller.project import CONFIG_FILE

RAW = "week06/ingestion/raw_ticket_events_partitioned"
SILVER = "week06/silver/ticket_fact_partitioned"
MANIFEST_ID = "week06-seed-manifest-001"
APRIL = [k for k in (f"2026-04-{d}" for d in range(14, 21)) if k != GAP_DAY]
KEY = "2026-04-15"


pytestmark = both_backends


def written(project: Project) -> dict[str, str]:
    """The project folder's files (the SQLite ledger among them) and, on PostgreSQL, the
    ledger's tables, as digests."""
    found = {k: v for k, v in tree_fingerprint(project.root).items() if "__pycache__" not in k}
    if project.config.ledger_url:
        found.update({f"ledger table {k}": v for k, v in ledger_fingerprint(project).items()})
    return found


def set_policy(root: Path, **settings: str) -> None:
    """Replace one line of the example's [policy] per setting (``name = value``, TOML)."""
    path = root / CONFIG_FILE
    lines = path.read_text(encoding="utf-8").splitlines()
    start = lines.index("[policy]")
    for name, value in settings.items():
        found = [i for i in range(start, len(lines)) if lines[i].startswith(f"{name} =")]
        if found:
            first = found[0]
            end = first + 1
            while end < len(lines) and lines[first].rstrip().endswith("[") and lines[end] != "]":
                end += 1
            del lines[first : end + (1 if lines[first].rstrip().endswith("[") else 0)]
            lines.insert(first, f"{name} = {value}")
        else:
            lines.insert(start + 1, f"{name} = {value}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.fixture
def raw_only(example_dir: Path, load: Callable[[Path], Project]) -> Project:
    """The April example, then a policy that allows backfilling raw only."""
    materialize(load(example_dir), APRIL)
    set_policy(example_dir, backfill_assets=f'["{RAW}"]')
    project = load(example_dir)
    assert project.policy.backfill_assets == (RAW,)
    return project


def test_a_plan_touching_a_disallowed_asset_is_refused(raw_only: Project) -> None:
    before = written(raw_only)
    with pytest.raises(PreconditionError) as info:
        make_plan(raw_only, raw_only.reader(), request_for([GAP_DAY], Mode.DRY_RUN, "ana"))
    assert info.value.message == (
        f"The plan for {GAP_DAY} would recompute {SILVER}, which [policy] backfill_assets does "
        f"not allow (allowed: {RAW})"
    )
    assert info.value.exit_code == ExitCode.BAD_INPUT
    assert written(raw_only) == before


def test_rerun_and_replay_of_a_disallowed_asset_are_refused(raw_only: Project) -> None:
    before = written(raw_only)
    with raw_only.ledger() as ledger:
        with pytest.raises(PreconditionError, match=f"This rerun would recompute {SILVER}"):
            rerun(raw_only, ledger, asset=SILVER, keys=[KEY], operator="ana")
        # raw is allowed, but its rerun recomputes silver downstream
        with pytest.raises(PreconditionError, match=f"This rerun would recompute {SILVER}"):
            rerun(raw_only, ledger, asset=RAW, keys=[KEY], operator="ana")
        with pytest.raises(PreconditionError, match=f"This replay would recompute {SILVER}"):
            replay(raw_only, ledger, manifest_id=MANIFEST_ID, keys=[KEY], operator="ana")
    assert written(raw_only) == before


@pytest.mark.slow
def test_a_plan_made_before_the_policy_changed_is_refused_on_apply(
    example_dir: Path, load: Callable[[Path], Project]
) -> None:
    project = load(example_dir)
    materialize(project, APRIL)
    document = make_plan(project, project.reader(), request_for([GAP_DAY], Mode.DRY_RUN, "ana"))
    set_policy(example_dir, backfill_assets=f'["{RAW}"]')
    narrowed = load(example_dir)
    before = written(narrowed)
    with pytest.raises(PreconditionError, match=f"would recompute {SILVER}"):
        apply_plan(narrowed, document, operator="ana")
    assert written(narrowed) == before


def test_a_policy_protected_partition_needs_a_recorded_override(
    example_dir: Path, load: Callable[[Path], Project]
) -> None:
    set_policy(example_dir, protected=f'["{SILVER}@{KEY}"]')
    project = load(example_dir)
    materialize(project, APRIL)  # the first materialization overwrites nothing: allowed
    before = written(project)
    with project.ledger() as ledger, pytest.raises(PreconditionError) as info:
        rerun(project, ledger, asset=SILVER, keys=[KEY], operator="ana")
    assert info.value.message == (
        f"Refusing to overwrite protected baseline(s): {SILVER} {KEY} (protected by [policy] in "
        f"backfiller.toml: {SILVER}@{KEY}, by policy)"
    )
    assert "--override-protected" in str(info.value.hint)
    assert written(project) == before

    with project.ledger() as ledger:
        result = rerun(
            project,
            ledger,
            asset=SILVER,
            keys=[KEY],
            operator="ana",
            override_reason="fix a typo in the baseline",
        )
        overrides = ledger.protections.overrides()
    assert result.state is RunState.SUCCEEDED
    assert [(o["asset"], o["partition_key"], o["reason"], o["run_id"]) for o in overrides] == [
        (SILVER, KEY, "fix a typo in the baseline", result.run_id)
    ]


def test_a_whole_protected_asset_guards_every_published_partition(
    example_dir: Path, load: Callable[[Path], Project]
) -> None:
    project = load(example_dir)
    materialize(project, APRIL)
    set_policy(example_dir, protected=f'["{RAW}"]')
    project = load(example_dir)
    with project.ledger() as ledger, pytest.raises(PreconditionError) as info:
        rerun(project, ledger, asset=RAW, keys=["2026-04-14", KEY], operator="ana")
    assert f"{RAW} 2026-04-14" in info.value.message and f"{RAW} {KEY}" in info.value.message
    # the unpublished gap day is not an overwrite
    with project.ledger() as ledger:
        result = rerun(project, ledger, asset=RAW, keys=[GAP_DAY], operator="ana")
    assert result.state is RunState.SUCCEEDED


def test_the_example_protects_its_first_silver_day(
    example_dir: Path, load: Callable[[Path], Project]
) -> None:
    project = load(example_dir)
    baseline = "2026-03-01"
    materialize(project, [baseline])
    with project.ledger() as ledger, pytest.raises(PreconditionError, match=f"{SILVER} {baseline}"):
        rerun(project, ledger, asset=SILVER, keys=[baseline], operator="ana")
    # raw of that day is not protected, but its rerun recomputes the protected silver day
    with project.ledger() as ledger, pytest.raises(PreconditionError, match=f"{SILVER} {baseline}"):
        rerun(project, ledger, asset=RAW, keys=[baseline], operator="ana")


def test_a_ledger_protection_still_applies(april_project: Project) -> None:
    with april_project.ledger() as ledger:
        ledger.protections.protect(RAW, KEY, reason="published to finance", operator="ana")
        with pytest.raises(PreconditionError, match="published to finance, by ana"):
            rerun(april_project, ledger, asset=RAW, keys=[KEY], operator="ana")


def test_plans_go_to_the_policy_folder(example_dir: Path, load: Callable[[Path], Project]) -> None:
    from backfiller.planning import write_plan

    set_policy(example_dir, dry_run_report_path='"plans/dry-runs"')
    project = load(example_dir)
    document = make_plan(project, project.reader(), request_for([GAP_DAY], Mode.DRY_RUN, "ana"))
    path = write_plan(project, document)
    assert path == example_dir.resolve() / "plans" / "dry-runs" / f"backfill_plan_{GAP_DAY}.json"
    assert document.report_path == f"plans/dry-runs/backfill_plan_{GAP_DAY}.json"


def _plan_over(project: Project, key: str) -> PlanDocument:
    request = request_for([key], Mode.DRY_RUN, "ana", "re-derive", include_materialized=True)
    return make_plan(project, project.reader(), request)


@pytest.mark.slow
def test_a_plan_names_the_protected_baselines_it_would_overwrite(april_project: Project) -> None:
    project = april_project
    with project.ledger() as ledger:
        ledger.protections.protect(RAW, KEY, reason="published to finance", operator="ana")
    document = _plan_over(project, KEY)

    (entry,) = document.partitions
    assert entry.gap_reason is None  # the partition itself has no gap
    (protected,) = [g for g in entry.asset_gaps if g.gap_reason is GapReason.PROTECTED]
    assert protected.asset == RAW
    assert protected.proposed_action is ProposedAction.BLOCKED_PROTECTED
    assert "published to finance, by ana" in protected.detail
    assert "--override-protected" in protected.detail
    # the work is unchanged: overriding is the operator's decision when applying
    assert (RAW, KEY) in document.work
    with pytest.raises(PreconditionError, match="published to finance"):
        apply_plan(project, document, operator="ana")
    result = apply_plan(project, document, operator="ana", override_reason="finance agreed")
    assert result.state is RunState.SUCCEEDED


def test_a_policy_protection_shows_in_the_plan_only_once_data_exists(
    example_dir: Path, load: Callable[[Path], Project]
) -> None:
    set_policy(example_dir, protected=f'["{SILVER}@{KEY}"]')
    project = load(example_dir)
    before = _plan_over(project, KEY)
    assert not [
        g for e in before.partitions for g in e.asset_gaps if g.gap_reason is GapReason.PROTECTED
    ]
    materialize(project, [KEY])
    (entry,) = _plan_over(project, KEY).partitions
    (protected,) = [g for g in entry.asset_gaps if g.gap_reason is GapReason.PROTECTED]
    assert protected.asset == SILVER
    assert f"{SILVER}@{KEY}, by policy" in protected.detail


def test_protecting_a_partition_after_the_plan_makes_the_plan_stale(
    april_project: Project,
) -> None:
    project = april_project
    document = _plan_over(project, KEY)
    with project.ledger() as ledger:
        ledger.protections.protect(RAW, KEY, reason="published to finance", operator="ana")
    before = written(project)

    with pytest.raises(StalePlanError) as info:
        apply_plan(project, document, operator="ana", override_reason="anyway")

    assert info.value.exit_code == ExitCode.CONFLICT
    assert f"{RAW} {KEY}: now protected (published to finance, by ana)" in info.value.message
    assert written(project) == before
