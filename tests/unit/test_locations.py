"""Locations of backfiller's own files: a local path, or a key on object storage."""

from __future__ import annotations

from pathlib import Path

import pytest

from backfiller.locations import ObjectPath, _said, location_of

OPTIONS = {"AWS_SECRET_ACCESS_KEY": "very-secret", "AWS_REGION": "eu-west-1"}


def test_an_object_path_is_a_path_under_its_bucket() -> None:
    reports = ObjectPath.parse("s3://Lake/reports/week06/", OPTIONS, setting="[project] report_dir")
    assert str(reports) == "s3://Lake/reports/week06"
    plan = reports / "backfill" / "backfill_plan_2026-04-17.json"
    assert str(plan) == "s3://Lake/reports/week06/backfill/backfill_plan_2026-04-17.json"
    assert (plan.name, plan.stem, plan.suffix) == (
        "backfill_plan_2026-04-17.json",
        "backfill_plan_2026-04-17",
        ".json",
    )
    assert plan.parent.parent == reports
    assert plan.is_relative_to(reports) and not reports.is_relative_to(plan)
    assert (
        str(reports.joinpath("partitions", "a", "b")) == "s3://Lake/reports/week06/partitions/a/b"
    )
    assert plan.setting == "[project] report_dir" and dict(plan.options) == OPTIONS


def test_an_object_path_never_shows_its_options_nor_passes_for_a_local_path() -> None:
    path = ObjectPath.parse("s3://lake/reports/holds.json", OPTIONS)
    assert "very-secret" not in repr(path) and "very-secret" not in str(path)
    with pytest.raises(TypeError):
        open(path)  # type: ignore[call-overload]  # noqa: PTH123, SIM115 - what is refused


@pytest.mark.parametrize("uri", ["s3://", "s3:///reports", "gs://"])
def test_an_object_uri_without_a_bucket_is_refused(uri: str) -> None:
    with pytest.raises(ValueError, match="names no bucket"):
        ObjectPath.parse(uri)


def test_a_key_cannot_leave_its_prefix() -> None:
    with pytest.raises(ValueError, match="leaves"):
        ObjectPath.parse("s3://lake/reports") / ".."


def test_location_of_each_kind(tmp_path: Path) -> None:
    assert location_of("reports/x.json", root=tmp_path) == tmp_path / "reports" / "x.json"
    assert location_of((tmp_path / "a b").as_uri(), root=Path("/elsewhere")) == tmp_path / "a b"
    found = location_of("az://container/reports", root=tmp_path, options=OPTIONS)
    assert isinstance(found, ObjectPath) and str(found) == "az://container/reports"
    with pytest.raises(ValueError, match="not a local file URI"):
        location_of("file://other.host/reports", root=tmp_path)


def test_a_storage_error_is_said_in_one_line_with_its_root_cause() -> None:
    nested = (
        "Generic S3 error\n  \x1b[31m↳\x1b[0m Error performing HEAD http://127.0.0.1:9/x\n"
        "   \x1b[31m↳\x1b[0m Connection refused (os error 111)\n"
    )
    assert _said(OSError(nested)) == "Generic S3 error … Connection refused (os error 111)"
    assert _said(OSError("")) == "OSError"
