"""The live data files of a Delta table (its ``add`` actions: path, partition value, row count),
read from the table's log in one pass: the last checkpoint's ``add`` column with Parquet, the
newer commit files split into lines and parsed by DuckDB (``from_json``, only the fields read
here), the log replayed in SQL (the last commit's action on a path wins; a removed path is
gone).
Arrow carries the bytes in and the files out; DuckDB computes (on a cursor of the shared
``"planning"`` database, :mod:`backfiller.duck`), so reading a log imports no
``pyarrow.compute``.

Opening a ``DeltaTable`` costs several milliseconds even for a one-commit log (it builds the
whole snapshot); ``status`` over a thousand tables paid that a thousand times. This reader
makes no Python object per file.

A log this reader does not read exactly is not guessed at: a protocol beyond reader version 1
(other than the reader features listed below), a deletion vector (an add whose row count is
not the file's), a V2 checkpoint, a file that does not parse (a line that is no JSON object
or does not open with its brace, an add or remove action without a path), a field read here
of another JSON type than Delta's (``from_json`` would coerce it: a path or statistics that
are no string, partition values that are no object, a protocol's reader version that is no
integer or its features no list), statistics that do not read back one object per file
(valid JSON) or name a key twice (Delta reads the last ``numRecords``, a JSON path the
first; statistics holding an escape are parsed, their keys decoded), partition values absent,
or without the partition column's value but with another key (one in another case: Delta
refuses both), a commit that names one path in two add or remove actions (Delta keeps the
first, a replay the last), a commit missing before the newest one the log's folder lists, a
log without a metaData action or with one that is no object holding its schema and partition
columns, a checkpoint DuckDB does not take (a partition values map that repeats its key), or
a log without its first commit and without a checkpoint raise
:class:`~backfiller.store.app_versions.UnreadableLog`, and the store asks ``deltalake``
(which also names a damaged log properly).
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from backfiller.store.app_versions import (
    LogReader,
    UnreadableLog,
    checkpoint_files,
    checkpoint_pointer,
    commit_name,
)

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

__all__ = ["read_add_actions", "read_many_add_actions"]

#: the name of a commit file
_COMMIT = re.compile(r"[0-9]{20}\.json")

#: reader features that change nothing about which files are live and how many rows each has
_HARMLESS_FEATURES = frozenset({"timestampNtz", "vacuumProtocolCheck"})


def read_add_actions(read: LogReader, names: Iterable[str], partition_column: str) -> pa.Table:
    """The live files of the table whose ``_delta_log`` files ``read`` gives (``names``: the
    files that folder lists), as columns ``partition`` (the value of ``partition_column``, a
    string), ``path`` (as the log records it) and ``num_records`` (int64; null when the log
    has no statistics for the file), in the log's order (a checkpoint's files first, then
    those the commits after it add). The table's version is the newest
    commit listed; a commit missing before it is damage (:class:`UnreadableLog`), not a
    shorter history."""
    import duckdb

    from backfiller.duck import cursor

    newest = _newest_commit(names)
    pointer = read("_last_checkpoint")
    checkpoints: list[tuple[str, pa.Table]] = []
    start = 0
    if pointer is not None:
        version, last = checkpoint_pointer(pointer)
        checkpoints = [(name, _checkpoint(read, name)) for name in checkpoint_files(version, last)]
        start = version + 1
    elif read(commit_name(0)) is None:
        raise UnreadableLog("no first commit and no checkpoint")
    texts: list[tuple[int, int, bytes]] = []
    for version in range(start, newest + 1):
        text = read(commit_name(version))
        if text is None:
            raise UnreadableLog(f"commit {version} is missing before commit {newest}")
        texts.append((0, version, text))
    con = cursor("planning")
    try:
        try:
            _parse(con, texts, partition_column)
        except _NotParsed as exc:
            raise UnreadableLog(f"{_first_unparsed(con)} does not parse") from exc
        protocol = None
        meta = False  # a metaData action: Delta reads no table without one
        first = 0  # the parts' rows numbered on, before the commits' (version >= 1)
        for name, table in checkpoints:
            try:
                found = _add_checkpoint(con, name, table, partition_column, first)
            except duckdb.Error as exc:  # e.g. a map that repeats a key: ask Delta
                raise UnreadableLog(f"checkpoint file {name} does not read") from exc
            protocol = found or protocol
            meta = meta or table.column("metaData").null_count < table.num_rows
            first += table.num_rows
        summary = _summarise(con).get(0)
        if summary is not None:
            protocol = summary.protocol or protocol
            meta = meta or summary.has_meta
        if protocol is None:
            raise UnreadableLog("no protocol action")
        if not meta:
            raise UnreadableLog("no metaData action")
        if not _readable(protocol):
            reader_version, features = protocol
            raise UnreadableLog(f"reader version {reader_version} with features {features}")
        if summary is not None and summary.refusal is not None:
            raise UnreadableLog(summary.refusal)
        live, refused = _replay(
            con,
            [0],
            [] if summary is None else [summary],
            by_table=False,
            ordered=bool(checkpoints),
        )
        if refused:
            raise UnreadableLog("file statistics that are not one object per file")
        return live
    finally:
        con.close()


def _readable(protocol: tuple[int, list[str]]) -> bool:
    """Whether this reader reads a table of ``protocol`` (its reader version and features)
    exactly: not version 2 nor above 3, with only features that change nothing here."""
    reader_version, features = protocol
    return reader_version <= 3 and reader_version != 2 and set(features) <= _HARMLESS_FEATURES


def _newest_commit(names: Iterable[str]) -> int:
    """The version of the newest commit file among a log folder's ``names`` (-1: none)."""
    return max((int(n[:20]) for n in names if _COMMIT.fullmatch(n)), default=-1)


