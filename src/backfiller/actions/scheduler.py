"""Run independent steps in parallel, in dependency order.

A step starts when every step it depends on (in the same run) has finished successfully; a
step whose dependency did not succeed is not started and is reported by ``on_blocked``. At most
``max_parallel`` steps run at once. Results come back in completion order through ``on_done``.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import TypeVar

__all__ = ["run_in_order"]

S = TypeVar("S", bound=Hashable)
R = TypeVar("R")


def run_in_order(
    steps: Sequence[S],
    depends_on: Mapping[S, set[S]],
    work: Callable[[S], R],
    succeeded: Callable[[R], bool],
    *,
    max_parallel: int = 1,
    on_done: Callable[[S, R], None],
    on_blocked: Callable[[S, S], None],
) -> None:
    """Run ``work`` for each step once its dependencies succeeded.

    ``depends_on[s]`` may name steps outside ``steps``; those count as already done.
    """
    if max_parallel < 1:
        raise ValueError("max_parallel must be at least 1")
    inside = set(steps)
    waiting: dict[S, set[S]] = {s: set(depends_on.get(s, set())) & inside for s in steps}
    dependents: dict[S, list[S]] = {s: [] for s in steps}
    for s, deps in waiting.items():
        for d in deps:
            dependents[d].append(s)
    order = {s: i for i, s in enumerate(steps)}
    ready = [s for s in steps if not waiting[s]]
    running: dict[Future[R], S] = {}

    def block(step: S, cause: S) -> None:
        """``step`` can never run: block it and, transitively, what depends on it."""
        stack = [(step, cause)]
        while stack:
            node, why = stack.pop()
            if node not in waiting:
                continue
            del waiting[node]
            on_blocked(node, why)
            stack.extend((child, node) for child in dependents[node])

    def finish(step: S, result: R) -> None:
        on_done(step, result)
        for child in dependents[step]:
            if child not in waiting:
                continue
            if succeeded(result):
                waiting[child].discard(step)
                if not waiting[child]:
                    ready.append(child)
            else:
                block(child, step)

    if max_parallel == 1:  # in this thread, in order: no pool to pay for, easy to profile
        while ready:
            ready.sort(key=order.__getitem__)
            step = ready.pop(0)
            del waiting[step]
            finish(step, work(step))
        return

    with ThreadPoolExecutor(max_workers=max_parallel, thread_name_prefix="backfiller") as pool:
        while ready or running:
            ready.sort(key=order.__getitem__)
            while ready and len(running) < max_parallel:
                step = ready.pop(0)
                del waiting[step]
                running[pool.submit(work, step)] = step
            done, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for future in sorted(done, key=lambda f: order[running[f]]):
                step = running.pop(future)
                finish(step, future.result())
