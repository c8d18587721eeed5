"""A plan over several partitions, stored as ranges (plan schema version 2).

Consecutive partitions whose assets have the same gaps (asset, reason, action), the same
protected targets and so the same target assets are one :class:`PlanRange`; the seed's
per-partition values that differ from key to key (``upstream_manifest_id``,
``expected_input_count``, ``current_output_count``) are run-length encoded columns
(:class:`KeyColumns`); asset names are positions in the plan's ``assets``. The state the plan
was computed from is, per block of :data:`DIGEST_BLOCK` consecutive keys, one md5 of what the
manifests declare and one per asset of the source rows the classifier reads for its cells
(ledger records, stored rows and data files, reports, protections), plus one per upstream
asset the plan reads but does not cover (:class:`StateDigests`) — computed in DuckDB from the
same tables the classifier reads, so building (or re-checking) a ten-year plan over a
thousand assets makes no per-cell Python object, and its file is one or two megabytes.

A plan over one partition keeps the seed's document (:class:`~backfiller.planning.plan.
PlanDocument`, schema version 1); both are read back through :func:`parse_plan`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, RootModel, model_validator

from backfiller.asset_keys import shared_scheme
from backfiller.canonical import sha256_hex, stable_id
from backfiller.planning.gaps import GapReason, ProposedAction
from backfiller.planning.plan import PlanDocument, PlanHead, PlanRequest, combined_guard
from backfiller.refs import AssetPartition

if TYPE_CHECKING:
    import pyarrow as pa

    from backfiller.assets import AssetGraph
    from backfiller.ledger import LedgerReader
    from backfiller.partitions import PartitionScheme
    from backfiller.planning.state import OnProgress, ReadableStore, StateSource

    class FileStore(ReadableStore, Protocol):
        def partition_files(self, asset: str) -> pa.Table: ...

    class PlanSource(StateSource, Protocol):
        """What a plan of ranges reads of a project (a :class:`~backfiller.project.Project`
        fits): what observing reads, its partition scheme, and its store's data files."""

        @property
        def scheme(self) -> PartitionScheme: ...

        @property
        def store(self) -> FileStore: ...


__all__ = [
    "DIGEST_BLOCK",
    "AnyPlan",
    "KeyColumns",
    "PlanFile",
    "PlanRange",
    "RangeGap",
    "RangePlan",
    "StateDigests",
    "TargetSet",
    "build_range_plan",
    "parse_plan",
]

#: consecutive keys per state digest of an asset
DIGEST_BLOCK = 256

_Closed = ConfigDict(extra="forbid", frozen=True)


class RangeGap(BaseModel):
    """The gap of one asset (its position in the plan's ``assets``) over a whole range."""

    model_config = _Closed

    asset: Annotated[int, Field(ge=0)]
    gap_reason: GapReason
    proposed_action: ProposedAction


class TargetSet(BaseModel):
    """The assets a range recomputes (positions in ``assets``) and their idempotency guard."""

    model_config = _Closed

    assets: list[Annotated[int, Field(ge=0)]]
    idempotency_guard: str


class PlanRange(BaseModel):
    """``count`` consecutive partition keys of the request, ``first`` .. ``last``, sharing their
    gaps (``gaps``: a position in ``gap_sets``) and targets (a position in ``target_sets``);
    ``window_start`` is the first key's, ``window_end`` the last key's."""

    model_config = _Closed

    first: str
    last: str
    count: Annotated[int, Field(ge=1)]
    window_start: str | None
    window_end: str | None
    gap_reason: GapReason | None
    proposed_action: ProposedAction
    targets: Annotated[int, Field(ge=0)]
    gaps: Annotated[int, Field(ge=0)]


class KeyColumns(BaseModel):
    """The seed's values per partition key, in the request's key order, run-length encoded."""

    model_config = _Closed

    upstream_manifest_id: list[tuple[str | None, Annotated[int, Field(ge=1)]]]
    expected_input_count: list[tuple[int | None, Annotated[int, Field(ge=1)]]]
    current_output_count: list[tuple[int, Annotated[int, Field(ge=1)]]]


