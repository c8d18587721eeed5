"""Loading a project: backfiller.toml, environment overrides (aliases, the generic prefix,
.env files) and refusals. Reading a fresh project's ledger is tested on both ledgers; the rest
only loads configuration."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import both_backends, database_fingerprint

from backfiller import Project
from backfiller.errors import ConfigError, ExitCode, GraphError, InvalidPartitionKeyError
from backfiller.partitions import CronScheme
from backfiller.project import CONFIG_FILE, ProjectConfig, load_project, read_env_file

RAW = "week06/ingestion/raw_ticket_events_partitioned"
SILVER = "week06/silver/ticket_fact_partitioned"
ENV_DIR = Path("infra", "env")


def _edit_toml(root: Path, old: str, new: str) -> None:
    path = root / CONFIG_FILE
    text = path.read_text(encoding="utf-8")
    assert old in text, old
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def _write_env(root: Path, name: str, text: str) -> Path:
    path = root / ENV_DIR / name
    path.write_text(text, encoding="utf-8")
    return path


# -- the example ------------------------------------------------------------------------------


def test_load_example(example_dir: Path, load: Callable[[Path], Project]) -> None:
    project = load(example_dir)
    assert project.graph.keys == [RAW, SILVER]  # dependency order: raw first
    assert [a.key for a in project.graph.assets] == [RAW, SILVER]
    assert project.graph.get(SILVER).upstream_keys == (RAW,)
    assert project.graph.downstream_of(RAW) == [SILVER]
    config = project.config
    assert config.name == "omnisupport"
    assert config.root == example_dir.resolve()
    assert config.default_partition == "2026-04-17"
    assert config.report_dir == example_dir.resolve() / "reports" / "week06"
    assert config.report_dir.as_posix().endswith("reports/week06")
    assert config.store_path == example_dir.resolve() / "data" / "lake"
    assert config.ledger_path == example_dir.resolve() / ".backfiller" / "ledger.db"
    assert config.manifests_dir == example_dir.resolve() / "data" / "manifests"
    assert config.downstream_consumers == ("week07/retrieval_index", "week08/eval_metrics")
    assert config.operator == "student-devbox"
    assert config.env_sources == ()  # the bundled .env.example is documentation, not settings
    assert project.scheme.name == "daily from 2026-03-01 (UTC)"
    assert project.plan_dir == config.report_dir / "backfill"
    assert project.partition_report_path(SILVER, "2026-04-17") == config.report_dir.joinpath(
        "partitions", "week06", "silver", "ticket_fact_partitioned", "2026-04-17.json"
    )
    assert project.operator() == "student-devbox"
    assert project.operator("ana") == "ana"
    # loading reads; it writes nothing (no ledger, no lake, no reports)
    assert not config.ledger_path.exists()
    assert not config.store_path.exists()
    assert not config.report_dir.exists()


@both_backends
def test_reader_of_a_fresh_project_creates_nothing(
    example_dir: Path, no_ledger_environ: dict[str, str]
) -> None:
    project = load_project(example_dir, environ=no_ledger_environ)
    assert project.config.ledger_url == no_ledger_environ.get("BACKFILLER_LEDGER_URL", "")
    reader = project.reader()
    assert reader.partitions.all() == []
    assert not project.config.state_dir.exists()
    if project.config.ledger_url:  # nor a table in a PostgreSQL database without a ledger
        assert database_fingerprint(project.config.ledger_url) == {}


def test_project_manifests(example_dir: Path, load: Callable[[Path], Project]) -> None:
    project = load(example_dir)
    assert project.manifests.ids == ["week06-seed-manifest-001"]
    found = project.manifests.for_partition("2026-04-17")
    assert found is not None
    assert found[1].expected_record_count == 3


# -- environment overrides --------------------------------------------------------------------


def test_alias_from_the_process_environment(example_dir: Path) -> None:
    project = load_project(example_dir, environ={"WEEK06_REPORT_DIR": "reports/other"})
    assert project.config.report_dir == example_dir.resolve() / "reports" / "other"


def test_alias_for_the_default_partition(example_dir: Path) -> None:
    config = ProjectConfig.load(example_dir, {"WEEK06_DEFAULT_PARTITION": "2026-04-18"})
    assert config.default_partition == "2026-04-18"


def test_alias_for_the_start_date(example_dir: Path) -> None:
    project = load_project(
        example_dir,
        environ={"WEEK06_PARTITION_START_DATE": "2026-04-01"},
    )
    assert project.scheme.name == "daily from 2026-04-01 (UTC)"


def test_generic_prefix(example_dir: Path) -> None:
    project = load_project(
        example_dir,
        environ={
            "WEEK06_BACKFILLER_PARTITIONS_DEFAULT": "2026-04-18",
            "WEEK06_BACKFILLER_PROJECT_OPERATOR": "ana",
            "WEEK06_BACKFILLER_DOWNSTREAM_CONSUMERS": "a/b, c/d,",
        },
    )
    assert project.config.default_partition == "2026-04-18"
    assert project.config.operator == "ana"
    assert project.config.downstream_consumers == ("a/b", "c/d")
    assert project.config.env_sources == ()
    # the default prefix BACKFILLER_ is not used when the project sets its own
    config = ProjectConfig.load(example_dir, {"BACKFILLER_PARTITIONS_DEFAULT": "2026-04-19"})
    assert config.default_partition == "2026-04-17"


def test_generic_prefix_for_a_setting_without_alias(example_dir: Path) -> None:
    config = ProjectConfig.load(example_dir, {"WEEK06_BACKFILLER_PROJECT_STORE": "lake2"})
    assert config.store_path == example_dir.resolve() / "lake2"


def test_generic_prefix_in_process_env_beats_alias_in_env_file(example_dir: Path) -> None:
    _write_env(example_dir, ".env.local", "WEEK06_DEFAULT_PARTITION=2026-04-17\n")
    config = ProjectConfig.load(example_dir, {"WEEK06_BACKFILLER_PARTITIONS_DEFAULT": "2026-04-18"})
    assert config.default_partition == "2026-04-18"


def test_env_local_wins_over_env_example(example_dir: Path) -> None:
    _write_env(
        example_dir,
        ".env.local",
        "WEEK06_DEFAULT_PARTITION=2026-04-20\nWEEK06_REPORT_DIR=reports/local\n",
    )
    project = load_project(example_dir, environ={})
    assert project.config.default_partition == "2026-04-20"
    assert project.config.report_dir == example_dir.resolve() / "reports" / "local"
    assert project.config.env_sources == ("infra/env/.env.local",)


def test_an_example_env_file_is_never_read_as_settings(example_dir: Path) -> None:
    """An edit to backfiller.toml takes effect although .env.example says otherwise."""
    _write_env(example_dir, ".env.example", "WEEK06_DEFAULT_PARTITION=2026-04-19\n")
    toml = example_dir / "backfiller.toml"
    toml.write_text(
        toml.read_text(encoding="utf-8").replace(
            'default = "2026-04-17"', 'default = "2026-04-18"'
        ),
        encoding="utf-8",
    )
    config = ProjectConfig.load(example_dir, {})
    assert config.default_partition == "2026-04-18"
    assert config.env_sources == ()


@pytest.mark.parametrize("name", [".env.example", "settings.env.sample", ".env.template"])
def test_listing_an_example_file_as_an_env_file_is_refused(example_dir: Path, name: str) -> None:
    toml = example_dir / "backfiller.toml"
    toml.write_text(
        toml.read_text(encoding="utf-8").replace(
            'files = ["infra/env/.env.local"]', f'files = ["infra/env/{name}"]'
        ),
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as info:
        ProjectConfig.load(example_dir, {})
    assert "an example is not configuration" in info.value.message
    assert info.value.exit_code == 2


def test_process_environment_wins_over_env_files(example_dir: Path) -> None:
    _write_env(
        example_dir,
        ".env.local",
        "WEEK06_DEFAULT_PARTITION=2026-04-20\nWEEK06_REPORT_DIR=reports/local\n",
    )
    project = load_project(
        example_dir,
        environ={"WEEK06_DEFAULT_PARTITION": "2026-04-21", "UNRELATED": "x"},
    )
    assert project.config.default_partition == "2026-04-21"
    assert project.config.report_dir == example_dir.resolve() / "reports" / "local"


def test_whole_number_settings_are_coerced(example_dir: Path) -> None:
    config = ProjectConfig.load(example_dir, {"WEEK06_BACKFILLER_PARTITIONS_WEEK_STARTS_ON": "6"})
    assert config.partitions["week_starts_on"] == 6
    with pytest.raises(ConfigError, match="is not a whole number"):
        ProjectConfig.load(example_dir, {"WEEK06_BACKFILLER_PARTITIONS_WEEK_STARTS_ON": "six"})


# -- refusals ---------------------------------------------------------------------------------


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_project(tmp_path, environ={})
    assert info.value.exit_code is ExitCode.BAD_INPUT
    assert f"No backfiller.toml in {tmp_path.resolve()}" in str(info.value)


def test_invalid_toml(example_dir: Path) -> None:
    (example_dir / CONFIG_FILE).write_text("[project\nname = 'x'\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="is not valid TOML") as info:
        load_project(example_dir, environ={})
    assert info.value.exit_code == 2


def test_unknown_partition_kind(example_dir: Path) -> None:
    _edit_toml(example_dir, 'kind = "daily"', 'kind = "fortnightly"')
    with pytest.raises(ConfigError, match="Unknown partition kind 'fortnightly'") as info:
        load_project(example_dir, environ={})
    assert info.value.exit_code == 2


def test_bad_default_partition_key(example_dir: Path) -> None:
    _edit_toml(example_dir, 'default = "2026-04-17"', 'default = "2026-4-17"')
    (example_dir / ENV_DIR / ".env.example").unlink()  # it would reset the default
    with pytest.raises(InvalidPartitionKeyError, match="'2026-4-17'") as info:
        load_project(example_dir, environ={})
    assert info.value.exit_code == 2


def test_bad_default_partition_key_from_the_environment(example_dir: Path) -> None:
    with pytest.raises(InvalidPartitionKeyError, match="'2026-4-17'") as info:
        load_project(example_dir, environ={"WEEK06_DEFAULT_PARTITION": "2026-4-17"})
    assert info.value.exit_code == 2


def test_default_before_the_start_is_refused(example_dir: Path) -> None:
    with pytest.raises(InvalidPartitionKeyError, match="before the start"):
        load_project(example_dir, environ={"WEEK06_PARTITION_START_DATE": "2026-04-18"})


def test_alias_naming_no_setting(example_dir: Path) -> None:
    _edit_toml(
        example_dir,
        'WEEK06_REPORT_DIR = "project.report_dir"',
        'WEEK06_REPORT_DIR = "project.report_dir"\nWEEK06_NOPE = "partitions.nope"',
    )
    with pytest.raises(ConfigError) as info:
        load_project(example_dir, environ={})
    assert info.value.message == "[env.aliases] WEEK06_NOPE = 'partitions.nope' names no setting"
    assert info.value.exit_code == 2


def test_alias_naming_no_section(example_dir: Path) -> None:
    _edit_toml(
        example_dir,
        'WEEK06_REPORT_DIR = "project.report_dir"',
        'WEEK06_REPORT_DIR = "project.report_dir"\nWEEK06_X = "nosection"',
    )
    with pytest.raises(ConfigError, match="WEEK06_X = 'nosection' names no setting"):
        ProjectConfig.load(example_dir, {})


def test_unsupported_ledger_url(example_dir: Path) -> None:
    _edit_toml(example_dir, 'state_dir = ".backfiller"', 'ledger = "mysql://db/x"')
    with pytest.raises(ConfigError, match="Unsupported ledger URL 'mysql://db/x'"):
        ProjectConfig.load(example_dir, {})


def test_ledger_url_selects_the_backend(example_dir: Path) -> None:
    config = ProjectConfig.load(example_dir, {})
    assert (config.ledger_url, config.ledger_path.name) == ("", "ledger.db")
    # [project] ledger keeps working; [ledger] url wins over it
    _edit_toml(example_dir, 'state_dir = ".backfiller"', 'ledger = "sqlite:///state/old.db"')
    assert ProjectConfig.load(example_dir, {}).ledger_path == example_dir.resolve() / "state/old.db"
    path = example_dir / CONFIG_FILE
    path.write_text(
        path.read_text("utf-8") + '\n[ledger]\nurl = "postgresql://ana:pw@db.internal/ledger"\n',
        "utf-8",
    )
    config = ProjectConfig.load(example_dir, {})
    assert config.ledger_url == "postgresql://ana:pw@db.internal/ledger"
    # the environment wins (<prefix>LEDGER_URL; the example's prefix is WEEK06_BACKFILLER_)
    environ = {"WEEK06_BACKFILLER_LEDGER_URL": "sqlite:///state/team.db"}
    config = ProjectConfig.load(example_dir, environ)
    assert (config.ledger_url, config.ledger_path) == ("", example_dir.resolve() / "state/team.db")
    environ = {"WEEK06_BACKFILLER_LEDGER_URL": "postgres://other/ledger"}
    assert ProjectConfig.load(example_dir, environ).ledger_url == "postgres://other/ledger"


def test_an_unsupported_ledger_url_is_named_without_its_password(example_dir: Path) -> None:
    environ = {"WEEK06_BACKFILLER_LEDGER_URL": "mysql://ana:s3cret@db/x"}
    with pytest.raises(ConfigError) as info:
        ProjectConfig.load(example_dir, environ)
    assert info.value.exit_code is ExitCode.BAD_INPUT
    assert "Unsupported ledger URL 'mysql://ana:***@db/x' ([ledger] url)" in str(info.value)
    assert "s3cret" not in str(info.value)
    assert "postgresql://" in str(info.value.hint)


def test_unimportable_assets_module(example_dir: Path) -> None:
    _edit_toml(
        example_dir,
        'assets_module = "pipelines.data_factory.assets"',
        'assets_module = "pipelines.nope"',
    )
    with pytest.raises(ConfigError, match=r"Cannot import the assets module 'pipelines\.nope'"):
        load_project(example_dir, environ={})


# -- .env files -------------------------------------------------------------------------------


def test_read_env_file(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    path.write_text(
        "\n".join(
            [
                "# a comment",
                "",
                "   # an indented comment",
                "PLAIN=value",
                "export EXPORTED=2026-04-17",
                "export   SPACED = padded  ",
                'DOUBLE="two words"',
                "SINGLE='it''s'",
                "EMPTY=",
                'QUOTE_ONLY="',
                "MIXED=\"left'",
                "WITH_EQUALS=a=b=c",
                "HASH=a#b",
            ]
        )
        + "\n",
        encoding="utf-8",
    )
    assert read_env_file(path) == {
        "PLAIN": "value",
        "EXPORTED": "2026-04-17",
        "SPACED": "padded",
        "DOUBLE": "two words",
        "SINGLE": "it''s",
        "EMPTY": "",
        "QUOTE_ONLY": '"',
        "MIXED": "\"left'",
        "WITH_EQUALS": "a=b=c",
        "HASH": "a#b",
    }


def test_read_env_file_later_lines_win(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    path.write_text("A=1\nA=2\n", encoding="utf-8")
    assert read_env_file(path) == {"A": "2"}


@pytest.mark.parametrize("line", ["NO_EQUALS_SIGN", "=value", "BAD-NAME=1", "TWO WORDS=1"])
def test_read_env_file_rejects_a_malformed_line(tmp_path: Path, line: str) -> None:
    path = tmp_path / ".env"
    path.write_text(f"OK=1\n# fine\n{line}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        read_env_file(path)
    assert info.value.message == f"{path}:3: expected KEY=value, got {line!r}"
    assert info.value.exit_code == 2


def test_malformed_env_file_refuses_the_project(example_dir: Path) -> None:
    _write_env(example_dir, ".env.local", "WEEK06_DEFAULT_PARTITION 2026-04-18\n")
    with pytest.raises(ConfigError, match=r"\.env\.local:1: expected KEY=value"):
        load_project(example_dir, environ={})


# -- configured paths stay inside the project ---------------------------------------------------


def _configure(root: Path, section: str, line: str) -> None:
    """Set ``line`` (``key = value``) in ``[section]`` of the project's backfiller.toml."""
    toml = root / "backfiller.toml"
    key = line.split("=", 1)[0].strip()
    text = re.sub(rf"(?m)^{re.escape(key)} = .*\n", "", toml.read_text(encoding="utf-8"))
    toml.write_text(text.replace(f"[{section}]\n", f"[{section}]\n{line}\n", 1), encoding="utf-8")


