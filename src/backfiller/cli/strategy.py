"""``backfiller strategy``: write the recovery strategy document from the policy and the state."""

from __future__ import annotations

from pathlib import Path

import click

from backfiller.errors import BadInputError

from .context import Context


@click.command(name="strategy")
@click.option(
    "--output",
    type=click.Path(path_type=Path),
    help="Where to write it (default: [policy] strategy_path).",
)
@click.pass_obj
def strategy_cmd(obj: Context, output: Path | None) -> None:
    """Regenerate the recovery strategy (policy, current gaps, holds, simulations)."""
    from backfiller.lab.strategy import write_strategy

    project = obj.project()
    if output is not None and output.is_dir():
        raise BadInputError(
            f"--output {output} is a folder", hint="pass the path of a Markdown file"
        )
    try:
        path = write_strategy(project, output)
    except OSError as exc:
        raise BadInputError(
            f"Cannot write the strategy to {output or project.policy.strategy_path}: "
            f"{exc.strerror or exc}",
            hint="pass --output with a writable file path",
        ) from exc
    obj.console.print(f"Strategy written to {project.relative(path)}", markup=False)


COMMANDS = [strategy_cmd]