class StateDigests(BaseModel):
    """What the state fingerprint is the hash of, per block of ``block`` consecutive keys: an
    md5 of what the manifests declare for them (``keys``), and per asset of the plan (in
    ``assets`` order) an md5 of its ledger records, stored rows and data files, reports and
    protections of them; per upstream asset read but not covered, one md5 over its recorded
    data versions."""

    model_config = _Closed

    block: Annotated[int, Field(ge=1)]
    keys: list[Annotated[str, Field(pattern=r"^[0-9a-f]{32}$")]]
    assets: list[list[Annotated[str, Field(pattern=r"^[0-9a-f]{32}$")]]]
    upstream: dict[str, Annotated[str, Field(pattern=r"^[0-9a-f]{32}$")]]


class RangePlan(PlanHead):
    """A saved, reviewable backfill plan over several partitions, as ranges. Its top-level
    seed fields describe the whole boundary, as in a one-partition plan."""

    model_config = ConfigDict(
        title="backfiller plan (ranges)",
        json_schema_extra={"$comment": "generated from backfiller.planning.compact.RangePlan"},
    )

    schema_version: Literal[2] = 2
    # the partitions, as ranges
    assets: list[str]
    state_digests: StateDigests
    columns: KeyColumns
    target_sets: list[TargetSet]
    gap_sets: list[list[RangeGap]]
    ranges: list[PlanRange]

    @model_validator(mode="after")
    def _consistent(self) -> RangePlan:
        """Every position points at something, and the ranges and columns cover the request's
        keys exactly once, in order (a plan file edited by hand rarely does)."""
        problems = list(_inconsistencies(self))
        if problems:
            raise ValueError("; ".join(problems[:10]))
        return self

    @property
    def partition_count(self) -> int:
        return sum(r.count for r in self.ranges)

    def spans(self) -> Iterator[tuple[PlanRange, Sequence[str]]]:
        """Each range with its keys (a slice of the request's keys)."""
        keys, at = self.request.keys, 0
        for entry in self.ranges:
            yield entry, keys[at : at + entry.count]
            at += entry.count

    def recomputes(self, entry: PlanRange) -> bool:
        """Whether apply recomputes the range's targets."""
        return entry.proposed_action.recomputes or (
            self.include_materialized and entry.gap_reason in (None, GapReason.MISSING_UPSTREAM)
        )

    def iter_work(self) -> Iterator[AssetPartition]:
        """The (asset, partition) pairs apply recomputes, in key order, expanded lazily."""
        for entry, keys in self.spans():
            if not self.recomputes(entry):
                continue
            names = [self.assets[i] for i in self.target_sets[entry.targets].assets]
            for key in keys:
                for name in names:
                    yield AssetPartition(name, key)

    @property
    def work(self) -> list[AssetPartition]:
        return list(self.iter_work())

    def recomputed_assets(self) -> set[str]:
        return {
            self.assets[i]
            for e in self.ranges
            if self.recomputes(e)
            for i in self.target_sets[e.targets].assets
        }

    @property
    def work_count(self) -> int:
        return sum(
            e.count * len(self.target_sets[e.targets].assets)
            for e in self.ranges
            if self.recomputes(e)
        )

    def iter_reports(self) -> Iterator[AssetPartition]:
        """The (asset, partition) pairs whose lost report apply writes again."""
        for entry, keys in self.spans():
            names = [
                self.assets[g.asset]
                for g in self.gap_sets[entry.gaps]
                if g.proposed_action is ProposedAction.REISSUE_PARTITION_REPORT
            ]
            for key in keys:
                for name in names:
                    yield AssetPartition(name, key)

    def declared(self) -> Iterator[tuple[str, str | None, int | None]]:
        """``(partition key, upstream_manifest_id, expected_input_count)`` of every key."""
        keys = iter(self.request.keys)
        ids = _expand(self.columns.upstream_manifest_id)
        counts = _expand(self.columns.expected_input_count)
        yield from zip(keys, ids, counts, strict=True)

    def missing_backfill_fields(self, fields: Sequence[str]) -> list[str]:
        """``"KEY: missing a, b"`` for every partition with work whose ``fields`` are empty."""
        problems: list[str] = []
        ids = _expand(self.columns.upstream_manifest_id)
        for entry, keys in self.spans():
            chunk = [next(ids) for _ in keys]
            targets = self.target_sets[entry.targets]
            if entry.proposed_action is ProposedAction.NOTHING_TO_DO and not targets.assets:
                continue
            values: dict[str, Any] = {
                "window_start": entry.window_start,
                "window_end": entry.window_end,
                "idempotency_guard": targets.idempotency_guard,
            }
            for key, manifest in zip(keys, chunk, strict=True):
                values["upstream_manifest_id"] = manifest
                missing = [f for f in fields if not values[f]]
                if missing:
                    problems.append(f"{key}: missing {', '.join(missing)}")
        return problems


