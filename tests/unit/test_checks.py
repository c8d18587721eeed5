"""Built-in and custom checks on small Arrow tables."""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa
import pytest

from backfiller.checks import (
    CheckContext,
    CheckStatus,
    Severity,
    accepted_values,
    in_window,
    not_null,
    python_check,
    reconciles_with,
    row_count_matches_manifest,
    schema_matches,
    sql_check,
    unique_key,
)
from backfiller.partitions import scheme_from_config

WINDOW = scheme_from_config(kind="daily", start="2026-03-01").window("2026-04-17")


def ctx(data: pa.Table, expected: int | None = None, upstream: pa.Table | None = None):
    return CheckContext(
        asset="a/b",
        partition_key="2026-04-17",
        idempotency_key=("ticket_id", "partition_key"),
        window=WINDOW,
        data=data,
        expected_count=expected,
        read_upstream=lambda name: upstream if upstream is not None else pa.table({}),
    )


def ts(hour: int, day: int = 17) -> datetime:
    return datetime(2026, 4, day, hour, tzinfo=UTC)


GOOD = pa.table(
    {
        "ticket_id": ["T1", "T2", "T3"],
        "partition_key": ["2026-04-17"] * 3,
        "event_time": pa.array([ts(1), ts(12), ts(23)], pa.timestamp("us", tz="UTC")),
        "channel": ["email", "chat", "phone"],
    }
)


def test_row_count_against_the_manifest() -> None:
    assert row_count_matches_manifest().run(ctx(GOOD, 3)).status is CheckStatus.PASSED
    failed = row_count_matches_manifest().run(ctx(GOOD, 4))
    assert (failed.status, failed.expected, failed.actual, failed.blocking) == (
        CheckStatus.FAILED,
        4,
        3,
        True,
    )
    # nothing declared: nothing to compare, not a failure
    assert row_count_matches_manifest().run(ctx(GOOD, None)).status is CheckStatus.PASSED


def test_unique_key_names_the_duplicates() -> None:
    dup = pa.concat_tables([GOOD, GOOD.slice(0, 1)])
    result = unique_key().run(ctx(dup))
    assert result.status is CheckStatus.FAILED
    assert result.actual == 1
    assert result.sample == [{"ticket_id": "T1", "partition_key": "2026-04-17", "copies": 2}]
    assert unique_key("channel").run(ctx(GOOD)).status is CheckStatus.PASSED


def test_not_null_and_accepted_values_sample_the_failing_rows() -> None:
    bad = GOOD.set_column(3, "channel", pa.array(["email", None, "fax"]))
    nn = not_null("channel").run(ctx(bad))
    assert (nn.status, nn.actual) == (CheckStatus.FAILED, 1)
    assert nn.sample[0]["ticket_id"] == "T2"
    av = accepted_values("channel", ["email", "chat", "phone"]).run(ctx(bad))
    assert (av.status, av.actual) == (CheckStatus.FAILED, 1)
    assert av.sample[0]["channel"] == "fax"


def test_in_window_is_half_open() -> None:
    assert in_window("event_time").run(ctx(GOOD)).status is CheckStatus.PASSED
    midnight_after = GOOD.set_column(
        2, "event_time", pa.array([ts(1), ts(2), ts(0, day=18)], pa.timestamp("us", tz="UTC"))
    )
    result = in_window("event_time").run(ctx(midnight_after))
    assert (result.status, result.actual) == (CheckStatus.FAILED, 1)
    assert result.expected == ["2026-04-17T00:00:00+00:00", "2026-04-17T23:59:59.999999+00:00"]


def test_reconciliation_with_the_upstream() -> None:
    raw = pa.table({"ticket_id": ["T1", "T2", "T3", "T3"]})
    check = reconciles_with("raw", upstream_expr="count(DISTINCT ticket_id)")
    assert check.run(ctx(GOOD, upstream=raw)).status is CheckStatus.PASSED
    short = check.run(ctx(GOOD.slice(0, 2), upstream=raw))
    assert (short.status, short.expected, short.actual) == (CheckStatus.FAILED, 3, 2)


def test_schema_names_missing_and_wrong_columns() -> None:
    check = schema_matches({"ticket_id": "string", "event_time": "timestamp[us, tz=UTC]"})
    assert check.run(ctx(GOOD)).status is CheckStatus.PASSED
    wrong = schema_matches({"ticket_id": "int64", "priority": "string"}).run(ctx(GOOD))
    assert wrong.status is CheckStatus.FAILED
    assert wrong.actual == {"missing": ["priority"], "wrong_types": {"ticket_id": "string"}}


def test_custom_sql_and_python_checks_return_failing_rows() -> None:
    sql = sql_check("no_phone", "SELECT * FROM staged WHERE channel = 'phone'")
    result = sql.run(ctx(GOOD))
    assert (result.status, result.actual, result.sample[0]["ticket_id"]) == (
        CheckStatus.FAILED,
        1,
        "T3",
    )
    windowed = sql_check(
        "in_window_sql", "SELECT * FROM staged WHERE event_time >= $window_end"
    ).run(ctx(GOOD))
    assert windowed.status is CheckStatus.PASSED
    py = python_check("t1_only", lambda t: t.filter(pa.compute.equal(t["ticket_id"], "T1")))
    assert py.run(ctx(GOOD)).actual == 1


def test_warn_never_blocks() -> None:
    result = row_count_matches_manifest(severity="warn").run(ctx(GOOD, 9))
    assert result.status is CheckStatus.FAILED
    assert result.severity is Severity.WARN
    assert result.blocking is False


def test_unknown_severity_is_refused() -> None:
    with pytest.raises(ValueError, match="fatal"):
        unique_key(severity="fatal")
