"""The run: the one controlled path every action takes.

::

    preconditions → begin (or continue) → steps in dependency order (each: lease → stage →
      checks → publish → record → report) → holds → settle (outcome recorded, evidence
      pending) → evidence (chained; seals the run) → finished → lineage (when configured)

Backfill, rerun, replay, restore and report re-issue begin a run; ``resume`` and ``retry``
continue one from its recorded specification. A kill anywhere leaves a run that ``resume``
finishes: the steps that are done are not touched again, a commit that landed is recorded from
its Delta transaction marker, holds are placed idempotently, and a settled run only waits for
its evidence. A run is not finished — and holds on it are not releasable — until its evidence
is written.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from backfiller.actions.executors import Executor, LocalExecutor
from backfiller.actions.faults import crash_point
from backfiller.actions.plan_steps import plan_steps_of
from backfiller.actions.preconditions import require_preconditions
from backfiller.actions.runner import (
    GroupLimits,
    StepOutcome,
    StepResult,
    StepRunner,
    new_run_id,
)
from backfiller.actions.scheduler import run_in_order
from backfiller.actions.spec import RunSpec, Step, StepSource
from backfiller.actions.stretches import ListedSteps, StepStream, stretches
from backfiller.errors import BadInputError
from backfiller.evidence.lineage_emission import LineageOutcome, emit_run_lineage
from backfiller.evidence.writer import write_run_evidence
from backfiller.holds import place_holds
from backfiller.ledger import AttemptRecord, AttemptStatus, Ledger, RunState
from backfiller.project import Project
from backfiller.refs import AssetPartition

__all__ = ["RunOptions", "RunResult", "continue_run", "execute"]


@dataclass(frozen=True)
class RunOptions:
    """How a run executes: parallelism and a progress callback (never what it does)."""

    max_parallel: int = 1
    on_step: Callable[[StepResult], None] | None = None
    #: how many partitions of one asset are published by one commit (``size`` 1: one commit
    #: per partition; ``None``: the project's ``[project] group_size``); a resumed or retried
    #: run takes its steps one at a time
    group: GroupLimits | None = None
    #: where the steps' computations run (``None``: in the run's own threads); whoever made
    #: the executor closes it
    executor: Executor | None = None
    #: about how many steps the run takes in hand at once: it reads its steps a stretch of
    #: whole keys at a time, each finished before the next (:mod:`~backfiller.actions.
    #: stretches`), so what it holds does not grow with the steps of the run
    window: int = 4096


@dataclass
class RunResult:
    run_id: str
    plan_id: str | None
    steps: list[StepResult] = field(default_factory=list)
    #: downstream partitions this run made stale and held (a republish or a failed check)
    held: list[AssetPartition] = field(default_factory=list)
    #: what became of the run's OpenLineage events (``None``: lineage is not configured)
    lineage: LineageOutcome | None = None

    @property
    def state(self) -> RunState:
        outcomes = {s.outcome for s in self.steps}
        if outcomes & {StepOutcome.FAILED, StepOutcome.CONFLICT}:
            return RunState.FAILED
        if StepOutcome.CHECK_FAILED in outcomes:  # steps skipped below a check failure
            return RunState.CHECKS_FAILED
        if StepOutcome.SKIPPED in outcomes:
            return RunState.FAILED
        return RunState.SUCCEEDED

    def count(self, outcome: StepOutcome) -> int:
        return sum(1 for s in self.steps if s.outcome is outcome)


def execute(
    project: Project,
    ledger: Ledger,
    spec: RunSpec,
    options: RunOptions = RunOptions(),
    *,
    run_id: str | None = None,
    record_first: Callable[[Ledger], None] | None = None,
) -> RunResult:
    """Begin a new run of ``spec`` and take it to its end.

    Refused before anything is written (exit 2) when a precondition is missing: see
    :func:`~backfiller.actions.preconditions.require_preconditions`. ``record_first`` records
    what the run stands on (its plan) once the preconditions hold, before the run begins.
    """
    protected = require_preconditions(project, ledger, spec)
    if spec.lease_ttl is None:  # recorded with the run: resume keeps what it began with
        spec = replace(spec, lease_ttl=float(project.config.lease_ttl_seconds))
    run_id = run_id or new_run_id(project.clock().isoformat())
    if ledger.runs.get(run_id) is not None:
        raise BadInputError(f"Run {run_id} exists already", hint="use a new run id")
    if record_first is not None:
        record_first(ledger)
    ledger.runs.begin(
        run_id=run_id,
        plan_id=spec.plan_id,
        action=spec.action.value,
        operator=spec.operator,
        reason=spec.reason,
        arguments=spec.recorded(),
        parent_run_id=spec.parent_run_id,
    )
    for target, _ in protected:
        assert spec.override_reason is not None
        ledger.protections.record_override(
            run_id=run_id,
            asset=target.asset,
            key=target.partition_key,
            reason=spec.override_reason,
            operator=spec.operator,
        )
    crash_point("after_begin")
    return _Run(project, ledger, run_id, spec, resuming=False).go(options)


def continue_run(
    project: Project,
    ledger: Ledger,
    run_id: str,
    options: RunOptions = RunOptions(),
    *,
    operator: str | None = None,
) -> RunResult:
    """Take a begun run to its end from its recorded specification: the steps not yet done
    (never attempted, interrupted, or queued by a retry), then holds, settle, evidence.
    The run's override and reason are its own; nothing is asked again. ``operator``: who
    continues it (recorded with the attempts it makes), by default who began it."""
    run = ledger.runs.get(run_id)
    if run is None:
        raise BadInputError(f"No run {run_id!r} in the ledger", hint="see 'backfiller runs'")
    spec = RunSpec.of_run(run, lambda plan_id: plan_steps_of(ledger, plan_id))
    if operator is not None:
        spec = replace(spec, operator=operator)
    if run.state is RunState.RUNNING:
        require_preconditions(project, ledger, spec)
    # settled: every step has its outcome; only the evidence is missing (a finished run
    # without evidence comes from a ledger older than the rule that a run needs it)
    settled = run.state is RunState.EVIDENCE_PENDING or run.state.finished
    return _Run(project, ledger, run_id, spec, resuming=True).go(options, settled=settled)


@dataclass
class _Run:
    project: Project
    ledger: Ledger
    run_id: str
    spec: RunSpec
    resuming: bool

    def go(self, options: RunOptions, *, settled: bool = False) -> RunResult:
        result = RunResult(self.run_id, self.spec.plan_id)
        if settled:  # only the evidence was missing
            latest = self._attempts()
            result.steps = [self._recorded(s, latest.get(s.target)) for s in self.spec.steps]
        else:
            result.steps = self._steps(options)
            self._place_holds()
            self.ledger.leases.release_run(self.run_id)  # those a killed step left behind
            crash_point("before_settle")
            errors = [f"{s.asset} {s.partition_key}: {s.error}" for s in result.steps if s.error]
            self.ledger.runs.settle(self.run_id, result.state, "; ".join(errors)[:2000] or None)
            crash_point("after_settle")
        # the seed's order: checks, then evidence, and only then release
        evidence = write_run_evidence(self.project, self.ledger, self.run_id)
        # a side channel: whatever becomes of it, the run is what the evidence says
        result.lineage = emit_run_lineage(self.project.config.lineage, evidence)
        result.held = sorted(
            {
                AssetPartition(h.target, h.partition_key)
                for h in self.ledger.holds.all()
                if h.cause_run_id == self.run_id and not h.external
            }
        )
        return result

    # -- steps ----------------------------------------------------------------------------
    def _attempts(self) -> dict[AssetPartition, AttemptRecord]:
        """The latest attempt of each cell the run attempted (none yet for a new run)."""
        latest: dict[AssetPartition, AttemptRecord] = {}
        for attempt in self.ledger.runs.attempts(self.run_id):
            target = AssetPartition(attempt.asset, attempt.partition_key)
            if target not in latest or attempt.attempt > latest[target].attempt:
                latest[target] = attempt
        return latest

    def _stream(self) -> StepStream:
        steps = self.spec.steps
        if isinstance(steps, tuple):
            return ListedSteps(steps, {a: i for i, a in enumerate(self.project.graph.keys)})
        return steps

    @staticmethod
    def _pending(attempt: AttemptRecord | None) -> bool:
        """Never attempted, interrupted, or queued by a retry."""
        return attempt is None or attempt.status in _UNFINISHED

    @staticmethod
    def _next_attempt(attempt: AttemptRecord | None) -> int:
        if attempt is None:
            return 1
        # an interrupted or queued attempt is made under its own number
        return attempt.attempt if attempt.status in _UNFINISHED else attempt.attempt + 1

    def _recorded(self, step: Step, attempt: AttemptRecord | None) -> StepResult:
        """The result of a step that is not executed again, from its recorded attempt."""
        asset, key = step.target
        if attempt is None:
            return StepResult(asset, key, StepOutcome.SKIPPED, error="never attempted")
        if attempt.status is AttemptStatus.CHECK_FAILED:
            return StepResult(asset, key, StepOutcome.CHECK_FAILED, error=attempt.error)
        if attempt.status is AttemptStatus.FAILED:
            return StepResult(
                asset, key, StepOutcome.FAILED, error=attempt.error, transient=attempt.transient
            )
        return StepResult(
            asset,
            key,
            StepOutcome.REPORT_REISSUED
            if attempt.status is AttemptStatus.REPORT_REISSUED
            else StepOutcome.ALREADY_PUBLISHED,
            rows=attempt.rows_written or 0,
            version=attempt.data_version,
            fingerprint=attempt.fingerprint,
        )

    def _steps(self, options: RunOptions) -> list[StepResult]:
        project = self.project
        runner = StepRunner(
            project,
            self.ledger,
            self.run_id,
            self.spec,
            forced_failures=project.overlay.forced_check_failures,
            resuming=self.resuming,
            executor=options.executor or LocalExecutor(),
        )
        latest = self._attempts()
        stream = self._stream()
        graph = project.graph

        def depends_on(step: Step) -> set[Step]:
            return {
                d
                for up, keys in graph.upstream_partitions(*step.target).items()
                for uk in keys
                if (d := stream.find(AssetPartition(up, uk))) is not None
            }

        results: list[StepResult] = []
        #: the cells whose step did not succeed: a step reading one is skipped
        failed: set[AssetPartition] = set()
        collect = threading.Lock()

        def cause(step: Step, depends: set[Step]) -> Step | None:
            """A step ``step`` reads that did not succeed in this run."""
            with collect:
                return next((d for d in depends if d.target in failed), None)

        #: what each step of the current stretch reads of this run's partitions
        reads: dict[AssetPartition, list[AssetPartition]] = {}

        def record(step: StepResult, *, report: bool = True) -> None:
            with collect:
                results.append(step)
                if not step.outcome.succeeded:
                    failed.add(step.target)
                if report and options.on_step is not None:
                    options.on_step(step)
            runner.done_reading(reads.pop(step.target, ()))

        group = options.group or GroupLimits(size=project.config.group_size)
        grouped = group.size > 1 and not self.resuming
        try:
            for ordered, depends in stretches(
                stream, depends_on, window=options.window, group=group.size if grouped else 1
            ):
                first = len(results)
                reads.clear()
                reads.update({s.target: [d.target for d in depends[s]] for s in ordered})
                runner.expect_reads(Counter(t for targets in reads.values() for t in targets))

                def do(step: Step, depends: dict[Step, set[Step]] = depends) -> StepResult:
                    # a step of an earlier stretch it reads did not succeed
                    upstream = cause(step, depends[step])
                    if upstream is not None:
                        return _skipped(step, upstream)
                    attempt = latest.get(step.target)
                    if self._pending(attempt):
                        return runner.run_step(step, self._next_attempt(attempt))
                    if attempt is not None and attempt.status is AttemptStatus.SUCCEEDED:
                        return runner.finish_published(step.target)
                    return self._recorded(step, attempt)

                if grouped:
                    self._grouped(
                        runner, ordered, depends, latest, group, options, do, record, cause
                    )
                else:
                    run_in_order(
                        ordered,
                        depends,
                        do,
                        lambda result: result.outcome.succeeded,
                        max_parallel=options.max_parallel,
                        on_done=lambda _, result: record(result),
                        on_blocked=lambda step, upstream: record(_skipped(step, upstream)),
                    )
                position = {s.target: i for i, s in enumerate(ordered)}
                results[first:] = sorted(results[first:], key=lambda r: position[r.target])
        finally:
            runner.close()
        return results

    def _grouped(
        self,
        runner: StepRunner,
        ordered: list[Step],
        depends: dict[Step, set[Step]],
        latest: dict[AssetPartition, AttemptRecord],
        group: GroupLimits,
        options: RunOptions,
        do: Callable[[Step], StepResult],
        record: Callable[[StepResult], None],
        cause: Callable[[Step, set[Step]], Step | None],
    ) -> None:
        """The steps of a stretch in groups (:func:`_groups`), each group a unit of the
        scheduler. A group runs once every group of the stretch it depends on has finished (a
        stretch before is finished); a step whose upstream did not succeed in this run is
        skipped (``cause`` names the upstream), the rest of its group goes on."""
        units = _groups(ordered, depends, group.size)
        unit_of = {step: unit for unit in units for step in unit}
        unit_depends = {
            unit: {unit_of[d] for step in unit for d in depends[step] if d in unit_of} - {unit}
            for unit in units
        }

        def work(unit: tuple[Step, ...]) -> list[StepResult]:
            results: dict[Step, StepResult] = {}
            for step in unit:
                upstream = cause(step, depends[step])
                if upstream is not None:
                    results[step] = _skipped(step, upstream)
            # a new run (groups are not used on resume): every step is still to do, and a unit
            # of several is compute steps only (:func:`_groups`)
            todo = [step for step in unit if step not in results]
            if len(todo) == 1:
                results[todo[0]] = do(todo[0])  # as without groups
            elif todo:
                items = [(step, self._next_attempt(latest.get(step.target))) for step in todo]
                for step, result in zip(todo, runner.run_group(items, group), strict=True):
                    results[step] = result
            return [results[step] for step in unit]

        def finish(_: tuple[Step, ...], results: list[StepResult]) -> None:
            for result in results:
                record(result)

        run_in_order(
            units,
            unit_depends,
            work,
            lambda _: True,  # a group's dependents run; each of their steps looks at its own
            max_parallel=options.max_parallel,
            on_done=finish,
            on_blocked=lambda unit, upstream: None,  # never: every unit counts as succeeded
        )

    # -- holds ----------------------------------------------------------------------------
    def _place_holds(self) -> None:
        """Hold what this run's re-publications and check failures affect — from the ledger's
        attempts, so a resumed run places exactly the holds an uninterrupted one would. A first
        publication replaces nothing anyone consumed: it holds nothing."""
        stream = self._stream()
        latest = {t: a for t, a in self._attempts().items() if stream.find(t) is not None}
        published = [t for t, a in latest.items() if a.status is AttemptStatus.SUCCEEDED]
        replaced = [
            t
            for t in published
            if latest[t].version_before is not None or (latest[t].rows_before or 0) > 0
        ]
        place_holds(
            self.project,
            self.ledger,
            run_id=self.run_id,
            operator=self.spec.operator,
            changed=replaced,
            failed_checks=[t for t, a in latest.items() if a.status is AttemptStatus.CHECK_FAILED],
            recomputed=published,
        )


_UNFINISHED = frozenset({AttemptStatus.QUEUED, AttemptStatus.RUNNING})


def _skipped(step: Step, cause: Step) -> StepResult:
    """The result of a step not run because ``cause``, upstream in the same run, failed."""
    return StepResult(
        *step.target,
        StepOutcome.SKIPPED,
        error=f"upstream {cause.target} did not succeed in this run",
    )


def _groups(
    ordered: list[Step], depends: dict[Step, set[Step]], size: int
) -> list[tuple[Step, ...]]:
    """The steps as scheduling units: the compute steps of one asset, in order, gathered up
    to ``size`` at a time; a step that depends on another of the group being gathered (an
    asset reading its own earlier partitions), that is not a compute step, or whose key holds
    a comma (the commit lists its keys comma-separated) starts a unit of its own. Units are
    listed in the order of their first step."""
    units: list[list[Step]] = []
    gathering: dict[str, list[Step]] = {}
    for step in ordered:
        asset, key = step.target
        alone = step.source is not StepSource.COMPUTE or "," in key
        current = gathering.get(asset)
        if (
            alone
            or current is None
            or len(current) >= size
            or any(d in current for d in depends[step])
        ):
            unit = [step]
            units.append(unit)
            if alone:
                gathering.pop(asset, None)
            else:
                gathering[asset] = unit
        else:
            current.append(step)
    return [tuple(unit) for unit in units]
