"""Gap reasons of many (asset, partition) cells at once: one DuckDB query per batch of assets
over the tables :mod:`backfiller.planning.bulk` reads, not a Python function per cell.

The query's ``CASE`` is the rule of DESIGN.md ("Gap reasons → proposed actions"), first match
wins, in this order: a broken stand-in manifest, upstream partitions the mappings require that
do not exist (``missing_upstream``), data files gone, a failed or unfinished
attempt, failed checks, stored rows without a record, nothing declared, nothing stored, a
changed declaration, a count the manifest contradicts, a stale or moved upstream, a missing
report. Each branch has a name (:class:`Branch`) that says which detail text the gap gets.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from enum import Enum
from typing import Any

import pyarrow as pa

from backfiller.asset_keys import shared_scheme
from backfiller.duck import cursor, scoped
from backfiller.ledger import LedgerReader
from backfiller.ledger.partitions import STATE_COLUMNS
from backfiller.planning.bulk import (
    key_table,
    ledger_table,
    report_table,
    store_table,
    with_checksums,
)
from backfiller.planning.declared import declared_upstream, several_schemes
from backfiller.planning.gaps import (
    Gap,
    GapReason,
    PartitionState,
    missing_upstream_detail,
    not_stored_detail,
    upstream_changed_detail,
)
from backfiller.planning.ranges import KeyRange
from backfiller.planning.state import OnProgress, StateSource, stale_reasons_of

__all__ = [
    "Branch",
    "bulk_gaps",
    "classified_batches",
    "gap_ranges",
    "islands",
    "state_ranges",
]

#: about how many cells one query classifies (bounds the memory of a batch; two batches are
#: held at once when there are several: one classified, the next one's sources read)
BATCH_CELLS = 100_000


class Branch(Enum):
    """Which rule found the gap (several rules give the same reason, with different details)."""

    BROKEN_MANIFEST = "broken_manifest"
    MISSING_UPSTREAM = "missing_upstream"
    FILES_GONE = "files_gone"
    FAILED = "failed"
    UNFINISHED = "unfinished"
    CHECKS_FAILED = "checks_failed"
    ORPHAN = "orphan"
    NOTHING_DECLARED = "nothing_declared"
    NOT_STORED = "not_stored"
    MANIFEST_CHANGED = "manifest_changed"
    COUNT_MISMATCH = "count_mismatch"
    UPSTREAM_CHANGED = "upstream_changed"
    REPORT_GONE = "report_gone"


_REASONS = {
    Branch.BROKEN_MANIFEST: GapReason.MANIFEST_CHANGED,
    Branch.MISSING_UPSTREAM: GapReason.MISSING_UPSTREAM,
    Branch.FILES_GONE: GapReason.MISSING_PARTITION,
    Branch.FAILED: GapReason.FAILED_RUN,
    Branch.UNFINISHED: GapReason.FAILED_RUN,
    Branch.CHECKS_FAILED: GapReason.CHECK_FAILED,
    Branch.ORPHAN: GapReason.ORPHAN_OUTPUT,
    Branch.NOTHING_DECLARED: GapReason.NO_EXPECTED_INPUT,
    Branch.NOT_STORED: GapReason.MISSING_PARTITION,
    Branch.MANIFEST_CHANGED: GapReason.MANIFEST_CHANGED,
    Branch.COUNT_MISMATCH: GapReason.COUNT_MISMATCH,
    Branch.UPSTREAM_CHANGED: GapReason.UPSTREAM_CHANGED,
    Branch.REPORT_GONE: GapReason.MISSING_PARTITION_REPORT,
}

#: the cells whose keys are declared through their upstream keys, by the cell's number
_DECLARED_AT = """
CREATE OR REPLACE TEMP TABLE declared_at AS
SELECT a.pos * {n} + d.idx AS cell, d.declared_upstream
FROM declared d JOIN assets a USING (asset)
"""

#: the columns of each source the classification (and a plan's digests) read, beside ``cell``
_AT_COLUMNS = {
    "ledger": [c for c in STATE_COLUMNS if c != "partition_key"],  # the cell says the key
    "stored": ["rows", "missing_files"],
    "reports": [],
}


#: each source's rows of the batch's cells, numbered by their cell (``pos * keys + idx``): one
#: integer to join on instead of two strings (keys as strings whatever a store gives: an empty
#: listing may come untyped)
_AT = """
CREATE OR REPLACE TEMP TABLE {name}_at AS
SELECT a.pos * {n} + k.idx AS cell{columns}
FROM {name} t
JOIN keys k ON k.partition_key = CAST(t.partition_key AS VARCHAR)
JOIN assets a ON a.asset = CAST(t.asset AS VARCHAR)
"""


#: a name as one step of a JSON pointer (RFC 6901: ``~`` is ``~0``, ``/`` is ``~1``)
_ESCAPED = "replace(replace({}, '~', '~0'), '/', '~1')"

#: per cell, its gap's rule (``branch``, null: none) and reason; the upstream versions a
#: record consumed are read by a JSON pointer per upstream partition the cell reads (a
#: version that differs from the upstream's recorded one, or is not there, moved)
_CLASSIFY = """
WITH cells AS (
    SELECT a.asset, a.pos, a.expects_count, k.idx, {seq} AS seq, a.pos * {n} + k.idx AS cell,
           k.partition_key, k.manifest_id, k.manifest_checksum, k.expected, k.broken
    FROM {cells}
),
sourced AS (
    SELECT c.*,
           coalesce(s.rows, 0) AS rows, coalesce(s.missing_files, 0) AS missing_files,
           l.status, l.data_version, l.row_count AS recorded_rows,
           l.manifest_id AS recorded_manifest_id, l.manifest_checksum AS recorded_checksum,
           l.upstream_versions, l.last_run_id, l.last_error,
           r.cell IS NOT NULL AS report_exists, dd.declared_upstream
    FROM cells c
    LEFT JOIN declared_at dd ON dd.cell = c.cell
    LEFT JOIN stored_at s ON s.cell = c.cell
    LEFT JOIN ledger_at l ON l.cell = c.cell
    LEFT JOIN reports_at r ON r.cell = c.cell
),
wanted AS (
    SELECT a.pos * {n} + m.idx AS cell, u.data_version AS current,
           '/' || {escaped_up} || '/' || {escaped_key} AS pointer
    FROM deps d JOIN assets a USING (asset) JOIN mapped m ON m.mapping = d.mapping
    LEFT JOIN upstream u ON u.asset = d.up AND u.partition_key = m.up_key
    WHERE m.present AND a.pos * {n} + m.idx IN (SELECT cell FROM ledger_at)
),
lacking AS (
    SELECT a.pos * {n} + m.idx AS cell,
           list({'up': d.up, 'key': m.up_key} ORDER BY d.dpos, m.pos) AS missing
    FROM deps d JOIN assets a USING (asset) JOIN mapped m ON m.mapping = d.mapping
    WHERE NOT m.present
    GROUP BY ALL
),
moved AS (
    SELECT DISTINCT w.cell FROM wanted w JOIN ledger_at l ON l.cell = w.cell
    WHERE TRY_CAST(json_extract(l.upstream_versions, w.pointer)::VARCHAR AS BIGINT)
          IS DISTINCT FROM w.current
),
branched AS (
    SELECT c.*, lk.missing, CASE
        WHEN broken IS NOT NULL THEN 'broken_manifest'
        WHEN lk.cell IS NOT NULL THEN 'missing_upstream'
        WHEN missing_files > 0 THEN 'files_gone'
        WHEN status = 'failed' THEN 'failed'
        WHEN status = 'materializing' THEN 'unfinished'
        WHEN status = 'check_failed' THEN 'checks_failed'
        WHEN status IS NULL AND rows > 0 THEN 'orphan'
        WHEN status IS NULL AND coalesce(expected, 0) = 0 AND declared_upstream IS NULL
            THEN 'nothing_declared'
        WHEN rows = 0 AND (status IS NULL OR coalesce(recorded_rows, 0) > 0
                           OR coalesce(expected, 0) > 0) THEN 'not_stored'
        WHEN coalesce(recorded_checksum, '') <> ''
             AND manifest_checksum IS DISTINCT FROM recorded_checksum THEN 'manifest_changed'
        WHEN expects_count AND expected IS NOT NULL AND rows <> expected THEN 'count_mismatch'
        WHEN status = 'stale' OR m.cell IS NOT NULL THEN 'upstream_changed'
        WHEN NOT report_exists THEN 'report_gone'
    END AS branch
    FROM sourced c LEFT JOIN moved m ON m.cell = c.cell
    LEFT JOIN lacking lk ON lk.cell = c.cell
)
SELECT b.*, r.reason FROM branched b LEFT JOIN reasons r ON r.branch = b.branch
"""

#: every asset with every key (the assets share one scheme; a cell's ``seq`` is its key's)
_EVERY_CELL = ("assets a CROSS JOIN keys k", "k.idx")
#: only the keys of each asset's own scheme (``member``: which, and each one's ``seq``)
_OWN_CELLS = (
    "member m JOIN assets a ON a.asset = m.asset JOIN keys k ON k.idx = m.idx",
    "m.seq",
)

#: the cells at the edges of the runs of consecutive cells of one asset in one state
#: (consecutive among the asset's own keys, ``seq``): its asset's ``pos``, its state as a small
#: number (its position in :data:`_STATES`; ``materialized``, a cell without a gap, is the
#: last), its key's ``idx`` and ``seq``, and whether a run starts there (the state differs
#: from the previous cell's) and ends there (from the next cell's) — a run of one cell does
#: both; in asset order then key order (one sort of the cells, shared by both neighbours)
_EDGES = """
WITH coded AS (
    SELECT c.pos, c.idx, c.seq, coalesce(s.code, {materialized}) AS code
    FROM classified c LEFT JOIN states s ON s.state = c.reason
),
marked AS (
    SELECT pos, idx, seq, code,
           lag(code) OVER w IS DISTINCT FROM code AS starts,
           lead(code) OVER w IS DISTINCT FROM code AS ends
    FROM coded WINDOW w AS (PARTITION BY pos ORDER BY seq)
)
SELECT pos, code, idx, seq, starts, ends FROM marked WHERE starts OR ends ORDER BY pos, seq
"""

#: the states a cell can be in, numbered for :data:`_EDGES`
_STATES: list[PartitionState] = [s for s in PartitionState if s is not PartitionState.MATERIALIZED]
_STATES.append(PartitionState.MATERIALIZED)

#: the ledger's columns only the gaps' details and a plan's digests read
_DETAIL_COLUMNS = ("manifest_id", "last_run_id", "last_error")
#: the ledger's columns the states are found from
_STATE_COLUMNS = tuple(c for c in STATE_COLUMNS if c not in _DETAIL_COLUMNS)


#: the positions in ``keys`` of the keys some record of the batch has a manifest checksum for
#: (only those are compared with the declaration's)
_CHECKSUMMED = """
SELECT DISTINCT cell % {n} FROM ledger_at WHERE coalesce(manifest_checksum, '') <> ''
"""

#: the data versions of the assets a batch reads: of its own assets (``upstream_in``) from
#: their records, of the others from ``upstream_out``
_UPSTREAM = """
CREATE OR REPLACE TEMP VIEW upstream AS
SELECT asset, partition_key, data_version FROM ledger
WHERE asset IN (SELECT asset FROM upstream_in)
UNION ALL
SELECT asset, partition_key, data_version FROM upstream_out
"""

#: the data versions in ``{table}`` of the assets in the list ``$1``
_VERSIONS_OF = (
    "SELECT asset, partition_key, data_version FROM {table} "
    "WHERE asset IN (SELECT unnest($1::VARCHAR[]))"
)


_GAP_COLUMNS = (
    "asset, pos, idx, partition_key, branch, reason, status, rows, missing_files, expected, "
    "broken, manifest_id, recorded_manifest_id, recorded_rows, data_version, last_run_id, "
    "last_error, missing, declared_upstream"
)


def _batches(
    source: StateSource,
    reader: LedgerReader,
    keys: Sequence[str],
    on_progress: OnProgress | None,
    assets: Sequence[str] | None = None,
    *,
    states_only: bool = False,
) -> Iterator[Any]:
    """One DuckDB relation ``classified`` per batch of ``assets`` (default: every asset, in
    graph order), every cell of the batch with its ``branch`` and ``reason`` (null: no gap).
    ``states_only``: for a reader of the states alone (:func:`islands`), the columns only the
    gaps' details and a plan's digests read are not read (null): the ledger's
    :data:`_DETAIL_COLUMNS`, and a declaration's checksum where no record has one. The
    batches (and, when there is one batch, the Delta logs read for it; with several, those
    are read on the database of the thread reading ahead, closed when it ends: :class:`_Ahead`)
    are classified on a DuckDB database of their own, closed once the last is read
    (:func:`backfiller.duck.scoped`): a thread that
    classifies (a web server's) does not keep the largest batch's memory."""
    with scoped("planning"):
        yield from _classified(source, reader, keys, on_progress, assets, states_only)


def _classified(
    source: StateSource,
    reader: LedgerReader,
    keys: Sequence[str],
    on_progress: OnProgress | None,
    assets: Sequence[str] | None,
    states_only: bool,
) -> Iterator[Any]:
    """:func:`_batches`, in the database it opened."""
    graph = source.graph
    chosen = None if assets is None else set(assets)
    names = graph.keys if chosen is None else [a for a in graph.keys if a in chosen]
    per_batch = max(1, BATCH_CELLS // max(1, len(keys)))
    nested = [k for k in keys if "/" in k]
    key_rows = key_table(source.manifests, keys, checksums=not states_only)
    read = _STATE_COLUMNS if states_only else STATE_COLUMNS
    through = several_schemes(graph)  # keys of a rollup are declared through its upstream
    # assets with different schemes: each asset's cells are the keys its scheme has
    owned = (
        None if shared_scheme(graph, names) is not None else _owned_by_scheme(graph, keys, names)
    )
    reasons = pa.table(
        {
            "branch": [b.value for b in _REASONS],
            "reason": [r.value for r in _REASONS.values()],
        }
    )
    mappings: dict[tuple[Any, int, int], int] = {}
    mapped: list[pa.Table] = []
    #: the data versions of the assets others read, each read from the ledger once: the
    #: tables read so far, and which of them holds each asset's
    upstream_assets = {d.asset for n in names for d in graph.get(n).deps}
    read_tables: list[pa.Table] = []
    versions: dict[str, int] = {}

    def keep_versions(con: Any, table: str, assets: Iterable[str]) -> None:
        """Keep the data versions of those of ``assets`` others read, from the table ``con``
        has registered as ``table``."""
        wanted = [a for a in assets if a in upstream_assets and a not in versions]
        if wanted:
            sql = _VERSIONS_OF.replace("{table}", table)
            read_tables.append(con.sql(sql, params=[wanted]).to_arrow_table())
            versions.update(dict.fromkeys(wanted, len(read_tables) - 1))

    def versions_of(con: Any, assets: Sequence[str]) -> pa.Table:
        """The data versions of ``assets`` (those not read yet: in one query)."""
        unread = [a for a in assets if a not in versions]
        if unread:
            upstream_assets.update(unread)
            with ahead.reading:  # the reader is not read by two threads at once
                unread_versions = ledger_table(reader, unread, ("data_version",))
            con.register("versions", unread_versions)
            keep_versions(con, "versions", unread)
        held = sorted({versions[a] for a in assets})
        con.register("versions", pa.concat_tables([read_tables[i] for i in held]))
        sql = _VERSIONS_OF.replace("{table}", "versions")
        found: pa.Table = con.sql(sql, params=[list(assets)]).to_arrow_table()
        return found

    done, total = 0, len(names)
    starts = range(0, len(names), per_batch)
    #: per asset read by another, the last batch that reads it: a batch keeps the data
    #: versions of its own assets that a later batch reads (its own readers read them from
    #: its records, in place)
    last_reader: dict[str, int] = {}
    for at, name in enumerate(names):
        for dep in graph.get(name).deps:
            last_reader[dep.asset] = max(last_reader.get(dep.asset, -1), at // per_batch)
    ahead = _Ahead(source, reader, read, [names[at : at + per_batch] for at in starts], nested)
    try:
        for number, start in enumerate(starts):
            batch = names[start : start + per_batch]
            deps_rows: dict[str, list[Any]] = {"asset": [], "up": [], "mapping": [], "dpos": []}
            for name in batch:
                for dpos, dep in enumerate(graph.get(name).deps):
                    down_scheme, up_scheme = graph.scheme(name), graph.scheme(dep.asset)
                    signature = (dep.mapping, id(down_scheme), id(up_scheme))
                    if signature not in mappings:
                        mappings[signature] = len(mappings)
                        mine = range(len(keys)) if owned is None else owned[name]
                        mapped.append(
                            _mapped(len(mapped), dep.mapping, keys, mine, down_scheme, up_scheme)
                        )
                    deps_rows["asset"].append(name)
                    deps_rows["up"].append(dep.asset)
                    deps_rows["mapping"].append(mappings[signature])
                    deps_rows["dpos"].append(dpos)
            ups = sorted(set(deps_rows["up"]))
            # one thread: a batch is some 100,000 cells, which threads split into more CPU seconds
            # (and memory), not fewer
            con = cursor("planning")
            try:
                con.register("reasons", reasons)
                con.register(
                    "assets",
                    pa.table(
                        {
                            "asset": pa.array(batch, pa.string()),
                            "pos": pa.array(range(start, start + len(batch)), pa.int64()),
                            "expects_count": [graph.get(a).expects_manifest_count for a in batch],
                        }
                    ),
                )
                ledger, stored, reports = ahead.take(number)  # its records, tables, reports
                con.register("ledger", ledger)
                con.register("keys", key_rows)
                keep_versions(con, "ledger", [a for a in batch if last_reader.get(a, -1) > number])
                for _ in batch:  # one step of progress per asset
                    done += 1
                    if on_progress is not None:
                        on_progress(done, total)
                # the versions of the assets the batch reads: its own assets' from their
                # records, the others' as read before (or now)
                own = set(batch)
                outside = [u for u in ups if u not in own]
                con.register("upstream_out", versions_of(con, outside) if outside else _NO_VERSIONS)
                inside = pa.array([u for u in ups if u in own], pa.string())
                con.register("upstream_in", pa.table({"asset": inside}))
                con.execute(_UPSTREAM)
                con.register("stored", stored)
                con.register("reports", pa.concat_tables(reports))
                con.register(
                    "deps",
                    pa.table(
                        {
                            "asset": pa.array(deps_rows["asset"], pa.string()),
                            "up": pa.array(deps_rows["up"], pa.string()),
                            "mapping": pa.array(deps_rows["mapping"], pa.int64()),
                            "dpos": pa.array(deps_rows["dpos"], pa.int64()),
                        }
                    ),
                )
                con.register("mapped", pa.concat_tables(mapped) if mapped else _NO_MAPPING)
                if owned is not None:
                    con.register("member", _members(batch, owned))
                con.register(
                    "declared", _declared(source, keys, batch, owned) if through else _NONE_DECLARED
                )
                where, seq = _EVERY_CELL if owned is None else _OWN_CELLS
                n = str(len(keys))
                for name in ("ledger", "stored", "reports"):  # numbered by cell
                    columns = "".join(f", t.{c}" for c in _AT_COLUMNS[name])
                    con.execute(
                        _AT.replace("{name}", name).replace("{n}", n).replace("{columns}", columns)
                    )
                if states_only:  # the checksums of the declarations a record is compared with
                    checksummed = _CHECKSUMMED.replace("{n}", n)
                    wanted = [i for (i,) in con.execute(checksummed).fetchall()]
                    key_rows = with_checksums(key_rows, source.manifests, keys, wanted)
                    con.register("keys", key_rows)
                con.execute(_DECLARED_AT.replace("{n}", n))
                # a view, not a table: a reader that wants four columns of it (status's ranges)
                # does not pay for materialising twenty over every cell
                query = (
                    _CLASSIFY.replace("{cells}", where)
                    .replace("{seq}", seq)
                    .replace("{escaped_up}", _ESCAPED.format("d.up"))
                    .replace("{escaped_key}", _ESCAPED.format("m.up_key"))
                )
                con.execute(f"CREATE TEMP VIEW classified AS {query.replace('{n}', n)}")
                yield con
            finally:
                con.close()
            source.store.release(batch)  # its tables are read: no handle of every table stays
    finally:
        ahead.close()  # the thread reading ahead ends, however the caller stopped


class _Ahead:
    """The ledger records, the stored partitions and the reports of each batch of assets
    (``batches``), each batch's read while the one before is classified: in two threads of
    their own when there are several batches (one reads the ledger, the other the Delta logs
    and the folders: much of it waiting on SQLite, the file system or DuckDB, outside
    Python's lock, as is the classification's query; making Python's and Arrow's objects of
    what they read holds it), in the caller's when there is one. The reader is never read by
    two threads at once (:attr:`reading`). The store keeps the files of the last two batches
    it read (the one held, the one read ahead) for :meth:`partition_files`."""

    def __init__(
        self,
        source: StateSource,
        reader: LedgerReader,
        columns: Sequence[str],
        batches: list[list[str]],
        nested: list[str],
    ) -> None:
        self.source = source
        self.reader = reader
        self.columns = columns
        self.batches = batches
        self.nested = nested
        #: held by whoever reads ``reader``
        self.reading = threading.Lock()
        #: one thread for the ledger, one for the files (only that one opens a DuckDB
        #: database of its own: the Delta logs are parsed there)
        self._pools: tuple[ThreadPoolExecutor, ThreadPoolExecutor] | None = None
        self._pending: dict[int, tuple[Future[pa.Table], Future[_Files]]] = {}

    def take(self, number: int) -> tuple[pa.Table, pa.Table, list[pa.Table]]:
        """The records, the stored partitions and the reports of batch ``number`` (batches
        are taken in order); the next batch's are read meanwhile."""
        if len(self.batches) < 2:
            return (self._records(number), *self._files(number))
        if self._pools is None:
            self._pools = (
                ThreadPoolExecutor(1, thread_name_prefix="backfiller-ledger"),
                ThreadPoolExecutor(1, thread_name_prefix="backfiller-files"),
            )
        ledger, folders = self._pools
        for at in (number, number + 1):
            if at < len(self.batches) and at not in self._pending:
                self._pending[at] = (
                    ledger.submit(self._records, at),
                    folders.submit(self._files, at),
                )
        records, files = self._pending.pop(number)
        return (records.result(), *files.result())

    def close(self) -> None:
        """Stop reading ahead (the last batch is taken, or the caller stopped): the threads
        end, and with them their DuckDB databases."""
        for pool in self._pools or ():
            pool.shutdown(wait=True, cancel_futures=True)
        self._pools = None
        self._pending.clear()

    def _records(self, number: int) -> pa.Table:
        with self.reading:  # the batch's records, in one query
            return ledger_table(self.reader, self.batches[number], self.columns)

    def _files(self, number: int) -> _Files:
        batch = self.batches[number]
        stored = store_table(self.source, batch)
        return stored, [report_table(self.source, name, self.nested) for name in batch]


#: a batch's stored partitions and its assets' reports
_Files = tuple[pa.Table, list[pa.Table]]


def classified_batches(
    source: StateSource,
    reader: LedgerReader,
    keys: Sequence[str],
    on_progress: OnProgress | None = None,
    assets: Sequence[str] | None = None,
) -> Iterator[Any]:
    """For readers of more than the reasons (a range plan's signatures and state digests): one
    DuckDB connection per batch of ``assets`` (default: all, in graph order), holding the
    table ``classified`` (every cell of the batch: its sources' columns, ``pos`` — the asset's
    position among ``assets`` —, ``idx`` — the key's in ``keys`` —, ``seq`` — the key's among
    the asset's own keys —, ``branch`` and ``reason``) beside the tables it was classified
    from (``assets``, ``keys``, ``upstream``...). While the caller holds a batch, the next
    one's records are read from ``reader`` in another thread: the caller does not read
    ``reader`` itself until the iteration has ended."""
    return _batches(source, reader, keys, on_progress, assets)


_NO_VERSIONS = pa.table(
    {
        "asset": pa.array([], pa.string()),
        "partition_key": pa.array([], pa.string()),
        "data_version": pa.array([], pa.int64()),
    }
)

_NO_MAPPING = pa.table(
    {
        "mapping": pa.array([], pa.int64()),
        "idx": pa.array([], pa.int64()),
        "up_key": pa.array([], pa.string()),
        "pos": pa.array([], pa.int64()),
        "present": pa.array([], pa.bool_()),
    }
)


def _owned_by_scheme(graph: Any, keys: Sequence[str], names: Sequence[str]) -> dict[str, list[int]]:
    """Per asset, the positions in ``keys`` of the keys its scheme has (each scheme asked
    once per key)."""
    per_scheme: list[tuple[Any, list[int]]] = []
    found: dict[str, list[int]] = {}
    for name in names:
        scheme = graph.scheme(name)
        mine = next((idx for s, idx in per_scheme if s == scheme), None)
        if mine is None:
            mine = [i for i, k in enumerate(keys) if scheme.contains(k)]
            per_scheme.append((scheme, mine))
        found[name] = mine
    return found


_NONE_DECLARED = pa.table(
    {
        "asset": pa.array([], pa.string()),
        "idx": pa.array([], pa.int64()),
        "declared_upstream": pa.array([], pa.string()),
    }
)


def _declared(
    source: StateSource,
    keys: Sequence[str],
    batch: Sequence[str],
    owned: dict[str, list[int]] | None,
) -> pa.Table:
    """Per cell of ``batch`` whose key no manifest declares, the manifests declaring the
    upstream keys it reads (:func:`~backfiller.planning.declared.declared_upstream`)."""
    graph, manifests = source.graph, source.manifests
    assets: list[str] = []
    idx: list[int] = []
    found: list[str] = []
    for name in batch:
        if not graph.get(name).deps:
            continue
        for i in range(len(keys)) if owned is None else owned[name]:
            ids = declared_upstream(graph, manifests, name, keys[i])
            if ids is not None:
                assets.append(name)
                idx.append(i)
                found.append(ids)
    return pa.table(
        {
            "asset": pa.array(assets, pa.string()),
            "idx": pa.array(idx, pa.int64()),
            "declared_upstream": pa.array(found, pa.string()),
        }
    )


def _members(batch: Sequence[str], owned: dict[str, list[int]]) -> pa.Table:
    assets: list[str] = []
    idx: list[int] = []
    seq: list[int] = []
    for name in batch:
        assets += [name] * len(owned[name])
        idx += owned[name]
        seq += range(len(owned[name]))
    return pa.table(
        {
            "asset": pa.array(assets, pa.string()),
            "idx": pa.array(idx, pa.int64()),
            "seq": pa.array(seq, pa.int64()),
        }
    )


def _mapped(
    number: int, mapping: Any, keys: Sequence[str], mine: Iterable[int], down: Any, up: Any
) -> pa.Table:
    """Which upstream keys each key of ``keys`` reads through ``mapping`` (``present``), and
    which it requires that are not keys of the upstream's scheme (not ``present``; ``pos``:
    their order) — once per mapping and pair of schemes, shared by every asset that uses it."""
    from backfiller.mappings import IdentityMapping

    if type(mapping) is IdentityMapping and up == down:
        # each key reads the same key of the same scheme (the mapping's own rule): not asked
        # key by key
        same = list(mine)
        return _mapping_table(number, same, [keys[i] for i in same], [True] * len(same))
    idx: list[int] = []
    up_keys: list[str] = []
    present: list[bool] = []
    for i in mine:
        key = keys[i]
        for exists, found in zip((True, False), mapping.required_keys(key, down, up), strict=True):
            idx += [i] * len(found)
            up_keys += found
            present += [exists] * len(found)
    return _mapping_table(number, idx, up_keys, present)


def _mapping_table(
    number: int, idx: list[int], up_keys: list[str], present: list[bool]
) -> pa.Table:
    return pa.table(
        {
            "mapping": pa.repeat(pa.scalar(number, pa.int64()), len(idx)),
            "idx": pa.array(idx, pa.int64()),
            "up_key": pa.array(up_keys, pa.string()),
            "pos": pa.array(range(len(idx)), pa.int64()),
            "present": pa.array(present, pa.bool_()),
        }
    )


def islands(con: Any) -> Iterator[tuple[int, str, PartitionState, int, int, int]]:
    """``(pos, asset, state, first idx, last idx, count)`` of every run of consecutive cells of one
    asset in one state (consecutive among the asset's own keys), in asset then key order:
    DuckDB finds the cells where runs start and end (:data:`_EDGES`), each run is the pair —
    nothing per cell in Python."""
    states = pa.table({"state": [s.value for s in _STATES], "code": range(len(_STATES))})
    con.register("states", states)
    names = dict(con.execute("SELECT pos, asset FROM assets").fetchall())
    first = at = 0
    for where, code, idx, seq, starts, ends in con.execute(
        _EDGES.format(materialized=len(_STATES) - 1)
    ).fetchall():
        if starts:
            first, at = idx, seq
        if ends:
            yield where, names[where], _STATES[code], first, idx, seq - at + 1


def gap_ranges(
    source: StateSource,
    reader: LedgerReader,
    keys: Sequence[str],
    *,
    on_progress: OnProgress | None = None,
    assets: Sequence[str] | None = None,
) -> list[KeyRange[GapReason]]:
    """The gaps of every asset (or of ``assets``) over ``keys`` as ranges: consecutive
    partitions of one asset with the same reason are one range (in graph order, then key
    order). No per-cell object is made."""
    found: list[KeyRange[GapReason]] = []
    for con in _batches(source, reader, keys, on_progress, assets, states_only=True):
        for _, asset, state, first, last, n in islands(con):
            if state is not PartitionState.MATERIALIZED:
                reason = state.gap_reason
                assert reason is not None
                found.append(KeyRange(asset, keys[first], keys[last], n, reason))
    return found


def state_ranges(
    source: StateSource,
    reader: LedgerReader,
    keys: Sequence[str],
    assets: Sequence[str] | None = None,
    *,
    on_progress: OnProgress | None = None,
) -> list[KeyRange[PartitionState]]:
    """The state of every cell of ``assets`` (default: all) over ``keys`` as ranges covering
    every key: the gap's reason, or ``materialized`` — the same rule as :func:`gap_ranges`,
    so ``status`` and ``gaps`` cannot disagree."""
    found: list[KeyRange[PartitionState]] = []
    for con in _batches(source, reader, keys, on_progress, assets, states_only=True):
        for _, asset, state, first, last, n in islands(con):
            found.append(KeyRange(asset, keys[first], keys[last], n, state))
    return found


def bulk_gaps(
    source: StateSource,
    reader: LedgerReader,
    keys: Sequence[str],
    *,
    on_progress: OnProgress | None = None,
    assets: Sequence[str] | None = None,
) -> list[Gap]:
    """Every gap of every asset (or of ``assets``) over ``keys``, one :class:`Gap` per gap
    cell with its detail, in key order then graph order."""
    rows: list[dict[str, Any]] = []
    for con in _batches(source, reader, keys, on_progress, assets):
        rows += (
            con.sql(f"SELECT {_GAP_COLUMNS} FROM classified WHERE reason IS NOT NULL")
            .to_arrow_table()
            .to_pylist()
        )
    _with_stale_reasons(reader, rows)
    rows.sort(key=lambda r: (r["idx"], r["pos"]))
    return [_gap(r) for r in rows]


def _with_stale_reasons(reader: LedgerReader, rows: list[dict[str, Any]]) -> None:
    """Give the rows of records marked stale the reason of their newest mark
    (``stale_reason``: :func:`~backfiller.planning.state.stale_reasons_of`)."""
    marked = [
        row
        for row in rows
        if row["branch"] == Branch.UPSTREAM_CHANGED.value and row["status"] == "stale"
    ]
    reasons = stale_reasons_of(reader, [(r["asset"], r["partition_key"]) for r in marked])
    for row in marked:
        row["stale_reason"] = reasons.get((row["asset"], row["partition_key"]))


def _gap(row: dict[str, Any]) -> Gap:
    branch = Branch(row["branch"])
    rows, expected = row["rows"], row["expected"]
    if branch is Branch.BROKEN_MANIFEST:
        expected = None
    return Gap(
        row["asset"], row["partition_key"], _REASONS[branch], _detail(branch, row), expected, rows
    )


def _detail(branch: Branch, row: dict[str, Any]) -> str:
    rows, expected = row["rows"], row["expected"]
    if branch is Branch.BROKEN_MANIFEST:
        return f"{row['broken']}; apply, rerun and replay are refused until it is fixed"
    if branch is Branch.MISSING_UPSTREAM:
        missing: dict[str, list[str]] = {}
        for found in row["missing"]:
            missing.setdefault(found["up"], []).append(found["key"])
        return missing_upstream_detail(missing)
    if branch is Branch.FILES_GONE:
        return (
            f"the Delta log references {row['missing_files']} data file(s) of this partition "
            f"that are gone: its {rows} row(s) cannot be read"
        )
    if branch is Branch.FAILED:
        return f"the last attempt failed: {row['last_error'] or '?'}"
    if branch is Branch.UNFINISHED:
        return f"run {row['last_run_id']} did not finish this partition (crash?); resume it"
    if branch is Branch.CHECKS_FAILED:
        return f"checks failed: {row['last_error'] or '?'}"
    if branch is Branch.ORPHAN:
        return f"{rows} stored rows with no ledger record"
    if branch is Branch.NOTHING_DECLARED:
        declared = "declares 0 records" if expected == 0 else "declares nothing"
        return (
            f"the manifest {declared} for this partition; check that the seed data has "
            "records for it"
        )
    if branch is Branch.NOT_STORED:
        if row["status"] is None:
            return not_stored_detail(expected, row["declared_upstream"])
        return (
            f"the ledger records {row['recorded_rows']} rows (version {row['data_version']}); "
            "none stored"
        )
    if branch is Branch.MANIFEST_CHANGED:
        return (
            f"built from {row['recorded_manifest_id']}; the declaration is now "
            f"{row['manifest_id']} with a different checksum"
        )
    if branch is Branch.COUNT_MISMATCH:
        return f"{rows} rows stored, the manifest expects {expected}"
    if branch is Branch.UPSTREAM_CHANGED:
        return upstream_changed_detail(row["status"] == "stale", row.get("stale_reason"))
    return "data and ledger agree; the report is gone"
