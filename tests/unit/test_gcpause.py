"""The cycle collector is paused inside a bulk read and resumed after it — also when the read
fails, when reads nest, and never resumed when the caller had paused it."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from backfiller.gcpause import collector_paused


@pytest.fixture(autouse=True)
def _collector_restored() -> Iterator[None]:
    enabled = gc.isenabled()
    yield
    if enabled:
        gc.enable()
    else:
        gc.disable()


def test_paused_inside_resumed_after() -> None:
    gc.enable()
    with collector_paused():
        assert not gc.isenabled()
        with collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the inner block did not resume it early
    assert gc.isenabled()


def test_resumed_when_the_block_fails() -> None:
    gc.enable()
    with pytest.raises(ValueError), collector_paused():
        raise ValueError("a read that fails")
    assert gc.isenabled()


def test_a_collector_the_caller_paused_stays_paused() -> None:
    gc.disable()
    with collector_paused():
        assert not gc.isenabled()
    assert not gc.isenabled()


def test_blocks_overlapping_across_threads_leave_it_running() -> None:
    """A block that begins in one thread while another's is open, and ends after it: the
    collector stays paused until the last block ends, then runs again."""
    import threading

    gc.enable()
    first_in, second_in, first_out = threading.Event(), threading.Event(), threading.Event()
    seen: list[bool] = []

    def first() -> None:
        with collector_paused():
            first_in.set()
            second_in.wait()
        first_out.set()

    def second() -> None:
        first_in.wait()
        with collector_paused():
            second_in.set()
            first_out.wait()
            seen.append(gc.isenabled())  # the first block ended: still paused for this one

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen == [False]
    assert gc.isenabled()