def _inconsistencies(plan: RangePlan) -> Iterator[str]:
    keys = plan.request.keys
    if len(keys) < 2:
        yield "a plan of ranges covers several partition keys"
    if sum(r.count for r in plan.ranges) != len(keys):
        yield f"the ranges cover {sum(r.count for r in plan.ranges)} keys, the request {len(keys)}"
    else:
        at = 0
        for i, r in enumerate(plan.ranges):
            if (keys[at], keys[at + r.count - 1]) != (r.first, r.last):
                yield f"ranges[{i}] is not {keys[at]} .. {keys[at + r.count - 1]}"
            at += r.count
    for name in ("upstream_manifest_id", "expected_input_count", "current_output_count"):
        total = sum(n for _, n in getattr(plan.columns, name))
        if total != len(keys):
            yield f"columns.{name} covers {total} keys, the request {len(keys)}"
    for i, r in enumerate(plan.ranges):
        if r.targets >= len(plan.target_sets):
            yield f"ranges[{i}].targets: no target set {r.targets}"
        if r.gaps >= len(plan.gap_sets):
            yield f"ranges[{i}].gaps: no gap set {r.gaps}"
    n = len(plan.assets)
    for i, t in enumerate(plan.target_sets):
        if any(a >= n for a in t.assets):
            yield f"target_sets[{i}] names an asset beyond the plan's {n}"
    for i, g in enumerate(plan.gap_sets):
        if any(x.asset >= n for x in g):
            yield f"gap_sets[{i}] names an asset beyond the plan's {n}"
    digests = plan.state_digests
    blocks = (len(keys) + digests.block - 1) // digests.block
    if len(digests.keys) != blocks:
        yield f"state_digests.keys does not hold {blocks} block(s)"
    if len(digests.assets) != n or any(len(d) != blocks for d in digests.assets):
        yield f"state_digests do not hold {blocks} block(s) for each of the {n} assets"


def _expand(runs: Sequence[tuple[Any, int]]) -> Iterator[Any]:
    for value, n in runs:
        for _ in range(n):
            yield value


def _runs(values: Sequence[Any]) -> list[tuple[Any, int]]:
    found: list[tuple[Any, int]] = []
    for value in values:
        if found and found[-1][0] == value:
            found[-1] = (value, found[-1][1] + 1)
        else:
            found.append((value, 1))
    return found


#: either kind of plan document
AnyPlan = PlanDocument | RangePlan


class PlanFile(RootModel[Annotated[AnyPlan, Field(discriminator="schema_version")]]):
    """A plan file: ``schema_version`` 1, one entry per partition (a plan over one partition:
    the seed's document), or 2, ranges (a plan over several)."""

    model_config = ConfigDict(
        title="backfiller plan",
        json_schema_extra={"$comment": "generated from backfiller.planning.compact.PlanFile"},
    )


def parse_plan(raw: Any) -> AnyPlan:
    """The plan ``raw`` (a parsed JSON document) is; pydantic's ``ValidationError`` if none."""
    return PlanFile.model_validate(raw).root


# -- building ---------------------------------------------------------------------------------

#: one letter per gap reason in a key's signature (DuckDB builds it, Python reads it back)
_CODES = {reason: chr(ord("a") + i) for i, reason in enumerate(GapReason)}
_REASON_OF = {code: reason for reason, code in _CODES.items()}

_SIGNATURES = """
SELECT idx, string_agg(pos::VARCHAR || c.code, ',' ORDER BY pos) AS signature
FROM classified JOIN codes c USING (reason)
WHERE reason IS NOT NULL
GROUP BY idx
"""

