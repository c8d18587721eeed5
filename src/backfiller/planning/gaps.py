"""Gap reasons, the action each one proposes (DESIGN.md, "Gap reasons → proposed actions"), and
the one vocabulary of partition states built from them.

A partition's state is its gap reason, or ``materialized`` when manifests, store, ledger and
report agree. ``status``, ``gaps``, the plan (``gap_reason``; no reason is ``materialized``) and
the reports that show partitions all use these words; a run's *outcome* for a partition
(``published``, ``failed``... in the evidence) is what the run did, not a state.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from backfiller.assets import Asset
from backfiller.ledger import PartitionStatus
from backfiller.planning.state import Observation

__all__ = [
    "Gap",
    "GapReason",
    "PartitionState",
    "ProposedAction",
    "detect_gap",
    "missing_upstream_detail",
]

#: how many missing upstream keys a gap's detail names before it counts the rest
SHOWN_MISSING = 3


class ProposedAction(Enum):
    BACKFILL_PARTITION = "backfill_partition"
    REISSUE_PARTITION_REPORT = "reissue_partition_report"
    REPLAY_FROM_MANIFEST = "replay_from_manifest"
    REPLAY_WITH_NEW_MANIFEST = "replay_with_new_manifest"
    RETRY_OR_RERUN = "retry_if_transient_else_rerun_after_fix"
    RERUN_DOWNSTREAM = "rerun_downstream_after_upstream_checks_pass"
    INVESTIGATE_CHECKS = "investigate_then_rerun_after_fix"
    RECONCILE_ORPHAN = "reconcile_verify_and_adopt_or_restore"
    NOTHING_TO_DO = "nothing_to_do"
    BLOCKED_MISSING_UPSTREAM = "blocked_until_the_upstream_partitions_exist"
    BLOCKED_PROTECTED = "blocked_unless_overridden_with_reason"

    @property
    def recomputes(self) -> bool:
        """Whether applying it recomputes the partition's data."""
        return self in _RECOMPUTING


_RECOMPUTING = frozenset(
    {
        ProposedAction.BACKFILL_PARTITION,
        ProposedAction.REPLAY_FROM_MANIFEST,
        ProposedAction.REPLAY_WITH_NEW_MANIFEST,
        ProposedAction.RETRY_OR_RERUN,
        ProposedAction.RERUN_DOWNSTREAM,
        ProposedAction.INVESTIGATE_CHECKS,
    }
)


class GapReason(Enum):
    MISSING_PARTITION = "missing_partition"
    MISSING_PARTITION_REPORT = "missing_partition_report"
    COUNT_MISMATCH = "count_mismatch"
    MANIFEST_CHANGED = "manifest_changed"
    FAILED_RUN = "failed_run"
    UPSTREAM_CHANGED = "upstream_changed"
    CHECK_FAILED = "check_failed"
    ORPHAN_OUTPUT = "orphan_output"
    NO_EXPECTED_INPUT = "no_expected_input"
    MISSING_UPSTREAM = "missing_upstream"
    PROTECTED = "protected"

    @property
    def proposed_action(self) -> ProposedAction:
        return _PROPOSALS[self]

    @property
    def state(self) -> PartitionState:
        """The partition state this reason names (``protected`` is a plan's refusal, not a
        state: a protected baseline is ``materialized`` until something else is wrong)."""
        if self is GapReason.PROTECTED:
            return PartitionState.MATERIALIZED
        return PartitionState(self.value)


class PartitionState(Enum):
    """The one word for a partition's condition, shared by ``status``, ``gaps``, the plan and
    the reports: ``materialized`` when the four sources agree, else its gap reason."""

    MATERIALIZED = "materialized"
    MISSING_PARTITION = "missing_partition"
    MISSING_PARTITION_REPORT = "missing_partition_report"
    COUNT_MISMATCH = "count_mismatch"
    MANIFEST_CHANGED = "manifest_changed"
    FAILED_RUN = "failed_run"
    UPSTREAM_CHANGED = "upstream_changed"
    CHECK_FAILED = "check_failed"
    ORPHAN_OUTPUT = "orphan_output"
    NO_EXPECTED_INPUT = "no_expected_input"
    MISSING_UPSTREAM = "missing_upstream"

    @classmethod
    def of(cls, reason: GapReason | None) -> PartitionState:
        """The state of a partition whose gap has ``reason`` (``None``: no gap)."""
        return cls.MATERIALIZED if reason is None else reason.state

    @property
    def gap_reason(self) -> GapReason | None:
        """The gap this state is (``None`` for ``materialized``)."""
        return None if self is PartitionState.MATERIALIZED else GapReason(self.value)


_PROPOSALS = {
    GapReason.MISSING_PARTITION: ProposedAction.BACKFILL_PARTITION,
    GapReason.MISSING_PARTITION_REPORT: ProposedAction.REISSUE_PARTITION_REPORT,
    GapReason.COUNT_MISMATCH: ProposedAction.REPLAY_FROM_MANIFEST,
    GapReason.MANIFEST_CHANGED: ProposedAction.REPLAY_WITH_NEW_MANIFEST,
    GapReason.FAILED_RUN: ProposedAction.RETRY_OR_RERUN,
    GapReason.UPSTREAM_CHANGED: ProposedAction.RERUN_DOWNSTREAM,
    GapReason.CHECK_FAILED: ProposedAction.INVESTIGATE_CHECKS,
    GapReason.ORPHAN_OUTPUT: ProposedAction.RECONCILE_ORPHAN,
    GapReason.NO_EXPECTED_INPUT: ProposedAction.NOTHING_TO_DO,
    GapReason.MISSING_UPSTREAM: ProposedAction.BLOCKED_MISSING_UPSTREAM,
    GapReason.PROTECTED: ProposedAction.BLOCKED_PROTECTED,
}


