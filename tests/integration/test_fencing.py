"""Fencing across holders: a holder whose lease was taken over never publishes and never
overwrites the new holder's record, whatever the timing — the lease token travels into the
Delta commit (the table refuses an older token) and into the ledger's record (an older token's
record is refused); leases are renewed while a step computes; a ledger started afresh never
hands out a token the table would refuse."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import both_backends, ledger_environ, run_steps
from lab_project import LAB_KEY, LAB_MODULE, SLOW, STEADY, write_lab

from backfiller.actions.heartbeat import Heartbeat
from backfiller.actions.runner import StepOutcome
from backfiller.clock import FixedClock
from backfiller.ledger import LeaseConflict, PartitionStatus, RunState
from backfiller.project import Project, load_project
from backfiller.store import CommitKey


@pytest.fixture
def lab(tmp_path: Path, load: Callable[[Path], Project]) -> Project:
    return load(write_lab(tmp_path / "lab"))


@pytest.fixture
def hook() -> Iterator[Callable[[Callable[[Any], None] | None], None]]:
    """Set the function ``lab/slow`` calls with its context while it computes."""
    module = sys.modules.get(LAB_MODULE)

    def set_hook(function: Callable[[Any], None] | None) -> None:
        sys.modules[LAB_MODULE].HOOK = function

    yield set_hook
    module = sys.modules.get(LAB_MODULE)
    if module is not None:
        module.HOOK = None


def _commit_of(project: Project, asset: str, version: int) -> dict[str, str]:
    return next(r.metadata for r in project.store.history(asset) if r.version == version)


@both_backends
def test_a_late_holder_that_passed_the_ledger_check_is_refused_by_the_table(
    lab: Project,
    clock: FixedClock,
    hook: Callable[[Callable[[Any], None] | None], None],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The window the ledger check cannot close: the lease expires and is taken over between
    the holder's last look at the ledger and its commit. The table refuses the commit."""
    with lab.ledger() as ledger:
        assert run_steps(lab, ledger, [(SLOW, LAB_KEY)], run_id="run-first").state is (
            RunState.SUCCEEDED
        )
        day: dict[str, Any] = {}

        def take_over(context: Any) -> None:
            if context.run_id != "run-night":
                return
            hook(None)
            clock.advance(seconds=601)  # the night run's lease expires while it computes
            day["result"] = run_steps(lab, ledger, [(SLOW, LAB_KEY)], run_id="run-day")

        hook(take_over)
        # the night run looks at the ledger at the wrong moment: its lease still seems its own
        monkeypatch.setattr(type(ledger.leases), "is_current", lambda self, lease: True)
        night = run_steps(lab, ledger, [(SLOW, LAB_KEY)], run_id="run-night")

    assert day["result"].state is RunState.SUCCEEDED
    assert [s.outcome for s in night.steps] == [StepOutcome.CONFLICT]
    assert "the table refused this late commit, nothing was written" in (night.steps[0].error or "")
    assert night.state is RunState.FAILED
    with lab.ledger() as ledger:
        record = ledger.partitions.get(SLOW, LAB_KEY)
        assert record is not None
        assert (record.status, record.last_run_id) == (PartitionStatus.MATERIALIZED, "run-day")
        assert record.data_version == lab.store.version(SLOW)
        runs = {r.metadata.get(CommitKey.RUN_ID) for r in lab.store.history(SLOW)}
        # the night run's commit never landed (None: the table's empty creation)
        assert runs == {None, "run-first", "run-day"}
        assert ledger.leases.held() == []