#: about how many bytes of commit files are parsed in one go (bounds the memory of a batch)
GROUP_BYTES = 16 << 20


def read_many_add_actions(
    logs: Sequence[tuple[LogReader, Iterable[str]]], partition_column: str
) -> tuple[pa.Table, list[int]]:
    """The live files of several tables at once (each given as :func:`read_add_actions`
    takes it): the columns of :func:`read_add_actions` after ``table``, the table's position
    in ``logs``; a table's files side by side in its log's order, the tables in the order of
    ``logs``. Their commit files are parsed and replayed together, some megabytes at a time
    (:data:`GROUP_BYTES`): a thousand one-commit tables paid fixed costs per call a thousand
    times, more than the parsing itself.

    Only logs made of commit files (no checkpoint) are read here, under the same rules; the
    positions of the others — a checkpoint, a commit missing, a protocol or a deletion vector
    this reader refuses, a file or statistics that do not parse — come second, to be read one
    by one by :func:`read_add_actions`, which reads them or says why not. (A group of tables
    one of whose commit files is no JSON at all is left aside whole.)"""
    import pyarrow as pa

    from backfiller.duck import cursor

    aside: list[int] = []
    parts: list[pa.Table] = [_no_files()]
    group: list[tuple[int, int, bytes]] = []
    size = 0
    con = cursor("planning")
    try:
        for position, (read, names) in enumerate(logs):
            listed = set(names)
            found = _commit_texts(read, listed)
            if "_last_checkpoint" in listed or found is None:
                aside.append(position)
                continue
            group += [(position, version, text) for version, text in enumerate(found)]
            size += sum(len(text) for text in found)
            if size >= GROUP_BYTES:
                live, refused = _read_group(con, group, partition_column)
                parts.append(live)
                aside += refused
                group, size = [], 0
        if group:
            live, refused = _read_group(con, group, partition_column)
            parts.append(live)
            aside += refused
    finally:
        con.close()
    return pa.concat_tables(parts), sorted(aside)


def _read_group(
    con: duckdb.DuckDBPyConnection, group: list[tuple[int, int, bytes]], column: str
) -> tuple[pa.Table, list[int]]:
    """:func:`read_many_add_actions` of the commit files in ``group`` (each with its table's
    position and its version, a table's in order), in one parse on ``con``: the live files,
    and the tables refused."""
    every = list(dict.fromkeys(position for position, _, _ in group))
    try:
        _parse(con, group, column)
    except _NotParsed:
        return _no_files(), every
    summaries = _summarise(con)
    refused = []
    kept = []
    for position in every:
        summary = summaries.get(position)
        if (
            summary is None
            or summary.protocol is None
            or not _readable(summary.protocol)
            or summary.refusal is not None
            or not summary.has_meta
        ):
            refused.append(position)
        else:
            kept.append(summary)
    live, unparsed = _replay(con, [s.table for s in kept], kept, by_table=True)
    return live, sorted([*refused, *unparsed])


