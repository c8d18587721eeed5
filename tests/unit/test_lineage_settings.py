"""When a run's OpenLineage events are sent, and where: ``[lineage]`` and the standard
OpenLineage variables of the environment a project is loaded with (pure; nothing of the
client is imported to decide)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from backfiller import load_project
from backfiller.lineage_settings import LineageSettings, lineage_settings

EMPTY = {"url": "", "endpoint": "", "namespace": ""}
FILE = "in backfiller.toml"


def settings(environ: dict[str, str], **section: str) -> LineageSettings:
    return lineage_settings({**EMPTY, **section}, environ, url_origin=FILE)


def test_nothing_configured_is_off() -> None:
    found = settings({"PATH": "/bin", "OPENLINEAGE_NAMESPACE": "ns", "OPENLINEAGE_API_KEY": "k"})
    assert not found.enabled
    assert found == LineageSettings()


def test_the_lineage_section_url_wins_and_takes_the_standard_key_and_endpoint() -> None:
    found = settings(
        {
            "OPENLINEAGE_URL": "http://env:5000",
            "OPENLINEAGE_CONFIG": "/etc/openlineage.yml",
            "OPENLINEAGE_API_KEY": "s3cret",
            "OPENLINEAGE_ENDPOINT": "api/v2/lineage",
        },
        url="https://marquez.example:5000",
    )
    assert found.enabled
    assert found.source == f"[lineage] url ({FILE})"
    assert (found.url, found.endpoint, found.api_key) == (
        "https://marquez.example:5000",
        "api/v2/lineage",
        "s3cret",
    )
    assert found.target == "https://marquez.example:5000/api/v2/lineage"
    assert "s3cret" not in repr(found)


def test_the_sections_endpoint_and_namespace_win_over_the_variables() -> None:
    found = settings(
        {
            "OPENLINEAGE_URL": "http://env:5000/",
            "OPENLINEAGE_ENDPOINT": "x",
            "OPENLINEAGE_NAMESPACE": "y",
        },
        endpoint="/custom/path",
        namespace="omni-prod",
    )
    assert (found.source, found.url) == ("$OPENLINEAGE_URL", "http://env:5000/")
    assert (found.endpoint, found.namespace) == ("/custom/path", "omni-prod")
    assert found.target == "http://env:5000/custom/path"


@pytest.mark.parametrize(
    ("environ", "source", "url"),
    [
        (
            {"OPENLINEAGE_CONFIG": "/o.yml", "OPENLINEAGE_URL": "http://u"},
            "$OPENLINEAGE_CONFIG",
            "",
        ),
        (
            {"OPENLINEAGE__TRANSPORT__TYPE": "kafka", "OPENLINEAGE_URL": "http://u"},
            "$OPENLINEAGE__TRANSPORT__TYPE",
            "",
        ),
        ({"OPENLINEAGE_URL": "http://u"}, "$OPENLINEAGE_URL", "http://u"),
    ],
    ids=["config-file", "transport-variables", "url"],
)
def test_the_clients_own_configuration_comes_before_a_bare_url(
    environ: dict[str, str], source: str, url: str
) -> None:
    found = settings(environ)
    assert (found.enabled, found.source, found.url) == (True, source, url)
    assert found.namespace == "backfiller"
    assert found.config_file == environ.get("OPENLINEAGE_CONFIG", "")
    if found.config_file:
        assert found.target == "the transport of /o.yml"
    elif not url:
        assert found.target == "the transport of the OpenLineage configuration"


@pytest.mark.parametrize("value", ["true", "TRUE", " true "])
def test_openlineage_disabled_turns_every_configuration_off(value: str) -> None:
    environ = {"OPENLINEAGE_DISABLED": value, "OPENLINEAGE_URL": "http://u"}
    assert not settings(environ, url="http://x").enabled
    assert settings({**environ, "OPENLINEAGE_DISABLED": "false"}, url="http://x").enabled


def test_a_project_reads_lineage_from_its_file_and_the_environment_it_is_given(
    example_dir: Path,
) -> None:
    config = example_dir / "backfiller.toml"
    config.write_text(
        config.read_text(encoding="utf-8") + '\n[lineage]\nnamespace = "omni"\n', encoding="utf-8"
    )
    assert not load_project(example_dir, environ={}).config.lineage.enabled
    found = load_project(
        example_dir, environ={"WEEK06_BACKFILLER_LINEAGE_URL": "http://from-env:5000"}
    ).config.lineage
    assert (
        found.source
        == "[lineage] url (from the environment variable WEEK06_BACKFILLER_LINEAGE_URL)"
    )
    assert (found.url, found.namespace) == ("http://from-env:5000", "omni")
    by_url = load_project(example_dir, environ={"OPENLINEAGE_URL": "http://u"}).config.lineage
    assert (by_url.source, by_url.namespace) == ("$OPENLINEAGE_URL", "omni")


@pytest.mark.slow
def test_deciding_imports_nothing_of_the_client(example_dir: Path) -> None:
    code = (
        "import sys; from backfiller import load_project; "
        f"p = load_project({str(example_dir)!r}, environ={{'OPENLINEAGE_URL': 'http://u'}}); "
        "assert p.config.lineage.enabled; "
        "print(sorted(m for m in sys.modules if m.startswith('openlineage')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
