"""Canonical JSON, deterministic ids and atomic file writes."""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
from pathlib import Path
from typing import Any

import pytest
from fast_loop import examples
from hypothesis import given, settings
from hypothesis import strategies as st

from backfiller.atomic import (
    atomic_write_bytes,
    atomic_write_text,
    create_new_bytes,
    one_folder_sync,
)
from backfiller.canonical import canonical_json, sha256_hex, stable_id

# -- canonical JSON ---------------------------------------------------------------------------


def test_canonical_json_is_compact_and_sorted() -> None:
    assert canonical_json({"b": 1, "a": [1, 2, {"d": None, "c": True}]}) == (
        b'{"a":[1,2,{"c":true,"d":null}],"b":1}'
    )


def test_canonical_json_ignores_key_order() -> None:
    one = {"partition_key": "2026-04-17", "asset": "raw", "nested": {"z": 1, "y": [3, 2]}}
    two = {"nested": {"y": [3, 2], "z": 1}, "asset": "raw", "partition_key": "2026-04-17"}
    assert list(one) != list(two)
    assert canonical_json(one) == canonical_json(two)
    assert sha256_hex(one) == sha256_hex(two)
    # list order is significant
    assert canonical_json({"l": [1, 2]}) != canonical_json({"l": [2, 1]})


def test_canonical_json_keeps_unicode_as_utf8() -> None:
    assert canonical_json({"name": "Zoë ✓"}) == '{"name":"Zoë ✓"}'.encode()


def test_sha256_hex_hashes_bytes_as_they_are() -> None:
    assert sha256_hex(b"abc") == hashlib.sha256(b"abc").hexdigest()
    assert sha256_hex({"a": 1}) == hashlib.sha256(b'{"a":1}').hexdigest()


def test_stable_id() -> None:
    value = {"partition": "2026-04-17", "assets": ["raw", "silver"]}
    ident = stable_id("plan", value)
    assert re.fullmatch(r"plan-[0-9a-f]{16}", ident)
    assert ident == f"plan-{sha256_hex(value)[:16]}"
    assert stable_id("plan", dict(reversed(value.items()))) == ident
    assert stable_id("run", value).removeprefix("run-") == ident.removeprefix("plan-")
    assert stable_id("plan", {**value, "partition": "2026-04-18"}) != ident
    assert len(stable_id("plan", value, length=8)) == len("plan-") + 8


JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=12,
)


@settings(max_examples=examples(150), deadline=None)
@given(st.dictionaries(st.text(max_size=8), JSON_VALUES, max_size=6))
def test_canonical_json_round_trips(value: dict[str, Any]) -> None:
    data = canonical_json(value)
    assert json.loads(data) == value
    # shuffling the keys never changes the bytes
    assert canonical_json(dict(reversed(list(value.items())))) == data
    assert stable_id("x", value) == stable_id("x", json.loads(data))


# -- atomic writes ----------------------------------------------------------------------------


def _strays(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".tmp-"))


def test_atomic_write_text_creates_and_replaces(tmp_path: Path) -> None:
    target = tmp_path / "reports" / "plan.json"
    assert atomic_write_text(target, "first ✓\n") == target
    assert target.read_text(encoding="utf-8") == "first ✓\n"
    atomic_write_text(target, "second")
    assert target.read_bytes() == b"second"
    assert sorted(p.name for p in target.parent.iterdir()) == ["plan.json"]
    assert _strays(target.parent) == []


def test_atomic_write_bytes(tmp_path: Path) -> None:
    target = tmp_path / "blob.bin"
    atomic_write_bytes(target, b"\x00\x01\xff")
    assert target.read_bytes() == b"\x00\x01\xff"
    assert [p.name for p in tmp_path.iterdir()] == ["blob.bin"]


def test_failed_write_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "plan.json"
    atomic_write_text(target, '{"old": true}')

    def broken_fsync(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="Input/output error"):
        atomic_write_text(target, '{"new": true}')
    assert target.read_text(encoding="utf-8") == '{"old": true}'
    assert _strays(tmp_path) == []
    assert [p.name for p in tmp_path.iterdir()] == ["plan.json"]


