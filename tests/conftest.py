"""Shared fixtures: the bundled example laid out in a temporary folder, a frozen clock, and the
ledger backend (SQLite, or PostgreSQL on a throwaway cluster the suite starts itself)."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fast_loop import FAST, examples
from hypothesis import settings as hypothesis_settings
from postgres_server import PostgresServer, find_bin_dir, postgres_required

from backfiller import FixedClock, Project, execute, load_project
from backfiller.actions import Action, RunOptions, RunResult, RunSpec
from backfiller.lab.example import lay_out_example
from backfiller.ledger import PostgresLedger, SqliteLedger
from backfiller.overlay import Overlay

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
GAP_DAY = "2026-04-17"


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


@pytest.fixture
def example_dir(tmp_path: Path) -> Path:
    """A fresh copy of examples/omnisupport (nothing materialized)."""
    return lay_out_example(tmp_path / "omni")


# -- the ledger backend ----------------------------------------------------------------------

#: CI (``BACKFILLER_HYPOTHESIS_PROFILE=ci``, set by ``.ci/run``) draws the same examples on every
#: run, seeded from each test's own code, so a run's result does not depend on chance; a local
#: run draws new ones each time, which is how new failures are found
hypothesis_settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
#: the fast loop (``make check``): a tenth of hypothesis's default examples for a test that
#: sets none (those that do ask :func:`fast_loop.examples`)
hypothesis_settings.register_profile("fast", max_examples=examples(100))
if os.environ.get("BACKFILLER_HYPOTHESIS_PROFILE"):
    hypothesis_settings.load_profile(os.environ["BACKFILLER_HYPOTHESIS_PROFILE"])
elif FAST:
    hypothesis_settings.load_profile("fast")

#: while the tests are collected, their modules (as pytest rewrites their assertions) and the
#: modules they import are kept as bytecode even where PYTHONDONTWRITEBYTECODE is set (every
#: run, and each worker, would otherwise rewrite them again: seconds); the tests themselves run
#: as the environment says (a project a test lays out gets no bytecode written beside it)
_WRITES_NO_BYTECODE = sys.dont_write_bytecode
sys.dont_write_bytecode = False


def pytest_collection_finish(session: pytest.Session) -> None:
    sys.dont_write_bytecode = _WRITES_NO_BYTECODE


#: read once: some test modules clear every BACKFILLER_* variable before their tests run
REQUIRE_POSTGRES = postgres_required()

#: run a test (or, as ``pytestmark``, every test of a module) that uses a ledger against both
#: backends; tests that use none are left alone
both_backends = pytest.mark.both_backends


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if metafunc.definition.get_closest_marker("both_backends") and (
        "ledger_backend" in metafunc.fixturenames
    ):
        metafunc.parametrize(
            "ledger_backend",
            ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)],
            indirect=True,
        )


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A throwaway cluster for this test process (each xdist worker starts its own); skipped
    when the server binaries or psycopg are missing, an error under
    ``BACKFILLER_REQUIRE_POSTGRES=1`` (CI)."""
    bin_dir = find_bin_dir()
    try:
        import psycopg  # noqa: F401
        import psycopg_pool  # noqa: F401
    except ImportError:
        missing = "psycopg / psycopg-pool (pip install 'backfiller[postgres]')"
    else:
        missing = "" if bin_dir else "PostgreSQL's pg_ctl and initdb (apt-get install postgresql)"
    if missing:
        if REQUIRE_POSTGRES:
            pytest.fail(f"BACKFILLER_REQUIRE_POSTGRES=1 but {missing} are missing")
        pytest.skip(f"no PostgreSQL: {missing} not found")
    assert bin_dir is not None
    server = PostgresServer(bin_dir).start()
    _servers.append(server)
    yield server
    _servers.remove(server)
    server.stop()


#: this process's cluster, once a test started it
_servers: list[PostgresServer] = []


@pytest.fixture(autouse=True, scope="session")
def _own_cache_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """``XDG_CACHE_HOME`` in a temporary folder for the whole session (and the processes
    it starts): what a command keeps in the user's cache (``backfiller ui``'s states) never
    lands in the home of whoever runs the tests."""
    before = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("cache-home"))
    yield
    if before is None:
        os.environ.pop("XDG_CACHE_HOME", None)
    else:
        os.environ["XDG_CACHE_HOME"] = before


@pytest.fixture(autouse=True)
def _drop_scratch_databases() -> Iterator[None]:
    """After each test, drop the databases it made without a name (a fresh ledger, a copy of
    a template); the named ones (the templates) stay for the session."""
    yield
    for server in _servers:
        server.drop_scratch()


