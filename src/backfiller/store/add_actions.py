"""The live data files of a Delta table (its ``add`` actions: path, partition value, row count),
read from the table's log in one pass: the last checkpoint's ``add`` column with Parquet, the
newer commit files with Arrow's JSON reader, the log replayed in Arrow (the last action on a
path wins; a removed path is gone).

Opening a ``DeltaTable`` costs several milliseconds even for a one-commit log (it builds the
whole snapshot); ``status`` over a thousand tables paid that a thousand times. This reader
makes no Python object per file.

A log this reader does not read exactly is not guessed at: a protocol beyond reader version 1
(other than the reader features listed below), a deletion vector (an add whose row count is
not the file's), a V2 checkpoint, a file that does not parse, statistics that do not read
back one object per file, a commit missing before the newest one the log's folder lists, or
a log without its first commit and without a checkpoint raise
:class:`~backfiller.store.app_versions.UnreadableLog`, and the store asks ``deltalake``
(which also names a damaged log properly).
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from backfiller.store.app_versions import (
    LogReader,
    UnreadableLog,
    checkpoint_files,
    checkpoint_pointer,
    commit_name,
)

if TYPE_CHECKING:
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
    has no statistics for the file). The table's version is the newest commit listed; a
    commit missing before it is damage (:class:`UnreadableLog`), not a shorter history."""
    import pyarrow as pa

    newest = _newest_commit(names)
    pointer = read("_last_checkpoint")
    parts: list[pa.Table] = []
    protocol: tuple[int, list[str]] | None = None
    start = 0
    if pointer is not None:
        version, last = checkpoint_pointer(pointer)
        for name in checkpoint_files(version, last):
            adds, found = _checkpoint(read, name, partition_column)
            parts.append(adds)
            protocol = found or protocol
        start = version + 1
    elif read(commit_name(0)) is None:
        raise UnreadableLog("no first commit and no checkpoint")
    for version in range(start, newest + 1):
        text = read(commit_name(version))
        if text is None:
            raise UnreadableLog(f"commit {version} is missing before commit {newest}")
        adds, found = _commit(text, version, partition_column)
        parts.append(adds)
        protocol = found or protocol
    if protocol is None:
        raise UnreadableLog("no protocol action")
    if not _readable(protocol):
        reader_version, features = protocol
        raise UnreadableLog(f"reader version {reader_version} with features {features}")
    return _replay(pa.concat_tables(parts))


def _readable(protocol: tuple[int, list[str]]) -> bool:
    """Whether this reader reads a table of ``protocol`` (its reader version and features)
    exactly: not version 2 nor above 3, with only features that change nothing here."""
    reader_version, features = protocol
    return reader_version <= 3 and reader_version != 2 and set(features) <= _HARMLESS_FEATURES


def _newest_commit(names: Iterable[str]) -> int:
    """The version of the newest commit file among a log folder's ``names`` (-1: none)."""
    return max((int(n[:20]) for n in names if _COMMIT.fullmatch(n)), default=-1)


#: about how many bytes of commit files are parsed in one go (bounds the memory of a batch)
GROUP_BYTES = 4 << 20


def read_many_add_actions(
    logs: Sequence[tuple[LogReader, Iterable[str]]], partition_column: str
) -> tuple[pa.Table, list[int]]:
    """The live files of several tables at once (each given as :func:`read_add_actions`
    takes it): the columns of :func:`read_add_actions` after ``table``, the table's position
    in ``logs``, a table's files side by side. Their commit files are parsed and replayed
    together, a few megabytes at a time: a thousand one-commit tables paid Arrow's fixed costs
    per call a thousand times, more than the parsing itself.

    Only logs made of commit files (no checkpoint) are read here, under the same rules; the
    positions of the others — a checkpoint, a commit missing, a protocol or a deletion vector
    this reader refuses, a file that does not parse — come second, to be read one by one by
    :func:`read_add_actions`, which reads them or says why not."""
    import pyarrow as pa

    aside: list[int] = []
    parts: list[pa.Table] = [_no_files()]
    group: list[tuple[int, bytes]] = []
    size = 0
    for position, (read, names) in enumerate(logs):
        listed = set(names)
        found = _commit_texts(read, listed)
        if "_last_checkpoint" in listed or found is None:
            aside.append(position)
            continue
        group += [(position, text) for text in found]
        size += sum(len(text) for text in found)
        if size >= GROUP_BYTES:
            live, refused = _read_group(group, partition_column)
            parts.append(live)
            aside += refused
            group, size = [], 0
    if group:
        live, refused = _read_group(group, partition_column)
        parts.append(live)
        aside += refused
    return pa.concat_tables(parts), sorted(aside)


