"""How a plan names the partitions it covers (its summary's ``partition_key``, its file)."""

from __future__ import annotations

import pytest

from backfiller.planning.spans import key_span, key_span_file_stem

DAY_CELLS = ["2026-04-17", "2026-04-17|billing", "2026-04-17|voice", "2026-04-17|chat"]


def test_keys_of_one_dimension_keep_first_and_last() -> None:
    assert key_span(["2026-04-17"]) == "2026-04-17"
    assert key_span(["2026-04-16", "2026-04-17"]) == "2026-04-16..2026-04-17"
    assert key_span_file_stem(["2026-04-17"]) == "2026-04-17"
    assert key_span_file_stem(["2026-04-16", "2026-04-17"]) == "2026-04-16_2026-04-17"


def test_the_cells_of_one_day_name_the_day_and_every_product_line() -> None:
    # first..last in plan order would say '2026-04-17..2026-04-17|chat': neither the day
    # nor the cells
    assert key_span(DAY_CELLS) == "2026-04-17 × billing, chat, voice"
    assert key_span_file_stem(DAY_CELLS) == "2026-04-17_billing+chat+voice"


def test_days_of_cells_name_the_span_of_days() -> None:
    keys = [f"2026-04-{d}|{line}" for d in (16, 17, 18) for line in ("chat", "voice")]
    assert key_span(keys) == "2026-04-16..2026-04-18 × chat, voice"
    assert key_span_file_stem(keys) == "2026-04-16_2026-04-18_chat+voice"


def test_one_cell_is_itself_and_its_file_needs_no_quoting() -> None:
    assert key_span(["2026-04-17|billing"]) == "2026-04-17|billing"
    assert key_span_file_stem(["2026-04-17|billing"]) == "2026-04-17+billing"


@pytest.mark.parametrize("n", [9, 40])
def test_many_values_are_counted_not_listed(n: int) -> None:
    keys = [f"2026-04-17|v{i:02d}" for i in range(n)]
    assert key_span(keys).endswith(f"and {n - 8} more")
    assert key_span_file_stem(keys) == f"2026-04-17_{n}-values"
    assert "|" not in key_span_file_stem(keys)


def test_three_dimensions_keep_their_other_values_together() -> None:
    keys = ["2026-04-17|billing|eu", "2026-04-17|billing|us"]
    assert key_span(keys) == "2026-04-17 × billing|eu, billing|us"
    assert key_span_file_stem(keys) == "2026-04-17_billing-eu+billing-us"