_PROTECTED = """
SELECT idx, string_agg(pos::VARCHAR, ',' ORDER BY pos) AS protected
FROM protection GROUP BY idx
"""

#: per cell, who protects it: the ledger's recorded protection, else the policy's first entry
#: covering it when the cell has data (:func:`~backfiller.policy.effective_protection`)
_PROTECTION = """
CREATE OR REPLACE TEMP TABLE protection AS SELECT * FROM (
SELECT c.pos, c.idx, coalesce(r.text, CASE WHEN c.data_version IS NOT NULL OR c.rows > 0 THEN
    CASE WHEN k.ord IS NOT NULL AND (a.ord IS NULL OR k.ord < a.ord) THEN k.text ELSE a.text END
END) AS protection
FROM classified c
LEFT JOIN recorded_protections r ON r.asset = c.asset AND r.partition_key = c.partition_key
LEFT JOIN policy_keys k ON k.asset = c.asset AND k.partition_key = c.partition_key
LEFT JOIN policy_assets a ON a.asset = c.asset
) WHERE protection IS NOT NULL
"""

_NO_PROTECTION = """
CREATE OR REPLACE TEMP TABLE protection AS
SELECT pos, idx, NULL::VARCHAR AS protection FROM classified WHERE false
"""

#: per asset and block of keys, an md5 over the asset's source rows of those keys — ledger
#: records, stored rows and data files, reports, protections —, not over the cells (a cell with
#: no row anywhere is described by its absence, so an empty project costs nothing to digest);
#: each row's text starts with its key's position and a letter naming its source (the rows
#: are the classifier's, each numbered by its cell: ``pos * keys + idx``)
_DIGESTS = """
WITH rows AS (
    SELECT cell, concat_ws('|', cell % {n}, 'l', status,
        coalesce(data_version::VARCHAR, '~'), coalesce(row_count::VARCHAR, '~'),
        coalesce(manifest_id, '~'), coalesce(manifest_checksum, '~'),
        coalesce(upstream_versions, '~'), coalesce(last_run_id, '~')) AS line
    FROM ledger_at
    UNION ALL
    SELECT cell, concat_ws('|', cell % {n}, 's', rows, missing_files) FROM stored_at
    UNION ALL
    SELECT a.pos * {n} + k.idx, concat_ws('|', k.idx, 'f', f.path)
    FROM files f JOIN assets a USING (asset) JOIN keys k USING (partition_key)
    UNION ALL
    SELECT cell, concat_ws('|', cell % {n}, 'r') FROM reports_at
    UNION ALL
    SELECT pos * {n} + idx, concat_ws('|', idx, 'p', protection) FROM protection
)
SELECT cell // {n} AS pos, cell % {n} // {block} AS block,
       md5(string_agg(line, chr(10) ORDER BY line))
FROM rows GROUP BY ALL
"""

#: per block of keys, an md5 over what the manifests declare for them (every asset reads it)
_KEY_DIGESTS = """
SELECT idx // {block} AS block, md5(string_agg(concat_ws('|', idx, partition_key,
    coalesce(manifest_id, '~'), coalesce(manifest_checksum, '~'),
    coalesce(expected::VARCHAR, '~'), coalesce(broken, '~')), chr(10) ORDER BY idx))
FROM keys GROUP BY ALL ORDER BY block
"""

_FIRST_ROWS = """
SELECT k.idx, s.rows FROM stored s JOIN keys k USING (partition_key) WHERE s.asset = ?
"""

#: the digest of a block with no source row
_EMPTY_DIGEST = "d41d8cd98f00b204e9800998ecf8427e"

_UPSTREAM = """
SELECT asset, md5(string_agg(partition_key || '=' || coalesce(data_version::VARCHAR, '~'), ','
                             ORDER BY partition_key))
FROM upstream WHERE asset NOT IN (SELECT asset FROM assets) GROUP BY asset
"""


