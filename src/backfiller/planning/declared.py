"""What declares a key no manifest names, when assets have different schemes.

Manifests declare the keys of the partitions data arrives in (days, say). A rollup with a
scheme of its own (months) has keys no manifest names: its input is declared through the keys
it reads. Such a cell is declared by the manifests of its upstream keys, transitively — so a
month whose days are declared but that was never computed is a missing partition, not a
partition with nothing declared. With a single scheme nothing is declared this way (every
asset has the manifests' keys), so the gap rules stay exactly as they are.
"""

from __future__ import annotations

from backfiller.assets import AssetGraph
from backfiller.manifests import ManifestRegistry
from backfiller.refs import AssetPartition

__all__ = ["declared_upstream", "several_schemes"]


def several_schemes(graph: AssetGraph) -> bool:
    """Whether the graph's assets have more than one scheme."""
    found: list[object] = []
    for a in graph.keys:
        scheme = graph.scheme(a)
        if scheme not in found:
            found.append(scheme)
    return len(found) > 1


def declared_upstream(
    graph: AssetGraph, manifests: ManifestRegistry, asset: str, key: str
) -> str | None:
    """The manifests (``"m-1,m-2"``, sorted) declaring the upstream keys ``key`` of ``asset``
    reads, transitively, up to the first declared key on each path; ``None`` when ``key`` is
    declared itself, or nothing upstream is."""
    if manifests.for_partition(key) is not None:
        return None
    ids: set[str] = set()
    seen: set[AssetPartition] = set()
    stack = [
        AssetPartition(up, k)
        for up, ks in graph.upstream_partitions(asset, key).items()
        for k in ks
    ]
    while stack:
        node = stack.pop()
        if node in seen:
            continue
        seen.add(node)
        declared = manifests.for_partition(node.partition_key)
        if declared is not None:
            ids.add(declared[0].manifest_id)
            continue
        for up, keys in graph.upstream_partitions(*node).items():
            stack.extend(AssetPartition(up, k) for k in keys)
    return ",".join(sorted(ids)) or None