@pytest.mark.parametrize(
    ("section", "line", "setting"),
    [
        ("policy", 'dry_run_report_path = "data/lake/../../.."', "[policy] dry_run_report_path"),
        ("policy", 'strategy_path = "{report_dir}/../../../x.md"', "[policy] strategy_path"),
        ("project", 'ledger = "sqlite:///../elsewhere.db"', "[project] ledger"),
        ("project", 'manifests = "/etc"', "[project] manifests"),
    ],
    ids=["plans", "strategy", "ledger", "absolute"],
)
def test_a_configured_path_outside_the_project_is_refused(
    example_dir: Path, section: str, line: str, setting: str
) -> None:
    before = sorted(p.name for p in example_dir.parent.iterdir())
    _configure(example_dir, section, line)
    with pytest.raises(ConfigError) as info:
        load_project(example_dir, environ={})
    assert info.value.message.startswith(f"{setting} = ")
    assert "outside the project folder" in info.value.message
    assert "allow_paths_outside" in str(info.value.hint)
    assert info.value.exit_code == ExitCode.BAD_INPUT
    assert sorted(p.name for p in example_dir.parent.iterdir()) == before


def test_a_path_outside_is_accepted_when_explicitly_allowed(
    example_dir: Path, tmp_path: Path
) -> None:
    plans = tmp_path / "shared-plans"
    _configure(example_dir, "project", "allow_paths_outside = true")
    _configure(example_dir, "policy", f'dry_run_report_path = "{plans.as_posix()}"')
    project = load_project(example_dir, environ={})
    assert project.plan_dir == plans


