"""Checks: rules run on staged data before it is published."""

from backfiller.checks.builtin import (
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
from backfiller.checks.model import Check, CheckContext, CheckResult, CheckStatus, Severity

__all__ = [
    "Check",
    "CheckContext",
    "CheckResult",
    "CheckStatus",
    "Severity",
    "accepted_values",
    "in_window",
    "not_null",
    "python_check",
    "reconciles_with",
    "row_count_matches_manifest",
    "schema_matches",
    "sql_check",
    "unique_key",
]
