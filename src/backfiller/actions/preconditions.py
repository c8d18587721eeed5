"""What must hold before a run writes anything — checked here, once, for every action.

* ``[policy] backfill_assets``: a step that computes an asset the policy does not allow;
* a manifest that is broken (a simulation's stand-in failing validation) for a computed key;
* a computed partition whose partition mappings require upstream keys that do not exist
  (``missing_upstream``);
* a protected baseline — a ledger protection, or a ``[policy] protected`` object that holds
  published data — unless the run carries an override reason (recorded per partition).

Each refusal is exit 2 with nothing written.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from backfiller.actions.spec import RunSpec, StepSource
from backfiller.errors import PreconditionError
from backfiller.ledger import Ledger, Protection
from backfiller.policy import effective_protection, require_allowed
from backfiller.project import Project
from backfiller.refs import AssetPartition

__all__ = [
    "MissingUpstreamError",
    "ProtectedBaselineError",
    "protection_of",
    "require_preconditions",
]


class ProtectedBaselineError(PreconditionError):
    """The run would overwrite protected baselines and carries no override reason."""


class MissingUpstreamError(PreconditionError):
    """The run would compute partitions whose upstream partitions do not exist."""


def require_preconditions(
    project: Project, ledger: Ledger, spec: RunSpec
) -> list[tuple[AssetPartition, Protection]]:
    """Refuse ``spec`` if a precondition is missing; return the protected partitions it
    overwrites under its override reason."""

    def computed() -> Iterator[AssetPartition]:  # read from the steps again, never listed
        return (s.target for s in spec.steps if s.source is StepSource.COMPUTE)

    rank = {a: i for i, a in enumerate(project.graph.keys)}
    require_allowed(
        project.policy,
        project.graph,
        sorted({t.asset for t in computed()}, key=rank.__getitem__),
        action=f"This {spec.action.value}",
    )
    project.manifests.require_usable(dict.fromkeys(t.partition_key for t in computed()))
    require_upstreams(project, computed())
    stored: dict[str, dict[str, int]] = {}
    protected = [
        (s.target, p)
        for s in spec.steps
        if s.publishes and (p := protection_of(project, ledger, *s.target, stored)) is not None
    ]
    if protected and not spec.override_reason:
        listing = "; ".join(f"{t} ({p.reason}, by {p.operator})" for t, p in protected)
        raise ProtectedBaselineError(
            f"Refusing to overwrite protected baseline(s): {listing}",
            hint="pass --override-protected --reason TEXT to overwrite them (it is recorded)",
        )
    return protected


def require_upstreams(project: Project, computed: Iterable[AssetPartition]) -> None:
    """Refuse to compute a partition whose mappings require upstream keys that are not keys
    of the upstream's scheme, or upstream partitions that are themselves so blocked (at any
    depth): it would read less than it needs."""
    seen: dict[tuple[str, str], bool] = {}
    lacking = [
        (t, missing)
        for t in computed
        if (missing := project.graph.blocked_upstream_partitions(*t, seen))
    ]
    if not lacking:
        return
    named = []
    for target, missing in lacking[:5]:
        needs = ", ".join(
            f"{up} {' '.join(keys[:3])}" + (f" and {len(keys) - 3} more" if len(keys) > 3 else "")
            for up, keys in missing.items()
        )
        named.append(f"{target.asset} {target.partition_key} needs {needs}")
    more = f"; and {len(lacking) - 5} more" if len(lacking) > 5 else ""
    listing = "; ".join(named) + more
    raise MissingUpstreamError(
        f"Refusing to compute partition(s) whose upstream partitions do not exist "
        f"(missing_upstream): {listing}",
        hint="extend the upstream's partitions (its start or end, or add the value), or "
        "declare the mapping with allow_missing=True to read only the keys that exist",
    )


def protection_of(
    project: Project,
    ledger: Ledger,
    asset: str,
    key: str,
    stored: dict[str, dict[str, int]],
) -> Protection | None:
    """The ledger's protection of (asset, key), else the policy's — which only guards data
    that exists: the first materialization of a protected object overwrites nothing."""

    def has_data() -> bool:
        record = ledger.partitions.get(asset, key)
        if record is not None and record.data_version is not None:
            return True
        if asset not in stored:
            stored[asset] = project.store.partition_counts(asset)
        return bool(stored[asset].get(key))

    recorded = ledger.protections.get(asset, key)
    return effective_protection(project.policy, recorded, asset, key, has_data)
