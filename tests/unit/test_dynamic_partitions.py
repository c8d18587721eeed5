"""Dynamic partitions: the scheme (pure) and the ledger's log of values (both ledgers)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import both_backends

from backfiller.errors import ConfigError, InvalidPartitionKeyError
from backfiller.ledger import DatabaseLedger, DimensionVerb, PostgresLedger, SqliteLedger
from backfiller.partitions import DynamicScheme, scheme_from_config, valid_value

# -- the scheme --------------------------------------------------------------------------------


def test_a_dynamic_scheme_has_the_values_it_was_given_in_order() -> None:
    scheme = scheme_from_config(kind="dynamic", dimension="customer", values=["b", "a", "c"])
    assert isinstance(scheme, DynamicScheme)
    assert scheme.keys() == ["b", "a", "c"]
    assert scheme.key_range("a", "c") == ["a", "c"]
    assert scheme.parse("a") == "a"
    assert scheme.window("a") is None
    assert scheme.name == "dynamic customer (b, a, c)"
    with pytest.raises(InvalidPartitionKeyError, match="was added after"):
        scheme.key_range("c", "b")


def test_an_unknown_value_names_the_command_that_adds_it() -> None:
    scheme = DynamicScheme("customer", ("acme",))
    with pytest.raises(InvalidPartitionKeyError) as info:
        scheme.parse("globex")
    assert "not a current value of the dynamic dimension 'customer'" in info.value.message
    assert "backfiller partitions add --dimension customer --value globex" in (
        info.value.hint or ""
    )


def test_an_empty_dynamic_scheme_is_valid_and_has_no_keys() -> None:
    scheme = DynamicScheme("customer")
    assert scheme.keys() == []
    assert scheme.name == "dynamic customer (no values yet)"
    with pytest.raises(InvalidPartitionKeyError):
        scheme.parse("acme")


@pytest.mark.parametrize("dimension", ["", "a/b", "..", " x"])
def test_a_dimension_needs_a_plain_name(dimension: str) -> None:
    with pytest.raises(ConfigError):
        scheme_from_config(kind="dynamic", dimension=dimension)


def test_dynamic_settings_belong_to_a_dynamic_scheme_only() -> None:
    with pytest.raises(ConfigError, match="dimension is set but kind is 'daily'"):
        scheme_from_config(kind="daily", start="2026-01-01", dimension="customer")
    with pytest.raises(ConfigError, match="cron do\\(es\\) not apply to dynamic partitions"):
        scheme_from_config(kind="dynamic", dimension="customer", cron="0 * * * *")


def test_only_schemes_of_one_dimension_are_the_same_kind() -> None:
    a, b = DynamicScheme("customer", ("x",)), DynamicScheme("customer", ("y",))
    assert a.same_kind(b)
    assert not a.same_kind(DynamicScheme("region"))


@pytest.mark.parametrize("value", ["", "a/b", "../x", "a b", "-x", 5, "x" * 129])
def test_values_are_plain_keys(value: Any) -> None:
    with pytest.raises(InvalidPartitionKeyError):
        valid_value(value)
    assert valid_value("customer-0042") == "customer-0042"


# -- the ledger's log of values, on both ledgers -------------------------------------------------


@pytest.fixture
def open_ledger(
    ledger_backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Callable[[], DatabaseLedger]]:
    location: Any = (
        tmp_path / "ledger.db"
        if ledger_backend == "sqlite"
        else request.getfixturevalue("postgres_url")
    )
    opened: list[DatabaseLedger] = []

    def _open() -> DatabaseLedger:
        led: DatabaseLedger = (
            SqliteLedger(location) if ledger_backend == "sqlite" else PostgresLedger(location)
        )
        opened.append(led)
        return led

    yield _open
    for led in opened:
        led.close()


@both_backends
def test_values_are_added_and_removed_all_or_nothing(
    open_ledger: Callable[[], DatabaseLedger],
) -> None:
    led = open_ledger()
    book = led.dimensions
    assert book.add("customer", ["acme", "globex"], operator="ann", reason="onboarded") == []
    assert book.values("customer") == ["acme", "globex"]
    # one value present already: nothing is added
    assert book.add("customer", ["initech", "acme"], operator="ann", reason="x") == ["acme"]
    assert book.values("customer") == ["acme", "globex"]
    # one value absent: nothing is removed
    gone = book.remove("customer", ["acme", "nope"], operator="bob", reason="y", published={})
    assert gone == ["nope"]
    assert book.values("customer") == ["acme", "globex"]
    assert (
        book.remove("customer", ["acme"], operator="bob", reason="left", published={"acme": 2})
        == []
    )
    assert book.values("customer") == ["globex"]
    # added again: it comes back after the values added before it
    assert book.add("customer", ["acme"], operator="cy", reason="back") == []
    assert book.values("customer") == ["globex", "acme"]
    events = book.events("customer")
    assert [(e.value, e.verb, e.operator, e.reason, e.published) for e in events] == [
        ("acme", DimensionVerb.ADD, "ann", "onboarded", 0),
        ("globex", DimensionVerb.ADD, "ann", "onboarded", 0),
        ("acme", DimensionVerb.REMOVE, "bob", "left", 2),
        ("acme", DimensionVerb.ADD, "cy", "back", 0),
    ]
    assert book.values("region") == [] and book.events("region") == []
    assert len(book.events()) == 4


@both_backends
def test_concurrent_additions_of_one_value_record_it_once(
    open_ledger: Callable[[], DatabaseLedger],
) -> None:
    """Eight operators add the same value at once (each its own connection): one succeeds,
    the others are told it is present already."""
    ledgers = [open_ledger() for _ in range(8)]
    barrier = threading.Barrier(len(ledgers))
    results: list[list[str]] = []
    lock = threading.Lock()

    def add(led: DatabaseLedger) -> None:
        barrier.wait()
        found = led.dimensions.add("customer", ["acme"], operator="op", reason="race")
        with lock:
            results.append(found)

    threads = [threading.Thread(target=add, args=(led,)) for led in ledgers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [[]] + [["acme"]] * 7
    assert len(ledgers[0].dimensions.events("customer")) == 1
