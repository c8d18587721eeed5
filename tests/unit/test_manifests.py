"""Manifests: loading the example, refusing bad ones with every problem named, checksums,
input verification and the registry."""

from __future__ import annotations

import copy
import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from backfiller.errors import ExitCode, ManifestError
from backfiller.manifests import (
    InputMismatch,
    Manifest,
    ManifestRegistry,
    load_manifest,
    parse_manifest,
    verify_inputs,
)
from backfiller.partitions import PartitionScheme, scheme_from_config

MANIFEST = "data/manifests/week06-seed-manifest-001.json"
SHA_A = "a" * 64


def _doc(
    parts: dict[str, int],
    manifest_id: str = "m-1",
    created_at: str = "2026-05-01T00:00:00+00:00",
) -> dict[str, Any]:
    return {
        "schema_version": 1,
        "manifest_id": manifest_id,
        "source": "omnisupport/ticket_events",
        "batch_id": "b-1",
        "created_at": created_at,
        "partitions": [
            {"partition_key": key, "expected_record_count": count} for key, count in parts.items()
        ],
    }


@pytest.fixture
def daily() -> PartitionScheme:
    return scheme_from_config(kind="daily", start="2026-03-01")


# -- the example ------------------------------------------------------------------------------


def test_load_example_manifest(example_dir: Path, daily: PartitionScheme) -> None:
    manifest = load_manifest(example_dir / MANIFEST, daily)
    assert manifest.manifest_id == "week06-seed-manifest-001"
    assert manifest.batch_id == "week06-seed-batch-001"
    assert manifest.source == "omnisupport/ticket_events"
    assert manifest.created_at == datetime(2026, 5, 1, tzinfo=UTC)
    assert len(manifest.partitions) == 61
    keys = [p.partition_key for p in manifest.partitions]
    assert keys[0] == "2026-03-01"
    assert keys[-1] == "2026-04-30"
    assert len(set(keys)) == 61
    part = manifest.partition("2026-04-17")
    assert part is not None
    assert part.expected_record_count == 3
    assert [f.path for f in part.input_files] == ["data/seed/ticket_events/2026-04-17.jsonl"]
    assert manifest.partition("2026-05-01") is None
    # the declared checksums are those of the bundled files
    assert verify_inputs(part, example_dir) == []
    digest = hashlib.sha256((example_dir / part.input_files[0].path).read_bytes()).hexdigest()
    assert part.input_files[0].sha256 == digest


# -- refusals ---------------------------------------------------------------------------------


def test_every_problem_is_named_in_one_message(daily: PartitionScheme) -> None:
    raw = {
        "schema_version": 1,
        "manifest_id": "m-1",
        "batch_id": "b-1",
        # no "source"
        "created_at": "yesterday",
        "surprise": True,
        "partitions": [
            {
                "partition_key": "2026-04-17",
                "expected_record_count": -1,
                "input_files": [{"path": "data/../etc/passwd", "sha256": "XYZ"}],
            },
            {"partition_key": "2026-04-17", "expected_record_count": 2},
            {"partition_key": "2026-4-18", "expected_record_count": 2},
        ],
    }
    with pytest.raises(ManifestError) as info:
        parse_manifest(raw, source="bad.json", scheme=daily)
    error = info.value
    assert error.exit_code is ExitCode.BAD_INPUT == 2
    message = error.message
    assert message.startswith("Manifest bad.json is invalid (8 problems):")
    lines = message.splitlines()[1:]
    assert len(lines) == 8
    joined = "\n".join(lines)
    assert "'source' is a required property" in joined
    assert "created_at: 'yesterday' is not a 'date-time'" in joined
    assert "partitions/0/expected_record_count: -1 is less than the minimum of 0" in joined
    assert "partitions/0/input_files/0/sha256: 'XYZ'" in joined
    assert "partitions/0/input_files/0/path: 'data/../etc/passwd'" in joined
    assert "partitions/1/partition_key: '2026-04-17' repeats" in joined
    assert "partitions/2/partition_key: Invalid partition key '2026-4-18'" in joined
    assert "'surprise' was unexpected" in joined
    assert error.hint is not None
    assert "contracts/manifest/manifest.schema.json" in error.hint


def test_one_problem_is_singular() -> None:
    raw = _doc({"2026-04-17": 3})
    del raw["batch_id"]
    with pytest.raises(ManifestError, match=r"invalid \(1 problem\):"):
        parse_manifest(raw)


@pytest.mark.parametrize(
    "path",
    ["../secret.jsonl", "data/../x.jsonl", "/etc/passwd", "data/.hidden", "data\\x.jsonl", ""],
)
def test_unsafe_input_paths_are_refused(path: str) -> None:
    raw = _doc({"2026-04-17": 3})
    raw["partitions"][0]["input_files"] = [{"path": path, "sha256": SHA_A}]
    with pytest.raises(ManifestError, match="partitions/0/input_files/0/path"):
        parse_manifest(raw)


