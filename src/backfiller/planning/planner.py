"""Make, save, load and verify plans. Dry-run code paths only read: they get a
:class:`~backfiller.ledger.LedgerReader` and write nothing but the plan file.

Two rules from the project around every plan: ``[policy] backfill_assets`` (a plan that would
recompute another asset is refused) and the active simulations (while one is active, a plan
is a dry run: ``--mode apply`` and applying are refused unless explicitly allowed — both as
the project's :class:`~backfiller.overlay.Overlay` says).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from backfiller.asset_keys import cells, require_owned, shared_scheme
from backfiller.atomic import atomic_write_text, create_new_bytes
from backfiller.canonical import readable_json, sha256_hex, stable_id
from backfiller.errors import PlanFileError, StalePlanError
from backfiller.ledger import LedgerReader
from backfiller.locations import Location
from backfiller.manifests import BrokenManifest
from backfiller.planning.classify import bulk_gaps
from backfiller.planning.compact import (
    AnyPlan,
    RangePlan,
    build_range_plan,
    digest_differences,
    parse_plan,
    state_fingerprint_of,
)
from backfiller.planning.declared import several_schemes
from backfiller.planning.gaps import Gap
from backfiller.planning.plan import Mode, PlanRequest, build_plan
from backfiller.planning.state import (
    Observation,
    OnProgress,
    observe,
    state_differences,
    state_fingerprint,
)
from backfiller.policy import require_allowed
from backfiller.project import Project
from backfiller.refs import AssetPartition
from backfiller.schemas import validation_problems

__all__ = [
    "check_fresh",
    "compute_plan",
    "find_gaps",
    "make_plan",
    "plan_path",
    "read_plan",
    "write_plan",
]


def plan_path(project: Project, keys: list[str]) -> Location:
    name = keys[0] if len(keys) == 1 else f"{keys[0]}_{keys[-1]}"
    # a multi-dimensional key's '|' would need quoting in a shell: '+' joins its values here
    return project.plan_dir / f"backfill_plan_{name.replace('|', '+')}.json"


def downstream_impact(project: Project) -> str:
    consumers = list(project.config.downstream_consumers)
    if project.config.downstream_impact:
        return project.config.downstream_impact
    if not consumers:
        return "no downstream consumers declared; downstream assets are recomputed in the plan"
    return f"hold {' and '.join(consumers)} consumption until checks pass"


def _targets(project: Project, keys: list[str], assets: list[str] | None) -> list[AssetPartition]:
    """The cells the plan observes: each asset with the keys of its own scheme."""
    return cells(project.graph, keys, assets)


def _broken(project: Project, keys: list[str]) -> dict[str, BrokenManifest]:
    registry = project.manifests
    return {k: b for k in keys if (b := registry.broken_for(k)) is not None}


def find_gaps(
    project: Project,
    reader: LedgerReader,
    keys: list[str],
    *,
    on_progress: OnProgress | None = None,
) -> list[Gap]:
    """The gaps of every asset over ``keys``, in key order then graph order, classified in
    bulk (:mod:`~backfiller.planning.classify`; ``on_progress``: see
    :data:`~backfiller.planning.state.OnProgress`)."""
    return bulk_gaps(project, reader, keys, on_progress=on_progress)


def make_plan(
    project: Project,
    reader: LedgerReader,
    request: PlanRequest,
    *,
    on_progress: OnProgress | None = None,
) -> AnyPlan:
    """The plan for ``request``: over one partition the seed's document, over several its
    ranges (:mod:`~backfiller.planning.compact`). Refused (exit 2, nothing written) when it
    would recompute an asset the policy does not allow, or asks for ``--mode apply`` while a
    simulation is active (unless allowed); a plan made during a simulation says so in its
    ``reason``.
    ``on_progress`` is told how far observing the state got
    (:data:`~backfiller.planning.state.OnProgress`)."""
    overlay = project.overlay
    if request.mode is Mode.APPLY:
        overlay.refuse_apply(what="--mode apply")
    if overlay.simulations:
        request = request.model_copy(update={"reason": overlay.annotate(request.reason)})
    require_owned(project.graph, request.keys, request.assets or project.graph.keys)
    document = compute_plan(project, reader, request, on_progress)
    recomputed = document.recomputed_assets() | set(request.assets or [])
    require_allowed(
        project.policy,
        project.graph,
        [a for a in project.graph.keys if a in recomputed],
        action=f"The plan for {document.partition_key}",
    )
    return document


def compute_plan(
    project: Project,
    reader: LedgerReader,
    request: PlanRequest,
    on_progress: OnProgress | None = None,
    observations: dict[AssetPartition, Observation] | None = None,
    *,
    ranges: bool | None = None,
) -> AnyPlan:
    """The plan of ``request`` over the live state, before the policy's and the simulations'
    rules (:func:`make_plan` adds them): one partition observed cell by cell (the seed's document;
    ``observations``: already made), several as ranges from the classifier (``ranges``: which
    of the two, whatever the number of keys — a plan made before ranges existed is checked
    as what it is). A project whose assets have different schemes (each over its own keys, a
    month declared through its days) is planned cell by cell, whatever the number of keys:
    ranges are runs of keys every asset shares, their manifests the keys' own."""
    shared = shared_scheme(project.graph, request.assets or project.graph.keys)
    one_scheme = not several_schemes(project.graph)
    if ranges if ranges is not None else (len(request.keys) > 1 and one_scheme):
        return build_range_plan(
            project,
            reader,
            request,
            downstream_impact=downstream_impact(project),
            report_path=project.relative(plan_path(project, request.keys)),
            now=project.clock(),
            project_name=project.config.name,
            on_progress=on_progress,
        )
    if observations is None:
        targets = _targets(project, request.keys, request.assets)
        observations = observe(project, reader, targets, on_progress=on_progress)
    return build_plan(
        request=request,
        graph=project.graph,
        scheme=shared or project.scheme,
        observations=observations,
        project_name=project.config.name,
        downstream_impact=downstream_impact(project),
        report_path=project.relative(plan_path(project, request.keys)),
        now=project.clock(),
        broken=_broken(project, request.keys),
    )


