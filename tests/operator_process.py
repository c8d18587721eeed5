"""An operator in a process of its own, for the many-operators tests: it waits at a barrier
with the others, then runs one backfiller command through the real CLI (in this process, with
its own ledger connection and Delta handles), and reports the exit code and output."""

from __future__ import annotations

from typing import Any


def operate(
    name: str,
    rounds: list[tuple[str, list[str]]],
    barrier: Any,
    results: Any,
) -> None:
    """For each (project root, CLI arguments): wait for every operator, then run."""
    import contextlib
    import io

    from backfiller.cli.main import main

    for number, (root, arguments) in enumerate(rounds):
        barrier.wait(timeout=600)
        output = io.StringIO()
        with contextlib.redirect_stdout(output), contextlib.redirect_stderr(output):
            code = main(["--project", root, *arguments])  # the CLI's one error boundary
        results.put((number, name, code, output.getvalue()))
