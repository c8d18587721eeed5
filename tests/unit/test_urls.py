"""One way to show a URL in a message: the ledger's and the lineage endpoint's alike."""

from __future__ import annotations

import pytest

from backfiller.urls import redact


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://a:b@h:5432/d?sslmode=require&password=x",
         "postgresql://a:***@h:5432/d?sslmode=require&password=***"),
        ("postgresql://h/d", "postgresql://h/d"),
        ("postgresql://alice@h/d", "postgresql://alice@h/d"),
        ("https://u:p@lineage.example/api?api_key=k&Token=t&namespace=n",
         "https://u:***@lineage.example/api?api_key=***&Token=***&namespace=n"),
        ("http://127.0.0.1:5000", "http://127.0.0.1:5000"),
    ],
)  # fmt: skip
def test_passwords_and_secret_parameters_are_masked(url: str, shown: str) -> None:
    assert redact(url) == shown
    assert redact(shown) == shown
