"""``backfiller.toml`` and its environment overrides go through one strict model: a wrong type
or value is exit 2 naming the setting and where it came from (the file, an environment
variable, an ``[env] files`` file), and nothing is written. A key past the last date and a
JSON document nested 100,000 deep are bad input too (exit 2), not crashes. On both ledgers:
"nothing written" covers a PostgreSQL ledger's tables too."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import both_backends, cli_environment, environ_ledger_fingerprint, tree_fingerprint

from backfiller.cli.main import main

RAW = "week06/ingestion/raw_ticket_events_partitioned"


pytestmark = both_backends


@pytest.fixture(autouse=True)
def _cli_environment(monkeypatch: pytest.MonkeyPatch, project_environ: dict[str, str]) -> None:
    """A wide console, no project settings from the environment but the ledger backend's (a
    PostgreSQL ledger's URL)."""
    cli_environment(monkeypatch, project_environ)


def written(root: Path) -> dict[str, str]:
    """The project folder's files (not SQLite's WAL side files) and a PostgreSQL ledger's
    tables, as digests."""
    found = {
        k: v
        for k, v in tree_fingerprint(root).items()
        if "__pycache__" not in k and not k.endswith(("-wal", "-shm"))
    }
    return found | environ_ledger_fingerprint()


def edit_toml(root: Path, old: str, new: str) -> None:
    path = root / "backfiller.toml"
    text = path.read_text(encoding="utf-8")
    assert old in text, old
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def refused(capsys: pytest.CaptureFixture[str], root: Path, *args: str) -> str:
    """Run ``args`` (default: status); it must exit 2, print nothing on stdout, write
    nothing; returns stderr."""
    before = written(root)
    code = main(["--project", str(root), *(args or ("status",))])
    out, err = capsys.readouterr()
    assert code == 2, err
    assert out == ""
    assert written(root) == before
    return err


@pytest.mark.parametrize(
    ("old", "new", "said"),
    [
        (
            'report_dir = "reports/week06"',
            'report_dir = ["a", "b"]',
            "[project] report_dir = ['a', 'b'] ({file}) must be a string",
        ),
        ('timezone = "UTC"', "timezone = 5", "[partitions] timezone = 5 ({file}) must be a string"),
        ('store = "data/lake"', "store = 5", "[project] store = 5 ({file}) must be a string"),
        (
            'manifests = "data/manifests"',
            "manifests = {}",
            "[project] manifests = {{}} ({file}) must be a string",
        ),
        (
            'consumers = ["week07/retrieval_index", "week08/eval_metrics"]',
            "consumers = 9999999999999999999999",
            "[downstream] consumers = 9999999999999999999999 ({file}) must be a list",
        ),
        (
            'operator = "student-devbox"',
            'operator = ["x"]',
            "[project] operator = ['x'] ({file}) must be a string",
        ),
        (
            'assets_module = "pipelines.data_factory.assets"',
            'assets_module = "../../x"',
            "[project] assets_module = '../../x' ({file}) must be a dotted Python module name",
        ),
        (
            'consumers = ["week07/retrieval_index", "week08/eval_metrics"]',
            'consumers = ["week07/retrieval_index", ""]',
            "[downstream] consumers[1] = '' ({file}) must not be empty",
        ),
        (
            'kind = "daily"',
            'kind = "daily"\nweek_starts_on = 9',
            "[partitions] week_starts_on = 9 ({file}) must be 0 (Monday) to 6 (Sunday)",
        ),
        (
            'operator = "student-devbox"',
            'operator = "x"\nallow_paths_outside = "yes"',
            "[project] allow_paths_outside = 'yes' ({file}) must be true or false",
        ),
        (
            'prefix = "WEEK06_BACKFILLER_"',
            "prefix = 5",
            "[env] prefix = 5 ({file}) must be a string",
        ),
        (
            'WEEK06_REPORT_DIR = "project.report_dir"',
            "WEEK06_REPORT_DIR = 5",
            "[env] aliases[WEEK06_REPORT_DIR] = 5 ({file}) must be a string",
        ),
    ],
    ids=[
        "report_dir-list",
        "timezone-int",
        "store-int",
        "manifests-table",
        "consumers-huge-int",
        "operator-list",
        "assets_module-path",
        "consumer-empty",
        "week_starts_on-range",
        "flag-string",
        "prefix-int",
        "alias-int",
    ],
)
def test_a_wrong_type_in_the_file_names_the_setting_and_the_file(
    capsys: pytest.CaptureFixture[str], example_dir: Path, old: str, new: str, said: str
) -> None:
    edit_toml(example_dir, old, new)
    err = refused(capsys, example_dir)
    file = f"in {example_dir.resolve() / 'backfiller.toml'}"
    assert said.format(file=file) in err
    assert "next step:" in err


def test_a_section_that_is_not_a_table_is_named(
    capsys: pytest.CaptureFixture[str], example_dir: Path
) -> None:
    path = example_dir / "backfiller.toml"
    text = path.read_text(encoding="utf-8")
    text = text.replace("[downstream]\n", "[downstream_gone]\n", 1).replace(
        "[downstream_gone]\n# consumers outside this project that read the silver facts\n"
        'consumers = ["week07/retrieval_index", "week08/eval_metrics"]\n',
        "",
    )
    assert "[downstream" not in text
    path.write_text("downstream = 5\n" + text, encoding="utf-8")
    err = refused(capsys, example_dir)
    assert "[downstream] must be a table of settings, got downstream = 5" in err


