"""The scheduler runs each step after its dependencies, never more than max_parallel at once,
and blocks (transitively) whatever depends on a failed step."""

from __future__ import annotations

import threading
import time

from fast_loop import examples
from hypothesis import given, settings
from hypothesis import strategies as st

from backfiller.actions.scheduler import run_in_order


@st.composite
def dags(draw: st.DrawFn) -> tuple[list[int], dict[int, set[int]], set[int]]:
    n = draw(st.integers(1, 12))
    deps = {
        i: set(draw(st.sets(st.integers(0, i - 1), max_size=3))) if i else set() for i in range(n)
    }
    failing = draw(st.sets(st.integers(0, n - 1), max_size=3))
    return list(range(n)), deps, failing


@settings(max_examples=examples(60), deadline=None, database=None)
@given(dags(), st.integers(1, 4))
def test_dependencies_failures_and_parallelism(
    dag: tuple[list[int], dict[int, set[int]], set[int]], max_parallel: int
) -> None:
    steps, deps, failing = dag
    finished: list[int] = []
    blocked: dict[int, int] = {}
    lock = threading.Lock()
    active = 0
    peak = 0

    def work(step: int) -> bool:
        nonlocal active, peak
        with lock:
            active += 1
            peak = max(peak, active)
            assert all(d in finished for d in deps[step]), (step, finished)
        time.sleep(0.001)
        with lock:
            active -= 1
        return step not in failing

    def done(step: int, ok: bool) -> None:
        with lock:
            finished.append(step)

    run_in_order(
        steps,
        deps,
        work,
        lambda ok: ok,
        max_parallel=max_parallel,
        on_done=done,
        on_blocked=lambda s, cause: blocked.__setitem__(s, cause),
    )
    assert peak <= max_parallel
    # every step either ran or was blocked, never both
    assert sorted(finished + list(blocked)) == steps
    # a step is blocked exactly when one of its dependencies failed or was blocked
    bad = set(failing) & set(finished)
    for step in steps:
        upstream_bad = any(d in bad or d in blocked for d in deps[step])
        assert (step in blocked) == upstream_bad, (step, deps[step], bad, blocked)