@both_backends
def test_a_holder_that_lost_its_lease_after_its_commit_keeps_off_the_new_record(
    lab: Project,
    clock: FixedClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The night run's commit lands; before it records it, its lease expires, the day run
    takes over, publishes and records. The night run's record comes last and is refused: the
    ledger names the day run's version, which is the partition's current data."""
    with lab.ledger() as ledger:
        store = lab.store
        real_write = store.write_partitions
        day: dict[str, Any] = {}

        def write_then_lose_the_lease(asset: str, data: Any, keys: Any, commit: Any) -> int:
            version = real_write(asset, data, keys, commit)
            if commit.run_id == "run-night":
                clock.advance(seconds=601)
                day["result"] = run_steps(lab, ledger, [(STEADY, LAB_KEY)], run_id="run-day")
            return version

        monkeypatch.setattr(store, "write_partitions", write_then_lose_the_lease)
        night = run_steps(lab, ledger, [(STEADY, LAB_KEY)], run_id="run-night")

        assert day["result"].state is RunState.SUCCEEDED
        assert [s.outcome for s in night.steps] == [StepOutcome.CONFLICT]
        assert "which published after this commit; its version stands" in (
            night.steps[0].error or ""
        )
        record = ledger.partitions.get(STEADY, LAB_KEY)
        assert record is not None
        assert record.last_run_id == "run-day"
        assert record.data_version == store.version(STEADY)
        assert _commit_of(lab, STEADY, record.data_version)[CommitKey.RUN_ID] == "run-day"
        assert ledger.leases.held() == []
        # both runs have their evidence; the night run's names the conflict
        assert ledger.evidence.of_run("run-night") is not None
        assert ledger.evidence.of_run("run-day") is not None


@both_backends
def test_a_ledger_started_afresh_never_hands_out_a_token_the_table_refuses(
    lab: Project, ledger_backend: str, clock: FixedClock, request: pytest.FixtureRequest
) -> None:
    with lab.ledger() as ledger:
        assert run_steps(lab, ledger, [(STEADY, LAB_KEY)]).state is RunState.SUCCEEDED
        assert run_steps(lab, ledger, [(STEADY, LAB_KEY)]).state is RunState.SUCCEEDED
    assert lab.store.fence_token(STEADY, LAB_KEY) == 2
    # the ledger is lost; the table is not
    if ledger_backend == "sqlite":
        lab.config.ledger_path.unlink()
    else:  # a fresh, empty database in its place
        fresh = request.getfixturevalue("postgres_server").create_database(
            template=request.getfixturevalue("postgres_template")
        )
        lab = load_project(lab.root, environ=ledger_environ(fresh), clock=clock)
        with lab.ledger() as ledger:
            assert ledger.leases.held() == [] and ledger.runs.all() == []

    with lab.ledger() as ledger:
        again = run_steps(lab, ledger, [(STEADY, LAB_KEY)])
        assert again.state is RunState.SUCCEEDED, [s.error for s in again.steps]
    assert lab.store.fence_token(STEADY, LAB_KEY) == 3


@both_backends
def test_the_heartbeat_renews_held_leases_and_notices_a_takeover(
    lab: Project, clock: FixedClock
) -> None:
    with lab.ledger() as ledger:
        lease = ledger.leases.acquire(
            SLOW, LAB_KEY, holder="night", plan_id=None, run_id="run-night", ttl_seconds=60
        )
        heartbeat = Heartbeat(ledger.leases, 60)
        assert heartbeat.interval == 20
        heartbeat.hold(lease)
        try:
            clock.advance(seconds=50)
            assert heartbeat.beat() == 1
            clock.advance(seconds=50)  # 100 s after the acquire, 50 s after the renewal
            assert ledger.leases.live(SLOW, LAB_KEY) is not None
            with pytest.raises(LeaseConflict):
                ledger.leases.acquire(
                    SLOW, LAB_KEY, holder="day", plan_id=None, run_id="run-day", ttl_seconds=60
                )
            clock.advance(seconds=11)  # no beat: the lease expires and is taken over
            taken = ledger.leases.acquire(
                SLOW, LAB_KEY, holder="day", plan_id=None, run_id="run-day", ttl_seconds=60
            )
            assert taken.token == lease.token + 1
            assert heartbeat.beat() == 0
            assert heartbeat.lost(lease)
            assert ledger.leases.live(SLOW, LAB_KEY) == taken  # the renewal touched nothing
            heartbeat.drop(lease)
            assert not heartbeat.lost(lease)
        finally:
            heartbeat.stop()


@pytest.mark.slow
@both_backends
def test_a_step_computing_longer_than_the_lease_ttl_keeps_its_lease(
    tmp_path: Path,
    hook: Callable[[Callable[[Any], None] | None], None],
    project_environ: dict[str, str],
) -> None:
    """On the real clock, a 1 s lease and a step computing for 2.5 s: the heartbeat renews
    the lease, so another holder cannot take it while the step computes."""
    root = write_lab(tmp_path / "lab")
    toml = root / "backfiller.toml"
    toml.write_text(
        toml.read_text().replace("[project]\n", "[project]\nlease_ttl_seconds = 1\n", 1)
    )
    project = load_project(root, environ=project_environ)
    seen: list[str] = []
    stop = threading.Event()

    def compute_slowly(context: Any) -> None:
        with project.ledger() as other:  # another operator's process: its own connection
            deadline = time.monotonic() + 2.5
            while time.monotonic() < deadline and not stop.is_set():
                try:
                    other.leases.acquire(
                        SLOW, LAB_KEY, holder="other", plan_id=None, run_id="run-other",
                        ttl_seconds=1,
                    )  # fmt: skip
                    seen.append("taken")
                    return
                except LeaseConflict:
                    seen.append("held")
                time.sleep(0.25)

    hook(compute_slowly)
    with project.ledger() as ledger:
        result = run_steps(project, ledger, [(SLOW, LAB_KEY)], run_id="run-long")
    assert result.state is RunState.SUCCEEDED, [s.error for s in result.steps]
    assert "taken" not in seen
    assert len(seen) >= 8  # looked for the whole 2.5 s, past two TTLs
    with project.ledger() as ledger:
        assert ledger.runs.get("run-long") is not None
        assert ledger.leases.held() == []