def test_an_environment_variable_cannot_lead_a_path_outside_either(example_dir: Path) -> None:
    with pytest.raises(ConfigError, match="outside the project folder"):
        load_project(example_dir, environ={"WEEK06_REPORT_DIR": "../../reports"})


@pytest.mark.parametrize(
    ("section", "line", "message"),
    [
        (
            "partitions",
            'strat = "2026-01-01"',
            "unknown setting [partitions] strat (did you mean 'start'?)",
        ),
        (
            "project",
            'reprot_dir = "out"',
            "unknown setting [project] reprot_dir (did you mean 'report_dir'?)",
        ),
        ("policy", 'backfill_asset = ["x"]', "did you mean 'backfill_assets'?"),
    ],
    ids=["strat", "reprot_dir", "policy"],
)
def test_a_misspelled_setting_is_refused_naming_the_nearest_valid_one(
    example_dir: Path, section: str, line: str, message: str
) -> None:
    _configure(example_dir, section, line)
    with pytest.raises(ConfigError) as info:
        load_project(example_dir, environ={})
    assert message in info.value.message
    assert info.value.exit_code == ExitCode.BAD_INPUT


def test_a_misspelled_section_is_refused(example_dir: Path) -> None:
    toml = example_dir / "backfiller.toml"
    toml.write_text(toml.read_text(encoding="utf-8") + '\n[partitons]\nkind = "daily"\n',
                    encoding="utf-8")  # fmt: skip
    with pytest.raises(
        ConfigError, match=r"unknown section \[partitons\] \(did you mean 'partitions'\?\)"
    ):
        load_project(example_dir, environ={})


