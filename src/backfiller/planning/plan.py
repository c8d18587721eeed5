"""The plan: data, not a side effect.

A pure builder turns observations into a frozen :class:`PlanDocument` that holds, per partition,
the seed's fields (``partition_key``, ``window_start``, ``window_end``, ``mode``,
``upstream_manifest_id``, ``expected_input_count``, ``current_output_count``, ``gap_reason``,
``proposed_action``, ``idempotency_guard``, ``downstream_impact``, ``operator``,
``target_assets``, ``report_path``) plus a deterministic ``plan_id``, ``created_at``, the
action, and a fingerprint of the state it was computed from. The same document is what apply
executes and what a reviewer reads.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from enum import Enum
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from backfiller.asset_keys import owners, shared_scheme
from backfiller.assets import Asset, AssetGraph
from backfiller.canonical import stable_id
from backfiller.errors import UnsupportedModeError
from backfiller.manifests import BrokenManifest
from backfiller.partitions import PartitionScheme, dimension_values
from backfiller.planning.gaps import Gap, GapReason, ProposedAction, detect_gap
from backfiller.planning.state import Observation, state_fingerprint
from backfiller.refs import AssetPartition

__all__ = [
    "AssetGap",
    "Mode",
    "PlanDocument",
    "PlanEntry",
    "PlanRequest",
    "build_plan",
    "gap_of",
    "parse_mode",
]

PLAN_SCHEMA_VERSION = 1


class Mode(Enum):
    DRY_RUN = "dry-run"
    APPLY = "apply"


def parse_mode(value: str) -> Mode:
    try:
        return Mode(value)
    except ValueError:
        supported = ", ".join(m.value for m in Mode)
        raise UnsupportedModeError(
            f"Unsupported backfill mode: {value!r} (supported: {supported})",
            hint="pass --mode dry-run to write only the plan, or --mode apply",
        ) from None


_Closed = ConfigDict(extra="forbid", frozen=True)


class AssetGap(BaseModel):
    """The gap of one asset in one partition."""

    model_config = _Closed

    asset: str
    gap_reason: GapReason
    proposed_action: ProposedAction
    expected_count: int | None
    current_count: int
    detail: str

    @classmethod
    def of(cls, gap: Gap) -> AssetGap:
        return cls(
            asset=gap.asset,
            gap_reason=gap.reason,
            proposed_action=gap.proposed_action,
            expected_count=gap.expected_count,
            current_count=gap.current_count,
            detail=gap.detail,
        )


class PlanEntry(BaseModel):
    """One partition of the plan, with the seed's fields."""

    model_config = _Closed

    partition_key: str
    window_start: str | None
    window_end: str | None = Field(
        description="the seed's inclusive rendering of the half-open window end"
    )
    mode: Mode
    upstream_manifest_id: str | None
    expected_input_count: int | None
    current_output_count: int
    gap_reason: GapReason | None
    proposed_action: ProposedAction
    idempotency_guard: str
    downstream_impact: str
    operator: str
    target_assets: list[str]
    report_path: str
    asset_gaps: list[AssetGap]
    dimensions: dict[str, str] | None = Field(
        default=None,
        description="each dimension's value of a multi-dimensional key (absent otherwise)",
        exclude_if=lambda value: value is None,  # a one-dimension entry is written as before
    )


class PlanRequest(BaseModel):
    """What the operator asked for."""

    model_config = _Closed

    keys: list[str]
    mode: Mode
    operator: str
    reason: str | None = None
    include_materialized: bool = False
    assets: list[str] | None = None


