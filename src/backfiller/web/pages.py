"""The data of every page of the web view, built from a project and a read-only ledger reader.

Each builder returns a JSON-able dict that is both the page's JSON and what its template
renders; nothing here writes (the reader has no writing part, the store is only read). A
request for something that does not exist raises :class:`NotFound`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from backfiller.entries import attempt_entry, commit_entry, hold_entry, json_default, run_entry
from backfiller.errors import BackfillerError
from backfiller.locations import files_in
from backfiller.web.bars import MATERIALIZED, segments

if TYPE_CHECKING:
    from backfiller.evidence import RunEvidence
    from backfiller.ledger import CheckRecord, LedgerReader
    from backfiller.planning import AnyPlan
    from backfiller.project import Project
    from backfiller.web.cache import StateCache

__all__ = [
    "GRID_LIMIT",
    "VERSION",
    "NotFound",
    "asset_page",
    "chain_page",
    "evidence_document",
    "evidence_report",
    "overview",
    "partition_page",
    "plan_page",
    "plans_page",
    "run_page",
    "runs_page",
    "verify_page",
]

#: the version of every page's JSON: a key is only ever added within a version
VERSION = 1
#: the most partitions the asset page's grid shows (the newest of the window by default)
GRID_LIMIT = 366
#: the runs the overview lists
LAST_RUNS = 10


class NotFound(Exception):
    """The page names an asset, partition, run or plan that does not exist."""


def window(
    project: Project,
    start: str | None = None,
    end: str | None = None,
    asset: str | None = None,
    cache: StateCache | None = None,
) -> list[str]:
    """The keys of the window: by default the scheme's configured range up to the last
    complete partition (what ``status`` looks at), each missing bound defaulting to its end.
    ``asset``: the keys of its own scheme; without one, when the assets' schemes differ, each
    asset's keys together (:mod:`backfiller.asset_keys`). ``cache``: the server's, which
    keeps the keys from one key to another (they do not depend on the time)."""
    from backfiller.asset_keys import every_key, select_keys, shared_scheme

    now = project.clock()
    graph = project.graph
    scheme = project.scheme if asset is None else project.scheme_of(asset)
    try:
        if asset is None and len(graph) and shared_scheme(graph, graph.keys) is None:
            if start is None and end is None:
                return every_key(graph, graph.keys, now)
            return select_keys(graph, graph.keys, partition=None, start=start, end=end, now=now)
        if start is None or end is None:
            everything = scheme.keys(now=now) if cache is None else cache.keys(scheme, now)
            if not everything:
                return []
            start = everything[0] if start is None else start
            end = everything[-1] if end is None else end
        scheme.parse(start, now=now)
        scheme.parse(end, now=now)
        if cache is not None:
            return cache.key_range(scheme, start, end)
        return scheme.key_range(start, end)
    except BackfillerError as exc:
        raise NotFound(exc.message) from exc


def span(keys: Sequence[str]) -> dict[str, Any]:
    return {
        "first": keys[0] if keys else None,
        "last": keys[-1] if keys else None,
        "count": len(keys),
    }


def _asset(project: Project, name: str) -> None:
    if name not in project.graph.keys:
        raise NotFound(f"No asset {name!r}")


def _counts(values: Iterable[tuple[str, int]]) -> dict[str, int]:
    found: dict[str, int] = {}
    for v, n in values:
        found[v] = found.get(v, 0) + n
    return dict(sorted(found.items()))


def _index_ranges(keys: Sequence[str], chosen: Iterable[str]) -> list[dict[str, Any]]:
    """The keys of ``chosen`` that are in ``keys``, as ranges of consecutive keys (the keys
    are looked up only when something is chosen: a window has thousands, holds are few)."""
    wanted = set(chosen)
    if not wanted:
        return []
    at = sorted(i for i, k in enumerate(keys) if k in wanted)
    out: list[dict[str, Any]] = []
    for i in at:
        if out and out[-1]["_end"] == i - 1:
            out[-1]["_end"] = i
        else:
            out.append({"_start": i, "_end": i})
    return [
        {
            "first": keys[r["_start"]],
            "last": keys[r["_end"]],
            "count": r["_end"] - r["_start"] + 1,
            "offset": r["_start"],
        }
        for r in out
    ]


# -- entries ---------------------------------------------------------------------------------


def check_entry(c: CheckRecord) -> dict[str, Any]:
    return {
        "run_id": c.run_id,
        "asset": c.asset,
        "partition_key": c.partition_key,
        "name": c.check_name,
        "status": c.status.value,
        "severity": c.severity.value,
        "blocking": c.blocking,
        "on_staged": c.on_staged,
        "expected": _plain(c.expected),
        "actual": _plain(c.actual),
        "sample": _plain(c.sample),
        "at": c.at,
    }


def _plain(value: Any) -> Any:
    """``value`` as JSON has it (sets, dates and decimals in check results become lists and
    strings)."""
    return json.loads(json.dumps(value, default=json_default))


# -- pages -----------------------------------------------------------------------------------


def overview(
    project: Project,
    reader: LedgerReader,
    start: str | None = None,
    end: str | None = None,
    cache: StateCache | None = None,
) -> dict[str, Any]:
    """Per asset: the partition bar over the window, partitions per state, open holds and
    protections as ranges; then the open holds and the last runs. ``cache``: the server's,
    which classifies again only what changed (default: classify every cell)."""
    from backfiller.asset_keys import keys_of, shared_scheme
    from backfiller.planning.classify import state_ranges

    keys = window(project, start, end, cache=cache)
    if cache is not None:
        ranges = cache.state_ranges(reader, keys)
    else:
        ranges = state_ranges(project, reader, keys) if keys else []
    by_asset: dict[str, list[Any]] = {name: [] for name in project.graph.keys}
    for r in ranges:
        by_asset[r.asset].append(r)
    holds = reader.holds.all()
    protections = reader.protections.all()
    assets = []
    shared = shared_scheme(project.graph, project.graph.keys) is not None
    for name, mine in by_asset.items():
        own = keys if shared else keys_of(project.graph, name, keys)  # its own keys
        counts = _counts((r.value.value, r.count) for r in mine)
        entry = {
            "asset": name,
            "counts": counts,
            "gaps": sum(n for s, n in counts.items() if s != MATERIALIZED),
            "ranges": len(mine),
            "bar": [s.to_dict() for s in segments(mine, own)],
            "held": _index_ranges(own, (h.partition_key for h in holds if h.target == name)),
            "protected": _index_ranges(
                own, (p.partition_key for p in protections if p.asset == name)
            ),
        }
        if not shared:
            entry |= {"scheme": project.scheme_of(name).name, "window": span(own)}
        assets.append(entry)
    runs = reader.runs.all()
    return {
        "kind": "overview",
        "version": VERSION,
        "project": project.config.name,
        "scheme": project.scheme.name,
        "window": span(keys),
        "assets": assets,
        "open_holds": [hold_entry(h) for h in holds],
        "last_runs": [run_entry(r) for r in reversed(runs[-LAST_RUNS:])],
        "run_count": len(runs),
    }


def asset_page(
    project: Project,
    reader: LedgerReader,
    asset: str,
    start: str | None = None,
    end: str | None = None,
) -> dict[str, Any]:
    """One asset: its per-partition grid (the newest :data:`GRID_LIMIT` partitions of the
    window unless ``start`` and ``end`` are given) — for a multi-dimensional asset also as
    ``grids``, one per value of its other dimensions over its days — its checks, holds and
    table history."""
    from backfiller.grids import cell_grids
    from backfiller.partitions import MultiScheme
    from backfiller.planning.classify import state_ranges

    _asset(project, asset)
    keys = window(project, start, end, asset)
    cut = len(keys) > GRID_LIMIT
    if cut:
        keys = keys[-GRID_LIMIT:]
    cells: list[dict[str, str]] = []
    for r in state_ranges(project, reader, keys, [asset]) if keys else []:
        first = keys.index(r.first) if not cells else len(cells)
        cells.extend({"key": k, "state": r.value.value} for k in keys[first : first + r.count])
    definition = project.graph.get(asset)
    results = reader.checks.results(asset=asset)
    scheme = project.scheme_of(asset)
    state_of = {c["key"]: c["state"] for c in cells}
    grids = [
        {
            "label": grid.label,
            "values": grid.values,
            "counts": _counts((state_of[key], 1) for _, key in grid.cells),
            "cells": [
                {"key": key, "value": value, "state": state_of[key]} for value, key in grid.cells
            ],
        }
        for grid in (cell_grids(scheme, state_of) if isinstance(scheme, MultiScheme) else [])
    ]
    return {
        "kind": "asset",
        "version": VERSION,
        "asset": asset,
        "deps": [d.asset for d in definition.deps],
        "declared_checks": [c.name for c in definition.checks],
        "window": span(keys),
        "cut_to_newest": cut,
        "counts": _counts((c["state"], 1) for c in cells),
        "grid": cells,
        "grids": grids,
        "failed_checks": [check_entry(c) for c in results if c.status.value == "failed"][-50:],
        "open_holds": [hold_entry(h) for h in reader.holds.all() if h.target == asset],
        "history": [commit_entry(c) for c in project.store.history(asset, limit=20)],
    }


def partition_page(
    project: Project, reader: LedgerReader, asset: str, key: str, state: str | None = None
) -> dict[str, Any]:
    """One partition: its state, ledger record, versions (the commits that wrote it), the
    attempts of every run on it (operators, reasons), its checks, holds and partition report.
    ``state``: its state when the caller has just classified it (the static site, from the
    asset's grid)."""
    from backfiller.planning.classify import state_ranges
    from backfiller.reports import read_partition_report

    _asset(project, asset)
    keys = window(project, key, key, asset)
    if state is None:
        found = state_ranges(project, reader, keys, [asset])
        state = found[0].value.value if found else None
    record = reader.partitions.get(asset, key)
    runs = {r.run_id: r for r in reader.runs.all()}
    attempts = []
    for run in runs.values():
        for a in reader.runs.attempts(run.run_id):
            if (a.asset, a.partition_key) == (asset, key):
                entry = attempt_entry(a)
                entry.update(operator=run.operator, reason=run.reason, action=run.action)
                attempts.append(entry)
    attempts.sort(key=lambda a: a["started_at"])
    versions = [
        commit_entry(c) for c in project.store.history(asset) if key in _keys_of(c.metadata)
    ]
    report = read_partition_report(project.partition_report_path(asset, key))
    return {
        "kind": "partition",
        "version": VERSION,
        "asset": asset,
        "partition_key": key,
        "state": state,
        "record": None if record is None else _record(record),
        "versions": versions,
        "attempts": attempts,
        "checks": [check_entry(c) for c in reader.checks.results(asset=asset, key=key)],
        "holds": [
            hold_entry(h)
            for h in reader.holds.all(open_only=False)
            if (h.target, h.partition_key) == (asset, key)
        ],
        "report": None if report is None else report.model_dump(mode="json"),
        "report_path": project.relative(project.partition_report_path(asset, key)),
    }


def _keys_of(metadata: dict[str, str]) -> list[str]:
    return [k for k in metadata.get("backfiller.partition_keys", "").split(",") if k]


def _record(r: Any) -> dict[str, Any]:
    return {
        "status": r.status.value,
        "data_version": r.data_version,
        "row_count": r.row_count,
        "fingerprint": r.fingerprint,
        "manifest_id": r.manifest_id,
        "upstream_versions": r.upstream_versions,
        "last_run_id": r.last_run_id,
        "last_attempt": r.last_attempt,
        "last_error": r.last_error,
        "created_at": r.created_at,
        "updated_at": r.updated_at,
    }


def runs_page(project: Project, reader: LedgerReader) -> dict[str, Any]:
    runs = reader.runs.all()
    return {
        "kind": "runs",
        "version": VERSION,
        "count": len(runs),
        "runs": [run_entry(r) for r in reversed(runs)],
    }


def run_page(project: Project, reader: LedgerReader, run_id: str) -> dict[str, Any]:
    """One run: who, what, why, its steps (attempts), checks with expected, actual and sample,
    the holds it placed and its evidence."""
    run = reader.runs.get(run_id)
    if run is None:
        raise NotFound(f"No run {run_id!r}")
    evidence = reader.evidence.of_run(run_id)
    return {
        "kind": "run",
        "version": VERSION,
        "run": run_entry(run),
        "arguments": _plain(run.arguments),
        "steps": [attempt_entry(a) for a in reader.runs.attempts(run_id)],
        "checks": [check_entry(c) for c in reader.checks.results(run_id=run_id)],
        "holds_placed": [
            hold_entry(h) for h in reader.holds.all(open_only=False) if h.cause_run_id == run_id
        ],
        "evidence": None
        if evidence is None
        else {"seq": evidence.seq, "path": evidence.path, "sha256": evidence.sha256},
    }


def evidence_document(project: Project, reader: LedgerReader, run_id: str) -> dict[str, Any]:
    """The run's evidence document (refused when its file no longer matches the ledger)."""
    document: dict[str, Any] = _evidence(project, reader, run_id).model_dump(mode="json")
    return document


def evidence_report(project: Project, reader: LedgerReader, run_id: str) -> str:
    """The run's evidence report: one self-contained HTML page."""
    from backfiller.evidence import report_html

    return report_html(_evidence(project, reader, run_id))


def _evidence(project: Project, reader: LedgerReader, run_id: str) -> RunEvidence:
    from backfiller.evidence import load_run_evidence

    if reader.runs.get(run_id) is None or reader.evidence.of_run(run_id) is None:
        raise NotFound(f"No evidence for run {run_id!r}")
    return load_run_evidence(project, reader, run_id)


def _plans(project: Project, reader: LedgerReader) -> dict[str, tuple[AnyPlan, str]]:
    """Every plan: the saved plan files, then the plans runs applied (as the ledger recorded
    them), by id, with where each was read."""
    from backfiller.planning import parse_plan, read_plan

    found: dict[str, tuple[AnyPlan, str]] = {}
    folder = project.plan_dir
    for path in files_in(folder, "*.json"):
        try:
            doc = read_plan(path)
        except BackfillerError:
            continue
        found.setdefault(doc.plan_id, (doc, project.relative(path)))
    for run in reader.runs.all():
        if run.plan_id and run.plan_id not in found:
            record = reader.runs.plan(run.plan_id)
            if record is not None:
                try:
                    doc = parse_plan(record.document)
                except ValueError:
                    continue
                found[run.plan_id] = (doc, f"ledger ({record.path})")
    return found


def plans_page(project: Project, reader: LedgerReader) -> dict[str, Any]:
    plans = sorted(_plans(project, reader).values(), key=lambda p: p[0].created_at, reverse=True)
    return {
        "kind": "plans",
        "version": VERSION,
        "count": len(plans),
        "plans": [
            {
                "plan_id": doc.plan_id,
                "created_at": doc.created_at.isoformat(),
                "mode": doc.mode.value,
                "operator": doc.operator,
                "reason": doc.reason,
                "partition_key": doc.partition_key,
                "partitions": doc.partition_count,
                "gap_summary": doc.gap_summary,
                "source": source,
            }
            for doc, source in plans
        ],
    }


def plan_page(project: Project, reader: LedgerReader, plan_id: str) -> dict[str, Any]:
    """A plan as a reviewer reads it: its boundary, the seed's fields per partition, the
    downstream impact and the state fingerprint it was computed from, and the runs that
    applied it."""
    found = _plans(project, reader).get(plan_id)
    if found is None:
        raise NotFound(f"No plan {plan_id!r}")
    doc, source = found
    return {
        "kind": "plan",
        "version": VERSION,
        "source": source,
        "runs": [run_entry(r) for r in reader.runs.all() if r.plan_id == plan_id],
        "plan": doc.to_dict(),
    }


def chain_page(project: Project, reader: LedgerReader) -> dict[str, Any]:
    """The evidence chain as the ledger's index has it (verified on request)."""
    return {
        "kind": "evidence_chain",
        "version": VERSION,
        "links": [
            {
                "seq": r.seq,
                "run_id": r.run_id,
                "path": r.path,
                "sha256": r.sha256,
                "prev_sha256": r.prev_sha256,
                "written_at": r.written_at,
            }
            for r in reader.evidence.index()
        ],
    }


def verify_page(project: Project, reader: LedgerReader) -> dict[str, Any]:
    """The evidence chain verified now: every problem, and the first broken link named."""
    from backfiller.evidence import verify_chain

    problems = verify_chain(project, reader)
    linked = [p for p in problems if p.seq is not None]
    first = min(linked, key=lambda p: p.seq or 0) if linked else (problems[0] if problems else None)
    return {
        "kind": "evidence_verification",
        "version": VERSION,
        "intact": not problems,
        "checked": len(reader.evidence.index()),
        "first_broken": None if first is None else _problem(first),
        "problems": [_problem(p) for p in problems],
    }


def _problem(p: Any) -> dict[str, Any]:
    return {"path": p.path, "kind": p.kind.value, "detail": p.detail, "seq": p.seq}
