"""Long reading work tells how far it got: finding gaps calls ``on_progress(done, total)`` once
per asset whose sources it read (it classifies in bulk, not per partition); planning once per
table read and once per (asset, partition) observed; ``done`` grows by one up to ``total``;
the result is the same with or without a callback."""

from __future__ import annotations

from conftest import GAP_DAY

from backfiller import Project
from backfiller.planning import Mode, find_gaps, make_plan
from backfiller.planning.planner import request_for

APRIL = [f"2026-04-{d}" for d in range(14, 21)]


def test_finding_gaps_counts_every_asset_up_to_the_total(
    april_project: Project,
) -> None:
    calls: list[tuple[int, int]] = []

    found = find_gaps(
        april_project,
        april_project.reader(),
        APRIL,
        on_progress=lambda done, total: calls.append((done, total)),
    )

    assets = len(april_project.graph.keys)
    total = assets  # each asset's ledger records, table and report folder read once
    assert calls == [(done, total) for done in range(1, total + 1)]
    assert found == find_gaps(april_project, april_project.reader(), APRIL)
    assert {(g.asset, g.partition_key) for g in found} >= {
        (a, GAP_DAY) for a in april_project.graph.keys
    }


def test_planning_counts_up_to_the_total_of_what_it_observes(april_project: Project) -> None:
    calls: list[tuple[int, int]] = []
    request = request_for(["2026-04-16", GAP_DAY], Mode.DRY_RUN, "tests")

    document = make_plan(
        april_project,
        april_project.reader(),
        request,
        on_progress=lambda done, total: calls.append((done, total)),
    )

    assets = len(april_project.graph.keys)
    total = assets  # a plan over several partitions: each asset's sources read once
    assert calls == [(done, total) for done in range(1, total + 1)]
    again = make_plan(april_project, april_project.reader(), request)
    assert document.state_fingerprint == again.state_fingerprint
    assert document.work == again.work
