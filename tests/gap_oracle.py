"""The brute-force, per-cell gap rule (``status`` shows the same reasons): the reference the bulk
classifier (:mod:`backfiller.planning.classify`) is compared with. A frozen copy of the
per-cell rule (``detect_gap`` and the broken-manifest case of ``gap_of``) as it was before
gaps were classified in bulk, plus the ``missing_upstream`` rule (second, after a broken
manifest: the observation's upstream keys that the mappings require and that do not exist)
and the keys declared through their upstream keys (an asset with another scheme than the
manifests': a month whose days are declared is missing, not undeclared); change it only
together with the README's vocabulary."""

from __future__ import annotations

from backfiller.assets import Asset
from backfiller.ledger import PartitionStatus
from backfiller.manifests import BrokenManifest
from backfiller.planning.gaps import Gap, GapReason
from backfiller.planning.state import Observation


def oracle_gap(asset: Asset, obs: Observation, broken: BrokenManifest | None) -> Gap | None:
    if broken is not None:
        return Gap(
            asset.key,
            obs.partition_key,
            GapReason.MANIFEST_CHANGED,
            f"{broken.describe()}; apply, rerun and replay are refused until it is fixed",
            None,
            obs.stored_rows,
        )
    rec = obs.record
    rows, expected = obs.stored_rows, obs.expected_count

    def gap(reason: GapReason, detail: str) -> Gap:
        return Gap(asset.key, obs.partition_key, reason, detail, expected, rows)

    if obs.upstream_missing:
        named = "; ".join(
            f"{up} {', '.join(keys[:3])}" + (f" and {len(keys) - 3} more" if len(keys) > 3 else "")
            for up, keys in obs.upstream_missing.items()
        )
        return gap(
            GapReason.MISSING_UPSTREAM,
            "it needs upstream partitions that are not keys of their asset's partitions (before "
            f"its start, past its end, or a value it does not list): {named}",
        )
    if obs.missing_files:
        return gap(
            GapReason.MISSING_PARTITION,
            f"the Delta log references {obs.missing_files} data file(s) of this partition that "
            f"are gone: its {rows} row(s) cannot be read",
        )
    if rec is not None and rec.status is PartitionStatus.FAILED:
        return gap(GapReason.FAILED_RUN, f"the last attempt failed: {rec.last_error or '?'}")
    if rec is not None and rec.status is PartitionStatus.MATERIALIZING:
        return gap(
            GapReason.FAILED_RUN,
            f"run {rec.last_run_id} did not finish this partition (crash?); resume it",
        )
    if rec is not None and rec.status is PartitionStatus.CHECK_FAILED:
        return gap(GapReason.CHECK_FAILED, f"checks failed: {rec.last_error or '?'}")
    if rec is None and rows > 0:
        return gap(GapReason.ORPHAN_OUTPUT, f"{rows} stored rows with no ledger record")
    if rec is None and not expected and obs.declared_upstream is None:
        declared = "declares 0 records" if expected == 0 else "declares nothing"
        return gap(
            GapReason.NO_EXPECTED_INPUT,
            f"the manifest {declared} for this partition; check that the seed data has "
            "records for it",
        )
    if rows == 0 and (rec is None or (rec.row_count or 0) > 0 or expected):
        if rec is None and expected is None:  # declared through its upstream keys
            return gap(
                GapReason.MISSING_PARTITION,
                f"its upstream keys are declared ({obs.declared_upstream}); nothing stored",
            )
        if rec is None:
            return gap(GapReason.MISSING_PARTITION, f"expected {expected} rows; none stored")
        return gap(
            GapReason.MISSING_PARTITION,
            f"the ledger records {rec.row_count} rows (version {rec.data_version}); none stored",
        )
    assert rec is not None
    if rec.manifest_checksum and obs.manifest_checksum != rec.manifest_checksum:
        return gap(
            GapReason.MANIFEST_CHANGED,
            f"built from {rec.manifest_id}; the declaration is now {obs.manifest_id} "
            "with a different checksum",
        )
    if asset.expects_manifest_count and expected is not None and rows != expected:
        return gap(GapReason.COUNT_MISMATCH, f"{rows} rows stored, the manifest expects {expected}")
    if rec.status is PartitionStatus.STALE:
        why = obs.stale_reason
        return gap(
            GapReason.UPSTREAM_CHANGED,
            f"marked stale: {why}" if why else "marked stale in the ledger",
        )
    if _upstream_moved(rec.upstream_versions, obs):
        return gap(
            GapReason.UPSTREAM_CHANGED, "it consumed an upstream version that is not current"
        )
    if not obs.report_exists:
        return gap(GapReason.MISSING_PARTITION_REPORT, "data and ledger agree; the report is gone")
    return None


def _upstream_moved(consumed: dict[str, dict[str, int | None]], obs: Observation) -> bool:
    for up, keys in obs.upstream_current.items():
        for key, version in keys.items():
            if consumed.get(up, {}).get(key) != version:
                return True
    return False
