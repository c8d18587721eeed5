"""A plan of ranges against the per-cell plan on generated states (the states of
``test_bulk_gaps_props``); its run-length columns give back exactly the values they encode,
adjacent runs always differing (so equal runs are never split)."""

from __future__ import annotations

import itertools
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from plan_views import per_key
from test_bulk_gaps_props import DAILY, KEYS, ORACLE_EXAMPLES, A, B, C, D, E, L, _build, states

from backfiller.actions.apply import BACKFILL_FIELDS as FIELDS
from backfiller.planning.compact import _expand, _runs, build_range_plan
from backfiller.planning.plan import Mode, PlanRequest, build_plan
from backfiller.planning.state import observe
from backfiller.refs import AssetPartition

NOW = datetime(2026, 12, 1, tzinfo=UTC)
#: the assets on the project's daily scheme (a plan's keys are the project's: the weekly and
#: the shorter schemes' assets are left to their own plans); e reads f, which is not planned
PLANNED = [A, B, C, D, E, L]

values = st.lists(st.one_of(st.none(), st.integers(-2, 2), st.sampled_from(["m1", "m2"])))


@given(values)
def test_runs_expand_to_the_values(found: list[object]) -> None:
    runs = _runs(found)
    assert list(_expand(runs)) == found
    assert all(n >= 1 for _, n in runs)
    assert all(a[0] != b[0] for a, b in itertools.pairwise(runs))
    assert len(runs) <= len(found)


@pytest.mark.slow
@settings(max_examples=ORACLE_EXAMPLES, deadline=None, database=None)
@given(states(), st.booleans())
def test_a_plan_of_ranges_says_what_the_per_cell_plan_says(
    state: dict[str, Any], include_materialized: bool
) -> None:
    """On generated states (every ledger status, lost files and reports, changed and broken
    manifests, look-back, lag and missing upstream partitions, protected partitions, an
    upstream that is not planned), the plan of ranges says per
    partition what the per-cell plan over the per-cell observation says, and applying it
    would take the same steps."""
    keys = state["window"]
    if len(keys) < 2:
        keys = KEYS[:2]
    with tempfile.TemporaryDirectory() as folder:
        source, reader = _build(state, Path(folder))
        request = PlanRequest(
            keys=keys,
            mode=Mode.DRY_RUN,
            operator="t",
            include_materialized=include_materialized,
            assets=PLANNED,
        )
        targets = [AssetPartition(a, k) for k in keys for a in PLANNED]
        common: dict[str, Any] = {
            "downstream_impact": "none",
            "report_path": "plan.json",
            "now": NOW,
            "project_name": "p",
        }
        cells = build_plan(
            request=request,
            graph=source.graph,
            scheme=DAILY,
            observations=observe(source, reader, targets),  # type: ignore[arg-type]
            broken={k: b for k in keys if (b := source.manifests.broken_for(k))},
            **common,
        )
        ranges = build_range_plan(source, reader, request, **common)  # type: ignore[arg-type]

    assert per_key(ranges) == per_key(cells)
    assert ranges.work == cells.work
    assert list(ranges.iter_reports()) == list(cells.iter_reports())
    assert ranges.gap_summary == cells.gap_summary
    assert (ranges.gap_reason, ranges.target_assets) == (cells.gap_reason, cells.target_assets)
    assert ranges.missing_backfill_fields(FIELDS) == cells.missing_backfill_fields(FIELDS)