def _commit_texts(read: LogReader, names: set[str]) -> list[bytes] | None:
    """The commit files of a log, first to newest listed; ``None`` when one is missing (the
    first included)."""
    texts = []
    for version in range(_newest_commit(names) + 1):
        text = read(commit_name(version))
        if text is None:
            return None
        texts.append(text)
    return texts or None


def _no_files() -> pa.Table:
    import pyarrow as pa

    return pa.table(
        {
            "table": pa.array([], pa.int64()),
            "partition": pa.array([], pa.string()),
            "path": pa.array([], pa.string()),
            "num_records": pa.array([], pa.int64()),
        }
    )


class _NotParsed(Exception):
    """Commit files that DuckDB does not parse (no JSON, or not UTF-8)."""


def _sql_text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


#: the statistics' ``numRecords`` where it is their first key (as writers put it): read off
#: the start of the statistics as a JSON string (``actions.stats``: ``"{\"numRecords\": 5}"``),
#: anchored at the opening brace, so it is the top-level key (an escape other than ``\"``
#: before the number does not match: the statistics are parsed)
_FIRST_KEY = r'^"\{\s*\\"numRecords\\"\s*:\s*([0-9]{1,18})\s*[,}]'

#: the same where it is their only key: statistics that are valid JSON
_ONLY_KEY = r'^"\{\s*\\"numRecords\\"\s*:\s*([0-9]{1,18})\s*\}"$'


#: ``numRecords`` as a key inside the statistics' JSON string
_KEY_TEXT = '\\"numRecords\\"'


def _first_key(stats: str) -> str:
    """SQL: the ``numRecords`` first in the statistics ``stats`` (an expression: a JSON
    string), where they are valid JSON and name it once, unescaped (else null: the parsed
    path reads them, or names them bad — Delta reads the last of two ``numRecords``, this
    regex the first; one named again deeper, a column's, is read by the parsed path too)."""
    only = f"NULLIF(regexp_extract({stats}, {_sql_text(_ONLY_KEY)}, 1), '')"
    first = f"NULLIF(regexp_extract({stats}, {_sql_text(_FIRST_KEY)}, 1), '')"
    valid = f"json_valid({stats} ->> '$')"
    # and no escape in them (``num\u0052ecords`` is ``numRecords`` too): the parsed path
    # reads such statistics, their keys decoded
    once = (
        f"strpos(substr({stats}, 3 + {len(_KEY_TEXT)}), {_sql_text(_KEY_TEXT)}) = 0"
        f" AND NOT contains({stats}, {_sql_text(chr(92) + 'u')})"
    )
    return f"CAST(coalesce({only}, CASE WHEN {valid} AND {once} THEN {first} END) AS BIGINT)"


#: the first characters of a JSON number, boolean, object or array as ``from_json`` reads
#: it into a string: a path that opens with none was a string (the others are looked at)
_COERCED = "-0123456789{[tfnNiI"

#: a blank line (no action; a ``\r`` may end a line): one with other blanks only is no JSON
_BLANK = "(line = '' OR line = chr(13))"

