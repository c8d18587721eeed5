"""What a run is asked to do, as data: its action, its frozen steps, who, why, and the override
it was given. The ledger keeps the specification with the run, so ``resume`` and ``retry``
rebuild it exactly and ask for nothing again: the steps themselves, or — for a plan of ranges,
whose steps are expanded from the plan as they are taken (:mod:`~backfiller.actions.
plan_steps`) — the plan they come from (the ledger records the plan document).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any

from backfiller.errors import BadInputError
from backfiller.ledger import RunRecord
from backfiller.refs import AssetPartition

if TYPE_CHECKING:
    from backfiller.actions.plan_steps import PlanSteps

__all__ = ["Action", "RunSpec", "Step", "StepSource"]

DEFAULT_LEASE_TTL = 600.0


class Action(Enum):
    """What a run does; ``retry`` and ``resume`` continue a run of one of these."""

    BACKFILL = "backfill"
    RERUN = "rerun"
    REPLAY = "replay"
    RESTORE = "restore"


class StepSource(Enum):
    """Where a step's rows come from."""

    COMPUTE = "compute"  # the asset's definition over its inputs
    VERSION = "version"  # a stored, retained table version (restore)
    REPORT = "report"  # nothing is published: the partition's lost report is written again


@dataclass(frozen=True)
class Step:
    target: AssetPartition
    source: StepSource = StepSource.COMPUTE
    #: for :attr:`StepSource.VERSION`: the table version whose rows are published again
    version: int | None = None

    def __post_init__(self) -> None:
        if (self.source is StepSource.VERSION) != (self.version is not None):
            raise ValueError("a step publishes a stored version exactly when it names one")

    @property
    def publishes(self) -> bool:
        return self.source is not StepSource.REPORT

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "asset": self.target.asset,
            "partition_key": self.target.partition_key,
            "source": self.source.value,
        }
        if self.version is not None:
            body["version"] = self.version
        return body

    @classmethod
    def from_json(cls, value: Any) -> Step:
        if isinstance(value, list | tuple) and len(value) == 2:  # ledgers before the spec
            return cls(AssetPartition(str(value[0]), str(value[1])))
        if not isinstance(value, Mapping):
            raise ValueError(f"not a step: {value!r}")
        version = value.get("version")
        return cls(
            AssetPartition(str(value["asset"]), str(value["partition_key"])),
            StepSource(value.get("source", StepSource.COMPUTE.value)),
            None if version is None else int(version),
        )


@dataclass(frozen=True)
class RunSpec:
    """One run's specification: frozen, recorded with the run, rebuilt by resume and retry."""

    action: Action
    operator: str
    #: the steps, or those of a plan of ranges (expanded as they are taken)
    steps: tuple[Step, ...] | PlanSteps
    plan_id: str | None = None
    reason: str | None = None
    #: why protected baselines among the steps may be overwritten (recorded per partition)
    override_reason: str | None = None
    #: what the operator asked for, as given (recorded and shown in the evidence)
    arguments: Mapping[str, Any] = field(default_factory=dict)
    parent_run_id: str | None = None
    #: seconds a lease excludes others without renewal; ``None``: the project's setting
    lease_ttl: float | None = None

    @classmethod
    def compute(
        cls,
        action: Action,
        operator: str,
        targets: Sequence[tuple[str, str]],
        **kw: Any,
    ) -> RunSpec:
        """A spec whose steps all compute their (asset, partition)."""
        steps = tuple(Step(AssetPartition(a, k)) for a, k in dict.fromkeys(targets))
        return cls(action=action, operator=operator, steps=steps, **kw)

    def recorded(self) -> dict[str, Any]:
        """The arguments column of the run: what was asked, the steps (or the plan of ranges
        they come from, and how many they are) and the override."""
        if isinstance(self.steps, tuple):
            steps: dict[str, Any] = {"steps": [s.to_json() for s in self.steps]}
        else:
            steps = {"steps_of_plan": self.steps.plan_id, "step_count": len(self.steps)}
        return {
            **self.arguments,
            **steps,
            "override_reason": self.override_reason,
            "lease_ttl": self.lease_ttl,
        }

    @classmethod
    def of_run(
        cls, run: RunRecord, plan_steps: Callable[[str], PlanSteps] | None = None
    ) -> RunSpec:
        """The specification a run was begun with, from its ledger record; ``plan_steps``:
        the steps of a recorded plan of ranges, by its id (for a run of one)."""
        recorded = dict(run.arguments)
        of_plan = recorded.pop("steps_of_plan", None)
        count = recorded.pop("step_count", None)
        steps: tuple[Step, ...] | PlanSteps
        if of_plan is None:
            steps = tuple(Step.from_json(s) for s in recorded.pop("steps", []))
        elif plan_steps is None:
            raise ValueError(f"run {run.run_id} takes its steps from plan {of_plan}: read it")
        else:
            steps = plan_steps(str(of_plan))
            if count is not None and len(steps) != count:  # never silently other steps
                raise BadInputError(
                    f"Run {run.run_id} was begun with {count} step(s) of plan {of_plan}, but "
                    f"that plan now expands to {len(steps)}",
                    hint="finish the run with the backfiller version that began it, or "
                    "make and apply a new plan",
                )
        override = recorded.pop("override_reason", None)
        ttl = recorded.pop("lease_ttl", None) or DEFAULT_LEASE_TTL
        return cls(
            action=Action(run.action),
            operator=run.operator,
            steps=steps,
            plan_id=run.plan_id,
            reason=run.reason,
            override_reason=override,
            arguments=recorded,
            parent_run_id=run.parent_run_id,
            lease_ttl=float(ttl),
        )