def _read_group(group: list[tuple[int, bytes]], column: str) -> tuple[pa.Table, list[int]]:
    """:func:`read_many_add_actions` of the commit files in ``group`` (each with its table's
    position, a table's in order), in one parse: the live files, and the tables refused."""
    import pyarrow as pa
    import pyarrow.compute as pc

    texts = [text if text.endswith(b"\n") else text + b"\n" for _, text in group]
    counts = [text.count(b"\n") for text in texts]  # per text, its lines
    every = list(dict.fromkeys(position for position, _ in group))
    try:
        lines = _parse(b"".join(texts), column)
    except UnreadableLog:
        return _no_files(), every
    if lines.num_rows != sum(counts):  # a blank line: the rows no longer say their table
        return _no_files(), every
    kept = [(o, c) for (o, _), c in zip(group, counts, strict=True) if c]
    table = pc.run_end_decode(
        pa.RunEndEncodedArray.from_arrays(
            pc.cumulative_sum(pa.array([c for _, c in kept], pa.int64())),
            pa.array([o for o, _ in kept], pa.int64()),
        )
    )
    actions = _actions(lines, pa.array(range(lines.num_rows), pa.int64()), column)
    refused = _refused(lines, table, actions)
    actions = actions.append_column("table", table.filter(_action_rows(lines)))
    if refused:
        actions = actions.filter(pc.invert(pc.is_in(actions["table"], pa.array(refused))))
    try:
        return _replay(actions), refused
    except UnreadableLog:
        return _no_files(), every


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


def _action_rows(lines: pa.Table) -> pa.Array:
    """Which parsed lines are add or remove actions (the rows :func:`_actions` keeps)."""
    import pyarrow.compute as pc

    return pc.or_(
        lines.column("add").combine_chunks().is_valid(),
        lines.column("remove").combine_chunks().is_valid(),
    )


def _refused(lines: pa.Table, table: pa.Array, actions: pa.Table) -> list[int]:
    """The tables (by position) whose protocol this reader does not read, that have none,
    or that have a file with a deletion vector."""
    import pyarrow.compute as pc

    protocols = lines.column("protocol").combine_chunks()
    has = protocols.is_valid()
    last: dict[int, tuple[int, list[str]] | None] = dict.fromkeys(
        pc.unique(table).to_pylist(), None
    )
    for owner, row in zip(
        table.filter(has).to_pylist(), protocols.filter(has).to_pylist(), strict=True
    ):
        last[owner] = _protocol_of(row) or last[owner]
    refused = {owner for owner, found in last.items() if found is None or not _readable(found)}
    vectors = actions.column("deletion_vector")
    if pc.any(vectors).as_py():
        with_vector = table.filter(_action_rows(lines)).filter(vectors.combine_chunks())
        refused.update(pc.unique(with_vector).to_pylist())
    return sorted(refused)


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


#: one action per row: its order in the log (``seq``), whether it adds, and what it says
def _actions_schema() -> pa.Schema:
    import pyarrow as pa

    return pa.schema(
        [
            ("seq", pa.int64()),
            ("is_add", pa.bool_()),
            ("path", pa.string()),
            ("partition", pa.string()),
            ("stats", pa.string()),
            ("parsed_records", pa.int64()),
            ("deletion_vector", pa.bool_()),
        ]
    )


def _commit(
    text: bytes, version: int, column: str
) -> tuple[pa.Table, tuple[int, list[str]] | None]:
    """The add and remove actions of one commit file, and its protocol action if it has one."""
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        lines = _parse(text, column)
    except UnreadableLog as exc:
        raise UnreadableLog(f"commit {version} does not parse") from exc
    # the version in the high bits, the line in the low ones: the log's order of actions
    seq = pc.add(pa.array(range(lines.num_rows), pa.int64()), pa.scalar(version << 32, pa.int64()))
    return _actions(lines, seq, column), _protocol(lines.column("protocol"))