@pytest.fixture(scope="session")
def postgres_template(postgres_server: PostgresServer) -> str:
    """A database holding a migrated, empty ledger; each test gets a copy."""
    url = postgres_server.create_database(name="ledger_template")
    PostgresLedger(url).close()
    return "ledger_template"


@pytest.fixture
def postgres_url(postgres_server: PostgresServer, postgres_template: str) -> str:
    """A fresh database with an empty ledger, for this test only."""
    return postgres_server.create_database(template=postgres_template)


@pytest.fixture
def ledger_backend(request: pytest.FixtureRequest) -> str:
    """``sqlite`` unless the test is parametrized with :data:`both_backends`."""
    return str(getattr(request, "param", "sqlite"))


@pytest.fixture
def project_environ(ledger_backend: str, request: pytest.FixtureRequest) -> dict[str, str]:
    """The environment a test's project is loaded with: nothing for SQLite (the ledger file
    in the project's state folder); ``BACKFILLER_LEDGER_URL`` of a fresh database for
    PostgreSQL."""
    if ledger_backend == "sqlite":
        return {}
    if "april_project" in request.fixturenames:  # a copy of the april template's ledger
        server: PostgresServer = request.getfixturevalue("postgres_server")
        _, database = request.getfixturevalue("april_template_postgres")
        url = server.create_database(template=database)
    else:
        url = request.getfixturevalue("postgres_url")
    return ledger_environ(url)


@pytest.fixture
def no_ledger_environ(ledger_backend: str, request: pytest.FixtureRequest) -> dict[str, str]:
    """The environment of a project whose ledger does not exist yet: nothing for SQLite (no
    file until something is written); for PostgreSQL, an empty database (no table)."""
    if ledger_backend == "sqlite":
        return {}
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return ledger_environ(server.create_database())


#: terminal settings a developer's shell may export, which would change what the CLI prints
TERMINAL_VARIABLES = frozenset({"FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE"})


def cli_environment(
    monkeypatch: pytest.MonkeyPatch,
    project_environ: dict[str, str],
    *,
    columns: int = 250,
    also_clear: tuple[str, ...] = (),
) -> None:
    """For in-process CLI tests: a console ``columns`` wide, no terminal settings and no
    project settings from the environment (``WEEK06_*``, ``BACKFILLER_*`` and the prefixes in
    ``also_clear``) but the ledger backend's (a PostgreSQL ledger's URL)."""
    monkeypatch.setenv("COLUMNS", str(columns))
    for name in list(os.environ):
        if name.startswith(("WEEK06_", "BACKFILLER_", *also_clear)) or name in TERMINAL_VARIABLES:
            monkeypatch.delenv(name)
    for name, value in project_environ.items():
        monkeypatch.setenv(name, value)


def ledger_environ(url: str) -> dict[str, str]:
    """The variables that point a project at the ledger ``url``: ``<prefix>LEDGER_URL`` with
    the default prefix and with the example's (``WEEK06_BACKFILLER_``)."""
    return {"BACKFILLER_LEDGER_URL": url, "WEEK06_BACKFILLER_LEDGER_URL": url}


@pytest.fixture
def load(clock: FixedClock, project_environ: dict[str, str]) -> Callable[[Path], Project]:
    def _load(root: Path) -> Project:
        return load_project(root, environ=project_environ, clock=clock)

    return _load


def run_steps(
    project: Project,
    ledger: SqliteLedger,
    steps: list[tuple[str, str]],
    *,
    action: str = "backfill",
    operator: str = "tests",
    forced_failures: frozenset[tuple[str, str, str]] = frozenset(),
    run_id: str | None = None,
    options: RunOptions = RunOptions(),  # noqa: B008 - frozen
    **spec: Any,
) -> RunResult:
    """A run computing ``steps`` through the one controlled path (checks named in
    ``forced_failures`` fail, as under a failing-check simulation)."""
    if forced_failures:
        project = project.with_overlay(Overlay(forced_check_failures=forced_failures))
    run_spec = RunSpec.compute(Action(action), operator, steps, **spec)
    return execute(project, ledger, run_spec, options, run_id=run_id)


class Interrupted(BaseException):
    """Raised at a named crash point by :func:`interrupted_at` (a BaseException, so nothing
    in the core catches it — as nothing survives a ``kill -9``)."""


@contextlib.contextmanager
def interrupted_at(point: str) -> Iterator[None]:
    """Stop a run in this process at crash point ``point`` and swallow the stop — the
    ledger and store are left as a kill there leaves them (the crash tests kill real
    processes; this is for tests that only need the state a kill leaves)."""
    from backfiller.actions import faults

    assert point in faults.CRASH_POINTS, point

    def stop(name: str) -> None:
        if name == point:
            raise Interrupted(name)

    with pytest.MonkeyPatch.context() as patch, contextlib.suppress(Interrupted):
        for module in ("backfiller.actions.run", "backfiller.actions.runner",
                       "backfiller.evidence.writer"):  # fmt: skip
            patch.setattr(f"{module}.crash_point", stop)
        yield


