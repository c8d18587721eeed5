"""A run's steps, taken a stretch at a time.

A run does not hold all its steps at once: it reads them in run order from a
:class:`StepStream` (a specification's listed steps, or a plan's steps expanded from its
ranges) and cuts them into stretches of whole keys — at least ``window`` steps, a whole number
of group sizes of keys, so that the groups a stretch publishes are those the whole run would
— each finished before the next one is read. A step that reads a step later in the run order
(a coarser partition sorting before its days) is held back until that step is read, and taken
in the same stretch or a later one; so every dependency of a step is in its stretch or in one
finished before. What the run holds grows with the stretch, the steps held back, and the
steps that did not succeed (those that read them are skipped), not with the steps of the run.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Collection, Iterator
from typing import Any, Protocol

from backfiller.actions.spec import Step
from backfiller.refs import AssetPartition

__all__ = ["ListedSteps", "StepStream", "stretches"]


class StepStream(Protocol):
    """A run's steps in run order, with any cell's step and place, without listing them."""

    def __iter__(self) -> Iterator[Step]: ...

    def find(self, target: AssetPartition) -> Step | None:
        """The step of ``target`` in this run, or ``None``."""
        ...

    def position(self, step: Step) -> Any:
        """Where ``step`` comes in the run order (comparable between steps of this run)."""
        ...


class ListedSteps:
    """Steps a specification lists, in run order: partition by partition (in the keys' text
    order), upstream first (``rank``: the graph's order of the assets); a cell's step is the
    last listed for it."""

    def __init__(self, steps: Collection[Step], rank: dict[str, int]) -> None:
        unique = list(dict.fromkeys(steps))
        self._ordered = sorted(unique, key=lambda s: (s.target.partition_key, rank[s.target.asset]))
        self._inside = {s.target: s for s in self._ordered}
        self._at = {s: i for i, s in enumerate(self._ordered)}

    def __iter__(self) -> Iterator[Step]:
        return iter(self._ordered)

    def find(self, target: AssetPartition) -> Step | None:
        return self._inside.get(target)

    def position(self, step: Step) -> int:
        return self._at[step]


def stretches(
    stream: StepStream,
    depends_on: Callable[[Step], set[Step]],
    *,
    window: int,
    group: int,
) -> Iterator[tuple[list[Step], dict[Step, set[Step]]]]:
    """The steps of ``stream`` in stretches, each in run order with every step's
    dependencies in the run (``depends_on``); a stretch ends at a key boundary once it holds
    at least ``window`` steps and a multiple of ``group`` keys."""
    stretch: list[Step] = []
    depends: dict[Step, set[Step]] = {}
    # steps reading a later step: (where that step comes, order held, the step, its deps)
    held: list[tuple[Any, int, Step, set[Step]]] = []
    held_at: dict[Step, Any] = {}
    count = 0

    def hold(step: Step, deps: set[Step], until: Any) -> None:
        nonlocal count
        held_at[step] = until
        heapq.heappush(held, (until, count, step, deps))
        count += 1

    def release(before: Any | None) -> None:
        """Take the held steps whose wait is over (``None``: all, the stream is read)."""
        while held and (before is None or held[0][0] < before):
            _, _, waiting, deps = heapq.heappop(held)
            still = [held_at[d] for d in deps if d in held_at]
            if still:  # a step it reads was held after it: it waits for that one
                hold(waiting, deps, max(still))
                continue
            del held_at[waiting]
            stretch.append(waiting)
            depends[waiting] = deps

    keys, last_key = 0, None
    for step in stream:
        at = stream.position(step)
        release(at)
        deps = depends_on(step)
        wait_for = max((held_at.get(d, stream.position(d)) for d in deps), default=at)
        if wait_for > at:
            hold(step, deps, wait_for)
            continue
        key = step.target.partition_key
        if key != last_key:
            if len(stretch) >= window and keys % group == 0:
                yield _in_order(stream, stretch), depends
                stretch, depends, keys = [], {}, 0
            keys, last_key = keys + 1, key
        stretch.append(step)
        depends[step] = deps
    release(None)
    if stretch:
        yield _in_order(stream, stretch), depends


def _in_order(stream: StepStream, stretch: list[Step]) -> list[Step]:
    return sorted(stretch, key=stream.position)
