"""Choosing assets by name (``--asset A``) or by glob pattern over their keys
(``--select 'week06/silver/*'``)."""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence

from backfiller.errors import BadInputError
from backfiller.names import did_you_mean

__all__ = ["select_assets"]


def select_assets(
    keys: Sequence[str], names: Sequence[str] = (), patterns: Sequence[str] = ()
) -> list[str] | None:
    """The asset keys that ``names`` (exact) and ``patterns`` (``fnmatch`` globs, matched
    against the whole key) choose, in the order of ``keys``; ``None`` when neither is given
    (every asset). A name that is no asset, or a pattern that matches none, is bad input
    naming it and the nearest thing that would have matched."""
    if not names and not patterns:
        return None
    chosen: set[str] = set()
    for name in names:
        if name not in keys:
            raise BadInputError(
                f"Unknown asset {name!r}{did_you_mean(name, keys)}",
                hint="known assets: " + ", ".join(keys),
            )
        chosen.add(name)
    for pattern in patterns:
        matched = _matching(keys, pattern)
        if not matched:
            raise BadInputError(
                f"--select {pattern!r} matches no asset{_nearest(pattern, keys)}",
                hint="a pattern matches the whole asset key ('*' within and across '/'); "
                "known assets: " + ", ".join(keys),
            )
        chosen.update(matched)
    return [k for k in keys if k in chosen]


def _nearest(pattern: str, keys: Sequence[str]) -> str:
    """A pattern that would match, when the given one only lacks a leading or trailing
    ``*``; else the nearest asset key."""
    for wider in (f"*{pattern}", f"{pattern}*", f"*{pattern}*"):
        if wider != pattern and (matched := _matching(keys, wider)):
            return f" (did you mean {wider!r}? it matches {', '.join(matched[:3])})"
    return did_you_mean(pattern, keys)


def _matching(keys: Sequence[str], pattern: str) -> list[str]:
    return [k for k in keys if fnmatch.fnmatchcase(k, pattern)]