def materialize(project: Project, keys: list[str], assets: list[str] | None = None) -> None:
    """Publish ``keys`` of every asset (or of ``assets``) through the real runner."""
    names = assets or project.graph.keys
    with project.ledger() as ledger:
        result = run_steps(project, ledger, [(a, k) for k in keys for a in names])
    assert result.state.value == "succeeded", [s.error for s in result.steps if s.error]


@pytest.fixture(scope="session")
def april_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example with 2026-04-14 .. 2026-04-20 materialized except 2026-04-17, built once
    per session through the real runner; tests get copies (:func:`april_project`)."""
    root = lay_out_example(tmp_path_factory.mktemp("april") / "omni")
    project = load_project(root, environ={}, clock=FixedClock(NOW))
    keys = [k for k in project.scheme.key_range("2026-04-14", "2026-04-20") if k != GAP_DAY]
    materialize(project, keys)
    return root


@pytest.fixture(scope="session")
def april_template_postgres(
    tmp_path_factory: pytest.TempPathFactory, postgres_server: PostgresServer
) -> tuple[Path, str]:
    """:func:`april_template` with its ledger in PostgreSQL: the folder, and the database
    that tests copy."""
    root = lay_out_example(tmp_path_factory.mktemp("april-postgres") / "omni")
    url = postgres_server.create_database(name="april_template")
    project = load_project(root, environ=ledger_environ(url), clock=FixedClock(NOW))
    assert project.config.ledger_url == url
    keys = [k for k in project.scheme.key_range("2026-04-14", "2026-04-20") if k != GAP_DAY]
    materialize(project, keys)
    return root, "april_template"


@pytest.fixture
def april_project(
    example_dir: Path,
    april_template: Path,
    load: Callable[[Path], Project],
    project_environ: dict[str, str],
    request: pytest.FixtureRequest,
) -> Project:
    """A copy of :func:`april_template` at ``example_dir``; on PostgreSQL, of
    :func:`april_template_postgres` (``project_environ`` names the copy of its ledger)."""
    shutil.rmtree(example_dir)
    if "BACKFILLER_LEDGER_URL" in project_environ:
        template, _ = request.getfixturevalue("april_template_postgres")
        shutil.copytree(template, example_dir)
    else:
        shutil.copytree(april_template, example_dir)
    project = load(example_dir)
    assert project.config.ledger_url == project_environ.get("BACKFILLER_LEDGER_URL", "")
    return project


def ledger_fingerprint(project: Project) -> dict[str, str]:
    """What the ledger holds, as digests: the SQLite file's bytes, or every PostgreSQL table's
    rows."""
    if not project.config.ledger_url:
        path = project.config.ledger_path
        return {path.name: hashlib.sha256(path.read_bytes()).hexdigest()}
    return database_fingerprint(project.config.ledger_url)


def environ_ledger_fingerprint() -> dict[str, str]:
    """The PostgreSQL ledger the environment names (``BACKFILLER_LEDGER_URL``, as the CLI tests
    set it), as ``ledger table NAME`` -> digest; nothing when there is none (SQLite: the ledger
    is a file in the project folder)."""
    url = os.environ.get("BACKFILLER_LEDGER_URL")
    if not url:
        return {}
    return {f"ledger table {k}": v for k, v in database_fingerprint(url).items()}


def database_fingerprint(url: str) -> dict[str, str]:
    """Every table of the PostgreSQL database at ``url``, as a digest of its rows (empty: no
    table)."""
    import psycopg

    digests: dict[str, str] = {}
    with psycopg.connect(url) as conn:
        tables = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
        ).fetchall()
        for (table,) in tables:
            rows = conn.execute(f"SELECT * FROM {table}").fetchall()
            digests[table] = hashlib.sha256(repr(sorted(map(repr, rows))).encode()).hexdigest()
    return digests


def tree_fingerprint(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root`` (relative path -> digest); empty if it is absent.
    Python's bytecode caches (``__pycache__``, written when a project's modules are imported
    unless PYTHONDONTWRITEBYTECODE is set) are not the project's data and are left out."""
    result: dict[str, str] = {}
    if not root.exists():
        return result
    for dirpath, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        for name in files:
            path = Path(dirpath, name)
            result[path.relative_to(root).as_posix()] = hashlib.sha256(
                path.read_bytes()
            ).hexdigest()
    return result
