"""The runner's logic against storage faults, on the in-memory store (the ledger is SQLite in a
temporary folder, or a PostgreSQL database: every test runs on both): a commit that fails before
it lands, one that lands and then raises, slow commits under parallelism. Whatever happens, the
ledger records the version of the commit that wrote each partition, and a retry finishes the
run without writing anything twice."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import NOW, both_backends, run_steps
from lab_project import STEADY, write_lab

from backfiller import FixedClock, Project, load_project
from backfiller.actions import GroupLimits, RunOptions, StepOutcome
from backfiller.actions.recovery import retry
from backfiller.ledger import DatabaseLedger, PartitionStatus, RunState
from backfiller.store import CommitKey, Faults, MemoryStore

KEYS = ["2026-01-05", "2026-01-06", "2026-01-07"]
#: the faults here are of the n-th commit, and the parallel case is of commits racing: both are
#: about one commit per partition, pinned where a run has several partitions (a fault in a
#: group's commit is the group tests' concern)
ONE_COMMIT_PER_PARTITION = GroupLimits(size=1)

pytestmark = both_backends


@pytest.fixture
def lab_with(tmp_path: Path, project_environ: dict[str, str]) -> Callable[[Faults], Project]:
    root = write_lab(tmp_path / "lab")

    def make(faults: Faults) -> Project:
        return load_project(
            root, environ=project_environ, clock=FixedClock(NOW), store=MemoryStore(faults=faults)
        )

    return make


def commit_version(project: Project, asset: str, run_id: str, key: str) -> list[int]:
    """The versions of the commits ``run_id`` made for ``key``."""
    return [
        c.version
        for c in project.store.history(asset)
        if c.metadata.get(CommitKey.RUN_ID.value) == run_id
        and c.metadata.get(CommitKey.PARTITION_KEYS.value) == key
    ]


def assert_recorded_versions_are_the_commits(
    project: Project, ledger: DatabaseLedger, run_id: str
) -> None:
    for key in KEYS:
        record = ledger.partitions.get(STEADY, key)
        assert record is not None and record.status is PartitionStatus.MATERIALIZED
        assert commit_version(project, STEADY, run_id, key) == [record.data_version], key


def test_a_commit_that_fails_before_it_lands_fails_its_step_and_retry_finishes(
    lab_with: Callable[[Faults], Project],
) -> None:
    project = lab_with(Faults(fail_commits=frozenset({2})))
    with project.ledger() as ledger:
        first = run_steps(
            project,
            ledger,
            [(STEADY, k) for k in KEYS],
            options=RunOptions(group=ONE_COMMIT_PER_PARTITION),
        )
        assert [s.outcome for s in first.steps] == [
            StepOutcome.PUBLISHED,
            StepOutcome.FAILED,
            StepOutcome.PUBLISHED,
        ]
        assert first.state is RunState.FAILED
        assert sorted(project.store.partition_counts(STEADY)) == [KEYS[0], KEYS[2]]
        (failed,) = [a for a in ledger.runs.attempts(first.run_id) if a.partition_key == KEYS[1]]
        assert failed.transient

        again = retry(project, ledger, run_id=first.run_id, operator="t", sleep=lambda _: None)

        assert again.state is RunState.SUCCEEDED
        assert_recorded_versions_are_the_commits(project, ledger, first.run_id)
        assert ledger.evidence.of_run(first.run_id) is not None


def test_a_commit_that_lands_then_raises_is_recorded_by_the_retry_not_written_again(
    lab_with: Callable[[Faults], Project],
) -> None:
    project = lab_with(Faults(raise_after_commits=frozenset({1})))
    with project.ledger() as ledger:
        first = run_steps(project, ledger, [(STEADY, KEYS[0])])
        assert [s.outcome for s in first.steps] == [StepOutcome.FAILED]
        assert project.store.version(STEADY) == 1  # the data landed all the same
        landed = project.store.fingerprint(STEADY, KEYS[0])

        again = retry(project, ledger, run_id=first.run_id, operator="t", sleep=lambda _: None)

        assert [s.outcome for s in again.steps] == [StepOutcome.PUBLISHED]
        assert project.store.version(STEADY) == 1  # nothing written twice
        record = ledger.partitions.get(STEADY, KEYS[0])
        assert record is not None
        assert (record.status, record.data_version, record.fingerprint) == (
            PartitionStatus.MATERIALIZED,
            1,
            landed,
        )


def test_slow_parallel_commits_record_each_partitions_own_version(
    lab_with: Callable[[Faults], Project],
) -> None:
    project = lab_with(Faults(commit_seconds=0.02))
    with project.ledger() as ledger:
        result = run_steps(
            project,
            ledger,
            [(STEADY, k) for k in KEYS],
            options=RunOptions(max_parallel=3, group=ONE_COMMIT_PER_PARTITION),
        )
        assert result.state is RunState.SUCCEEDED
        assert_recorded_versions_are_the_commits(project, ledger, result.run_id)
        assert sorted(project.store.partition_counts(STEADY).values()) == [3, 3, 3]
