"""The week-06 ticket pipeline: raw ticket events ingested per manifest, then silver facts.

* ``week06/ingestion/raw_ticket_events_partitioned`` reads exactly the input files the manifest
  declares for the partition (their checksums are verified first) and keeps one row per
  ``ticket_id + partition_key``: a re-delivered event is dropped, not duplicated.
* ``week06/silver/ticket_fact_partitioned`` is DuckDB SQL over the raw partition: typed,
  deduplicated facts, only events inside the partition's window.
"""

from __future__ import annotations

import json

import pyarrow as pa

from backfiller import AssetContext, asset, sql_asset
from backfiller.checks import (
    accepted_values,
    in_window,
    not_null,
    reconciles_with,
    row_count_matches_manifest,
    schema_matches,
    unique_key,
)

RAW = "week06/ingestion/raw_ticket_events_partitioned"
SILVER = "week06/silver/ticket_fact_partitioned"

CHANNELS = ("email", "chat", "phone", "web_form", "social")
PRIORITIES = ("low", "normal", "high", "urgent")

RAW_SCHEMA = pa.schema(
    [
        ("ticket_id", pa.string()),
        ("event_time", pa.string()),
        ("customer_id", pa.string()),
        ("customer_name", pa.string()),
        ("channel", pa.string()),
        ("priority", pa.string()),
        ("product_line", pa.string()),
        ("language", pa.string()),
        ("subject", pa.string()),
        ("body", pa.string()),
        ("status", pa.string()),
        ("source_file", pa.string()),
        ("manifest_id", pa.string()),
    ]
)


@asset(
    RAW,
    idempotency_key=("ticket_id", "partition_key"),
    deduplicate=True,
    expects_manifest_count=True,
    uses_manifest=True,
    checks=[
        row_count_matches_manifest(),
        unique_key(),
        not_null("ticket_id", "event_time", "customer_id"),
        accepted_values("channel", CHANNELS),
        accepted_values("priority", PRIORITIES),
        in_window("event_time"),
    ],
)
def raw_ticket_events(context: AssetContext) -> pa.Table:
    """Ticket events of one day, exactly as the manifest declares them."""
    assert context.manifest is not None and context.manifest_partition is not None
    rows: list[dict[str, object]] = []
    for declared in context.manifest_partition.input_files:
        with context.open_input(declared) as handle:  # a project path, or s3://… and the like
            text = handle.read().decode("utf-8")
        for line in text.splitlines():
            if line.strip():
                event = json.loads(line)
                event["source_file"] = declared.path
                event["manifest_id"] = context.manifest.manifest_id
                rows.append(event)
    return pa.Table.from_pylist(rows, schema=RAW_SCHEMA)


ticket_facts = sql_asset(
    SILVER,
    """
    SELECT
        ticket_id,
        partition_key,
        CAST(event_time AS TIMESTAMPTZ) AS event_time,
        customer_id,
        customer_name,
        channel,
        priority,
        CASE priority WHEN 'urgent' THEN 1 WHEN 'high' THEN 2 WHEN 'normal' THEN 3 ELSE 4 END
            AS priority_rank,
        product_line,
        language,
        subject,
        length(body) AS body_chars,
        manifest_id
    FROM "week06/ingestion/raw_ticket_events_partitioned"
    WHERE CAST(event_time AS TIMESTAMPTZ) >= $window_start
      AND CAST(event_time AS TIMESTAMPTZ) < $window_end
    QUALIFY row_number() OVER (PARTITION BY ticket_id ORDER BY event_time) = 1
    ORDER BY event_time, ticket_id
    """,
    deps=[RAW],
    idempotency_key=("ticket_id", "partition_key"),
    expects_manifest_count=True,
    description="Typed, deduplicated ticket facts of one day.",
    checks=[
        unique_key(),
        in_window("event_time"),
        reconciles_with(RAW, upstream_expr="count(DISTINCT ticket_id)"),
        schema_matches(
            {
                "ticket_id": "string",
                "event_time": "timestamp[us, tz=UTC]",
                "priority_rank": "int32",
            }
        ),
        row_count_matches_manifest(severity="warn"),
    ],
)
