"""Which partition keys belong to which asset, when assets are partitioned by different schemes.

An asset may declare its own scheme (a daily asset and its monthly rollup). What a command
looks at is then a set of cells — an asset and a key *of that asset's scheme* — carried as one
list of keys: each scheme's keys together, the schemes in the graph order of their first asset
(so an asset's keys stay consecutive), and a cell exists where the asset's scheme has the key.
When the assets share one scheme every asset has every key, exactly as with a single scheme.

How ``--partition``, ``--start`` and ``--end`` select keys when the selected assets have
different schemes (:func:`select_keys`):

* ``--partition KEY``: KEY must be a key of at least one selected asset's scheme (else exit 2
  naming each scheme and its format). Each selected asset whose scheme has KEY gets KEY; each
  other time-partitioned asset gets its keys whose windows overlap KEY's window (a day selects
  its month; a month selects its days).
* ``--start A --end B``: each bound must be a key of at least one selected asset's scheme; the
  range runs from the start of A's window to the end of B's. Each selected asset gets its keys
  whose windows overlap the range — a month any of whose days is in it, the days of a month
  named as a bound — as long as the key is complete (as for one scheme).
* neither: every complete key of each asset.

Assets with static or dynamic keys (no windows) get only the keys named exactly.

A multi-dimensional asset (``2026-04-17|billing``) is selected through its time dimension: a
day (or a range of days, or a month) selects the cells of those days with every value of the
other dimensions; a whole multi-dimensional key selects that cell. ``--dimension NAME=VALUE``
(:func:`dimension_filter`, repeatable; several values of one dimension add up) then keeps,
of each multi-dimensional asset with that dimension, the cells with one of those values; other
assets keep their keys.

What one list cannot say: two schemes whose keys share a spelling (a weekly scheme's keys are
the dates of their Mondays) each have every such key of the list, so a daily asset selected
over a week's days also gets the Monday before them that the weekly asset selected. Choose such
assets one at a time (``--asset``) when that matters; days and months never share a spelling.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime

from backfiller.assets import AssetGraph
from backfiller.errors import BadInputError, InvalidPartitionKeyError
from backfiller.partitions import (
    DIMENSION_SEPARATOR,
    MultiScheme,
    PartitionScheme,
    TimeWindowScheme,
    Window,
)
from backfiller.refs import AssetPartition

__all__ = [
    "cells",
    "dimension_filter",
    "every_key",
    "judged_by_values",
    "keys_of",
    "owners",
    "require_owned",
    "schemes_of",
    "select_keys",
    "shared_scheme",
]


def schemes_of(graph: AssetGraph, assets: Iterable[str]) -> list[PartitionScheme]:
    """The distinct schemes of ``assets``, in the order of their first asset."""
    found: list[PartitionScheme] = []
    for a in assets:
        scheme = graph.scheme(a)
        if scheme not in found:
            found.append(scheme)
    return found


def shared_scheme(graph: AssetGraph, assets: Iterable[str]) -> PartitionScheme | None:
    """The one scheme every asset of ``assets`` has; ``None`` when they differ."""
    found = schemes_of(graph, assets)
    return found[0] if len(found) == 1 else None


def _owned(graph: AssetGraph, keys: Sequence[str], names: Sequence[str]) -> dict[str, set[str]]:
    """Per asset, the keys of ``keys`` its scheme has (each scheme asked once per key)."""
    per_scheme: list[tuple[PartitionScheme, set[str]]] = []
    owned: dict[str, set[str]] = {}
    for a in names:
        scheme = graph.scheme(a)
        mine = next((found for s, found in per_scheme if s == scheme), None)
        if mine is None:
            mine = {k for k in keys if scheme.contains(k)}
            per_scheme.append((scheme, mine))
        owned[a] = mine
    return owned


def cells(
    graph: AssetGraph, keys: Sequence[str], assets: Sequence[str] | None = None
) -> list[AssetPartition]:
    """The cells of ``assets`` (default: every asset) over ``keys``, key by key, each key's
    assets in graph order: every pair when the assets share a scheme, else only the pairs
    whose asset's scheme has the key."""
    names = list(assets or graph.keys)
    if shared_scheme(graph, names) is not None or not names:
        return [AssetPartition(a, k) for k in keys for a in names]
    owned = _owned(graph, keys, names)
    return [AssetPartition(a, k) for k in keys for a in names if k in owned[a]]


def keys_of(graph: AssetGraph, asset: str, keys: Sequence[str]) -> list[str]:
    """The keys of ``keys`` that are keys of ``asset``'s scheme, in order."""
    scheme = graph.scheme(asset)
    return [k for k in keys if scheme.contains(k)]


def owners(graph: AssetGraph, key: str, assets: Sequence[str]) -> list[str]:
    """The assets of ``assets`` whose scheme has ``key``."""
    if shared_scheme(graph, assets) is not None:
        return list(assets)
    return [a for a in assets if graph.scheme(a).contains(key)]