def test_failed_first_write_creates_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "new.json"

    def broken_fsync(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="No space left"):
        atomic_write_text(target, "data")
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


def test_interrupted_rename_keeps_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "plan.json"
    atomic_write_text(target, "old")

    def interrupted(self: Path, other: Path) -> Path:
        raise KeyboardInterrupt

    monkeypatch.setattr(Path, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_text(target, "new")
    monkeypatch.undo()
    assert target.read_text(encoding="utf-8") == "old"
    assert _strays(tmp_path) == []


# -- writes finished together (a group's partition reports) --------------------------------


def test_writes_in_one_block_are_synced_then_renamed_together_at_its_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[int] = []
    real_fsync = os.fsync

    def counting_fsync(fd: int) -> None:
        synced.append(fd)
        real_fsync(fd)

    atomic_write_text(tmp_path / "a" / "1.json", "old 1")
    monkeypatch.setattr(os, "fsync", counting_fsync)
    with one_folder_sync():
        atomic_write_text(tmp_path / "a" / "1.json", "new 1")
        atomic_write_text(tmp_path / "a" / "2.json", "new 2")
        atomic_write_text(tmp_path / "b" / "3.json", "new 3")
        # nothing visible yet: the old file, no new ones
        assert (tmp_path / "a" / "1.json").read_text(encoding="utf-8") == "old 1"
        assert not (tmp_path / "a" / "2.json").exists() and synced == []
    assert [(tmp_path / p).read_text(encoding="utf-8") for p in ("a/1.json", "a/2.json")] == [
        "new 1",
        "new 2",
    ]
    assert (tmp_path / "b" / "3.json").read_text(encoding="utf-8") == "new 3"
    assert len(synced) == 3 + 2  # each file, then each folder once
    assert _strays(tmp_path / "a") == [] and _strays(tmp_path / "b") == []


def test_a_block_that_raises_writes_none_of_its_files(tmp_path: Path) -> None:
    atomic_write_text(tmp_path / "1.json", "old")
    with pytest.raises(RuntimeError), one_folder_sync():
        atomic_write_text(tmp_path / "1.json", "new")
        atomic_write_text(tmp_path / "2.json", "new")
        raise RuntimeError("the run stops")
    assert (tmp_path / "1.json").read_text(encoding="utf-8") == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["1.json"]


def test_a_block_whose_sync_fails_renames_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    atomic_write_text(tmp_path / "1.json", "old")

    def broken_fsync(fd: int) -> None:
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"), one_folder_sync():
        atomic_write_text(tmp_path / "1.json", "new")
        atomic_write_text(tmp_path / "2.json", "new")
        monkeypatch.setattr(os, "fsync", broken_fsync)
    assert (tmp_path / "1.json").read_text(encoding="utf-8") == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["1.json"]


def test_create_new_bytes_creates_once_and_never_replaces(tmp_path: Path) -> None:
    target = tmp_path / "applied" / "plan-1.json"
    assert create_new_bytes(target, b"first") is True
    assert create_new_bytes(target, b"second") is False
    assert target.read_bytes() == b"first"
    assert [p.name for p in target.parent.iterdir()] == ["plan-1.json"]  # no temporaries left


def test_of_writers_racing_to_create_one_file_exactly_one_wins(tmp_path: Path) -> None:
    """Threads released together: exactly one creates the file, and the file holds its
    bytes (a check, then a rename, would let several write and the last one win)."""
    target = tmp_path / "plan.json"
    start = threading.Barrier(8)
    won: list[bytes] = []

    def create(data: bytes) -> None:
        start.wait()
        if create_new_bytes(target, data):
            won.append(data)

    threads = [threading.Thread(target=create, args=(f"writer {i}".encode(),)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(won) == 1
    assert target.read_bytes() == won[0]