class PlanDocument(BaseModel):
    """A saved, reviewable backfill plan. Its top-level seed fields describe the whole boundary;
    ``partitions`` holds the same fields per partition."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        title="backfiller plan",
        json_schema_extra={"$comment": "generated from backfiller.planning.plan.PlanDocument"},
    )

    schema_version: Literal[1] = 1
    plan_id: Annotated[str, Field(pattern=r"^plan-[0-9a-f]{16}$")]
    created_at: AwareDatetime
    action: Literal["backfill"]
    project: str
    reason: str | None = None
    include_materialized: bool = False
    # the seed's fields, for the whole boundary
    partition_key: str
    window_start: str | None
    window_end: str | None
    mode: Mode
    upstream_manifest_id: str | None
    expected_input_count: int | None
    current_output_count: int
    gap_reason: GapReason | None
    proposed_action: ProposedAction
    idempotency_guard: str
    downstream_impact: str
    operator: str
    target_assets: list[str]
    report_path: str
    gap_summary: dict[str, int] = Field(
        description="how many partitions have each gap reason (gap_reason is the first)"
    )
    # what the plan was computed from: the whole request, and the state it observed
    request: PlanRequest
    state_fingerprint: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    state: dict[str, dict[str, Any]]
    partitions: list[PlanEntry]

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    @property
    def work(self) -> list[AssetPartition]:
        """The (asset, partition) pairs apply recomputes, in dependency order per partition."""
        return list(self.iter_work())

    def iter_work(self) -> Iterator[AssetPartition]:
        for entry in self.partitions:
            if entry.proposed_action.recomputes or (
                self.include_materialized and entry.gap_reason in (None, GapReason.MISSING_UPSTREAM)
            ):
                yield from (AssetPartition(a, entry.partition_key) for a in entry.target_assets)

    @property
    def work_count(self) -> int:
        return sum(1 for _ in self.iter_work())

    @property
    def partition_count(self) -> int:
        return len(self.partitions)

    def recomputed_assets(self) -> set[str]:
        return {a for a, _ in self.iter_work()}

    def iter_reports(self) -> Iterator[AssetPartition]:
        """The (asset, partition) pairs whose lost report apply writes again."""
        for entry in self.partitions:
            for gap in entry.asset_gaps:
                if gap.proposed_action is ProposedAction.REISSUE_PARTITION_REPORT:
                    yield AssetPartition(gap.asset, entry.partition_key)

    def declared(self) -> Iterator[tuple[str, str | None, int | None]]:
        """``(partition key, upstream_manifest_id, expected_input_count)`` of every key."""
        for e in self.partitions:
            yield e.partition_key, e.upstream_manifest_id, e.expected_input_count

    def missing_backfill_fields(self, fields: Sequence[str]) -> list[str]:
        """``"KEY: missing a, b"`` for every partition with work whose ``fields`` are empty."""
        problems: list[str] = []
        for entry in self.partitions:
            if entry.proposed_action is ProposedAction.NOTHING_TO_DO and not entry.target_assets:
                continue
            missing = [f for f in fields if not getattr(entry, f)]
            if missing:
                problems.append(f"{entry.partition_key}: missing {', '.join(missing)}")
        return problems


def gap_of(asset: Asset, obs: Observation, broken: BrokenManifest | None = None) -> Gap | None:
    """The gap of one (asset, partition); a partition declared by a broken manifest (a
    stand-in failing validation) is ``manifest_changed``, its detail naming what is missing."""
    if broken is None:
        return detect_gap(asset, obs)
    return Gap(
        asset.key,
        obs.partition_key,
        GapReason.MANIFEST_CHANGED,
        f"{broken.describe()}; apply, rerun and replay are refused until it is fixed",
        None,
        obs.stored_rows,
    )


def combined_guard(graph: AssetGraph, assets: Sequence[str]) -> str:
    guards = sorted({graph.get(a).idempotency_guard for a in assets})
    if len(guards) <= 1:
        return guards[0] if guards else ""
    return "; ".join(f"{a}: {graph.get(a).idempotency_guard}" for a in assets)


def _protected(obs: Observation) -> Gap | None:
    """A protected baseline the plan would recompute: applying it is refused unless the
    operator overrides the protection with a reason (recorded)."""
    if obs.protection is None:
        return None
    return Gap(
        obs.asset,
        obs.partition_key,
        GapReason.PROTECTED,
        f"protected baseline ({obs.protection}): apply needs --override-protected --reason TEXT",
        obs.expected_count,
        obs.stored_rows,
    )


def build_plan(
    *,
    request: PlanRequest,
    graph: AssetGraph,
    scheme: PartitionScheme,
    observations: dict[AssetPartition, Observation],
    project_name: str,
    downstream_impact: str,
    report_path: str,
    now: datetime,
    broken: Mapping[str, BrokenManifest] | None = None,
) -> PlanDocument:
    """Pure: the same request over the same state gives the same plan (and plan id).
    ``broken`` maps partition keys to the broken manifest that declares them.

    When the assets have different schemes (a daily asset and its monthly rollup), each key's
    entry holds the assets whose scheme has the key, with that scheme's window; what is
    downstream of a recomputed cell, across schemes (the month of a changed day), is
    recomputed when it is in the plan."""
    assets = request.assets or graph.keys
    broken = broken or {}
    shared = shared_scheme(graph, assets) is not None
    per_key: list[tuple[str, list[str], list[Gap]]] = []
    for key in request.keys:
        stand_in = broken.get(key)
        mine = owners(graph, key, assets)
        gaps = [
            g
            for a in mine
            if (g := gap_of(graph.get(a), observations[AssetPartition(a, key)], stand_in))
        ]
        per_key.append((key, mine, gaps))
    reached = set() if shared else _reached(graph, request, per_key, observations)
    entries: list[PlanEntry] = []
    for key, mine, gaps in per_key:
        window = (scheme if shared else graph.scheme(mine[0])).window(key)
        window_start, window_end = window.render() if window else (None, None)
        stand_in = broken.get(key)
        if shared:
            targets = _targets_of(graph, request, key, mine, gaps)
        else:
            targets = [a for a in mine if AssetPartition(a, key) in reached]
        first = observations[AssetPartition(mine[0], key)]
        primary = next(
            (g for g in gaps if g.reason is not GapReason.MISSING_UPSTREAM),
            gaps[0] if gaps else None,
        )
        entries.append(
            PlanEntry(
                partition_key=key,
                window_start=window_start,
                window_end=window_end,
                mode=request.mode,
                upstream_manifest_id=first.manifest_id
                or (stand_in.manifest_id if stand_in else None)
                or first.declared_upstream,
                expected_input_count=first.expected_count,
                current_output_count=first.stored_rows,
                gap_reason=primary.reason if primary else None,
                proposed_action=(
                    primary.proposed_action
                    if primary
                    # several schemes: no gap of its own, but downstream of a recomputed cell
                    # (the day's total of a new product line): recomputed with it
                    else ProposedAction.RERUN_DOWNSTREAM
                    if targets and not shared
                    else ProposedAction.NOTHING_TO_DO
                ),
                idempotency_guard=combined_guard(graph, targets or mine),
                downstream_impact=downstream_impact,
                operator=request.operator,
                target_assets=targets,
                report_path=report_path,
                dimensions=dimension_values(scheme if shared else graph.scheme(mine[0]), key),
                asset_gaps=[AssetGap.of(g) for g in gaps]
                + [
                    AssetGap.of(protected)
                    for a in targets
                    if (protected := _protected(observations[AssetPartition(a, key)]))
                ],
            )
        )
    state = {f"{a}|{k}": obs.token() for (a, k), obs in sorted(observations.items())}
    fingerprint = state_fingerprint(observations)
    body = _summary(entries, request, graph, assets, downstream_impact, report_path)
    if not shared:  # the entries' windows are not in order: the span of them all
        body |= _span(entries)
    identity = {
        "request": request.model_dump(mode="json"),
        "state_fingerprint": fingerprint,
        "project": project_name,
    }
    return PlanDocument(
        plan_id=stable_id("plan", identity),
        created_at=now,
        action="backfill",
        project=project_name,
        reason=request.reason,
        include_materialized=request.include_materialized,
        request=request,
        state_fingerprint=fingerprint,
        state=state,
        partitions=entries,
        **body,
    )


def _seeds(
    request: PlanRequest, key: str, mine: list[str], gaps: list[Gap]
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """What one key recomputes first (its gaps that recompute; with ``include_materialized``
    and no other gap, all of ``mine``) and what it cannot (a missing upstream)."""
    seeds = [(g.asset, key) for g in gaps if g.proposed_action.recomputes]
    # a partition whose upstream does not exist is never recomputed, nor what reads it
    blocked = [(g.asset, key) for g in gaps if g.reason is GapReason.MISSING_UPSTREAM]
    if request.include_materialized and len(gaps) == len(blocked):
        seeds = [(a, key) for a in mine]
    return seeds, blocked


def _targets_of(
    graph: AssetGraph, request: PlanRequest, key: str, mine: list[str], gaps: list[Gap]
) -> list[str]:
    """One scheme: the assets one key recomputes — its seeds and what is downstream of them
    in the same key."""
    seeds, blocked = _seeds(request, key, mine, gaps)
    stop = graph.downstream_closure(blocked) if blocked else []
    if not seeds:
        return [g.asset for g in gaps if g.reason is not GapReason.NO_EXPECTED_INPUT]
    return [a for a, k in graph.downstream_closure(seeds, blocked=stop) if k == key and a in mine]


def _reached(
    graph: AssetGraph,
    request: PlanRequest,
    per_key: list[tuple[str, list[str], list[Gap]]],
    observations: Mapping[AssetPartition, Observation],
) -> set[AssetPartition]:
    """Several schemes: the cells of the plan it recomputes — every key's seeds and what is
    downstream of them in any key of the plan (the month of a changed day), never through a
    cell whose upstream is missing; a key without seeds recomputes its gaps that are not
    ``no_expected_input``."""
    seeds: list[tuple[str, str]] = []
    blocked: list[tuple[str, str]] = []
    quiet: set[AssetPartition] = set()
    for key, mine, gaps in per_key:
        found, stopped = _seeds(request, key, mine, gaps)
        seeds += found
        blocked += stopped
        if not found:
            quiet |= {
                AssetPartition(g.asset, key)
                for g in gaps
                if g.reason is not GapReason.NO_EXPECTED_INPUT
            }
    stop = graph.downstream_closure(blocked) if blocked else []
    closure = graph.downstream_closure(seeds, blocked=stop) if seeds else []
    return {c for c in closure if c in observations} | quiet


def _span(entries: list[PlanEntry]) -> dict[str, str | None]:
    """The earliest ``window_start`` and the latest ``window_end`` of ``entries`` (compared
    as instants)."""
    starts = [e.window_start for e in entries if e.window_start]
    ends = [e.window_end for e in entries if e.window_end]
    return {
        "window_start": min(starts, key=datetime.fromisoformat) if starts else None,
        "window_end": max(ends, key=datetime.fromisoformat) if ends else None,
    }


def _summary(
    entries: list[PlanEntry],
    request: PlanRequest,
    graph: AssetGraph,
    assets: Sequence[str],
    downstream_impact: str,
    report_path: str,
) -> dict[str, Any]:
    first, last = entries[0], entries[-1]
    manifests = sorted({e.upstream_manifest_id for e in entries if e.upstream_manifest_id})
    reasons = [e.gap_reason for e in entries if e.gap_reason is not None]
    actions = [e.proposed_action for e in entries if e.gap_reason is not None]
    expected = [e.expected_input_count for e in entries]
    targets = [a for a in graph.keys if any(a in e.target_assets for e in entries)]
    return {
        "partition_key": first.partition_key
        if len(entries) == 1
        else f"{first.partition_key}..{last.partition_key}",
        "window_start": first.window_start,
        "window_end": last.window_end,
        "mode": request.mode,
        "upstream_manifest_id": ",".join(manifests) if manifests else None,
        "expected_input_count": None
        if all(x is None for x in expected)
        else sum(x or 0 for x in expected),
        "current_output_count": sum(e.current_output_count for e in entries),
        "gap_reason": reasons[0] if reasons else None,
        "gap_summary": {r.value: reasons.count(r) for r in GapReason if r in reasons},
        "proposed_action": actions[0] if actions else ProposedAction.NOTHING_TO_DO,
        "idempotency_guard": combined_guard(graph, targets or list(assets)),
        "downstream_impact": downstream_impact,
        "operator": request.operator,
        "target_assets": targets,
        "report_path": report_path,
    }
