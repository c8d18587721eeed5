"""The recovery commands on the command line: rerun, replay, retry, resume, restore, protect,
and ``ready`` / ``release`` around them.

Every refusal exits with its code (2: a missing precondition or bad usage, 4: a conflict),
names what is missing and the option or command that would satisfy it, and writes nothing (the
project folder, and a PostgreSQL ledger's tables, are fingerprinted before and after). Every
test runs on both ledgers. The commands run in-process through
``backfiller.cli.main.main`` on a copy of the bundled example with 2026-04-14 .. 2026-04-20
materialized except 2026-04-17.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import (
    GAP_DAY,
    both_backends,
    cli_environment,
    environ_ledger_fingerprint,
    ledger_environ,
    materialize,
    tree_fingerprint,
)
from lab_project import write_lab

from backfiller import FixedClock, PartitionStatus, Project, RunState, load_project
from backfiller.cli.main import main
from backfiller.lab.example import lay_out_example

RAW = "week06/ingestion/raw_ticket_events_partitioned"
SILVER = "week06/silver/ticket_fact_partitioned"
ASSETS = (RAW, SILVER)
KEY = "2026-04-15"
MANIFEST_ID = "week06-seed-manifest-001"
CONSUMER = "week07/retrieval_index"
WINDOW = ["2026-04-14", "2026-04-15", "2026-04-16", GAP_DAY, "2026-04-18", "2026-04-19"]
WINDOW.append("2026-04-20")
#: the example's configured operator, used when --operator is not given
DEFAULT_OPERATOR = "student-devbox"


@pytest.fixture(autouse=True)
def _cli_environment(monkeypatch: pytest.MonkeyPatch, project_environ: dict[str, str]) -> None:
    """A wide console and no project settings leaking in from the environment but the
    ledger backend's (a PostgreSQL ledger's URL)."""
    cli_environment(monkeypatch, project_environ)


pytestmark = both_backends


def files(root: Path) -> dict[str, str]:
    """The project folder's files (not SQLite's side files) and a PostgreSQL ledger's tables."""
    found = {
        k: v
        for k, v in tree_fingerprint(root).items()
        if "__pycache__" not in k and not k.endswith(("-wal", "-shm", "-journal"))
    }
    return found | environ_ledger_fingerprint()


def changed(before: dict[str, str], after: dict[str, str]) -> list[str]:
    return sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))


def run(capsys: pytest.CaptureFixture[str], root: Path, *args: str) -> tuple[int, str, str]:
    code = main(["--project", str(root), *args])
    out, err = capsys.readouterr()
    return code, out, err


def one_line(text: str) -> str:
    return " ".join(text.split())


def table_rows(out: str) -> list[list[str]]:
    """The body rows of every rich table in ``out``, as lists of stripped cells."""
    return [
        [cell.strip() for cell in line.rstrip().split("│")[1:-1]]
        for line in out.splitlines()
        if line.startswith("│") and line.rstrip().endswith("│")
    ]


def latest_run_id(project: Project) -> str:
    with project.ledger() as ledger:
        return ledger.runs.all()[-1].run_id


# -- refusals: exit 2, the missing precondition named, nothing written ------------------------