#: the actions of commit files' lines (``texts``: ``tbl``, ``version``, ``text``), one row per
#: line that is not blank: its table, its order in the log (``seq``: the version in the high
#: bits, the line in the low ones), whether it is a JSON object (starts with a brace), what
#: its add, remove or protocol action says (null on the lines of other actions), whether it
#: is a metaData action, and whether a field read here has another JSON type than Delta's
#: (partition values absent among them; a metaData action that is no object with its schema
#: and partition columns), or an add's partition values hold another key where the partition
#: column's value is null (a key in another case: Delta refuses it, ``from_json`` would read
#: the file as in the null partition)
_PARSE = """
CREATE OR REPLACE TEMP TABLE actions AS
SELECT
    tbl,
    seq,
    is_object,
    is_add,
    is_action,
    path,
    partition,
    stats,
    {first_key} AS first_key,
    parsed_records,
    vector,
    reader_version,
    reader_features,
    is_meta,
    mistyped
FROM (
SELECT
    tbl,
    seq,
    is_object,
    j.add IS NOT NULL AS is_add,
    j.add IS NOT NULL OR j.remove IS NOT NULL AS is_action,
    coalesce(j.add.path, j.remove.path) AS path,
    struct_extract(j.add.partitionValues, {column}) AS partition,
    j.add.stats AS stats,
    CAST(NULL AS BIGINT) AS parsed_records,
    j.add.deletionVector IS NOT NULL AS vector,
    j.protocol.minReaderVersion AS reader_version,
    j.protocol.readerFeatures AS reader_features,
    j.metaData IS NOT NULL AS is_meta,
    CASE WHEN contains({coerced}, left(coalesce(j.add.path, j.remove.path), 1))
        THEN coalesce(json_type(line, '$.add.path'), json_type(line, '$.remove.path'))
            <> 'VARCHAR' END IS TRUE
    OR NOT starts_with(coalesce(j.add.stats, '""'), '"')
    OR CASE WHEN j.add IS NOT NULL AND struct_extract(j.add.partitionValues, {column}) IS NULL
        THEN coalesce(json_type(line, '$.add.partitionValues'), 'NULL') <> 'OBJECT'
            OR len(list_distinct(json_keys(line, '$.add.partitionValues')))
                > CAST(list_contains(json_keys(line, '$.add.partitionValues'), {column}) AS INTEGER)
        END IS TRUE
    OR CASE WHEN j.metaData IS NOT NULL
        THEN coalesce(json_type(line, '$.metaData'), 'NULL') <> 'OBJECT'
            OR coalesce(json_type(line, '$.metaData.schemaString'), 'NULL') <> 'VARCHAR'
            OR coalesce(json_type(line, '$.metaData.partitionColumns'), 'NULL') <> 'ARRAY'
        END IS TRUE
    OR CASE WHEN j.protocol IS NOT NULL
        THEN coalesce(json_type(line, '$.protocol.minReaderVersion'), 'NULL')
                NOT IN ('BIGINT', 'UBIGINT')
            OR coalesce(json_type(line, '$.protocol.readerFeatures'), 'NULL')
                NOT IN ('ARRAY', 'NULL') END IS TRUE AS mistyped
FROM (
    SELECT
        tbl,
        (version << 32) + n AS seq,
        starts_with(line, '{{') AS is_object,
        line,
        from_json(line, {structure}) AS j
    FROM (
        SELECT
            tbl,
            version,
            unnest(string_split(text, chr(10))) AS line,
            generate_subscripts(string_split(text, chr(10)), 1) AS n
        FROM texts
    )
    WHERE NOT {blank}
)
)
"""


def _parse(
    con: duckdb.DuckDBPyConnection, texts: list[tuple[int, int, bytes]], column: str
) -> None:
    """Parse commit files (each with its table's number and its version) into ``con``'s temp
    table ``actions`` (see :data:`_PARSE`); :class:`_NotParsed` when one does not parse."""
    import duckdb
    import pyarrow as pa

    structure = {
        "add": {
            "path": "VARCHAR",
            "partitionValues": {column: "VARCHAR"},
            "stats": "JSON",
            "deletionVector": {"storageType": "VARCHAR"},
        },
        "remove": {"path": "VARCHAR"},
        "protocol": {"minReaderVersion": "BIGINT", "readerFeatures": ["VARCHAR"]},
        "metaData": {"id": "VARCHAR"},
    }
    offsets = [0]
    for _, _, text in texts:
        offsets.append(offsets[-1] + len(text))
    # the bytes as they are, one Arrow string per file (no Python string is made)
    text_array = pa.LargeStringArray.from_buffers(
        len(texts),
        pa.array(offsets, pa.int64()).buffers()[1],
        pa.py_buffer(b"".join(text for _, _, text in texts)),
    )
    con.register(
        "texts",
        pa.table(
            {
                "tbl": pa.array([t for t, _, _ in texts], pa.int64()),
                "version": pa.array([v for _, v, _ in texts], pa.int64()),
                "text": text_array,
            }
        ),
    )
    query = _PARSE.format(
        column=_sql_text(column),
        first_key=_first_key("stats"),
        blank=_BLANK,
        coerced=_sql_text(_COERCED),
        structure=_sql_text(json.dumps(structure)),
    )
    try:
        con.execute(query)
    except duckdb.Error as exc:
        raise _NotParsed(str(exc)) from exc