@dataclass(frozen=True)
class _Observed:
    """What the classifier's batches give a range plan."""

    signatures: list[str]
    digests: list[list[str]]
    declared: list[str]
    upstream: dict[str, str]
    #: per key, the rows the plan's first asset stores (read with the digests, so that the two
    #: describe one state even while others write)
    first_rows: list[int]


def _observe(
    project: PlanSource,
    reader: LedgerReader,
    keys: Sequence[str],
    assets: Sequence[str],
    on_progress: OnProgress | None,
) -> _Observed:
    import pyarrow as pa

    from backfiller.planning.classify import classified_batches, islands

    gaps: list[list[str]] = [[] for _ in keys]
    runs: list[tuple[int, int, int, str]] = []  # (first idx, last idx, pos, reason code)
    protected: list[list[str]] = [[] for _ in keys]
    blocks = (len(keys) + DIGEST_BLOCK - 1) // DIGEST_BLOCK
    digests = [[_EMPTY_DIGEST] * blocks for _ in assets]
    declared: list[str] = []
    upstream: dict[str, str] = {}
    first_rows = [0] * len(keys)
    codes = pa.table({"reason": [r.value for r in _CODES], "code": list(_CODES.values())})
    tables = _protection_tables(project, reader, assets)
    planned = set(assets)
    for con in classified_batches(project, reader, keys, on_progress, assets):
        batch = [a for (a,) in con.execute("SELECT asset FROM assets ORDER BY pos").fetchall()]
        con.register("codes", codes)
        con.register("files", _files(project, batch))
        if tables is None:
            con.execute(_NO_PROTECTION)
        else:
            for name, table in tables.items():
                con.register(name, table)
            con.execute(_PROTECTION)
            for idx, text in con.execute(_PROTECTED).fetchall():
                protected[idx].append(text)
        found = [
            (first, last, pos, _CODES[reason], n)
            for pos, _, state, first, last, n in islands(con)
            if (reason := state.gap_reason) is not None
        ]
        if all(last - first + 1 == n for first, last, _, _, n in found):
            runs += [(first, last, pos, code) for first, last, pos, code, _ in found]
        else:  # keys that are not consecutive (assets with schemes of their own): per key
            for idx, text in con.execute(_SIGNATURES).fetchall():
                gaps[idx].append(text)
        query = _DIGESTS.format(block=DIGEST_BLOCK, n=len(keys))
        for pos, block, digest in con.execute(query).fetchall():
            digests[pos][block] = digest
        if assets and batch[0] == assets[0]:
            for idx, rows in con.execute(_FIRST_ROWS, [assets[0]]).fetchall():
                first_rows[idx] = rows
        if not declared:
            declared = [
                d for _, d in con.execute(_KEY_DIGESTS.format(block=DIGEST_BLOCK)).fetchall()
            ]
        for asset, digest in con.execute(_UPSTREAM).fetchall():
            if asset not in planned:  # a planned asset's own digests cover its versions
                upstream[asset] = digest
    for idx, text in _swept(len(keys), runs):
        gaps[idx].append(text)
    signatures = [
        ",".join(g) + ("|" + ",".join(p) if p else "") for g, p in zip(gaps, protected, strict=True)
    ]
    return _Observed(signatures, digests, declared, dict(sorted(upstream.items())), first_rows)


def _swept(n: int, runs: Sequence[tuple[int, int, int, str]]) -> Iterator[tuple[int, str]]:
    """Per key position below ``n`` with a gap, the gap part of its signature (``"0a,3b"``,
    in asset order), from the runs of consecutive keys each asset has one gap reason over:
    the text is made again only where a run starts or ends, not per cell."""
    starts: dict[int, list[tuple[int, str]]] = {}
    ends: dict[int, list[int]] = {}
    for first, last, pos, code in runs:
        starts.setdefault(first, []).append((pos, code))
        ends.setdefault(last + 1, []).append(pos)
    active: dict[int, str] = {}
    text = ""
    for idx in range(n):
        if idx in starts or idx in ends:
            for pos in ends.get(idx, ()):
                del active[pos]
            for pos, code in starts.get(idx, ()):
                active[pos] = code
            text = ",".join(f"{pos}{active[pos]}" for pos in sorted(active))
        if text:
            yield idx, text


