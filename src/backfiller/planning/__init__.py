"""Gap detection and the plan."""

from backfiller.planning.gaps import Gap, GapReason, PartitionState, ProposedAction, detect_gap
from backfiller.planning.plan import Mode, PlanDocument, PlanEntry, PlanRequest, parse_mode
from backfiller.planning.planner import (
    check_fresh,
    find_gaps,
    make_plan,
    plan_path,
    read_plan,
    write_plan,
)
from backfiller.planning.state import Observation, observe, state_fingerprint

__all__ = [
    "Gap",
    "GapReason",
    "Mode",
    "Observation",
    "PartitionState",
    "PlanDocument",
    "PlanEntry",
    "PlanRequest",
    "ProposedAction",
    "check_fresh",
    "detect_gap",
    "find_gaps",
    "make_plan",
    "observe",
    "parse_mode",
    "plan_path",
    "read_plan",
    "state_fingerprint",
    "write_plan",
]