def _parse(text: bytes, column: str) -> pa.Table:
    """The actions of commit files' text, one row per line: ``add``, ``remove``, ``protocol``
    (each null on the lines of other actions)."""
    import pyarrow as pa
    import pyarrow.json as pj

    schema = pa.schema(
        [
            (
                "add",
                pa.struct(
                    [
                        ("path", pa.string()),
                        ("partitionValues", pa.struct([(column, pa.string())])),
                        ("stats", pa.string()),
                        ("deletionVector", pa.struct([("storageType", pa.string())])),
                    ]
                ),
            ),
            ("remove", pa.struct([("path", pa.string())])),
            (
                "protocol",
                pa.struct(
                    [("minReaderVersion", pa.int64()), ("readerFeatures", pa.list_(pa.string()))]
                ),
            ),
        ]
    )
    try:
        return pj.read_json(
            io.BytesIO(text),
            read_options=pj.ReadOptions(use_threads=False),
            parse_options=pj.ParseOptions(
                explicit_schema=schema, unexpected_field_behavior="ignore"
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise UnreadableLog("commit files that do not parse") from exc


def _actions(lines: pa.Table, seq: pa.Array, column: str) -> pa.Table:
    """The add and remove actions among parsed ``lines`` (``seq``: each line's order)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    add = lines.column("add").combine_chunks()
    remove = lines.column("remove").combine_chunks()
    is_add = add.is_valid()
    actions = pa.table(
        {
            "seq": seq,
            "is_add": is_add,
            "path": pc.coalesce(pc.struct_field(add, "path"), pc.struct_field(remove, "path")),
            "partition": pc.struct_field(add, ["partitionValues", column]),
            "stats": pc.struct_field(add, "stats"),
            "parsed_records": pa.nulls(lines.num_rows, pa.int64()),
            "deletion_vector": pc.struct_field(add, "deletionVector").is_valid(),
        },
        schema=_actions_schema(),
    )
    return actions.filter(pc.or_(is_add, remove.is_valid()))


def _checkpoint(
    read: LogReader, name: str, column: str
) -> tuple[pa.Table, tuple[int, list[str]] | None]:
    """The add actions of one checkpoint file (every file live at its version), and the
    protocol it records."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    data = read(name)
    if data is None:
        raise UnreadableLog(f"checkpoint file {name} is missing")
    try:
        table = pq.read_table(io.BytesIO(data), columns=["add", "protocol"])
    except Exception as exc:  # any unreadable checkpoint: ask Delta
        raise UnreadableLog(f"checkpoint file {name} does not read") from exc
    add = table.column("add").combine_chunks()
    if not isinstance(add, pa.StructArray):
        raise UnreadableLog(f"checkpoint file {name}: its add column is not a struct")
    fields = {add.type.field(i).name for i in range(add.type.num_fields)}
    if not {"path", "partitionValues"} <= fields:
        raise UnreadableLog(f"checkpoint file {name}: add actions without path or partition")
    live = add.is_valid()
    n = len(add)
    values = pc.struct_field(add, "partitionValues")
    if not pa.types.is_map(values.type):
        raise UnreadableLog(f"checkpoint file {name}: partitionValues is not a map")
    partition = pc.map_lookup(values, column, "first")
    stats = pc.struct_field(add, "stats") if "stats" in fields else pa.nulls(n, pa.string())
    parsed = pa.nulls(n, pa.int64())
    if "stats_parsed" in fields:
        inner = pc.struct_field(add, "stats_parsed")
        if pa.types.is_struct(inner.type) and inner.type.get_field_index("numRecords") >= 0:
            parsed = pc.cast(pc.struct_field(inner, "numRecords"), pa.int64())
    vector = (
        pc.struct_field(add, "deletionVector").is_valid()
        if "deletionVector" in fields
        else pa.array([False] * n, pa.bool_())
    )
    actions = pa.table(
        {
            "seq": pa.array(range(n), pa.int64()),
            "is_add": live,
            "path": pc.struct_field(add, "path"),
            "partition": pc.cast(partition, pa.string()),
            "stats": pc.cast(stats, pa.string()),
            "parsed_records": parsed,
            "deletion_vector": vector,
        },
        schema=_actions_schema(),
    ).filter(live)
    return actions, _protocol(table.column("protocol"))


def _protocol(column: pa.ChunkedArray) -> tuple[int, list[str]] | None:
    """The last protocol action in ``column`` (its null rows are other actions)."""
    import pyarrow.compute as pc

    found = None
    for row in pc.drop_null(column).to_pylist():
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


def _replay(actions: pa.Table) -> pa.Table:
    """The live files: per path (per ``table`` and path, when the actions have a ``table``
    column: several tables' logs read together), its last action, kept when it is an add."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if pc.any(actions.column("deletion_vector")).as_py():
        raise UnreadableLog("a file with a deletion vector")
    by = ["table", "path"] if "table" in actions.column_names else ["path"]
    if pc.all(actions.column("is_add")).as_py() is not False and (
        pc.count_distinct(_file_ids(actions, by)).as_py() == actions.num_rows
    ):
        live = actions  # only adds, each path once: nothing replaced or removed
    else:
        order = pc.sort_indices(actions, [*((c, "ascending") for c in by), ("seq", "ascending")])
        ordered = actions.take(order)
        n = ordered.num_rows
        # the last action on each file: where the next row names another file, and the last row
        changed = pa.array([False] * (n - 1), pa.bool_()) if n else pa.array([], pa.bool_())
        for name in by:
            column = ordered.column(name).combine_chunks()
            differs = pc.fill_null(pc.not_equal(column.slice(0, n - 1), column.slice(1)), True)
            changed = pc.or_(changed, differs)
        last = pa.concat_arrays([changed, pa.array([True], pa.bool_())]) if n else changed
        last_actions = ordered.filter(last)
        live = last_actions.filter(last_actions.column("is_add"))
    columns = {
        "partition": live.column("partition"),
        "path": live.column("path"),
        "num_records": pc.coalesce(_records(live.column("stats")), live["parsed_records"]),
    }
    if "table" in live.column_names:
        columns = {"table": live.column("table"), **columns}
    return pa.table(columns)


def _file_ids(actions: pa.Table, by: list[str]) -> pa.ChunkedArray:
    """One value per file the actions name: its path, with its table's number before it when
    several tables are read together."""
    import pyarrow.compute as pc

    if by == ["path"]:
        return actions.column("path")
    number = pc.cast(actions.column("table"), "string")
    return pc.binary_join_element_wise(number, actions.column("path"), "\x00")


_FIRST_KEY = r'^\s*\{\s*"numRecords"\s*:\s*(?P<n>[0-9]{1,18})\s*[,}]'


def _records(stats: pa.ChunkedArray) -> pa.Array:
    """``numRecords`` of each file's statistics (JSON text; null: none), all read at once."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.json as pj

    n = len(stats)
    if n == 0 or stats.null_count == n:
        return pa.nulls(n, pa.int64())
    # writers put numRecords first: read it off the start of each text when every one has it
    # there (anchored at the opening brace, so it is the top-level key), else parse them all
    first = pc.extract_regex(stats, _FIRST_KEY)
    if first.null_count == stats.null_count:
        return pc.cast(pc.struct_field(first, "n"), pa.int64())
    texts = pc.fill_null(stats.combine_chunks(), "{}")
    joined = pc.binary_join(pa.ListArray.from_arrays(pa.array([0, n], pa.int32()), texts), "\n")
    try:
        parsed = pj.read_json(
            pa.BufferReader(joined[0].as_buffer()),
            read_options=pj.ReadOptions(use_threads=False),
            parse_options=pj.ParseOptions(
                explicit_schema=pa.schema([("numRecords", pa.int64())]),
                unexpected_field_behavior="ignore",
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise UnreadableLog("file statistics that do not parse") from exc
    if parsed.num_rows != n:  # a statistics text spread over lines, or an empty one
        raise UnreadableLog("file statistics that are not one object per file")
    records = parsed.column("numRecords").combine_chunks()
    return pc.if_else(stats.combine_chunks().is_valid(), records, pa.nulls(n, pa.int64()))
