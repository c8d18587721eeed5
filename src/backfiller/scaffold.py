"""``backfiller init``: a minimal new project — ``backfiller.toml``, an assets module with one
daily asset, and the folders the tool reads — that ``status``, ``gaps`` and ``rerun`` work on
at once. Nothing is overwritten: a folder that already holds a project is refused."""

from __future__ import annotations

import re
from datetime import date, timedelta
from pathlib import Path

from backfiller.atomic import atomic_write_text
from backfiller.errors import BadInputError

__all__ = ["init_project"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")

_TOML = """\
# A backfiller project. Every path is relative to this folder and stays inside it.

[project]
name = "{name}"
assets_module = "assets"          # assets.py in this folder
store = "data/lake"               # Delta tables, one per asset
manifests = "data/manifests"      # what each partition should contain (see below)
report_dir = "reports"

[partitions]
kind = "daily"                    # also: hourly, weekly, monthly, yearly, cron, static, dynamic
start = "{start}"
timezone = "UTC"

[policy]
# the assets a backfill may recompute; protected baselines; checks the engine requires
backfill_assets = ["{asset}"]

# A backfill plan needs a manifest that declares each partition's input and expected row
# count (JSON, in data/manifests/; 'backfiller plan' names what is missing). Until then,
# 'backfiller rerun --asset {asset} --partition KEY' recomputes a partition.
"""

_ASSETS = '''\
"""The assets of {name}: one daily table to start from. Replace its body with your own."""

from backfiller import AssetContext, asset
from backfiller.checks import not_null, unique_key


@asset(
    "{asset}",
    idempotency_key=("event_id", "partition_key"),
    checks=[unique_key(), not_null("event_id")],
)
def events(context: AssetContext):
    """The rows of one day (the partition key); the tool adds ``partition_key``."""
    return [
        {{"event_id": f"{{context.partition_key}}-{{i}}", "value": i}} for i in range(3)
    ]
'''


def init_project(folder: Path, *, name: str | None = None, today: date | None = None) -> list[Path]:
    """Write a new project into ``folder`` (created if needed); return the files written.
    Refused (exit 2, nothing written) when the folder already holds a project or an assets
    module, or the name is not a plain identifier."""
    folder = Path(folder)
    name = name or folder.resolve().name
    if not _NAME.match(name):
        raise BadInputError(
            f"Project name {name!r} is not a plain name",
            hint="use letters, digits, '_', '.' or '-', e.g. --name sales",
        )
    existing = [folder / n for n in ("backfiller.toml", "assets.py") if (folder / n).exists()]
    if existing:
        raise BadInputError(
            f"{existing[0]} exists already: {folder} holds a project",
            hint="run 'backfiller init' in a new folder; nothing was written",
        )
    # the first day of last month: there are complete partitions from the first minute
    start = ((today or date.today()).replace(day=1) - timedelta(days=1)).replace(day=1)
    asset_key = f"{name.replace('-', '_').replace('.', '_')}/events"
    written = [
        atomic_write_text(
            folder / "backfiller.toml",
            _TOML.format(name=name, start=start.isoformat(), asset=asset_key),
        ),
        atomic_write_text(folder / "assets.py", _ASSETS.format(name=name, asset=asset_key)),
    ]
    for sub in ("data/manifests", "data/lake", "reports"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    return written
