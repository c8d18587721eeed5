"""Plans are written by orjson: the text is exactly what the standard library writes."""

from __future__ import annotations

import json
from typing import Any

from fast_loop import examples
from hypothesis import given, settings
from hypothesis import strategies as st

from backfiller.canonical import readable_json

_SCALARS = (
    st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**63 - 1) | st.text()
)
_DOCUMENTS = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5),
    max_leaves=40,
)


@settings(max_examples=examples(300), deadline=None)
@given(_DOCUMENTS)
def test_readable_json_is_the_standard_librarys_indented_text(value: Any) -> None:
    assert readable_json(value) == json.dumps(value, indent=2, ensure_ascii=False) + "\n"


def test_what_orjson_refuses_is_written_as_the_standard_library_writes_it() -> None:
    for value in ({"operator": "caf\udce9"}, {"n": 2**70}):
        assert readable_json(value) == json.dumps(value, indent=2, ensure_ascii=False) + "\n"