def _first_unparsed(con: duckdb.DuckDBPyConnection) -> str:
    """The first registered commit file (``texts``) with a line that is no JSON, named."""
    import duckdb

    try:
        found = con.sql(
            f"""SELECT min(version) FROM (
                    SELECT version, unnest(string_split(text, chr(10))) AS line FROM texts
                ) WHERE NOT {_BLANK} AND NOT json_valid(line)"""
        ).fetchall()
    except duckdb.Error:
        found = [(None,)]
    return "a commit file" if found[0][0] is None else f"commit {found[0][0]}"


def _checkpoint(read: LogReader, name: str) -> pa.Table:
    """The ``add``, ``protocol`` and ``metaData`` columns of one checkpoint file."""
    import pyarrow.parquet as pq

    data = read(name)
    if data is None:
        raise UnreadableLog(f"checkpoint file {name} is missing")
    try:
        # a ParquetFile, not pq.read_table: that one goes through Arrow's datasets (and
        # imports pyarrow.compute)
        return pq.ParquetFile(io.BytesIO(data)).read(columns=["add", "protocol", "metaData"])
    except Exception as exc:  # any unreadable checkpoint: ask Delta
        raise UnreadableLog(f"checkpoint file {name} does not read") from exc


def _add_checkpoint(
    con: duckdb.DuckDBPyConnection, name: str, table: pa.Table, column: str, first: int
) -> tuple[int, list[str]] | None:
    """Add the add actions of one checkpoint file (every file live at its version, before
    every commit after it; its rows numbered from ``first``) to ``con``'s ``actions`` of
    table 0, and return the protocol it records."""
    import pyarrow as pa

    add_type = table.schema.field("add").type
    if not pa.types.is_struct(add_type):
        raise UnreadableLog(f"checkpoint file {name}: its add column is not a struct")
    fields = {add_type.field(i).name: add_type.field(i).type for i in range(add_type.num_fields)}
    if not {"path", "partitionValues"} <= set(fields):
        raise UnreadableLog(f"checkpoint file {name}: add actions without path or partition")
    if not pa.types.is_map(fields["partitionValues"]):
        raise UnreadableLog(f"checkpoint file {name}: partitionValues is not a map")
    stats = "to_json(CAST(add.stats AS VARCHAR))" if "stats" in fields else "NULL"
    parsed = "NULL"
    inner = fields.get("stats_parsed")
    if inner is not None and pa.types.is_struct(inner) and inner.get_field_index("numRecords") >= 0:
        parsed = "add.stats_parsed.numRecords"
    vector = "add.deletionVector IS NOT NULL" if "deletionVector" in fields else "false"
    # each row's order in the checkpoint (version 0 in ``seq``'s high bits: before every
    # commit read after it): a path is live once in a checkpoint, the order makes the
    # replay and the files' order the same whatever the scan's order
    con.register(
        "checkpoint",
        table.append_column("seq", pa.array(range(first, first + table.num_rows), pa.int64())),
    )
    con.execute(
        f"""INSERT INTO actions BY NAME
            SELECT
                0 AS tbl,
                seq,
                true AS is_object,
                true AS is_add,
                true AS is_action,
                add.path AS path,
                CAST(add.partitionValues[{_sql_text(column)}] AS VARCHAR) AS partition,
                {stats} AS stats,
                {_first_key(stats)} AS first_key,
                CAST({parsed} AS BIGINT) AS parsed_records,
                {vector} AS vector
            FROM checkpoint WHERE add IS NOT NULL"""
    )
    column_text = _sql_text(column)
    (other,) = con.sql(
        f"""SELECT count(*) FROM checkpoint
            WHERE add IS NOT NULL AND add.partitionValues[{column_text}] IS NULL
                AND len(list_distinct(map_keys(add.partitionValues))) > CAST(
                    list_contains(map_keys(add.partitionValues), {column_text}) AS INTEGER)"""
    ).fetchall()[0]
    if other:  # a key in another case: Delta refuses it
        raise UnreadableLog(
            f"checkpoint file {name}: partition values with another key than {column!r}"
        )
    found = None
    for (row,) in con.sql("SELECT protocol FROM checkpoint WHERE protocol IS NOT NULL").fetchall():
        found = _protocol_of(row) or found
    return found