def write_plan(project: Project, document: AnyPlan) -> Location:
    """Write the plan atomically where its ``report_path`` says (in the project, or on object
    storage). The document is the model the schema is generated from, so it is not validated
    again here; every plan read back (:func:`read_plan`, before any apply) is."""
    path = project.location(document.report_path)
    atomic_write_text(path, readable_json(document.to_dict()))
    return path


def archive_plan(project: Project, document: AnyPlan) -> Location:
    """The immutable copy of an applied plan, ``<plan dir>/applied/<plan_id>.json``: what the
    ledger and the run's evidence cite. The working plan file may be planned over again; this
    copy is created once (two operators applying the same plan, made at different moments,
    make two documents with one id) and then held to what the ledger recorded for its id
    (:func:`settle_archive`)."""
    path = project.plan_dir / "applied" / f"{document.plan_id}.json"
    if not path.is_file():
        create_new_bytes(path, readable_json(document.to_dict()).encode("utf-8"))
    return path


def settle_archive(path: Location, recorded: dict[str, Any]) -> None:
    """Make the applied plan's copy at ``path`` the document the ledger recorded for its id
    (``recorded``: the first one recorded, which the evidence cites), once this writer's
    document is recorded or refused. Of two operators applying one plan id at once, the one
    that created the copy may not be the one the ledger recorded first; on object storage,
    with no conditional PUT to create the copy, the second may also have written over the
    first's. Every writer settles after its own write, so the copy ends as the ledger's."""
    try:
        current: str | None = sha256_hex(json.loads(path.read_bytes()))
    except (FileNotFoundError, ValueError):
        current = None
    if current != sha256_hex(recorded):
        atomic_write_text(path, readable_json(recorded))


def read_plan(path: Location | str) -> AnyPlan:
    """The plan at ``path`` (a local file, or an object on object storage), validated."""
    if isinstance(path, str):
        path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PlanFileError(
            f"Plan file not found: {path}",
            hint="make one with 'backfiller plan --partition KEY --mode dry-run'",
        ) from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PlanFileError(f"Plan file {path} is not valid JSON: {exc}") from exc
    except RecursionError as exc:
        raise PlanFileError(
            f"Plan file {path} is nested too deeply to be a plan",
            hint="make a new plan with 'backfiller plan'; never edit a plan by hand",
        ) from exc
    except OSError as exc:
        raise PlanFileError(
            f"Cannot read plan file {path}: {exc.strerror or exc}",
            hint="pass the path of a plan JSON file",
        ) from exc
    problems = validation_problems("backfill_plan", raw)
    if problems:
        listing = "\n".join(f"  - {p}" for p in problems)
        raise PlanFileError(
            f"Plan file {path} does not match the plan schema:\n{listing}",
            hint="make a new plan with 'backfiller plan'; never edit a plan by hand",
        )
    try:
        return parse_plan(raw)
    except ValidationError as exc:
        raise PlanFileError(f"Plan file {path} is invalid: {exc}") from exc