def _files(project: PlanSource, batch: Sequence[str]) -> Any:
    import pyarrow as pa

    schema = pa.schema(
        [("asset", pa.string()), ("partition_key", pa.string()), ("path", pa.string())]
    )
    tables = []
    for asset in batch:
        files = project.store.partition_files(asset).select(["partition_key", "path"])
        files = files.add_column(0, "asset", pa.repeat(pa.scalar(asset), files.num_rows))
        # one type per column whatever a store gives (an empty listing may come untyped); a
        # cast only where a type differs (Table.cast imports pyarrow.compute, some 30 ms)
        tables.append(files if files.schema == schema else files.cast(schema))
    if not tables:
        return schema.empty_table()
    return pa.concat_tables(tables)


def _protection_tables(
    project: PlanSource, reader: LedgerReader, assets: Sequence[str]
) -> dict[str, Any] | None:
    """The protections as tables for :data:`_PROTECTION` (``None``: nothing is protected)."""
    import pyarrow as pa

    from backfiller.policy import POLICY_REASON

    chosen = set(assets)
    recorded = [p for p in reader.protections.all() if p.asset in chosen]
    policy = [(i, p) for i, p in enumerate(project.policy.protected) if p.asset in chosen]
    if not recorded and not policy:
        return None
    first_asset: dict[str, tuple[int, str]] = {}
    first_key: dict[tuple[str, str], tuple[int, str]] = {}
    for i, p in policy:
        text = f"{POLICY_REASON}: {p.spec}, by policy"
        if p.partition_key is None:
            first_asset.setdefault(p.asset, (i, text))
        else:
            first_key.setdefault((p.asset, p.partition_key), (i, text))
    string = pa.string()
    return {
        "recorded_protections": pa.table(
            {
                "asset": pa.array([p.asset for p in recorded], string),
                "partition_key": pa.array([p.partition_key for p in recorded], string),
                "text": pa.array([f"{p.reason}, by {p.operator}" for p in recorded], string),
            }
        ),
        "policy_keys": pa.table(
            {
                "asset": pa.array([a for a, _ in first_key], string),
                "partition_key": pa.array([k for _, k in first_key], string),
                "ord": pa.array([o for o, _ in first_key.values()], pa.int64()),
                "text": pa.array([t for _, t in first_key.values()], string),
            }
        ),
        "policy_assets": pa.table(
            {
                "asset": pa.array(list(first_asset), string),
                "ord": pa.array([o for o, _ in first_asset.values()], pa.int64()),
                "text": pa.array([t for _, t in first_asset.values()], string),
            }
        ),
    }


def state_fingerprint_of(digests: StateDigests) -> str:
    """The plan's state fingerprint: one hash over its state digests."""
    return sha256_hex(digests.model_dump(mode="json"))


@dataclass(frozen=True)
class _Shape:
    """What one key signature means: its gaps, its targets and its primary gap."""

    gaps: int
    targets: int
    reason: GapReason | None
    action: ProposedAction


class _Sets:
    """Gap sets and target sets, each kept once."""

    def __init__(self, graph: AssetGraph, assets: Sequence[str]) -> None:
        self.graph = graph
        self.assets = list(assets)
        self.position = {a: i for i, a in enumerate(assets)}
        self.gap_sets: list[list[RangeGap]] = []
        self.target_sets: list[TargetSet] = []
        self._gap_index: dict[tuple[tuple[int, str], ...], int] = {}
        self._target_index: dict[tuple[int, ...], int] = {}

    def gap_set(self, gaps: list[RangeGap]) -> int:
        identity = tuple((g.asset, g.gap_reason.value) for g in gaps)
        if identity not in self._gap_index:
            self._gap_index[identity] = len(self.gap_sets)
            self.gap_sets.append(gaps)
        return self._gap_index[identity]

    def target_set(self, targets: list[int]) -> int:
        identity = tuple(targets)
        if identity not in self._target_index:
            names = [self.assets[i] for i in targets]
            guard = combined_guard(self.graph, names or self.assets)
            self._target_index[identity] = len(self.target_sets)
            self.target_sets.append(TargetSet(assets=targets, idempotency_guard=guard))
        return self._target_index[identity]


