"""Crash tests for every action: a real ``backfiller`` process doing a rerun, a replay, a
restore, an overridden protected apply, a retry, or a resume is killed with SIGKILL at each
named crash point on its path; then ``backfiller resume RUN_ID`` — with no other flag — must
finish the run.

After the kill every partition is wholly old or wholly new; after the resume the run is
``succeeded`` with its evidence written and the chain intact, the stored data of every
partition equals an uninterrupted run's, no partition is left ``materializing``, no lease is
held, and the holds are the uninterrupted run's. (The backfill through ``plan --mode apply`` is
covered point by point, and at random moments, in ``test_crash_resume.py``.)

Each case starts from a copy of a project prepared once per module and ledger backend (on
PostgreSQL, with a copy of its database); every case runs on both ledgers, the killed and the
resuming processes getting the backend's environment.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import NOW, both_backends, ledger_environ, materialize, run_steps
from lab_project import FLAKY, FLAKY_DOWN, LAB_KEY, LAB_KEY_2, STEADY, write_lab
from postgres_server import PostgresServer

from backfiller import FixedClock, Project, load_project
from backfiller.actions.faults import CRASH_POINTS
from backfiller.evidence.chain import verify_chain
from backfiller.lab.example import lay_out_example
from backfiller.ledger import PartitionStatus, RunState

pytestmark = pytest.mark.slow

#: a project's ledger: the backend's environment (a PostgreSQL ledger's URL; nothing for SQLite)
LedgerEnv = dict[str, str]

RAW = "week06/ingestion/raw_ticket_events_partitioned"
SILVER = "week06/silver/ticket_fact_partitioned"
KEYS = ["2026-04-14", "2026-04-15", "2026-04-16"]
KEY = "2026-04-15"
MANIFEST_ID = "week06-seed-manifest-001"
CLI = [sys.executable, "-m", "backfiller.cli.main"]
#: only to keep a hung subprocess from hanging the suite; never an assertion on speed
HANG_GUARD = 300

STEP_POINTS = (
    "after_lease",
    "after_start",
    "after_compute",
    "before_commit",
    "after_commit",
    "after_ledger_publish",
    "after_report",
)
#: a new run passes ``after_begin``; a continued one (retry, resume) does not begin
RUN_POINTS = ("before_settle", "after_settle", "after_evidence_file")


def test_the_cases_cover_every_named_crash_point() -> None:
    assert {*STEP_POINTS, *RUN_POINTS, "after_begin"} == set(CRASH_POINTS)


# -- the projects -----------------------------------------------------------------------------


def _load(root: Path, ledger: LedgerEnv) -> Project:
    return load_project(root, environ=ledger, clock=FixedClock(NOW))


def _cli(root: Path, *args: str, log: Path, ledger: LedgerEnv, **env: str) -> int:
    environ = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("BACKFILLER_") and not k.endswith("BACKFILLER_LEDGER_URL")
    }
    environ.update(ledger)
    environ.update(env)
    with log.open("ab") as out:
        return subprocess.run(
            [*CLI, "--project", str(root), *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=environ,
            timeout=HANG_GUARD,
            check=False,
        ).returncode


def _tail(log: Path, lines: int = 40) -> str:
    text = log.read_text(encoding="utf-8", errors="replace") if log.is_file() else ""
    return "\n".join(text.splitlines()[-lines:])


class Templates:
    """The projects every case starts from, prepared once per ledger backend: the example with
    2026-04-14 .. 2026-04-16 materialized, and the lab project with a backfill that failed
    transiently. On PostgreSQL each has its database; a case gets a copy of both."""

    def __init__(
        self,
        tmp_path_factory: pytest.TempPathFactory,
        server: PostgresServer | None = None,
        empty: str = "",
    ) -> None:
        self.server = server  # None: SQLite
        self.backend = "sqlite" if server is None else "postgres"
        self.empty = empty  # the database holding an empty ledger that new ones copy
        self.roots: dict[str, Path] = {}
        self.databases: dict[str, str] = {}
        example = lay_out_example(tmp_path_factory.mktemp("example") / "omni")
        materialize(self._load_new(example, "example"), KEYS)
        lab = write_lab(tmp_path_factory.mktemp("lab") / "lab")
        project = self._load_new(lab, "lab")
        with project.ledger() as ledger:
            failed = run_steps(
                project,
                ledger,
                [(STEADY, LAB_KEY), (FLAKY, LAB_KEY), (FLAKY_DOWN, LAB_KEY), (FLAKY, LAB_KEY_2)],
            )
        assert failed.state is RunState.FAILED
        (lab / "failed_run").write_text(failed.run_id)
        (lab / "flaky.ok").touch()  # the transient cause is gone: a retry succeeds

    def _load_new(self, root: Path, name: str) -> Project:
        """The template ``name`` at ``root``, on a new ledger."""
        self.roots[name] = root
        ledger: LedgerEnv = {}
        if self.server is not None:
            self.databases[name] = f"crash_{name}"
            ledger = ledger_environ(
                self.server.create_database(template=self.empty, name=f"crash_{name}")
            )
        project = _load(root, ledger)
        assert project.config.ledger_url == ledger.get("BACKFILLER_LEDGER_URL", "")
        return project

    def copy(self, name: str, into: Path) -> tuple[Path, LedgerEnv]:
        """A copy of template ``name`` under ``into``, and the environment naming its ledger
        (a copy of the template's database on PostgreSQL)."""
        root = into / name
        shutil.copytree(self.roots[name], root)
        if self.server is None:
            return root, {}
        return root, ledger_environ(self.server.create_database(template=self.databases[name]))


#: the templates of each ledger backend, made once per module
_templates: dict[str, Templates] = {}


@pytest.fixture
def templates(
    ledger_backend: str, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Templates:
    if ledger_backend not in _templates:
        if ledger_backend == "sqlite":
            _templates[ledger_backend] = Templates(tmp_path_factory)
        else:
            server = request.getfixturevalue("postgres_server")
            empty = request.getfixturevalue("postgres_template")
            _templates[ledger_backend] = Templates(tmp_path_factory, server, empty)
    return _templates[ledger_backend]


@dataclass(frozen=True)
class Action:
    """How to prepare a copy of a template for the action and the command that does it."""

    name: str
    template: str
    #: prepares the copied project (at the root, on the ledger); returns the CLI arguments of
    #: the action
    prepare: Callable[[Path, LedgerEnv], list[str]]
    #: a run id the action continues (retry, resume), else the action begins a new run
    continues: Callable[[Path], str] | None = None

    @property
    def points(self) -> tuple[str, ...]:
        begin = () if self.continues else ("after_begin",)
        return (*begin, *STEP_POINTS, *RUN_POINTS)


def _rerun(root: Path, ledger: LedgerEnv) -> list[str]:
    return ["rerun", "--asset", RAW, "--partition", KEY, "--reason", "re-delivered"]


def _replay(root: Path, ledger: LedgerEnv) -> list[str]:
    return ["replay", "--manifest", MANIFEST_ID, "--partition", KEY, "--reason", "audit"]


def _restore(root: Path, ledger: LedgerEnv) -> list[str]:
    project = _load(root, ledger)
    first = min(  # the first commit carrying KEY (a group commit lists its keys)
        c.version
        for c in project.store.history(RAW)
        if KEY in c.metadata.get("backfiller.partition_keys", "").split(",")
    )
    return ["restore", "--asset", RAW, "--partition", KEY, "--to-version", str(first)]


def _protected_apply(root: Path, env: LedgerEnv) -> list[str]:
    with _load(root, env).ledger() as ledger:
        ledger.protections.protect(RAW, KEY, reason="audited baseline", operator="lead")
    return [
        "plan",
        "--start",
        KEYS[0],
        "--end",
        "2026-04-17",
        "--mode",
        "apply",
        "--include-materialized",
        "--override-protected",
        "--reason",
        "corrected upstream",
    ]


def _retry(root: Path, ledger: LedgerEnv) -> list[str]:
    return ["retry", (root / "failed_run").read_text()]


def _interrupted_backfill(root: Path, ledger: LedgerEnv) -> list[str]:
    """A backfill killed right after its first commit — the raw group's: its four partitions
    landed and none is recorded, the silver ones are still to do; the action is resuming
    it."""
    log = root.parent / "first.log"
    code = _cli(
        root,
        *("plan", "--start", KEYS[0], "--end", "2026-04-17", "--mode", "apply"),
        *("--include-materialized", "--reason", "first try"),
        log=log,
        ledger=ledger,
        BACKFILLER_CRASH_POINT="after_commit",
        BACKFILLER_CRASH_AFTER="1",
    )
    assert code == -signal.SIGKILL, _tail(log)
    runs = _load(root, ledger).reader().runs.all()
    (run,) = [r for r in runs if r.state is RunState.RUNNING]
    (root / "interrupted_run").write_text(run.run_id)
    return ["resume", run.run_id]


ACTIONS = [
    Action("rerun", "example", _rerun),
    Action("replay", "example", _replay),
    Action("restore", "example", _restore),
    Action("overridden-protected-apply", "example", _protected_apply),
    Action("retry", "lab", _retry, continues=lambda root: (root / "failed_run").read_text()),
    Action(
        "resume",
        "example",
        _interrupted_backfill,
        continues=lambda root: (root / "interrupted_run").read_text(),
    ),
]


def _cases() -> list[object]:
    return [
        pytest.param(action, point, id=f"{action.name}-{point}")
        for action in ACTIONS
        for point in action.points
    ]


# -- what a run leaves ----------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    fingerprints: dict[tuple[str, str], str | None]
    holds: set[tuple[str, str, bool]]


def _partitions(project: Project) -> list[tuple[str, str]]:
    return [(r.asset, r.partition_key) for r in project.reader().partitions.all()]


def _outcome(project: Project) -> Outcome:
    with project.ledger() as ledger:
        holds = {(h.target, h.partition_key, h.external) for h in ledger.holds.all()}
    stored = {a: project.store.partition_counts(a) for a in project.graph.keys}
    return Outcome(
        {
            (a, k): project.store.fingerprint(a, k) if stored[a].get(k) else None
            for a, k in _partitions(project)
        },
        holds,
    )


def _finished(project: Project, run_id: str) -> None:
    """The run is succeeded, its evidence written and the chain intact, nothing in flight."""
    with project.ledger() as ledger:
        run = ledger.runs.get(run_id)
        assert run is not None
        assert run.state is RunState.SUCCEEDED, (run.state, run.error)
        assert ledger.evidence.of_run(run_id) is not None, "no evidence for the run"
        assert verify_chain(project, ledger) == []
        assert ledger.leases.held() == [], ledger.leases.held()
        in_flight = [
            (r.asset, r.partition_key)
            for r in ledger.partitions.all()
            if r.status is PartitionStatus.MATERIALIZING
        ]
        assert in_flight == []


#: (ledger backend, action) -> what the action leaves uninterrupted on that backend
_references: dict[tuple[str, str], Outcome] = {}


def _run_ids(root: Path, ledger: LedgerEnv) -> set[str]:
    return {r.run_id for r in _load(root, ledger).reader().runs.all()}


def _run_of(action: Action, root: Path, before: set[str], ledger: LedgerEnv) -> str:
    """The run the action continued, or the one it began."""
    if action.continues is not None:
        return action.continues(root)
    (run_id,) = _run_ids(root, ledger) - before
    return run_id


def _reference(templates: Templates, action: Action, tmp: Path) -> Outcome:
    """What the action leaves when nothing interrupts it (computed once per action and
    backend)."""
    if (templates.backend, action.name) not in _references:
        root, ledger = templates.copy(action.template, tmp / "reference")
        log = tmp / "reference.log"
        args = action.prepare(root, ledger)
        before = _run_ids(root, ledger)
        assert _cli(root, *args, log=log, ledger=ledger) == 0, _tail(log)
        _finished(_load(root, ledger), _run_of(action, root, before, ledger))
        _references[(templates.backend, action.name)] = _outcome(_load(root, ledger))
    return _references[(templates.backend, action.name)]


# -- the cases --------------------------------------------------------------------------------


@both_backends
@pytest.mark.parametrize(("action", "point"), _cases())
def test_a_killed_action_is_finished_by_resume(
    action: Action, point: str, templates: Templates, tmp_path: Path
) -> None:
    reference = _reference(templates, action, tmp_path)
    root, ledger = templates.copy(action.template, tmp_path / "case")
    args = action.prepare(root, ledger)
    old = _outcome(_load(root, ledger))
    before = _run_ids(root, ledger)
    log = tmp_path / "crash.log"

    code = _cli(root, *args, log=log, ledger=ledger, BACKFILLER_CRASH_POINT=point)

    assert code == -signal.SIGKILL, f"exit {code}: {point} was not reached\n{_tail(log)}"
    crashed = _load(root, ledger)
    for target, stored in _outcome(crashed).fingerprints.items():
        assert stored in {old.fingerprints.get(target), reference.fingerprints[target]}, (
            f"{target} is neither old nor new after the kill"
        )
    run_id = _run_of(action, root, before, ledger)

    resumed = tmp_path / "resume.log"
    assert _cli(root, "resume", run_id, log=resumed, ledger=ledger) == 0, _tail(resumed)

    project = _load(root, ledger)
    _finished(project, run_id)
    after = _outcome(project)
    assert after.fingerprints == reference.fingerprints
    assert after.holds == reference.holds
