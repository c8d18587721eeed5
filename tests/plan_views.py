"""What a plan says of each partition key, whichever its kind (one entry per partition, or
ranges): for tests that hold a plan of ranges to the per-cell plan."""

from __future__ import annotations

from typing import Any

from backfiller.planning import PlanDocument, RangePlan


def per_key(document: Any) -> dict[str, dict[str, Any]]:
    """What a plan says of each partition key, whichever its kind: the seed's values, the
    gaps (asset, reason, action) and the targets."""
    if isinstance(document, PlanDocument):
        return {
            e.partition_key: {
                "gap_reason": e.gap_reason,
                "proposed_action": e.proposed_action,
                "target_assets": e.target_assets,
                "idempotency_guard": e.idempotency_guard,
                "upstream_manifest_id": e.upstream_manifest_id,
                "expected_input_count": e.expected_input_count,
                "current_output_count": e.current_output_count,
                "gaps": [(g.asset, g.gap_reason, g.proposed_action) for g in e.asset_gaps],
            }
            for e in document.partitions
        }
    assert isinstance(document, RangePlan)
    declared = {k: (m, n) for k, m, n in document.declared()}
    current = [v for v, n in document.columns.current_output_count for _ in range(n)]
    found: dict[str, dict[str, Any]] = {}
    for entry, keys in document.spans():
        targets = document.target_sets[entry.targets]
        for key in keys:
            found[key] = {
                "gap_reason": entry.gap_reason,
                "proposed_action": entry.proposed_action,
                "target_assets": [document.assets[i] for i in targets.assets],
                "idempotency_guard": targets.idempotency_guard,
                "upstream_manifest_id": declared[key][0],
                "expected_input_count": declared[key][1],
                "current_output_count": current[document.request.keys.index(key)],
                "gaps": [
                    (document.assets[g.asset], g.gap_reason, g.proposed_action)
                    for g in document.gap_sets[entry.gaps]
                ],
            }
    return found
