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
    from click.testing import CliRunner

    from backfiller.cli.main import cli

    runner = CliRunner()
    for number, (root, arguments) in enumerate(rounds):
        barrier.wait(timeout=600)
        outcome = runner.invoke(cli, ["--project", root, *arguments], catch_exceptions=True)
        output = outcome.output
        if outcome.exception is not None and not isinstance(outcome.exception, SystemExit):
            output += f"\n{type(outcome.exception).__name__}: {outcome.exception}"
        results.put((number, name, outcome.exit_code, output))
