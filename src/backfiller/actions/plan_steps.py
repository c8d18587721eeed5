"""The steps of applying a plan of ranges, expanded from its ranges as they are taken.

A :class:`~backfiller.planning.compact.RangePlan` is applied as its recomputations and the
reports it re-issues. :class:`PlanSteps` yields them in the order a run takes steps — key by
key in the keys' text order, each key's assets upstream first (the plan's ``assets`` order: the
graph's), a recomputation before the report of the same cell — and answers, for any cell,
whether it is a step and where it comes, without listing the steps: what it holds grows with
the plan's keys and distinct range shapes, never with its cells. The ledger records a plan's
run by its plan id (the plan document is recorded with it), and resume rebuilds the same steps
from it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from backfiller.actions.spec import Step, StepSource
from backfiller.errors import BadInputError
from backfiller.planning.compact import RangePlan, parse_plan
from backfiller.planning.gaps import ProposedAction
from backfiller.refs import AssetPartition

if TYPE_CHECKING:
    from backfiller.ledger import LedgerReader

__all__ = ["PlanSteps", "plan_steps_of"]

#: a cell's place in the run order: the key's, the asset's (the plan's order), and its source
#: (a recomputation before a report)
Position = tuple[int, int, int]

_SOURCES = (StepSource.COMPUTE, StepSource.REPORT)


class PlanSteps:
    """The steps of applying ``plan``, in run order, re-iterable and expanded lazily."""

    def __init__(self, plan: RangePlan) -> None:
        self.plan = plan
        keys = plan.request.keys
        self._index = {k: i for i, k in enumerate(keys)}
        self._order = sorted(range(len(keys)), key=keys.__getitem__)  # the keys' text order
        self._at = [0] * len(keys)  # each key's place in that order
        for place, i in enumerate(self._order):
            self._at[i] = place
        # each key's shape (a position in ``_shapes``): the (asset position, source) pairs of
        # its steps, in run order, kept once per distinct shape
        self._shape_of: list[int] = []
        self._shapes: list[tuple[tuple[int, int], ...]] = []
        self._lookup: list[dict[int, int]] = []  # per shape: asset position -> its last source
        self._assets = {a: i for i, a in enumerate(plan.assets)}
        known: dict[tuple[tuple[int, int], ...], int] = {}
        self._count = 0
        for entry in plan.ranges:
            recomputed = plan.target_sets[entry.targets].assets if plan.recomputes(entry) else []
            cells = [(a, 0) for a in recomputed]
            cells += [
                (g.asset, 1)
                for g in plan.gap_sets[entry.gaps]
                if g.proposed_action is ProposedAction.REISSUE_PARTITION_REPORT
            ]
            shape = tuple(sorted(set(cells)))
            if shape not in known:
                known[shape] = len(self._shapes)
                self._shapes.append(shape)
                self._lookup.append(dict(shape))  # sorted: a report wins
            self._shape_of.extend([known[shape]] * entry.count)
            self._count += entry.count * len(shape)

    @property
    def plan_id(self) -> str:
        return self.plan.plan_id

    def __len__(self) -> int:
        return self._count

    def __bool__(self) -> bool:
        return self._count > 0

    def __iter__(self) -> Iterator[Step]:
        keys, assets = self.plan.request.keys, self.plan.assets
        for i in self._order:
            key = keys[i]
            for a, s in self._shapes[self._shape_of[i]]:
                yield Step(AssetPartition(assets[a], key), _SOURCES[s])

    def __contains__(self, step: object) -> bool:
        if not isinstance(step, Step) or step.source not in _SOURCES:
            return False
        i = self._index.get(step.target.partition_key)
        position = self._assets.get(step.target.asset)
        if i is None or position is None:
            return False
        shape = self._shapes[self._shape_of[i]]
        return (position, _SOURCES.index(step.source)) in shape

    def find(self, target: AssetPartition) -> Step | None:
        """The step of ``target`` (its report when the plan both recomputes it and re-issues
        its report, as a run looking steps up by cell sees it), or ``None``."""
        i = self._index.get(target.partition_key)
        position = self._assets.get(target.asset)
        if i is None or position is None:
            return None
        source = self._lookup[self._shape_of[i]].get(position)
        return None if source is None else Step(target, _SOURCES[source])

    def position(self, step: Step) -> Position:
        """Where ``step`` (one of these steps) comes in the run order."""
        return (
            self._at[self._index[step.target.partition_key]],
            self._assets[step.target.asset],
            _SOURCES.index(step.source),
        )


def plan_steps_of(reader: LedgerReader, plan_id: str) -> PlanSteps:
    """The steps of the plan of ranges the ledger recorded as ``plan_id``."""
    record = reader.runs.plan(plan_id)
    plan = None if record is None else parse_plan(record.document)
    if not isinstance(plan, RangePlan):
        raise BadInputError(
            f"A run takes its steps from plan {plan_id}, but the ledger holds no plan of "
            "ranges by that id",
            hint="the ledger is damaged: restore it from a backup",
        )
    return PlanSteps(plan)
