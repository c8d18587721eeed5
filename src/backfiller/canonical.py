"""Canonical JSON, hashes and deterministic ids: a readable prefix plus a hash."""

from __future__ import annotations

import hashlib
import json
from typing import Any

__all__ = ["canonical_json", "readable_json", "sha256_hex", "stable_id"]


def canonical_json(value: Any) -> bytes:
    """JSON with sorted keys and no insignificant white space: equal values, equal bytes."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
    ).encode("utf-8")


def readable_json(value: Any) -> str:
    """JSON for people to review, ending in a newline: two-space indents, keys in their
    order, non-ASCII text as it is. For documents of text, integers (64-bit), booleans, null,
    lists and objects — plans are — it is the same text as ``json.dumps(value, indent=2,
    ensure_ascii=False)``, written by orjson (a ten-year plan is tens of megabytes, which the
    standard library's indenting encoder, written in Python, takes seconds to write)."""
    import orjson

    try:
        return orjson.dumps(value, option=orjson.OPT_INDENT_2).decode("utf-8") + "\n"
    except orjson.JSONEncodeError:  # what orjson refuses (a lone surrogate, a huge integer)
        return json.dumps(value, indent=2, ensure_ascii=False) + "\n"


def sha256_hex(value: Any) -> str:
    """sha256 of ``value``'s canonical JSON (bytes are hashed as they are)."""
    data = value if isinstance(value, bytes) else canonical_json(value)
    return hashlib.sha256(data).hexdigest()


def stable_id(prefix: str, value: Any, length: int = 16) -> str:
    """``prefix-<hash>``: the same value always gets the same id."""
    return f"{prefix}-{sha256_hex(value)[:length]}"
