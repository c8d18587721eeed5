"""How a plan names the partitions it covers, in its summary's ``partition_key`` and in its
file name.

One key is itself; keys of one dimension are ``first..last``. Multi-dimensional keys
(``2026-04-17|billing``) are named by the span of their first dimension and the values of the
others — ``2026-04-17 × billing, chat, voice`` — since ``first..last`` of such keys (in plan
order, ``2026-04-17..2026-04-17|chat``) names neither the days nor the cells.
"""

from __future__ import annotations

from collections.abc import Sequence

from backfiller.partitions import DIMENSION_SEPARATOR

__all__ = ["key_span", "key_span_file_stem"]

#: the other dimensions' values a name lists before it only counts the rest
_LISTED = 8


def _split(keys: Sequence[str]) -> tuple[str, str, list[str]]:
    heads = [k.split(DIMENSION_SEPARATOR, 1)[0] for k in keys]
    tails = sorted({k.split(DIMENSION_SEPARATOR, 1)[1] for k in keys if DIMENSION_SEPARATOR in k})
    return heads[0], heads[-1], tails


def key_span(keys: Sequence[str]) -> str:
    """The plan summary's name of ``keys`` (in plan order; at least one)."""
    if not any(DIMENSION_SEPARATOR in k for k in keys):
        return keys[0] if len(keys) == 1 else f"{keys[0]}..{keys[-1]}"
    if len(keys) == 1:
        return keys[0]
    first, last, tails = _split(keys)
    span = first if first == last else f"{first}..{last}"
    listed = ", ".join(tails[:_LISTED])
    more = len(tails) - _LISTED
    return f"{span} × {listed}" + (f" and {more} more" if more > 0 else "")


def key_span_file_stem(keys: Sequence[str]) -> str:
    """The plan file's name for ``keys`` (in request order): no character a shell would need
    quoted (a key's ``|`` becomes ``+``)."""
    if not any(DIMENSION_SEPARATOR in k for k in keys) or len(keys) == 1:
        name = keys[0] if len(keys) == 1 else f"{keys[0]}_{keys[-1]}"
        return name.replace(DIMENSION_SEPARATOR, "+")
    first, last, tails = _split(keys)
    span = first if first == last else f"{first}_{last}"
    values = (
        "+".join(t.replace(DIMENSION_SEPARATOR, "-") for t in tails)
        if len(tails) <= _LISTED
        else f"{len(tails)}-values"
    )
    return f"{span}_{values}"