def test_an_unknown_asset_suggests_the_nearest_one(example_dir: Path) -> None:
    project = load_project(example_dir, environ={})
    with pytest.raises(GraphError, match=r"did you mean 'week06/silver/ticket_fact_partitioned'\?"):
        project.graph.get("week06/silver/ticket_facts_partitioned")


def test_a_cron_partition_scheme_from_the_file(example_dir: Path) -> None:
    _edit_toml(
        example_dir,
        'kind = "daily"',
        'kind = "cron"\ncron = "0 6 * * *"\nkey_format = "%Y-%m-%d"\nend_offset = 1',
    )
    scheme = load_project(example_dir, environ={}).scheme
    assert isinstance(scheme, CronScheme)
    assert (scheme.cron, scheme.key_pattern, scheme.end_offset) == ("0 6 * * *", "%Y-%m-%d", 1)
    assert scheme.window("2026-04-17").render()[0] == "2026-04-17T06:00:00+00:00"


def test_partition_offsets_from_the_environment(example_dir: Path) -> None:
    environ = {
        "WEEK06_BACKFILLER_PARTITIONS_HOUR_OFFSET": "6",
        "WEEK06_BACKFILLER_PARTITIONS_MINUTE_OFFSET": "30",
    }
    scheme = load_project(example_dir, environ=environ).scheme
    assert isinstance(scheme, CronScheme)
    assert scheme.cron == "30 6 * * *"
    assert scheme.parse("2026-04-17") == "2026-04-17"


@pytest.mark.parametrize(
    ("setting", "said"),
    [
        pytest.param('cron = "0 25 * * *"', "the hour (the 2nd field, 0-23) field", id="bad-cron"),
        pytest.param("crom = 1", "unknown setting [partitions] crom", id="unknown-setting"),
        pytest.param("cron = 5", "[partitions] cron = 5", id="cron-not-text"),
    ],
)
def test_a_wrong_cron_setting_is_a_config_error(example_dir: Path, setting: str, said: str) -> None:
    _edit_toml(example_dir, 'kind = "daily"', f'kind = "cron"\n{setting}')
    with pytest.raises(ConfigError) as info:
        load_project(example_dir, environ={})
    assert said in str(info.value)
    assert info.value.exit_code == 2