def check_fresh(project: Project, reader: LedgerReader, document: AnyPlan) -> None:
    """Refuse a plan that is not exactly what its own request produces, or whose state moved.

    First the plan file itself: every key and asset must be valid, and rebuilding the plan from
    its request over the state it recorded must give the same plan (an edited file does not);
    then the live state: if its fingerprint differs, :class:`StalePlanError` names what changed.
    Before all that, applying is refused while a simulation is active (unless allowed); after,
    when the work reads a broken manifest.
    """
    project.overlay.refuse_apply(what=f"Applying plan {document.plan_id}")
    request = document.request
    for asset in request.assets or []:
        project.graph.get(asset)
    require_owned(project.graph, request.keys, request.assets or project.graph.keys)
    if isinstance(document, RangePlan):
        _check_ranges_fresh(project, reader, document)
        return
    targets = _targets(project, request.keys, request.assets)
    if sorted(f"{a}|{k}" for a, k in targets) != sorted(document.state):
        raise PlanFileError(
            f"Plan {document.plan_id}: its recorded state does not cover exactly what its "
            "request asks for; it was edited",
            hint="make a new plan with 'backfiller plan'; never edit a plan by hand",
        )
    observations = observe(project, reader, targets)  # the one observation of the state
    if state_fingerprint(observations) != document.state_fingerprint:
        changes = state_differences(document.state, observations)
        listing = "\n".join(f"  - {c}" for c in changes) or "  - (the state fingerprint differs)"
        raise StalePlanError(
            f"Plan {document.plan_id} is stale: the state changed since it was made:\n{listing}",
            hint="review the changes, then make a new plan with 'backfiller plan ... "
            "--mode dry-run'",
        )
    _require_same(
        document, compute_plan(project, reader, request, observations=observations, ranges=False)
    )


def _check_ranges_fresh(project: Project, reader: LedgerReader, document: RangePlan) -> None:
    """A plan of ranges: its request planned again over the live state; differing state
    digests name the assets and keys whose state moved (:class:`StalePlanError`), any other
    difference is an edited file."""
    request = document.request
    edited = "make a new plan with 'backfiller plan'; never edit a plan by hand"
    if state_fingerprint_of(document.state_digests) != document.state_fingerprint:
        raise PlanFileError(
            f"Plan {document.plan_id}: its state_fingerprint is not the hash of its "
            "state_digests; it was edited",
            hint=edited,
        )
    identity = {
        "request": request.model_dump(mode="json"),
        "state_fingerprint": document.state_fingerprint,
        "project": document.project,
    }
    made_here = document.project == project.config.name
    if stable_id("plan", identity) != document.plan_id or not made_here:
        raise PlanFileError(
            f"Plan {document.plan_id}: its plan_id is not the one of its request and state "
            f"(or it was made by project {document.project!r}); it was edited",
            hint=edited,
        )
    rebuilt = compute_plan(project, reader, request, ranges=True)
    assert isinstance(rebuilt, RangePlan)
    saved_digests = document.state_digests
    if saved_digests.model_dump() != rebuilt.state_digests.model_dump():
        shaped = len(saved_digests.assets) == len(rebuilt.state_digests.assets) and all(
            len(a) == len(b)
            for a, b in zip(saved_digests.assets, rebuilt.state_digests.assets, strict=True)
        )
        if not shaped or document.assets != rebuilt.assets:
            raise PlanFileError(
                f"Plan {document.plan_id}: its state digests do not cover exactly what its "
                "request asks for; it was edited",
                hint=edited,
            )
        changes = digest_differences(document, rebuilt)
        shown = changes[:20] + ([f"... and {len(changes) - 20} more"] if len(changes) > 20 else [])
        listing = "\n".join(f"  - {c}" for c in shown) or "  - (the state fingerprint differs)"
        raise StalePlanError(
            f"Plan {document.plan_id} is stale: the state changed since it was made:\n{listing}",
            hint="review the changes ('backfiller gaps'), then make a new plan with "
            "'backfiller plan ... --mode dry-run'",
        )
    _require_same(document, rebuilt)


def _require_same(document: AnyPlan, rebuilt: AnyPlan) -> None:
    """Refuse a plan file that is not what its own request produces over the same state."""
    ignore = {"created_at"}
    saved = {k: v for k, v in document.to_dict().items() if k not in ignore}
    again = {k: v for k, v in rebuilt.to_dict().items() if k not in ignore}
    if saved != again:
        fields = _differences(saved, again)
        listing = ", ".join(fields[:8]) + (
            f" and {len(fields) - 8} more" if len(fields) > 8 else ""
        )
        raise PlanFileError(
            f"Plan file for {document.plan_id} does not match what its own request produces "
            f"(differs in: {listing}); it was edited or made by another project",
            hint="make a new plan with 'backfiller plan'; never edit a plan by hand",
        )


def _differences(saved: Any, again: Any, path: str = "") -> list[str]:
    """The paths of the values that differ (``operator``, ``partitions[0].target_assets``)."""
    if isinstance(saved, dict) and isinstance(again, dict):
        found: list[str] = []
        for key in sorted(set(saved) | set(again)):
            where = f"{path}.{key}" if path else str(key)
            found += _differences(saved.get(key), again.get(key), where)
        return found
    if isinstance(saved, list) and isinstance(again, list) and len(saved) == len(again):
        return [
            d for i, (s, a) in enumerate(zip(saved, again, strict=True))
            for d in _differences(s, a, f"{path}[{i}]")
        ]  # fmt: skip
    return [] if saved == again else [path or "(the document)"]


def request_for(
    keys: list[str],
    mode: Mode,
    operator: str,
    reason: str | None = None,
    include_materialized: bool = False,
) -> PlanRequest:
    return PlanRequest(
        keys=keys,
        mode=mode,
        operator=operator,
        reason=reason,
        include_materialized=include_materialized,
    )