def _protocol_of(row: dict[str, object]) -> tuple[int, list[str]] | None:
    """A parsed protocol action's reader version and features (``None``: it names none)."""
    version = row.get("minReaderVersion")
    if version is None:
        return None
    features = row.get("readerFeatures") or []
    assert isinstance(version, int) and isinstance(features, list)
    return (version, [str(f) for f in features])


@dataclass(frozen=True)
class _Summary:
    """What one table's parsed actions say about reading it."""

    table: int
    #: its last protocol action's reader version and features (``None``: none)
    protocol: tuple[int, list[str]] | None
    #: why it is refused besides its protocol (``None``: it is not)
    refusal: str | None
    #: every add action's statistics have ``numRecords`` first (or none): read it off them
    first_keys: bool
    #: each action names another file and adds it: no replay needed
    adds_only: bool
    #: a metaData action is among its actions (a checkpoint's are not counted here)
    has_meta: bool


def _summarise(con: duckdb.DuckDBPyConnection) -> dict[int, _Summary]:
    """Per table of ``con``'s ``actions``, its :class:`_Summary` (a table without a line is
    not there)."""
    # with each table, whether any path is named twice in the whole batch (one pass over
    # all when none is; a hash shared by two paths only costs a replay)
    rows = con.sql(
        """
        SELECT
            tbl,
            arg_max(
                {'minReaderVersion': reader_version, 'readerFeatures': reader_features}, seq
            ) FILTER (WHERE reader_version IS NOT NULL),
            bool_and(is_object),
            coalesce(bool_or(is_action AND path IS NULL), false),
            coalesce(bool_or(vector), false),
            coalesce(bool_and(stats IS NULL OR first_key IS NOT NULL) FILTER (WHERE is_add), true),
            coalesce(bool_and(is_add) FILTER (WHERE is_action), true),
            coalesce(bool_or(mistyped), false),
            coalesce(bool_or(is_meta), false),
            (SELECT count(*) = count(DISTINCT hash(tbl, path)) FROM actions WHERE is_action)
        FROM actions
        GROUP BY tbl
        """
    ).fetchall()
    twice: set[int] = set()  # the tables whose actions name a path twice
    in_one: set[int] = set()  # those of them one of whose commits names a path twice
    if not all(distinct for *_, distinct in rows):
        # a commit's actions have one version (``seq``'s high bits; a checkpoint's, its
        # parts together, have none)
        found_twice = con.sql(
            """SELECT tbl, bool_or(in_one) FROM (
                   SELECT tbl, count(*) > count(DISTINCT seq >> 32) AS in_one
                   FROM actions WHERE is_action
                   GROUP BY tbl, path HAVING count(*) > 1
               ) GROUP BY tbl"""
        ).fetchall()
        twice = {int(t) for t, _ in found_twice}
        in_one = {int(t) for t, one in found_twice if one}
    found = {}
    for row in rows:
        table, protocol, objects, pathless, vectors, first_keys, adds_only, mistyped, meta, _ = row
        refusal = None
        if not objects:
            refusal = "a commit line that is no JSON object"
        elif pathless:
            refusal = "an add or remove action without a path"
        elif mistyped:
            refusal = "a field of the wrong JSON type, or partition values of another column"
        elif vectors:
            refusal = "a file with a deletion vector"
        elif table in in_one:
            refusal = "a commit that names a path in two add or remove actions"
        found[table] = _Summary(
            table,
            None if protocol is None else _protocol_of(protocol),
            refusal,
            bool(first_keys),
            bool(adds_only) and table not in twice,
            bool(meta),
        )
    return found


#: ``numRecords`` of the statistics ``doc`` (JSON, null where they are not parsed)
_PARSED_RECORDS = """CASE WHEN json_type(doc, '$.numRecords') IN ('BIGINT', 'UBIGINT')
    THEN TRY_CAST(json_extract(doc, '$.numRecords') AS BIGINT) END"""

