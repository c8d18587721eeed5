"""The recovery policy: ``[policy]`` in ``backfiller.toml``, enforced by the engine.

The seed's "smallest follow-up action" is a recovery strategy naming five things; the policy
holds them as settings, and the engine refuses what they forbid::

    [policy]
    default_partition = "2026-04-17"           # the same setting as [partitions] default
    backfill_assets = ["raw", "silver"]        # may be backfilled (absent or empty: all)
    protected = ["silver@2026-03-01", "gold"]  # never overwritten without a recorded override
    dry_run_report_path = "{report_dir}/backfill"   # where plans go
    strategy_path = "docs/recovery-strategy.md"     # where 'backfiller strategy' writes
    strategy_heading = "Recovery strategy"

    [policy.required_checks]                   # checks that must run after a backfill
    raw = ["row_count_matches_manifest", "idempotency_key_unique"]

* a plan, rerun or replay that would recompute an asset not in ``backfill_assets`` is refused
  (exit 2) naming the asset and the allowed ones;
* a required check that the asset does not declare is a load error (exit 2);
* a protected object that already holds published data is refused like a protected baseline in
  the ledger: only with ``--override-protected --reason TEXT``, and the override is recorded.
  Its first materialization is not an overwrite and is allowed.

This module knows nothing of :class:`~backfiller.project.Project` (which loads it).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from backfiller.assets import AssetGraph
from backfiller.errors import ConfigError, InvalidPartitionKeyError, PreconditionError
from backfiller.ledger.records import Protection
from backfiller.locations import Location, ObjectPath
from backfiller.names import did_you_mean
from backfiller.partitions import PartitionScheme, TimeWindowScheme
from backfiller.paths import configured_path
from backfiller.store.location import is_uri

__all__ = [
    "POLICY_DEFAULTS",
    "Policy",
    "ProtectedObject",
    "effective_protection",
    "parse_policy",
    "require_allowed",
    "validate_policy",
]

REPORT_DIR_PLACEHOLDER = "{report_dir}"
DEFAULT_STRATEGY_PATH = "docs/recovery-strategy.md"
DEFAULT_STRATEGY_HEADING = "Recovery strategy"
POLICY_REASON = "protected by [policy] in backfiller.toml"

#: The ``[policy]`` settings and their defaults (every one can come from the environment).
POLICY_DEFAULTS: dict[str, Any] = {
    "default_partition": "",
    "backfill_assets": [],
    "protected": [],
    "dry_run_report_path": "",
    "required_checks": {},
    "strategy_path": "",
    "strategy_heading": "",
}


@dataclass(frozen=True)
class ProtectedObject:
    """``asset`` (every partition) or ``asset@partition``: not to be overwritten directly."""

    asset: str
    partition_key: str | None = None

    @property
    def spec(self) -> str:
        return self.asset if self.partition_key is None else f"{self.asset}@{self.partition_key}"

    def covers(self, asset: str, key: str) -> bool:
        return asset == self.asset and self.partition_key in (None, key)


@dataclass(frozen=True)
class Policy:
    """The recovery policy of a project (see the module docstring)."""

    default_partition: str | None = None
    backfill_assets: tuple[str, ...] = ()  # empty: every asset
    protected: tuple[ProtectedObject, ...] = ()
    dry_run_report_path: Location | None = None  # None: <report_dir>/backfill
    required_checks: dict[str, tuple[str, ...]] = field(default_factory=dict)
    strategy_path: Location = Path(DEFAULT_STRATEGY_PATH)
    strategy_heading: str = DEFAULT_STRATEGY_HEADING

    def allows(self, asset: str) -> bool:
        return not self.backfill_assets or asset in self.backfill_assets

    def allowed(self, graph: AssetGraph) -> list[str]:
        """The assets that may be backfilled, in dependency order."""
        return [a for a in graph.keys if self.allows(a)]

    def protection(self, asset: str, key: str) -> ProtectedObject | None:
        for p in self.protected:
            if p.covers(asset, key):
                return p
        return None


def _strings(value: Any, name: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise ConfigError(
            f"[policy] {name} must be a list of non-empty strings, got {value!r}",
            hint=f'for example: {name} = ["week06/ingestion/raw_ticket_events_partitioned"]',
        )
    return [v.strip() for v in value]


def _path(
    value: str, name: str, *, root: Path, report_dir: Location, allow_outside: bool
) -> Location:
    text = value.strip()
    if is_uri(text):
        raise ConfigError(
            f"[policy] {name} = {value!r}: a URI is not taken here",
            hint=f"set [project] report_dir to the URI and {name} = "
            f'"{REPORT_DIR_PLACEHOLDER}/…" (the default for plans)',
        )
    if text.startswith(REPORT_DIR_PLACEHOLDER):
        rest = text[len(REPORT_DIR_PLACEHOLDER) :].lstrip("/\\")
        if not rest:
            return report_dir
        if isinstance(report_dir, ObjectPath):  # under a prefix on object storage
            try:
                return report_dir.joinpath(rest)
            except ValueError as exc:
                raise ConfigError(
                    f"[policy] {name} = {value!r} leaves [project] report_dir: {exc}",
                    hint=f"use a path under {REPORT_DIR_PLACEHOLDER}",
                ) from exc
        return configured_path(report_dir, rest, f"[policy] {name}", allow_outside=allow_outside)
    if "{" in text or "}" in text:
        raise ConfigError(
            f"[policy] {name} = {value!r}: the only placeholder is {REPORT_DIR_PLACEHOLDER} "
            "at the start",
            hint=f'for example: {name} = "{REPORT_DIR_PLACEHOLDER}/backfill"',
        )
    return configured_path(root, text, f"[policy] {name}", allow_outside=allow_outside)


def parse_policy(
    section: Mapping[str, Any],
    *,
    root: Path,
    report_dir: Location,
    default_partition: str | None,
    allow_outside: bool = False,
) -> Policy:
    """The policy from the (environment-merged) ``[policy]`` table; shapes only — what needs
    the asset graph is :func:`validate_policy`."""
    unknown = sorted(set(section) - set(POLICY_DEFAULTS))
    if unknown:
        raise ConfigError(
            f"[policy] has unknown setting(s): {', '.join(unknown)}"
            f"{did_you_mean(unknown[0], POLICY_DEFAULTS)}",
            hint="known settings: " + ", ".join(POLICY_DEFAULTS),
        )
    values = {**POLICY_DEFAULTS, **section}
    for name in ("dry_run_report_path", "strategy_path", "strategy_heading", "default_partition"):
        if not isinstance(values[name], str):
            raise ConfigError(f"[policy] {name} must be a string, got {values[name]!r}")
    protected: list[ProtectedObject] = []
    for spec in _strings(values["protected"], "protected"):
        asset, sep, key = spec.partition("@")
        if not asset or (sep and not key):
            raise ConfigError(
                f"[policy] protected: {spec!r} is neither 'asset' nor 'asset@partition'",
                hint='for example: protected = ["my/asset@2026-03-01", "my/other_asset"]',
            )
        protected.append(ProtectedObject(asset, key or None))
    required_raw = values["required_checks"]
    if not isinstance(required_raw, Mapping):
        raise ConfigError(
            f"[policy] required_checks must be a table (asset = [check names]), "
            f"got {required_raw!r}",
            hint='for example: [policy.required_checks] "my/asset" = ["idempotency_key_unique"]',
        )
    required = {
        str(asset): tuple(_strings(names, f"required_checks.{asset!r}"))
        for asset, names in required_raw.items()
    }
    dry_run = values["dry_run_report_path"].strip()
    return Policy(
        default_partition=default_partition,
        backfill_assets=tuple(
            dict.fromkeys(_strings(values["backfill_assets"], "backfill_assets"))
        ),
        protected=tuple(protected),
        dry_run_report_path=(
            _path(
                dry_run,
                "dry_run_report_path",
                root=root,
                report_dir=report_dir,
                allow_outside=allow_outside,
            )
            if dry_run
            else None
        ),
        required_checks=required,
        strategy_path=_path(
            values["strategy_path"].strip() or DEFAULT_STRATEGY_PATH,
            "strategy_path",
            root=root,
            report_dir=report_dir,
            allow_outside=allow_outside,
        ),
        strategy_heading=values["strategy_heading"].strip() or DEFAULT_STRATEGY_HEADING,
    )


def _parse_anywhere(scheme: PartitionScheme, key: str) -> str:
    """A well-formed key of the scheme, wherever the scheme's start and end are (a protected
    partition outside them protects nothing, and the start may come from the environment)."""
    if isinstance(scheme, TimeWindowScheme):
        scheme = dataclasses.replace(scheme, start=TimeWindowScheme.start, end=None)
    return scheme.parse(key)


def validate_policy(policy: Policy, graph: AssetGraph, scheme: PartitionScheme) -> None:
    """Every asset, partition and check the policy names must exist; one message names every
    problem (a :class:`ConfigError`, raised by ``load_project``)."""
    known = ", ".join(graph.keys)
    problems: list[str] = []
    for asset in policy.backfill_assets:
        if asset not in graph:
            problems.append(f"backfill_assets: unknown asset {asset!r}")
    for p in policy.protected:
        if p.asset not in graph:
            problems.append(f"protected: unknown asset {p.asset!r} in {p.spec!r}")
        elif p.partition_key is not None:
            try:
                _parse_anywhere(graph.scheme(p.asset), p.partition_key)
            except InvalidPartitionKeyError as exc:
                problems.append(f"protected: {p.spec!r}: {exc.message}")
    for asset, names in policy.required_checks.items():
        if asset not in graph:
            problems.append(f"required_checks: unknown asset {asset!r}")
            continue
        declared = [c.name for c in graph.get(asset).checks]
        for name in names:
            if name not in declared:
                problems.append(
                    f"required_checks: asset {asset!r} does not declare the required check "
                    f"{name!r} (its checks: {', '.join(declared) or 'none'})"
                )
    if problems:
        listing = "\n".join(f"  - {p}" for p in problems)
        raise ConfigError(
            f"[policy] in backfiller.toml is invalid ({len(problems)} problem"
            f"{'s' if len(problems) != 1 else ''}):\n{listing}",
            hint=f"known assets: {known}; declare the check on the asset (checks=[...]) or "
            "remove it from [policy.required_checks]",
        )


def require_allowed(
    policy: Policy, graph: AssetGraph, assets: Iterable[str], *, action: str
) -> None:
    """Refuse (exit 2, nothing written) when ``action`` would recompute an asset that
    ``[policy] backfill_assets`` does not allow."""
    wanted = list(dict.fromkeys(assets))
    refused = [a for a in wanted if not policy.allows(a)]
    if refused:
        allowed = ", ".join(policy.allowed(graph)) or "none"
        raise PreconditionError(
            f"{action} would recompute {', '.join(refused)}, which [policy] backfill_assets "
            f"does not allow (allowed: {allowed})",
            hint="narrow the request to allowed assets, or add the asset to [policy] "
            "backfill_assets in backfiller.toml (a reviewed change)",
            asset=refused[0],
        )


def effective_protection(
    policy: Policy,
    recorded: Protection | None,
    asset: str,
    key: str,
    has_data: Callable[[], bool],
) -> Protection | None:
    """Who protects (asset, key): the ledger's recorded protection, else the policy's — which
    only guards data that exists (the first materialization of a protected object overwrites
    nothing). ``has_data`` is asked only when the policy protects the partition."""
    if recorded is not None:
        return recorded
    declared = policy.protection(asset, key)
    if declared is None or not has_data():
        return None
    return Protection(asset, key, f"{POLICY_REASON}: {declared.spec}", "policy", "")