def require_owned(graph: AssetGraph, keys: Iterable[str], assets: Sequence[str]) -> None:
    """Refuse (exit 2) a key that is no key of any of ``assets``; with one shared scheme, the
    scheme's own error."""
    scheme = shared_scheme(graph, assets)
    if scheme is not None:  # the first key it refuses, found through its calendar
        for _, refusal in scheme.refused_keys(list(keys)):
            raise refusal
        return
    for key in keys:
        if not owners(graph, key, assets):
            raise _no_owner(graph, key, assets)


def _no_owner(graph: AssetGraph, key: str, assets: Sequence[str]) -> InvalidPartitionKeyError:
    described = "; ".join(
        f"{', '.join(a for a in assets if graph.scheme(a) == s)}: {s.name} ({s.key_format})"
        for s in schemes_of(graph, assets)
    )
    return InvalidPartitionKeyError(
        f"Partition key {key!r} is not a key of any selected asset's scheme ({described})",
        hint="pass a key in the format of the asset's own scheme, or choose the asset with --asset",
    )


def _parse_for(graph: AssetGraph, key: str, assets: Sequence[str], now: datetime) -> Window | None:
    """``key`` must be a complete key of at least one of ``assets``; its window (``None``:
    a static or dynamic key)."""
    refusal: InvalidPartitionKeyError | None = None
    for scheme in schemes_of(graph, assets):
        if isinstance(scheme, MultiScheme) and not scheme.contains(key):
            timed = scheme.time_dimension
            scheme = timed.scheme if timed is not None else scheme  # a day of its cells
        if not scheme.contains(key):
            continue
        try:
            scheme.parse(key, now=now)
        except InvalidPartitionKeyError as exc:  # a key of the scheme, not complete yet
            refusal = exc
            continue
        return scheme.window(key)
    if refusal is None:  # a multi-dimensional key: what is wrong with which of its values
        for scheme in schemes_of(graph, assets):
            if isinstance(scheme, MultiScheme) and DIMENSION_SEPARATOR in key:
                scheme.parse(key, now=now)
    raise refusal or _no_owner(graph, key, assets)


def _overlapping(
    scheme: PartitionScheme, start: datetime, end: datetime, now: datetime
) -> list[str]:
    """The complete keys of ``scheme`` whose windows overlap ``[start, end)``; of a
    multi-dimensional scheme, its cells whose time dimension's windows do."""
    if isinstance(scheme, MultiScheme):
        timed = scheme.time_dimension
        if timed is None:
            return []
        return scheme.combine(
            [
                _overlapping(d.scheme, start, end, now) if d is timed else d.scheme.keys()
                for d in scheme.dimensions
            ]
        )
    if not isinstance(scheme, TimeWindowScheme):
        return []
    first = scheme.window(scheme.key_for(max(start, scheme.start))).start_utc
    found = []
    for key, _ in scheme.iter_windows(first, end):
        try:
            found.append(scheme.parse(key, now=now))
        except InvalidPartitionKeyError:
            break  # not complete yet, nor is any later key
    return found


def _union(graph: AssetGraph, per_asset: dict[str, list[str]]) -> list[str]:
    """One list: each scheme's keys together, schemes in the graph order of their first
    asset; a key two schemes have appears once."""
    seen: dict[str, None] = {}
    for scheme in schemes_of(graph, [a for a in graph.keys if a in per_asset]):
        for a in graph.keys:
            if a in per_asset and graph.scheme(a) == scheme:
                seen.update(dict.fromkeys(per_asset[a]))
    return list(seen)


def select_keys(
    graph: AssetGraph,
    assets: Sequence[str],
    *,
    partition: str | None,
    start: str | None,
    end: str | None,
    now: datetime,
    dimensions: Mapping[str, Sequence[str]] | None = None,
) -> list[str]:
    """The keys ``--partition`` or ``--start``/``--end`` select for ``assets`` whose schemes
    differ (the rules in this module's documentation), as one list (see :func:`cells`). A
    missing bound is the start of the first key (or the end of the last complete key) of any
    of ``assets``; ``dimensions`` (:func:`dimension_filter`) narrows the multi-dimensional
    assets' cells."""
    per_asset = _selected(graph, assets, partition=partition, start=start, end=end, now=now)
    return _union(graph, _narrowed(graph, per_asset, dimensions))


def _selected(
    graph: AssetGraph,
    assets: Sequence[str],
    *,
    partition: str | None,
    start: str | None,
    end: str | None,
    now: datetime,
) -> dict[str, list[str]]:
    if partition is not None:
        window = _parse_for(graph, partition, assets, now)
        per_asset: dict[str, list[str]] = {}
        for a in assets:
            scheme = graph.scheme(a)
            if scheme.contains(partition):
                per_asset[a] = [partition]
            elif window is not None:
                per_asset[a] = _overlapping(scheme, window.start_utc, window.end_utc, now)
        return per_asset
    first = None if start is None else _parse_for(graph, start, assets, now)
    last = None if end is None else _parse_for(graph, end, assets, now)
    if (start is not None and first is None) or (end is not None and last is None):
        # static or dynamic bounds: each asset's own range
        return {a: _listed_range(graph.scheme(a), start, end) for a in assets}
    spans = [w for a in assets for w in _extent(graph.scheme(a), now)]
    if not spans and (first is None or last is None):
        raise BadInputError(
            "No partition of the selected assets is complete yet",
            hint="pass --start and --end (or --partition)",
        )
    begin = first.start_utc if first else min(w.start_utc for w in spans)
    stop = last.end_utc if last else max(w.end_utc for w in spans)
    if stop <= begin:
        raise InvalidPartitionKeyError(
            f"Empty range: {start!r} comes after {end!r}",
            hint="pass --start before (or equal to) --end",
        )
    return {a: _overlapping(graph.scheme(a), begin, stop, now) for a in assets}