#: whether the statistics ``stats`` (as a JSON string; ``doc``: their text parsed, null when
#: it does not parse)
#: do not read back as one object whose ``numRecords`` is an int64 or null, with no key named
#: twice (Delta reads the last of two, ``json_extract`` the first)
_BAD_STATS = f"""stats IS NOT NULL AND (
    doc IS NULL
    OR json_type(doc) <> 'OBJECT'
    OR len(json_keys(doc)) <> len(list_distinct(json_keys(doc)))
    OR coalesce(json_type(doc, '$.numRecords'), 'NULL') NOT IN ('BIGINT', 'UBIGINT', 'NULL')
    OR (json_type(doc, '$.numRecords') <> 'NULL' AND ({_PARSED_RECORDS}) IS NULL))"""


def _replay(
    con: duckdb.DuckDBPyConnection,
    tables: list[int],
    summaries: list[_Summary],
    *,
    by_table: bool,
    ordered: bool = False,
) -> tuple[pa.Table, list[int]]:
    """The live files of ``tables`` (their :class:`_Summary` in ``summaries``) in ``con``'s
    ``actions``: per table and path, its last action, kept when it is an add. A table's files
    come side by side in its log's order, the tables in the order of their numbers;
    ``num_records`` is read off the statistics' first key where every add action of the table
    has it there, else from the statistics parsed (where they are null: a checkpoint's
    ``stats_parsed``). With a ``table`` column when ``by_table``; sorted in the log's order
    also without a replay when ``ordered`` (a checkpoint's rows are added after the commits'
    to ``actions``). Second: the tables whose statistics do not read back one object per
    file (left out)."""
    import pyarrow as pa

    replayed = [s.table for s in summaries if not s.adds_only]
    parsed = [s.table for s in summaries if not s.first_keys]
    params: dict[str, list[int]] = {"tables": tables, "replayed": replayed}
    # only adds, each path once: nothing replaced or removed, every action is live (and
    # ``actions`` is in the log's order: no sort)
    files = """
        SELECT tbl, seq, partition, path, stats, first_key, parsed_records FROM actions
        WHERE is_action AND list_contains($tables, tbl) AND NOT list_contains($replayed, tbl)
    """
    if replayed:
        files += """
        UNION ALL
        SELECT tbl, seq, partition, path, stats, first_key, parsed_records FROM actions
        WHERE is_action AND list_contains($replayed, tbl)
        QUALIFY is_add AND row_number() OVER (PARTITION BY tbl, path ORDER BY seq DESC) = 1
        """
    records = "coalesce(first_key, parsed_records)"
    unparsed: list[int] = []
    if parsed:
        params["parsed"] = parsed
        records = f"""CASE WHEN list_contains($parsed, tbl)
            THEN coalesce({_PARSED_RECORDS}, parsed_records) ELSE {records} END"""
        con.execute(
            f"""CREATE OR REPLACE TEMP TABLE live AS
                SELECT
                    tbl, seq, partition, path, {records} AS num_records,
                    list_contains($parsed, tbl) AND {_BAD_STATS} AS bad_stats
                FROM (
                    SELECT *, CASE WHEN list_contains($parsed, tbl) AND json_valid(stats ->> '$')
                        THEN CAST(stats ->> '$' AS JSON) END AS doc
                    FROM ({files})
                )""",
            params,
        )
        found = con.sql("SELECT DISTINCT tbl FROM live WHERE bad_stats").fetchall()
        unparsed = sorted(int(t) for (t,) in found)
        files = "SELECT * FROM live WHERE NOT list_contains($unparsed, tbl)"
        records = "num_records"
        params = {"unparsed": unparsed}
    query = f"""SELECT {'tbl AS "table", ' if by_table else ""}partition, path,
                    {records} AS num_records
                FROM ({files}){" ORDER BY tbl, seq" if replayed or ordered else ""}"""
    live = con.sql(query, params=params).to_arrow_table()
    if live.schema != _schema(by_table):  # no file: columns DuckDB typed otherwise
        live = pa.table(
            {f.name: pa.array([], f.type) for f in _schema(by_table)}, schema=_schema(by_table)
        )
    return live, unparsed


def _schema(by_table: bool) -> pa.Schema:
    """The columns of the live files (after ``table`` when ``by_table``)."""
    import pyarrow as pa

    columns = [("partition", pa.string()), ("path", pa.string()), ("num_records", pa.int64())]
    return pa.schema([("table", pa.int64()), *columns] if by_table else columns)