def _shape(sets: _Sets, signature: str, key: str, include_materialized: bool) -> _Shape:
    """Read a key's signature back (``"0a,3b|3"``: asset 0 has the reason coded ``a``, asset 3
    ``b``; asset 3 is protected) into its gap set, target set and primary gap."""
    gap_part, _, protected_part = signature.partition("|")
    found = [(int(item[:-1]), _REASON_OF[item[-1]]) for item in gap_part.split(",") if item]
    protected = {int(p) for p in protected_part.split(",") if p}
    assets = sets.assets
    seeds = [(assets[i], key) for i, r in found if r.proposed_action.recomputes]
    # a partition whose upstream does not exist is never recomputed, nor what reads it (as
    # the per-cell plan: :func:`~backfiller.planning.plan.build_plan`)
    blocked = [(assets[i], key) for i, r in found if r is GapReason.MISSING_UPSTREAM]
    if include_materialized and len(found) == len(blocked):
        seeds = [(a, key) for a in assets]
    if seeds:
        stop = sets.graph.downstream_closure(blocked) if blocked else []
        closure = sets.graph.downstream_closure(seeds, blocked=stop)
        targets = [sets.position[a] for a, k in closure if k == key and a in sets.position]
    else:
        targets = [i for i, r in found if r is not GapReason.NO_EXPECTED_INPUT]
    gaps = [RangeGap(asset=i, gap_reason=r, proposed_action=r.proposed_action) for i, r in found]
    gaps += [
        RangeGap(
            asset=i,
            gap_reason=GapReason.PROTECTED,
            proposed_action=ProposedAction.BLOCKED_PROTECTED,
        )
        for i in targets
        if i in protected
    ]
    primary = next(
        (r for _, r in found if r is not GapReason.MISSING_UPSTREAM),
        found[0][1] if found else None,
    )
    return _Shape(
        gaps=sets.gap_set(gaps),
        targets=sets.target_set(targets),
        reason=primary,
        action=primary.proposed_action if primary else ProposedAction.NOTHING_TO_DO,
    )


def build_range_plan(
    project: PlanSource,
    reader: LedgerReader,
    request: PlanRequest,
    *,
    downstream_impact: str,
    report_path: str,
    now: datetime,
    project_name: str,
    on_progress: OnProgress | None = None,
) -> RangePlan:
    """The plan of ``request`` as ranges, from the classifier's batches: the same request over
    the same state gives the same plan (and plan id)."""
    graph, keys = project.graph, list(request.keys)
    chosen = set(request.assets) if request.assets else None
    assets = [a for a in graph.keys if chosen is None or a in chosen]
    observed = _observe(project, reader, keys, assets, on_progress)
    sets = _Sets(graph, assets)
    shapes: dict[str, _Shape] = {}
    ranges: list[PlanRange] = []
    scheme = shared_scheme(graph, assets) or project.scheme  # the assets' own keys
    at = 0
    while at < len(keys):
        signature = observed.signatures[at]
        end = at
        while end + 1 < len(keys) and observed.signatures[end + 1] == signature:
            end += 1
        if signature not in shapes:
            shapes[signature] = _shape(sets, signature, keys[at], request.include_materialized)
        shape = shapes[signature]
        start_window, end_window = scheme.window(keys[at]), scheme.window(keys[end])
        ranges.append(
            PlanRange(
                first=keys[at],
                last=keys[end],
                count=end - at + 1,
                window_start=start_window.render()[0] if start_window else None,
                window_end=end_window.render()[1] if end_window else None,
                gap_reason=shape.reason,
                proposed_action=shape.action,
                targets=shape.targets,
                gaps=shape.gaps,
            )
        )
        at = end + 1
    columns = _columns(project, keys, observed.first_rows)
    digests = StateDigests(
        block=DIGEST_BLOCK,
        keys=observed.declared,
        assets=observed.digests,
        upstream=observed.upstream,
    )
    fingerprint = state_fingerprint_of(digests)
    identity = {
        "request": request.model_dump(mode="json"),
        "state_fingerprint": fingerprint,
        "project": project_name,
    }
    summary = _summary(
        request, graph, sets, ranges, columns, downstream_impact, report_path, assets
    )
    return RangePlan(
        plan_id=stable_id("plan", identity),
        created_at=now,
        action="backfill",
        project=project_name,
        reason=request.reason,
        include_materialized=request.include_materialized,
        request=request,
        state_fingerprint=fingerprint,
        assets=assets,
        state_digests=digests,
        columns=columns,
        target_sets=sets.target_sets,
        gap_sets=sets.gap_sets,
        ranges=ranges,
        **summary,
    )