def _extent(scheme: PartitionScheme, now: datetime) -> list[Window]:
    """The windows of the first and the last complete key of a time scheme (none if it has
    no complete key or no windows)."""
    if isinstance(scheme, MultiScheme):
        timed = scheme.time_dimension
        return [] if timed is None else _extent(timed.scheme, now)
    if not isinstance(scheme, TimeWindowScheme):
        return []
    last = scheme.last_complete(now)
    if last is None:
        return []
    return [scheme.window(scheme.format_key(scheme.start)), scheme.window(last)]


def _listed_range(scheme: PartitionScheme, start: str | None, end: str | None) -> list[str]:
    if start is not None and end is not None and scheme.contains(start) and scheme.contains(end):
        return scheme.key_range(start, end)
    return []


def every_key(
    graph: AssetGraph,
    assets: Sequence[str],
    now: datetime,
    dimensions: Mapping[str, Sequence[str]] | None = None,
) -> list[str]:
    """Every complete key of each of ``assets``, as one list (see :func:`cells`);
    ``dimensions`` narrows the multi-dimensional assets' cells."""
    per_asset = {a: graph.scheme(a).keys(now=now) for a in assets}
    found = _union(graph, _narrowed(graph, per_asset, dimensions))
    if not found:
        raise BadInputError(
            "No partition of the selected assets is complete yet",
            hint="pass --start and --end (or --partition)",
        )
    return found


def dimension_filter(
    graph: AssetGraph, assets: Sequence[str], texts: Iterable[str]
) -> dict[str, list[str]]:
    """``--dimension NAME=VALUE`` options as ``{NAME: [VALUE, ...]}``: each NAME a dimension of
    a selected multi-dimensional asset and each VALUE one of its values, else bad input naming
    it."""
    multi = [s for s in schemes_of(graph, assets) if isinstance(s, MultiScheme)]
    found: dict[str, list[str]] = {}
    for text in texts:
        name, sep, value = text.partition("=")
        if not sep or not name or not value:
            raise BadInputError(
                f"Invalid --dimension {text!r}: expected NAME=VALUE",
                hint="e.g. --dimension product_line=billing",
            )
        having = [s.dimension(name) for s in multi if name in s.names]
        if not having:
            known = sorted({n for s in multi for n in s.names})
            raise BadInputError(
                f"Unknown dimension {name!r}: "
                + (
                    f"the selected assets' dimensions are {', '.join(known)}"
                    if known
                    else "no selected asset has more than one dimension"
                ),
                hint="pass --dimension NAME=VALUE with a dimension of a selected asset",
            )
        if not any(d.scheme.contains(value) for d in having):
            having[0].scheme.parse(value)  # names what the value should be
        found.setdefault(name, [])
        if value not in found[name]:
            found[name].append(value)
    return found


def judged_by_values(
    scheme: PartitionScheme, key: str, dimensions: Mapping[str, Sequence[str]]
) -> bool | None:
    """Whether ``key`` has the values ``dimensions`` names, where it can say: ``None`` for a
    key of a scheme without any of those dimensions; ``False`` for a key that is not one of
    its multi-dimensional scheme's (one recorded before the scheme changed)."""
    if not isinstance(scheme, MultiScheme):
        return None
    if not set(scheme.names) & set(dimensions):
        return None
    try:
        values = scheme.values_of(key)
    except InvalidPartitionKeyError:
        return False
    return all(values[name] in wanted for name, wanted in dimensions.items() if name in values)


def _narrowed(
    graph: AssetGraph,
    per_asset: dict[str, list[str]],
    dimensions: Mapping[str, Sequence[str]] | None,
) -> dict[str, list[str]]:
    """``per_asset`` with each multi-dimensional asset's keys narrowed to the cells whose
    values of ``dimensions`` are among the given ones."""
    if not dimensions:
        return per_asset
    narrowed = dict(per_asset)
    for a, keys in per_asset.items():
        scheme = graph.scheme(a)
        if not isinstance(scheme, MultiScheme):
            continue
        wanted = [(i, set(dimensions[n])) for i, n in enumerate(scheme.names) if n in dimensions]
        if wanted:
            narrowed[a] = [k for k in keys if all(scheme.split(k)[i] in vs for i, vs in wanted)]
    return narrowed
