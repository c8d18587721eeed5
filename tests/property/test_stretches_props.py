"""A run's steps cut into stretches: every step exactly once, each after (in its stretch or an
earlier one) every step it reads — also one reading a step later in the run order — and every
stretch but the last of at least the window's steps and a whole number of group sizes of keys
(so a stretch's groups are whole)."""

from __future__ import annotations

from fast_loop import examples
from hypothesis import given, settings
from hypothesis import strategies as st

from backfiller.actions.spec import Step
from backfiller.actions.stretches import ListedSteps, stretches
from backfiller.refs import AssetPartition

ASSETS = ["a", "b", "c"]


@st.composite
def runs(draw: st.DrawFn) -> tuple[list[Step], dict[Step, set[Step]]]:
    keys = [f"2026-01-{d:02d}" for d in range(1, draw(st.integers(1, 9)) + 1)]
    cells = draw(
        st.lists(
            st.tuples(st.sampled_from(ASSETS), st.sampled_from(keys)),
            min_size=1,
            max_size=20,
            unique=True,
        )
    )
    steps = [Step(AssetPartition(a, k)) for a, k in cells]
    # any step may read any step drawn before it (a DAG), wherever it comes in the run order
    reads = {
        s: {steps[j] for j in draw(st.sets(st.integers(0, i - 1), max_size=3))} if i else set()
        for i, s in enumerate(steps)
    }
    return steps, reads


@settings(max_examples=examples(200), deadline=None, database=None)
@given(runs(), st.integers(1, 8), st.integers(1, 3))
def test_every_step_once_after_what_it_reads(
    run: tuple[list[Step], dict[Step, set[Step]]], window: int, group: int
) -> None:
    steps, reads = run
    stream = ListedSteps(steps, {a: i for i, a in enumerate(ASSETS)})
    cut = list(stretches(stream, reads.__getitem__, window=window, group=group))

    taken = [s for stretch, _ in cut for s in stretch]
    assert sorted(taken, key=stream.position) == list(stream)
    assert len(taken) == len(set(taken))
    stretch_of = {s: i for i, (stretch, _) in enumerate(cut) for s in stretch}
    for i, (stretch, depends) in enumerate(cut):
        assert stretch == sorted(stretch, key=stream.position)
        assert depends == {s: reads[s] for s in stretch}
        for step in stretch:
            assert all(stretch_of[d] <= i for d in reads[step]), (step, reads[step])
    for stretch, _ in cut[:-1]:
        assert len(stretch) >= window
        keys = {s.target.partition_key for s in stretch if not _held(s, reads, stream)}
        assert len(keys) % group == 0


def _held(step: Step, reads: dict[Step, set[Step]], stream: ListedSteps) -> bool:
    """Whether ``step`` reads a step later in the run order (at any depth): it is taken with
    what it waits for, outside the key count."""
    seen, todo = set(), [step]
    while todo:
        s = todo.pop()
        for d in reads[s]:
            if stream.position(d) > stream.position(step):
                return True
            if d not in seen:
                seen.add(d)
                todo.append(d)
    return False
