"""The seed's command, verbatim::

    python -m pipelines.data_factory.backfill_plan --partition 2026-04-17 --mode dry-run

It is ``backfiller plan`` run on this project (the folder this command runs in).
"""

from __future__ import annotations

import sys

from backfiller.cli.main import main as backfiller_main


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    return backfiller_main(["--project", ".", "plan", *args])


if __name__ == "__main__":
    sys.exit(main())
