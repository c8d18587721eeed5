"""A multi-dimensional cell's rows carry one column per dimension holding the cell's value
(the Delta table is partitioned by them): added when the computation leaves them out, refused
(naming the column and the value) when it returns another value."""

from __future__ import annotations

from datetime import date
from typing import Any

import pyarrow as pa
import pytest

from backfiller import Dimension, MultiScheme, StaticScheme, asset
from backfiller.actions.computation import StepError, _with_dimension_columns
from backfiller.partitions import dimension_columns, dimension_values, scheme_from_config

CELLS = MultiScheme(
    (
        Dimension("date", scheme_from_config(kind="daily", start="2026-03-01")),
        Dimension("product_line", StaticScheme(("billing", "voice"))),
    )
)


def _asset() -> Any:
    return asset("t/cells", idempotency_key=("id",), scheme=CELLS)(lambda context: [])


def test_the_columns_are_added_with_the_cell_values() -> None:
    values = dimension_values(CELLS, "2026-03-02|voice")
    assert values == {"date": "2026-03-02", "product_line": "voice"}
    assert dimension_columns(CELLS) == ("date", "product_line")
    assert dimension_columns(StaticScheme(("a",))) == ()
    table = _with_dimension_columns(_asset(), pa.table({"id": [1, 2]}), values)
    assert table.to_pylist() == [
        {"id": 1, "date": "2026-03-02", "product_line": "voice"},
        {"id": 2, "date": "2026-03-02", "product_line": "voice"},
    ]
    same = pa.table({"id": [1], "product_line": ["voice"]})
    kept = _with_dimension_columns(_asset(), same, values)
    assert kept.column("product_line").to_pylist() == ["voice"]


@pytest.mark.parametrize(
    "column",
    [pa.array(["billing"]), pa.array([None], pa.string()), pa.array([7])],
    ids=["another value", "null", "not text"],
)
def test_a_returned_column_with_another_value_fails_the_step(column: pa.Array) -> None:
    values = {"date": "2026-03-02", "product_line": "voice"}
    table = pa.table({"id": [1], "product_line": column})
    with pytest.raises(StepError, match=r"column 'product_line' \(\w+\) must hold the partition's"):
        _with_dimension_columns(_asset(), table, values)


@pytest.mark.parametrize(
    ("name", "column"),
    [
        ("product_line", pa.array(["voice"], pa.large_string())),
        ("product_line", pa.array(["voice"]).dictionary_encode()),
        ("date", pa.array([date(2026, 3, 2)], pa.date32())),
    ],
    ids=["large string (polars)", "dictionary", "a date for the date dimension"],
)
def test_a_returned_column_of_the_right_value_in_another_type_is_kept_as_text(
    name: str, column: pa.Array
) -> None:
    """The right value is not refused for its Arrow type: the column becomes the string
    column the table is partitioned by."""
    values = {"date": "2026-03-02", "product_line": "voice"}
    table = _with_dimension_columns(_asset(), pa.table({"id": [1], name: column}), values)
    assert table.schema.field(name).type == pa.string()
    assert table.to_pylist() == [{"id": 1, **values}]