@dataclass(frozen=True)
class Gap:
    asset: str
    partition_key: str
    reason: GapReason
    detail: str
    expected_count: int | None
    current_count: int

    @property
    def proposed_action(self) -> ProposedAction:
        return self.reason.proposed_action


def detect_gap(asset: Asset, obs: Observation) -> Gap | None:
    """The gap of one (asset, partition), or ``None`` when the four sources agree."""
    rec = obs.record
    rows, expected = obs.stored_rows, obs.expected_count

    def gap(reason: GapReason, detail: str) -> Gap:
        return Gap(asset.key, obs.partition_key, reason, detail, expected, rows)

    if obs.upstream_missing:
        return gap(GapReason.MISSING_UPSTREAM, missing_upstream_detail(obs.upstream_missing))
    if obs.missing_files:
        return gap(
            GapReason.MISSING_PARTITION,
            f"the Delta log references {obs.missing_files} data file(s) of this partition that "
            f"are gone: its {rows} row(s) cannot be read",
        )
    if rec is not None and rec.status is PartitionStatus.FAILED:
        return gap(GapReason.FAILED_RUN, f"the last attempt failed: {rec.last_error or '?'}")
    if rec is not None and rec.status is PartitionStatus.MATERIALIZING:
        return gap(
            GapReason.FAILED_RUN,
            f"run {rec.last_run_id} did not finish this partition (crash?); resume it",
        )
    if rec is not None and rec.status is PartitionStatus.CHECK_FAILED:
        return gap(GapReason.CHECK_FAILED, f"checks failed: {rec.last_error or '?'}")
    if rec is None and rows > 0:
        return gap(GapReason.ORPHAN_OUTPUT, f"{rows} stored rows with no ledger record")
    if rec is None and not expected and obs.declared_upstream is None:
        declared = "declares 0 records" if expected == 0 else "declares nothing"
        return gap(
            GapReason.NO_EXPECTED_INPUT,
            f"the manifest {declared} for this partition; check that the seed data has "
            "records for it",
        )
    if rows == 0 and (rec is None or (rec.row_count or 0) > 0 or expected):
        if rec is None:
            return gap(
                GapReason.MISSING_PARTITION, not_stored_detail(expected, obs.declared_upstream)
            )
        return gap(
            GapReason.MISSING_PARTITION,
            f"the ledger records {rec.row_count} rows (version {rec.data_version}); none stored",
        )
    assert rec is not None
    if rec.manifest_checksum and obs.manifest_checksum != rec.manifest_checksum:
        return gap(
            GapReason.MANIFEST_CHANGED,
            f"built from {rec.manifest_id}; the declaration is now {obs.manifest_id} "
            "with a different checksum",
        )
    if asset.expects_manifest_count and expected is not None and rows != expected:
        return gap(GapReason.COUNT_MISMATCH, f"{rows} rows stored, the manifest expects {expected}")
    if rec.status is PartitionStatus.STALE or _upstream_moved(rec.upstream_versions, obs):
        return gap(
            GapReason.UPSTREAM_CHANGED,
            upstream_changed_detail(rec.status is PartitionStatus.STALE, obs.stale_reason),
        )
    if not obs.report_exists:
        return gap(GapReason.MISSING_PARTITION_REPORT, "data and ledger agree; the report is gone")
    return None


def _upstream_moved(consumed: dict[str, dict[str, int | None]], obs: Observation) -> bool:
    for up, keys in obs.upstream_current.items():
        for key, version in keys.items():
            if consumed.get(up, {}).get(key) != version:
                return True
    return False


def upstream_changed_detail(marked: bool, reason: str | None) -> str:
    """The detail of an ``upstream_changed`` gap: a record ``marked`` stale says why (its
    newest mark's ``reason``, when there is one); else the versions it consumed moved."""
    if not marked:
        return "it consumed an upstream version that is not current"
    return f"marked stale: {reason}" if reason else "marked stale in the ledger"


def not_stored_detail(expected: int | None, declared_upstream: str | None) -> str:
    """The detail of a partition never computed: the rows its manifest expects, or (a key of
    another scheme than the manifests') which manifests declare the keys it reads."""
    if expected is None and declared_upstream is not None:
        return f"its upstream keys are declared ({declared_upstream}); nothing stored"
    return f"expected {expected} rows; none stored"


def missing_upstream_detail(missing: dict[str, list[str]]) -> str:
    """The detail of a ``missing_upstream`` gap: which upstream keys do not exist (``missing``:
    per upstream asset, in the order of the asset's deps, its keys in order)."""
    parts = []
    for up, keys in missing.items():
        shown = ", ".join(keys[:SHOWN_MISSING])
        more = f" and {len(keys) - SHOWN_MISSING} more" if len(keys) > SHOWN_MISSING else ""
        parts.append(f"{up} {shown}{more}")
    return (
        "it needs upstream partitions that are not keys of their asset's partitions (before "
        "its start, past its end, or a value it does not list): " + "; ".join(parts)
    )
