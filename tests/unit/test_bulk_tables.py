"""The key table planning reads the manifests through: the declarations' checksums computed
for every key, or left out and filled in only where a record has one to compare."""

from __future__ import annotations

from backfiller.manifests import ManifestRegistry, parse_manifest
from backfiller.planning.bulk import key_table, with_checksums

KEYS = ["2026-04-16", "2026-04-17", "2026-04-18"]


def _registry() -> ManifestRegistry:
    return ManifestRegistry(
        [
            parse_manifest(
                {
                    "schema_version": 1,
                    "manifest_id": "m-1",
                    "source": "omnisupport/ticket_events",
                    "batch_id": "b-1",
                    "created_at": "2026-05-01T00:00:00+00:00",
                    "partitions": [
                        {"partition_key": "2026-04-16", "expected_record_count": 3},
                        {"partition_key": "2026-04-17", "expected_record_count": 4},
                    ],
                }
            )
        ]
    )


def test_a_key_table_without_checksums_is_the_same_table_but_them() -> None:
    registry = _registry()
    every = key_table(registry, KEYS)
    lean = key_table(registry, KEYS, checksums=False)
    declared = registry.for_partition("2026-04-17")
    assert declared is not None
    assert every.column("manifest_checksum").to_pylist()[1] == declared[1].checksum
    assert lean.column("manifest_checksum").to_pylist() == [None, None, None]
    assert lean.drop_columns(["manifest_checksum"]).equals(
        every.drop_columns(["manifest_checksum"])
    )


def test_with_checksums_fills_in_the_positions_asked_for() -> None:
    """A key asked for gets its declaration's checksum (none when nothing declares it); the
    others stay null, and those already there are kept."""
    registry = _registry()
    every = key_table(registry, KEYS).column("manifest_checksum").to_pylist()
    lean = key_table(registry, KEYS, checksums=False)
    once = with_checksums(lean, registry, KEYS, [1, 2])
    assert once.column("manifest_checksum").to_pylist() == [None, every[1], None]
    twice = with_checksums(once, registry, KEYS, [0])
    assert twice.column("manifest_checksum").to_pylist() == every
    assert twice.drop_columns(["manifest_checksum"]).equals(
        lean.drop_columns(["manifest_checksum"])
    )


def test_the_same_keys_of_the_same_registry_give_the_table_made_the_first_time() -> None:
    """A server classifies the same window again after each change: the key table of the
    same keys (an equal list) and registry is not made again. A list changed since (in
    place, at the same length, or grown), another registry or the other kind each get a
    table of their own, equal to one made afresh."""
    registry = _registry()
    keys = list(KEYS)
    first = key_table(registry, keys)
    assert key_table(registry, keys) is first
    assert key_table(registry, list(KEYS)) is first
    lean = key_table(registry, keys, checksums=False)
    assert lean is not first and key_table(registry, keys, checksums=False) is lean
    other = key_table(_registry(), keys)
    assert other is not first and other.equals(first)
    keys[0] = "2026-04-19"  # changed in place, the same length
    moved = key_table(registry, keys)
    assert moved.equals(key_table(_registry(), ["2026-04-19", *KEYS[1:]]))
    assert moved.column("manifest_id").to_pylist() == [None, "m-1", None]
    keys.append("2026-04-20")
    grown = key_table(registry, keys, checksums=False)
    assert grown.column("partition_key").to_pylist() == keys