def _columns(project: PlanSource, keys: Sequence[str], first_rows: list[int]) -> KeyColumns:
    """The seed's per-partition values, as the one-partition plan takes them: the manifest
    that declares the key (or the broken stand-in that does), its expected count, and the rows
    the first asset stores (``first_rows``)."""
    manifests = project.manifests
    ids: list[str | None] = []
    expected: list[int | None] = []
    for key in keys:
        declared = manifests.for_partition(key)
        if declared is not None:
            ids.append(declared[0].manifest_id)
            expected.append(declared[1].expected_record_count)
        else:
            stand_in = manifests.broken_for(key)
            ids.append(stand_in.manifest_id if stand_in else None)
            expected.append(None)
    return KeyColumns(
        upstream_manifest_id=_runs(ids),
        expected_input_count=_runs(expected),
        current_output_count=_runs(first_rows),
    )


def _summary(
    request: PlanRequest,
    graph: AssetGraph,
    sets: _Sets,
    ranges: list[PlanRange],
    columns: KeyColumns,
    downstream_impact: str,
    report_path: str,
    assets: Sequence[str],
) -> dict[str, Any]:
    first, last = ranges[0], ranges[-1]
    manifests = sorted({m for m, _ in columns.upstream_manifest_id if m})
    expected = columns.expected_input_count
    gapped = [r for r in ranges if r.gap_reason is not None]
    summary: dict[str, int] = {}
    for reason in GapReason:
        n = sum(r.count for r in gapped if r.gap_reason is reason)
        if n:
            summary[reason.value] = n
    used = {sets.assets[i] for r in ranges for i in sets.target_sets[r.targets].assets}
    targets = [a for a in graph.keys if a in used]
    return {
        "partition_key": f"{first.first}..{last.last}",
        "window_start": first.window_start,
        "window_end": last.window_end,
        "mode": request.mode,
        "upstream_manifest_id": ",".join(manifests) if manifests else None,
        "expected_input_count": None
        if all(v is None for v, _ in expected)
        else sum((v or 0) * n for v, n in expected),
        "current_output_count": sum(v * n for v, n in columns.current_output_count),
        "gap_reason": gapped[0].gap_reason if gapped else None,
        "gap_summary": summary,
        "proposed_action": gapped[0].proposed_action if gapped else ProposedAction.NOTHING_TO_DO,
        "idempotency_guard": combined_guard(graph, targets or list(assets)),
        "downstream_impact": downstream_impact,
        "operator": request.operator,
        "target_assets": targets,
        "report_path": report_path,
    }


def digest_differences(saved: RangePlan, now: RangePlan) -> list[str]:
    """Readable lines naming where the state changed: an asset and the keys of each block
    whose digest differs, an upstream asset whose versions moved."""
    lines: list[str] = []
    keys, block = saved.request.keys, saved.state_digests.block
    for name, old, new in zip(
        saved.assets, saved.state_digests.assets, now.state_digests.assets, strict=False
    ):
        for b, (x, y) in enumerate(zip(old, new, strict=False)):
            if x != y:
                span = keys[b * block : (b + 1) * block]
                lines.append(f"{name} {span[0]} .. {span[-1]}: the state changed")
    for b, (x, y) in enumerate(zip(saved.state_digests.keys, now.state_digests.keys, strict=False)):
        if x != y:
            span = keys[b * block : (b + 1) * block]
            lines.append(f"the manifests' declarations of {span[0]} .. {span[-1]} changed")
    before, after = saved.state_digests.upstream, now.state_digests.upstream
    for name in sorted(set(before) | set(after)):
        if before.get(name) != after.get(name):
            lines.append(f"{name} (upstream): its recorded data versions changed")
    return lines
