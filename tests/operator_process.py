"""An operator in a process of its own, for the many-operators tests: it waits at a barrier
with the others, then runs one backfiller command through the real CLI (in this process, with
its own ledger connection and Delta handles), and reports the exit code and output."""

from __future__ import annotations

from typing import Any


def operate(
    name: str,
    rounds: list[tuple[str, list[str], dict[str, str]]],
    barrier: Any,
    results: Any,
) -> None:
    """For each (project root, CLI arguments, environment): wait for every operator, then
    run."""
    import contextlib
    import io
    import os

    from backfiller.cli.main import main

    for number, (root, arguments, environ) in enumerate(rounds):
        os.environ.update(environ)  # the round's ledger (a PostgreSQL URL in team mode)
        barrier.wait(timeout=600)
        output = io.StringIO()
        with contextlib.redirect_stdout(output), contextlib.redirect_stderr(output):
            code = main(["--project", root, *arguments])  # the CLI's one error boundary
        results.put((number, name, code, output.getvalue()))
