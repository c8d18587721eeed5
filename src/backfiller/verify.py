"""``backfiller verify``: the stored data checked against the ledger, partition by partition —
every data file the log references still exists, and the stored content still has the
fingerprint the ledger recorded when it was published. Read-only."""

from __future__ import annotations

from dataclasses import dataclass

from backfiller.errors import DamagedStoreError
from backfiller.ledger import LedgerReader, PartitionStatus
from backfiller.project import Project

__all__ = ["StoreProblem", "Verification", "verify_store"]


@dataclass(frozen=True)
class StoreProblem:
    asset: str
    partition_key: str | None  # None: the whole table
    detail: str

    def __str__(self) -> str:
        where = self.asset if self.partition_key is None else f"{self.asset} {self.partition_key}"
        return f"{where}: {self.detail}"


@dataclass(frozen=True)
class Verification:
    checked: int
    problems: list[StoreProblem]


def verify_store(project: Project, reader: LedgerReader) -> Verification:
    """Every published partition of every asset, against the ledger's record of it."""
    store = project.store
    checked = 0
    problems: list[StoreProblem] = []
    for asset in project.graph.keys:
        published = [
            r for r in reader.partitions.all(asset) if r.status is PartitionStatus.MATERIALIZED
        ]
        if not published:
            continue
        try:
            lost = store.missing_files(asset)
            counts = store.partition_counts(asset)
        except DamagedStoreError as exc:
            problems.append(StoreProblem(asset, None, exc.message))
            continue
        for record in published:
            key = record.partition_key
            checked += 1
            if lost.get(key):
                problems.append(
                    StoreProblem(
                        asset,
                        key,
                        f"{lost[key]} data file(s) that the Delta log references are gone",
                    )
                )
                continue
            if not counts.get(key):
                if record.row_count:
                    problems.append(
                        StoreProblem(
                            asset, key, f"no rows stored; the ledger records {record.row_count}"
                        )
                    )
                continue
            stored = store.fingerprint(asset, key)
            if stored != record.fingerprint:
                problems.append(
                    StoreProblem(
                        asset,
                        key,
                        f"stored content fingerprint {str(stored)[:12]}… differs from the "
                        f"ledger's {str(record.fingerprint)[:12]}… (version {record.data_version})",
                    )
                )
    return Verification(checked, problems)