def test_a_toml_date_is_the_key_it_spells(
    capsys: pytest.CaptureFixture[str], example_dir: Path
) -> None:
    edit_toml(example_dir, 'start = "2026-03-01"', "start = 2026-03-01")
    window = ("--start", "2026-03-01", "--end", "2026-03-02")
    code = main(["--project", str(example_dir), "status", *window])
    assert code == 0, capsys.readouterr().err


@pytest.mark.parametrize(
    ("variable", "value", "said"),
    [
        (
            "WEEK06_BACKFILLER_PROJECT_ASSETS_MODULE",
            "../../x",
            "[project] assets_module = '../../x' (from the environment variable "
            "WEEK06_BACKFILLER_PROJECT_ASSETS_MODULE) must be a dotted Python module name",
        ),
        (
            "WEEK06_BACKFILLER_PROJECT_ALLOW_PATHS_OUTSIDE",
            "maybe",
            "'maybe' (from the environment variable WEEK06_BACKFILLER_PROJECT_ALLOW_PATHS_OUTSIDE)"
            " must be true or false",
        ),
        (
            "WEEK06_BACKFILLER_PARTITIONS_WEEK_STARTS_ON",
            "9999999999999999999999",
            "[partitions] week_starts_on = 9999999999999999999999 (from the environment "
            "variable WEEK06_BACKFILLER_PARTITIONS_WEEK_STARTS_ON) must be 0 (Monday) to 6",
        ),
        (
            "WEEK06_DEFAULT_PARTITION",
            "2026-4-17",
            "The configured default partition '2026-4-17' (from the environment variable "
            "WEEK06_DEFAULT_PARTITION) is invalid: Invalid partition key '2026-4-17'",
        ),
        (
            "WEEK06_REPORT_DIR",
            "../elsewhere",
            "[project] report_dir = '../elsewhere' (from the environment variable "
            "WEEK06_REPORT_DIR) resolves to",
        ),
    ],
    ids=["module", "flag", "huge-int", "default", "path-outside"],
)
def test_a_bad_value_from_the_environment_names_the_variable(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    example_dir: Path,
    variable: str,
    value: str,
    said: str,
) -> None:
    monkeypatch.setenv(variable, value)
    err = refused(capsys, example_dir)
    assert said in err


def test_a_bad_default_from_an_env_file_names_the_variable_and_the_file(
    capsys: pytest.CaptureFixture[str], example_dir: Path
) -> None:
    env_file = example_dir / "infra" / "env" / ".env.local"
    env_file.write_text("WEEK06_DEFAULT_PARTITION=17.4.2026\n", encoding="utf-8")
    err = refused(capsys, example_dir)
    assert (
        "The configured default partition '17.4.2026' (from WEEK06_DEFAULT_PARTITION in "
        "infra/env/.env.local) is invalid" in err
    )
    assert "next step: fix WEEK06_DEFAULT_PARTITION in infra/env/.env.local" in err


def test_a_bad_default_in_the_file_says_so(
    capsys: pytest.CaptureFixture[str], example_dir: Path
) -> None:
    edit_toml(example_dir, 'default = "2026-04-17"', 'default = "2026-13-45"')
    (example_dir / "infra" / "env" / ".env.example").unlink(missing_ok=True)
    err = refused(capsys, example_dir)
    where = example_dir.resolve() / "backfiller.toml"
    assert f"The configured default partition '2026-13-45' (in {where}) is invalid" in err


@pytest.mark.parametrize(
    "args",
    [
        ("gaps", "--start", "2026-03-01", "--end", "9999-12-31"),
        ("status", "--end", "9999-12-31"),
        ("plan", "--partition", "9999-12-31"),
        ("gaps", "--partition", "9999-12-31"),
    ],
)
def test_a_key_past_the_last_date_is_bad_input(
    capsys: pytest.CaptureFixture[str], example_dir: Path, args: tuple[str, ...]
) -> None:
    err = refused(capsys, example_dir, *args)
    assert "'9999-12-31'" in err
    assert "past the last representable date" in err


DEEP = "[" * 100_000 + "]" * 100_000
DEEP_OBJECT = '{"a":' * 100_000 + "1" + "}" * 100_000


@pytest.mark.parametrize("text", [DEEP, DEEP_OBJECT], ids=["arrays", "objects"])
def test_a_plan_nested_100000_deep_is_bad_input(
    capsys: pytest.CaptureFixture[str], example_dir: Path, tmp_path: Path, text: str
) -> None:
    plan = tmp_path / "deep.json"
    plan.write_text(text, encoding="utf-8")
    err = refused(capsys, example_dir, "apply", str(plan))
    assert "nested too deeply" in err


@pytest.mark.parametrize("text", [DEEP, DEEP_OBJECT], ids=["arrays", "objects"])
def test_a_manifest_nested_100000_deep_is_bad_input(
    capsys: pytest.CaptureFixture[str], example_dir: Path, text: str
) -> None:
    (example_dir / "data" / "manifests" / "deep.json").write_text(text, encoding="utf-8")
    err = refused(capsys, example_dir, "gaps", "--partition", "2026-04-17")
    assert "deep.json is nested too deeply" in err