def test_naive_created_at_is_refused() -> None:
    with pytest.raises(ManifestError, match="created_at"):
        parse_manifest(_doc({"2026-04-17": 3}, created_at="2026-05-01T00:00:00"))


def test_schema_version_must_be_1() -> None:
    raw = _doc({"2026-04-17": 3})
    raw["schema_version"] = 2
    with pytest.raises(ManifestError, match="schema_version"):
        parse_manifest(raw)


def test_not_an_object_is_refused() -> None:
    with pytest.raises(ManifestError, match=r"<root>: .* is not of type 'object'"):
        parse_manifest(["not", "a", "manifest"])


def test_keys_are_checked_only_with_a_scheme(daily: PartitionScheme) -> None:
    raw = _doc({"2026-02-01": 3})  # before the scheme's start
    assert parse_manifest(raw).partitions[0].partition_key == "2026-02-01"
    with pytest.raises(ManifestError, match="before the start"):
        parse_manifest(raw, scheme=daily)


def test_invalid_json_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{"manifest_id": ', encoding="utf-8")
    with pytest.raises(ManifestError) as info:
        load_manifest(path)
    assert f"Manifest {path} is not valid JSON" in str(info.value)
    assert info.value.exit_code == 2


def test_non_utf8_file(tmp_path: Path) -> None:
    path = tmp_path / "latin1.json"
    path.write_bytes(b'{"source": "caf\xe9"}')
    with pytest.raises(ManifestError, match="is not valid JSON"):
        load_manifest(path)


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.json"
    with pytest.raises(ManifestError) as info:
        load_manifest(path)
    assert str(info.value) == f"Manifest file not found: {path}"
    assert info.value.exit_code == 2


def test_load_names_the_file_in_the_message(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    raw = _doc({"2026-04-17": 3})
    del raw["source"]
    path.write_text(json.dumps(raw), encoding="utf-8")
    with pytest.raises(ManifestError, match=f"Manifest {path} is invalid"):
        load_manifest(path)


# -- checksums --------------------------------------------------------------------------------


def test_partition_checksum_changes_only_with_that_partition(example_dir: Path) -> None:
    raw = json.loads((example_dir / MANIFEST).read_text(encoding="utf-8"))
    base = parse_manifest(raw)
    changed_raw = copy.deepcopy(raw)
    index = next(
        i for i, p in enumerate(changed_raw["partitions"]) if p["partition_key"] == "2026-04-17"
    )
    changed_raw["partitions"][index]["expected_record_count"] = 4
    changed = parse_manifest(changed_raw)

    def sums(m: Manifest) -> dict[str, str]:
        return {p.partition_key: p.checksum for p in m.partitions}

    before, after = sums(base), sums(changed)
    assert {k for k in before if before[k] != after[k]} == {"2026-04-17"}
    assert base.checksum != changed.checksum
    # deterministic: parsing the same document again gives the same checksums
    assert sums(parse_manifest(copy.deepcopy(raw))) == before
    assert len(before["2026-04-17"]) == 64
    # a change to the batch metadata leaves every partition checksum alone
    renamed = copy.deepcopy(raw)
    renamed["batch_id"] = "another-batch"
    assert sums(parse_manifest(renamed)) == before
    assert parse_manifest(renamed).checksum != base.checksum


def test_partition_checksum_sees_a_changed_input_file_hash() -> None:
    raw = _doc({"2026-04-17": 3})
    raw["partitions"][0]["input_files"] = [{"path": "a.jsonl", "sha256": SHA_A}]
    one = parse_manifest(raw).partitions[0].checksum
    raw["partitions"][0]["input_files"][0]["sha256"] = "b" * 64
    assert parse_manifest(raw).partitions[0].checksum != one


# -- input verification -----------------------------------------------------------------------


def test_verify_inputs_detects_changed_and_missing_files(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    good = tmp_path / "data" / "good.jsonl"
    good.write_bytes(b'{"ticket_id": "T-1"}\n')
    drift = tmp_path / "data" / "drift.jsonl"
    drift.write_bytes(b"original\n")
    good_sha = hashlib.sha256(good.read_bytes()).hexdigest()
    drift_sha = hashlib.sha256(drift.read_bytes()).hexdigest()
    raw = _doc({"2026-04-17": 3})
    raw["partitions"][0]["input_files"] = [
        {"path": "data/good.jsonl", "sha256": good_sha},
        {"path": "data/drift.jsonl", "sha256": drift_sha},
        {"path": "data/gone.jsonl", "sha256": SHA_A},
    ]
    part = parse_manifest(raw).partitions[0]
    assert verify_inputs(part, tmp_path) == [InputMismatch("data/gone.jsonl", SHA_A, None)]
    drift.write_bytes(b"edited\n")
    new_sha = hashlib.sha256(b"edited\n").hexdigest()
    assert verify_inputs(part, tmp_path) == [
        InputMismatch("data/drift.jsonl", drift_sha, new_sha),
        InputMismatch("data/gone.jsonl", SHA_A, None),
    ]


def test_verify_inputs_in_the_example(example_dir: Path) -> None:
    manifest = load_manifest(example_dir / MANIFEST)
    part = manifest.partition("2026-04-17")
    assert part is not None
    target = example_dir / part.input_files[0].path
    target.write_text(target.read_text(encoding="utf-8") + "\n", encoding="utf-8")
    (mismatch,) = verify_inputs(part, example_dir)
    assert mismatch.path == "data/seed/ticket_events/2026-04-17.jsonl"
    assert mismatch.expected == part.input_files[0].sha256
    assert mismatch.actual == hashlib.sha256(target.read_bytes()).hexdigest()
    target.unlink()
    assert verify_inputs(part, example_dir)[0].actual is None


# -- the registry -----------------------------------------------------------------------------


def test_registry_picks_the_newest_manifest_per_partition() -> None:
    old = parse_manifest(
        _doc({"2026-04-16": 1, "2026-04-17": 2}, "m-old", "2026-05-01T00:00:00+00:00")
    )
    new = parse_manifest(_doc({"2026-04-17": 5}, "m-new", "2026-05-02T00:00:00+00:00"))
    # created_at decides, not the order given nor the id
    for order in ([old, new], [new, old]):
        registry = ManifestRegistry(order)
        assert len(registry) == 2
        assert registry.ids == ["m-new", "m-old"]
        found = registry.for_partition("2026-04-17")
        assert found is not None
        assert found[0].manifest_id == "m-new"
        assert found[1].expected_record_count == 5
        older = registry.for_partition("2026-04-16")
        assert older is not None
        assert older[0].manifest_id == "m-old"
        assert registry.for_partition("2026-04-18") is None


def test_registry_compares_created_at_across_time_zones() -> None:
    # 2026-05-01T23:00-02:00 is 2026-05-02T01:00Z: later than 2026-05-02T00:30Z
    west = parse_manifest(_doc({"2026-04-17": 1}, "a-west", "2026-05-01T23:00:00-02:00"))
    utc = parse_manifest(_doc({"2026-04-17": 2}, "z-utc", "2026-05-02T00:30:00+00:00"))
    found = ManifestRegistry([west, utc]).for_partition("2026-04-17")
    assert found is not None
    assert found[0].manifest_id == "a-west"


def test_registry_get_and_unknown_id() -> None:
    registry = ManifestRegistry(
        [
            parse_manifest(_doc({"2026-04-17": 1}, "m-b")),
            parse_manifest(_doc({"2026-04-18": 1}, "m-a")),
        ]
    )
    assert registry.get("m-a").manifest_id == "m-a"
    with pytest.raises(ManifestError) as info:
        registry.get("m-zzz")
    assert info.value.message == "Unknown manifest 'm-zzz' (known: m-a, m-b)"
    assert info.value.exit_code == 2
    with pytest.raises(ManifestError, match=r"\(known: none\)"):
        ManifestRegistry([]).get("m-a")


def test_registry_refuses_duplicate_ids() -> None:
    one = parse_manifest(_doc({"2026-04-17": 1}, "m-1"))
    two = parse_manifest(_doc({"2026-04-18": 1}, "m-1", "2026-06-01T00:00:00+00:00"))
    with pytest.raises(ManifestError, match="Manifest id 'm-1' is declared twice"):
        ManifestRegistry([one, two])


def test_registry_from_folder(example_dir: Path, tmp_path: Path) -> None:
    folder = example_dir / "data" / "manifests"
    newer = _doc({"2026-04-17": 4}, "week06-fix-002", "2026-06-01T00:00:00+00:00")
    (folder / "week06-fix-002.json").write_text(json.dumps(newer), encoding="utf-8")
    (folder / "notes.txt").write_text("not a manifest", encoding="utf-8")
    registry = ManifestRegistry.from_folder(folder)
    assert registry.ids == ["week06-fix-002", "week06-seed-manifest-001"]
    assert registry.sources["week06-fix-002"] == folder / "week06-fix-002.json"
    found = registry.for_partition("2026-04-17")
    assert found is not None
    assert (found[0].manifest_id, found[1].expected_record_count) == ("week06-fix-002", 4)
    other = registry.for_partition("2026-04-16")
    assert other is not None
    assert other[0].manifest_id == "week06-seed-manifest-001"
    assert len(ManifestRegistry.from_folder(tmp_path / "missing")) == 0
