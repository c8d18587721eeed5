"""The week-06 ticket pipeline with a product-line dimension.

* ``week06/ingestion/raw_ticket_events_partitioned``: the ticket events of one day, read from
  the input files the example's manifest declares (checksums verified first).
* ``week06/silver/ticket_fact_by_product_line``: partitioned by day × product line
  (``2026-04-17|billing``). The product lines are a dynamic dimension: new lines appear over
  time, so its values are not declared here but added at run time and recorded in the ledger
  (``backfiller partitions add --dimension product_line --value billing --reason ...``). A
  ticket's product line is derived from its event: ``billing`` when it is about billing, else
  ``voice`` when it came by phone, else ``chat`` (every written channel: chat, email, web form,
  social). Each cell reads its day of raw events; a cell whose line has no ticket that day (a
  line the derivation does not give yet, or a quiet day) is an empty partition, published and
  checked like any other.
* ``week06/gold/daily_product_line_rollup``: per day, one row per product line with tickets
  that day and the day's total — it reads every product line of the day, whatever lines exist
  then, and a day whose product-line cells do not exist is the gap ``missing_upstream``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa

from backfiller import (
    AssetContext,
    Dependency,
    Dimension,
    DynamicScheme,
    MultiScheme,
    MultiToSingleDimensionMapping,
    asset,
    sql_asset,
)
from backfiller.checks import in_window, reconciles_with, row_count_matches_manifest, unique_key
from backfiller.inputs import input_sha256, open_input
from backfiller.partitions import scheme_from_config

RAW = "week06/ingestion/raw_ticket_events_partitioned"
BY_LINE = "week06/silver/ticket_fact_by_product_line"
ROLLUP = "week06/gold/daily_product_line_rollup"

#: the example folder, where the manifest's input paths start
EXAMPLE = Path(__file__).resolve().parents[2]

DAYS = scheme_from_config(kind="daily", start="2026-03-01", end="2026-05-01")
DAY_BY_PRODUCT_LINE = MultiScheme(
    (Dimension("date", DAYS), Dimension("product_line", DynamicScheme("product_line")))
)

RAW_SCHEMA = pa.schema(
    [
        ("ticket_id", pa.string()),
        ("event_time", pa.string()),
        ("customer_id", pa.string()),
        ("channel", pa.string()),
        ("priority", pa.string()),
        ("product_line", pa.string()),
        ("source_file", pa.string()),
    ]
)


@asset(
    RAW,
    idempotency_key=("ticket_id", "partition_key"),
    deduplicate=True,
    expects_manifest_count=True,
    checks=[row_count_matches_manifest(), unique_key()],
)
def raw_ticket_events(context: AssetContext) -> pa.Table:
    """Ticket events of one day, exactly as the example's manifest declares them."""
    assert context.manifest_partition is not None
    rows: list[dict[str, object]] = []
    for declared in context.manifest_partition.input_files:
        if input_sha256(declared.path, root=EXAMPLE) != declared.sha256:
            raise ValueError(f"{declared.path} does not match the manifest's checksum")
        with open_input(declared.path, root=EXAMPLE) as handle:
            text = handle.read().decode("utf-8")
        for line in text.splitlines():
            if line.strip():
                event = json.loads(line)
                event["source_file"] = declared.path
                rows.append({name: event.get(name) for name in RAW_SCHEMA.names})
    return pa.Table.from_pylist(rows, schema=RAW_SCHEMA)


ticket_facts_by_product_line = sql_asset(
    BY_LINE,
    """
    SELECT ticket_id, partition_key, event_time, channel, priority, source_line
    FROM (
        SELECT
            ticket_id,
            $partition_key AS partition_key,
            CAST(event_time AS TIMESTAMPTZ) AS event_time,
            channel,
            priority,
            product_line AS source_line,
            CASE
                WHEN product_line = 'billing' THEN 'billing'
                WHEN channel = 'phone' THEN 'voice'
                ELSE 'chat'
            END AS derived_line
        FROM "week06/ingestion/raw_ticket_events_partitioned"
        WHERE CAST(event_time AS TIMESTAMPTZ) >= $window_start
          AND CAST(event_time AS TIMESTAMPTZ) < $window_end
    )
    WHERE derived_line = $product_line
    QUALIFY row_number() OVER (PARTITION BY ticket_id ORDER BY event_time) = 1
    ORDER BY event_time, ticket_id
    """,
    deps=[Dependency(RAW, MultiToSingleDimensionMapping())],
    scheme=DAY_BY_PRODUCT_LINE,
    idempotency_key=("ticket_id", "partition_key"),
    description="Ticket facts of one day and one product line.",
    checks=[unique_key(), in_window("event_time")],
)


daily_product_line_rollup = sql_asset(
    ROLLUP,
    """
    SELECT
        $partition_key AS day,
        product_line,
        count(*) AS tickets,
        CAST(sum(count(*)) OVER () AS BIGINT) AS day_tickets
    FROM "week06/silver/ticket_fact_by_product_line"
    GROUP BY product_line
    ORDER BY product_line
    """,
    deps=[Dependency(BY_LINE, MultiToSingleDimensionMapping())],
    idempotency_key=("day", "product_line"),
    description="Tickets of each product line of one day, and the day's total.",
    checks=[
        unique_key(),
        reconciles_with(BY_LINE, upstream_expr="count(*)", expr="coalesce(sum(tickets), 0)"),
    ],
)