def test_rerun_without_a_partition_exits_2_and_writes_nothing(
    april_project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    root = april_project.root
    before = files(root)

    code, _, err = run(capsys, root, "rerun", "--asset", RAW)

    assert code == 2
    assert "rerun needs --partition K or --start K --end K" in one_line(err)
    assert changed(before, files(root)) == []


@pytest.mark.parametrize(
    "command",
    [
        ["rerun", "--asset", RAW, "--partition", KEY],
        ["replay", "--manifest", MANIFEST_ID, "--partition", KEY],
        ["restore", "--asset", RAW, "--partition", KEY, "--to-version", "1"],
    ],
    ids=["rerun", "replay", "restore"],
)
def test_override_protected_without_a_reason_exits_2(
    april_project: Project, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    root = april_project.root
    before = files(root)

    code, _, err = run(capsys, root, *command, "--override-protected")

    assert code == 2
    text = one_line(err)
    assert "--override-protected needs --reason TEXT" in text
    assert "say why the protected baseline may be overwritten" in text
    assert changed(before, files(root)) == []


def test_replay_of_an_unknown_manifest_exits_2_naming_the_known_ones(
    april_project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    root = april_project.root
    before = files(root)

    code, _, err = run(capsys, root, "replay", "--manifest", "nope")

    assert code == 2
    assert f"Unknown manifest 'nope' (known: {MANIFEST_ID})" in one_line(err)
    assert changed(before, files(root)) == []


def test_retry_of_an_unknown_run_exits_2(
    april_project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    root = april_project.root
    before = files(root)

    code, _, err = run(capsys, root, "retry", "nope")

    assert code == 2
    text = one_line(err)
    assert "No run 'nope' in the ledger" in text
    assert "see 'backfiller runs'" in text
    assert changed(before, files(root)) == []


def test_retry_of_a_run_that_succeeded_exits_2(
    april_project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    root = april_project.root
    run_id = latest_run_id(april_project)
    before = files(root)

    code, _, err = run(capsys, root, "retry", run_id)

    assert code == 2
    text = one_line(err)
    assert f"Run {run_id} has no failed attempt to retry" in text
    assert "a retry only re-executes failed attempts of an existing run" in text
    assert changed(before, files(root)) == []


@pytest.mark.parametrize(
    "versions",
    [[], ["--to-version", "1", "--before-run", "run-x"]],
    ids=["neither", "both"],
)
def test_restore_needs_exactly_one_version_option(
    april_project: Project, capsys: pytest.CaptureFixture[str], versions: list[str]
) -> None:
    root = april_project.root
    before = files(root)

    code, _, err = run(capsys, root, "restore", "--asset", RAW, "--partition", KEY, *versions)

    assert code == 2
    assert "Pass exactly one of --to-version V or --before-run RUN_ID" in one_line(err)
    assert changed(before, files(root)) == []


def test_resume_of_an_unknown_run_exits_2(
    april_project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    root = april_project.root
    before = files(root)

    code, _, err = run(capsys, root, "resume", "run-nope")

    assert code == 2
    assert "No run 'run-nope' in the ledger" in one_line(err)
    assert changed(before, files(root)) == []


def test_rerun_has_no_option_to_skip_the_checks(
    april_project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    root = april_project.root
    before = files(root)

    code, _, err = run(capsys, root, "rerun", "--asset", RAW, "--partition", KEY, "--skip-checks")

    assert code == 2
    assert "No such option '--skip-checks'" in err
    assert changed(before, files(root)) == []
    code, out, _ = run(capsys, root, "rerun", "--help")
    assert code == 0
    assert "checks always run" in one_line(out)
    assert "skip" not in out.lower()


# -- protect, then rerun -------------------------------------------------------------------


def test_a_protected_partition_refuses_a_rerun_until_an_override_is_given(
    april_project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    root = april_project.root

    code, out, _ = run(
        capsys, root, "protect", "--asset", RAW, "--partition", KEY, "--reason", "baseline"
    )
    assert code == 0
    assert f"protected: {RAW} {KEY} (baseline)" in one_line(out)
    with april_project.ledger() as ledger:
        protection = ledger.protections.get(RAW, KEY)
        runs = len(ledger.runs.all())
    assert protection is not None
    assert (protection.reason, protection.operator) == ("baseline", DEFAULT_OPERATOR)
    before = files(root)

    code, _, err = run(capsys, root, "rerun", "--asset", RAW, "--partition", KEY)

    assert code == 2
    text = one_line(err)
    assert f"Refusing to overwrite protected baseline(s): {RAW} {KEY} (baseline," in text
    assert "--override-protected --reason TEXT" in text
    assert changed(before, files(root)) == []

    code, out, _ = run(
        capsys,
        root,
        "rerun",
        "--asset",
        RAW,
        "--partition",
        KEY,
        "--override-protected",
        "--reason",
        "re-delivered events",
        "--operator",
        "alice",
    )
    assert code == 0
    assert "2 published" in out
    with april_project.ledger() as ledger:
        new_runs = ledger.runs.all()[runs:]
        overrides = ledger.protections.overrides()
    assert len(new_runs) == 1 and new_runs[0].state is RunState.SUCCEEDED
    assert [
        (o["run_id"], o["asset"], o["partition_key"], o["reason"], o["operator"]) for o in overrides
    ] == [(new_runs[0].run_id, RAW, KEY, "re-delivered events", "alice")]


# -- leases: exit 4 ------------------------------------------------------------------------


def test_rerun_of_a_leased_partition_exits_4_naming_the_holder(
    april_project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    root = april_project.root
    with april_project.ledger() as ledger:
        # the CLI runs on the system clock: a lease that is live for a long while
        held = ledger.leases.acquire(
            RAW,
            KEY,
            holder="night-shift",
            plan_id="plan-night-001",
            run_id="run-night-001",
            ttl_seconds=10 * 365 * 24 * 3600,
        )
        fingerprint = april_project.store.fingerprint(RAW, KEY)

    code, out, err = run(capsys, root, "rerun", "--asset", RAW, "--partition", KEY)

    assert code == 4
    text = one_line(err)
    assert "1 partition(s) are leased by another operator" in text
    assert (
        f"{RAW} {KEY}: leased by night-shift (plan plan-night-001, run run-night-001) "
        f"since {held.acquired_at}" in text
    )
    assert "conflict" in out and "skipped" in out
    assert april_project.store.fingerprint(RAW, KEY) == fingerprint


# -- ready and release ---------------------------------------------------------------------


def test_ready_exits_1_while_held_and_0_after_release(
    april_project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    root = april_project.root

    # a first publication replaced nothing anyone consumed: nothing is held
    code, out, _ = run(capsys, root, "ready", CONSUMER, KEY)
    assert (code, one_line(out)) == (0, f"ready: {CONSUMER} {KEY}")
    with april_project.ledger() as ledger:
        assert ledger.holds.all() == []

    # a rerun holds them again, until the next release
    assert run(capsys, root, "rerun", "--asset", RAW, "--partition", KEY)[0] == 0
    rerun_id = latest_run_id(april_project)
    code, out, _ = run(capsys, root, "ready", CONSUMER, KEY)
    assert code == 1
    assert f"republished in run {rerun_id}" in out
    # another partition was not touched by the rerun
    assert run(capsys, root, "ready", CONSUMER, "2026-04-16")[0] == 0

    code, out, _ = run(capsys, root, "release", "--run", rerun_id)
    assert code == 0
    assert run(capsys, root, "ready", CONSUMER, KEY)[0] == 0
    assert run(capsys, root, "ready", SILVER, KEY)[0] == 0
    # a missing partition is never ready
    code, out, _ = run(capsys, root, "ready", SILVER, GAP_DAY)
    assert (code, one_line(out)) == (
        1,
        f"held: {SILVER} {GAP_DAY} is not materialized (no ledger record)",
    )


# -- the actions, through the CLI ------------------------------------------------------------


@pytest.mark.slow
def test_parallel_rerun_gives_the_same_fingerprints_as_a_sequential_one(
    april_project: Project,
    tmp_path: Path,
    load: Callable[[Path], Project],
    capsys: pytest.CaptureFixture[str],
    clock: FixedClock,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> None:
    parallel_root = april_project.root
    sequential_root = lay_out_example(tmp_path / "sequential")
    sequential_env: dict[str, str] = {}  # its own ledger: on PostgreSQL, a database of its own
    if april_project.config.ledger_url:
        server = request.getfixturevalue("postgres_server")
        empty = request.getfixturevalue("postgres_template")
        sequential_env = ledger_environ(server.create_database(template=empty))

    def load_sequential(root: Path) -> Project:
        return load_project(root, environ=sequential_env, clock=clock)

    materialize(load_sequential(sequential_root), [k for k in WINDOW if k != GAP_DAY])
    window = ["--start", WINDOW[0], "--end", WINDOW[-1]]

    with monkeypatch.context() as patch:
        for name, value in sequential_env.items():
            patch.setenv(name, value)
        code, out, _ = run(capsys, sequential_root, "rerun", "--asset", RAW, *window)
    assert code == 0, out
    code, out, _ = run(
        capsys, parallel_root, "--max-parallel", "2", "rerun", "--asset", RAW, *window
    )
    assert code == 0, out
    assert "14 published" in out

    projects = {"sequential": load_sequential(sequential_root), "parallel": load(parallel_root)}
    seen = {}
    for name, project in projects.items():
        with project.ledger() as ledger:
            last = ledger.runs.all()[-1]
            assert last.state is RunState.SUCCEEDED
            assert len(ledger.runs.attempts(last.run_id)) == 2 * len(WINDOW)
            records = {(a, k): ledger.partitions.get(a, k) for a in ASSETS for k in WINDOW}
        assert all(
            r is not None and r.status is PartitionStatus.MATERIALIZED for r in records.values()
        )
        seen[name] = {
            "store": {(a, k): project.store.fingerprint(a, k) for a in ASSETS for k in WINDOW},
            "counts": {a: project.store.partition_counts(a) for a in ASSETS},
            "ledger": {
                key: (r.row_count, r.fingerprint) for key, r in records.items() if r is not None
            },
        }
    assert seen["parallel"] == seen["sequential"]
    assert all(seen["parallel"]["store"].values())
    assert seen["parallel"]["counts"][RAW][GAP_DAY] > 0


def test_replay_then_resume_of_that_finished_run(
    april_project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    root = april_project.root

    code, out, _ = run(capsys, root, "replay", "--manifest", MANIFEST_ID, "--partition", KEY)
    assert code == 0
    assert "2 published" in out
    replay_id = latest_run_id(april_project)
    versions = {a: april_project.store.version(a) for a in ASSETS}

    code, out, _ = run(capsys, root, "resume", replay_id)

    assert code == 0
    # every step was already published: reported as such, or nothing left to do
    outcomes = [cells[2] for cells in table_rows(out) if len(cells) == 7]
    assert outcomes in ([], ["already_published", "already_published"])
    assert "2 already_published" in out or "nothing to do" in out
    assert {a: april_project.store.version(a) for a in ASSETS} == versions


def test_restore_prints_what_became_stale_and_held(
    april_project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    root = april_project.root
    assert run(capsys, root, "rerun", "--asset", RAW, "--partition", KEY)[0] == 0
    rerun_id = latest_run_id(april_project)
    rerun_commit = min(
        c.version
        for c in april_project.store.history(RAW)
        if c.metadata.get("backfiller.run_id") == rerun_id
    )
    expected = april_project.store.fingerprint(RAW, KEY, version=rerun_commit - 1)

    code, out, _ = run(
        capsys, root, "restore", "--asset", RAW, "--partition", KEY, "--before-run", rerun_id
    )

    assert code == 0
    assert f"stale and held: {SILVER} {KEY}" in out
    assert april_project.store.fingerprint(RAW, KEY) == expected
    assert run(capsys, root, "ready", CONSUMER, KEY)[0] == 1


# -- unknown ids and empty reasons are bad input everywhere -----------------------------------


@pytest.mark.parametrize(
    "command",
    [
        ["runs", "--run", "run-nope"],
        ["release", "--run", "run-nope"],
        ["resume", "run-nope"],
        ["retry", "run-nope"],
        ["evidence", "show", "run-nope"],
    ],
    ids=["runs", "release", "resume", "retry", "evidence-show"],
)
def test_an_unknown_run_id_exits_2_naming_it_and_writes_nothing(
    april_project: Project, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    root = april_project.root
    before = files(root)

    code, out, err = run(capsys, root, *command)

    assert code == 2, out + err
    assert "run-nope" in err
    assert "released 0 hold(s)" not in out
    assert changed(before, files(root)) == []


@pytest.mark.parametrize("reason", ["", "   "])
def test_protect_needs_a_reason_that_says_something(
    april_project: Project, capsys: pytest.CaptureFixture[str], reason: str
) -> None:
    root = april_project.root
    before = files(root)

    code, _, err = run(capsys, root, "protect", "--asset", RAW, "--partition", KEY,
                       "--reason", reason)  # fmt: skip

    assert code == 2
    assert "--reason must say why" in one_line(err)
    assert changed(before, files(root)) == []


def test_runs_shows_the_attempts_of_a_run_with_their_status(
    april_project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    run_id = latest_run_id(april_project)
    code, out, _ = run(capsys, april_project.root, "runs", "--run", run_id)
    assert code == 0
    statuses = {row[3] for row in table_rows(out) if len(row) > 3}
    assert statuses == {"succeeded"}


@pytest.mark.parametrize(
    ("asset", "hint"),
    [
        ("lab/flaky", "the failures are transient: 'backfiller retry run-"),
        ("lab/broken", "then 'backfiller rerun --asset lab/broken --partition 2026-01-05'"),
    ],
    ids=["transient", "permanent"],
)
def test_a_failed_run_suggests_retry_only_for_transient_failures(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    asset: str,
    hint: str,
    project_environ: dict[str, str],
) -> None:
    root = write_lab(tmp_path / "lab")

    code, _, err = run(capsys, root, "rerun", "--asset", asset, "--partition", "2026-01-05")

    assert code == 1
    text = one_line(err)
    assert hint in text
    if asset == "lab/broken":
        assert "backfiller retry" not in text
        # and retry indeed refuses it
        code, _, err = run(
            capsys, root, "retry", latest_run_id(load_project(root, environ=project_environ))
        )
        assert code == 2 and "non-transient" in one_line(err)


@pytest.mark.parametrize(
    ("command", "code"),
    [
        (["release", "--run", "run-nope"], 2),
        (["retry", "run-nope"], 2),
        (["resume", "run-nope"], 2),
        (["restore", "--asset", RAW, "--partition", KEY, "--before-run", "run-nope"], 2),
        (["replay", "--manifest", "nope"], 2),
        (["evidence", "verify"], 0),
        (["holds"], 0),
        (["ready", SILVER, KEY], 1),
    ],
    ids=["release", "retry", "resume", "restore", "replay", "evidence-verify", "holds", "ready"],
)
def test_on_a_fresh_project_a_refusal_or_a_read_does_not_even_create_the_ledger(
    example_dir: Path,
    capsys: pytest.CaptureFixture[str],
    command: list[str],
    code: int,
) -> None:
    """Before any run there is no ledger: refusing an unknown run or manifest, and reading
    holds, readiness or the evidence chain, leave the folder (and a PostgreSQL database) as
    they were — the ledger writer, which creates the file and its tables, is never opened."""
    before = files(example_dir)
    assert not any(k.endswith("ledger.db") for k in before)

    got, out, err = run(capsys, example_dir, *command)

    assert got == code, out + err
    assert changed(before, files(example_dir)) == []
