"""A small project whose assets fail on demand (marker files in its folder control them),
shared by the retry tests and the crash tests: a daily scheme from 2026-01-01; ``lab/flaky``
raises ``OSError`` (transient) until ``flaky.ok`` exists; ``lab/broken`` raises ``ValueError``
(not transient) until ``broken.ok`` exists; ``version.txt`` changes what every asset computes.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

LAB_MODULE = "backfiller_lab_assets"
STEADY, FLAKY, FLAKY_DOWN, BROKEN, SLOW = (
    "lab/steady",
    "lab/flaky",
    "lab/flaky_down",
    "lab/broken",
    "lab/slow",
)
LAB_KEY = "2026-01-05"
LAB_KEY_2 = "2026-01-06"

LAB_TOML = f"""
[project]
name = "lab"
assets_module = "{LAB_MODULE}"
store = "data/lake"
state_dir = ".backfiller"
manifests = "data/manifests"
report_dir = "reports"
operator = "lab-operator"

[partitions]
kind = "daily"
start = "2026-01-01"

[downstream]
consumers = ["ext/dashboard"]
"""

LAB_ASSETS = '''
"""Assets that fail on demand: marker files in the project folder control them."""

from pathlib import Path

from backfiller import AssetContext, asset
from backfiller.checks import unique_key

HOOK = None  # a test may set a callable, called with the context inside lab/slow


def _rows(context: AssetContext, tag: str) -> list[dict[str, str]]:
    version = Path(context.project_root, "version.txt")
    v = version.read_text().strip() if version.exists() else "1"
    return [
        {"id": f"{tag}-{i}", "value": f"{tag}-{v}", "partition_key": context.partition_key}
        for i in range(3)
    ]


@asset("lab/steady", idempotency_key=("id", "partition_key"), checks=[unique_key()])
def steady(context: AssetContext):
    return _rows(context, "steady")


@asset("lab/flaky", idempotency_key=("id", "partition_key"), checks=[unique_key()])
def flaky(context: AssetContext):
    if not Path(context.project_root, "flaky.ok").exists():
        raise OSError("object store temporarily unavailable")
    return _rows(context, "flaky")


@asset(
    "lab/flaky_down",
    idempotency_key=("id", "partition_key"),
    deps=["lab/flaky"],
    checks=[unique_key()],
)
def flaky_down(context: AssetContext):
    return [
        {"id": r["id"], "value": r["value"] + "-down", "partition_key": context.partition_key}
        for r in context.upstream("lab/flaky").to_pylist()
    ]


@asset("lab/broken", idempotency_key=("id", "partition_key"), checks=[unique_key()])
def broken(context: AssetContext):
    if not Path(context.project_root, "broken.ok").exists():
        raise ValueError("column 'amount' is not a number")
    return _rows(context, "broken")


@asset("lab/slow", idempotency_key=("id", "partition_key"), checks=[unique_key()])
def slow(context: AssetContext):
    if HOOK is not None:
        HOOK(context)
    return _rows(context, "slow")
'''


def write_lab(root: Path) -> Path:
    """Lay the lab project out in ``root`` (created); return it."""
    root.mkdir(parents=True)
    (root / "backfiller.toml").write_text(LAB_TOML, encoding="utf-8")
    (root / f"{LAB_MODULE}.py").write_text(textwrap.dedent(LAB_ASSETS), encoding="utf-8")
    return root
