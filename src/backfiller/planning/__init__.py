"""Gap detection and the plan. The names below are imported when first used: ``status`` and
``gaps`` read the state through :mod:`~backfiller.planning.classify` without loading the plan's
models."""

from typing import TYPE_CHECKING

from backfiller._lazy import lazy_getattr

if TYPE_CHECKING:
    from backfiller.planning.compact import AnyPlan, RangePlan, parse_plan
    from backfiller.planning.gaps import (
        Gap,
        GapReason,
        PartitionState,
        ProposedAction,
        detect_gap,
    )
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

_EXPORTS = {
    "AnyPlan": "backfiller.planning.compact",
    "RangePlan": "backfiller.planning.compact",
    "parse_plan": "backfiller.planning.compact",
    "Gap": "backfiller.planning.gaps",
    "GapReason": "backfiller.planning.gaps",
    "PartitionState": "backfiller.planning.gaps",
    "ProposedAction": "backfiller.planning.gaps",
    "detect_gap": "backfiller.planning.gaps",
    "Mode": "backfiller.planning.plan",
    "PlanDocument": "backfiller.planning.plan",
    "PlanEntry": "backfiller.planning.plan",
    "PlanRequest": "backfiller.planning.plan",
    "parse_mode": "backfiller.planning.plan",
    "check_fresh": "backfiller.planning.planner",
    "find_gaps": "backfiller.planning.planner",
    "make_plan": "backfiller.planning.planner",
    "plan_path": "backfiller.planning.planner",
    "read_plan": "backfiller.planning.planner",
    "write_plan": "backfiller.planning.planner",
    "Observation": "backfiller.planning.state",
    "observe": "backfiller.planning.state",
    "state_fingerprint": "backfiller.planning.state",
}

__all__ = [
    "AnyPlan",
    "Gap",
    "GapReason",
    "Mode",
    "Observation",
    "PartitionState",
    "PlanDocument",
    "PlanEntry",
    "PlanRequest",
    "ProposedAction",
    "RangePlan",
    "check_fresh",
    "detect_gap",
    "find_gaps",
    "make_plan",
    "observe",
    "parse_mode",
    "parse_plan",
    "plan_path",
    "read_plan",
    "state_fingerprint",
    "write_plan",
]

__getattr__ = lazy_getattr(globals(), _EXPORTS)
