"""The recovery policy: ``[policy]`` in backfiller.toml, parsed, merged with the environment and
validated against the asset graph when the project loads."""

from __future__ import annotations

from pathlib import Path

import pytest

from backfiller.errors import ConfigError, ExitCode, InvalidPartitionKeyError, PreconditionError
from backfiller.policy import Policy, ProtectedObject, parse_policy, require_allowed
from backfiller.project import CONFIG_FILE, ProjectConfig, load_project

RAW = "week06/ingestion/raw_ticket_events_partitioned"
SILVER = "week06/silver/ticket_fact_partitioned"
STRATEGY = "docs/blueprints/week06/week06-partition-backfill-strategy.md"


def _policy_block(root: Path) -> str:
    text = (root / CONFIG_FILE).read_text(encoding="utf-8")
    return text[text.index("[policy]") :]


def _set_policy(root: Path, block: str) -> None:
    """Replace the example's [policy] (and its subtables) with ``block``."""
    path = root / CONFIG_FILE
    text = path.read_text(encoding="utf-8")
    path.write_text(text[: text.index("[policy]")] + block, encoding="utf-8")


def _edit_toml(root: Path, old: str, new: str) -> None:
    path = root / CONFIG_FILE
    text = path.read_text(encoding="utf-8")
    assert old in text, old
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


# -- the example's policy -------------------------------------------------------------------


def test_the_example_policy(example_dir: Path) -> None:
    project = load_project(example_dir, environ={})
    policy = project.policy
    root = example_dir.resolve()
    assert policy.default_partition == "2026-04-17"
    assert policy.backfill_assets == (RAW, SILVER)
    assert policy.allowed(project.graph) == [RAW, SILVER]
    assert policy.protected == (ProtectedObject(SILVER, "2026-03-01"),)
    assert policy.dry_run_report_path == root / "reports" / "week06" / "backfill"
    assert project.plan_dir == root / "reports" / "week06" / "backfill"
    assert policy.required_checks == {
        RAW: ("row_count_matches_manifest", "idempotency_key_unique"),
        SILVER: ("idempotency_key_unique", "in_window(event_time)"),
    }
    assert policy.strategy_path == root / STRATEGY
    assert policy.strategy_heading == "Week06 recovery strategy"


def test_the_dry_run_path_follows_the_report_dir_variable(example_dir: Path) -> None:
    project = load_project(example_dir, environ={"WEEK06_REPORT_DIR": "reports/alt"})
    assert project.plan_dir == example_dir.resolve() / "reports" / "alt" / "backfill"


def test_a_plain_dry_run_path_is_relative_to_the_root(example_dir: Path) -> None:
    _edit_toml(
        example_dir,
        'dry_run_report_path = "{report_dir}/backfill"',
        'dry_run_report_path = "plans/dry"',
    )
    project = load_project(example_dir, environ={"WEEK06_REPORT_DIR": "reports/alt"})
    assert project.plan_dir == example_dir.resolve() / "plans" / "dry"


def test_without_a_policy_everything_is_allowed_and_plans_go_to_the_report_dir(
    example_dir: Path,
) -> None:
    _set_policy(example_dir, "")
    project = load_project(example_dir, environ={})
    policy = project.policy
    assert policy.backfill_assets == ()
    assert policy.allowed(project.graph) == [RAW, SILVER]
    assert policy.protected == ()
    assert policy.required_checks == {}
    assert policy.dry_run_report_path is None
    assert project.plan_dir == project.config.report_dir / "backfill"
    assert policy.strategy_path == example_dir.resolve() / "docs" / "recovery-strategy.md"
    assert policy.strategy_heading == "Recovery strategy"
    assert policy.default_partition == "2026-04-17"  # from [partitions] default


# -- the default partition: one setting -------------------------------------------------------


def _policy_default(root: Path, key: str) -> None:
    _edit_toml(root, "[policy]\n", f'[policy]\ndefault_partition = "{key}"\n')


def test_the_policy_default_fills_an_unset_partitions_default(example_dir: Path) -> None:
    _edit_toml(example_dir, 'default = "2026-04-17"', "")
    _policy_default(example_dir, "2026-04-12")
    (example_dir / "infra" / "env" / ".env.example").unlink()
    config = ProjectConfig.load(example_dir, {})
    assert config.default_partition == "2026-04-12"
    assert config.policy.default_partition == "2026-04-12"


def test_agreeing_defaults_in_the_file_are_fine(example_dir: Path) -> None:
    _policy_default(example_dir, "2026-04-17")
    assert load_project(example_dir, environ={}).policy.default_partition == "2026-04-17"


def test_disagreeing_defaults_in_the_file_are_refused(example_dir: Path) -> None:
    _policy_default(example_dir, "2026-04-12")
    with pytest.raises(ConfigError) as info:
        load_project(example_dir, environ={})
    assert "[partitions] default = '2026-04-17'" in info.value.message
    assert "[policy] default_partition = '2026-04-12'" in info.value.message
    assert info.value.exit_code == ExitCode.BAD_INPUT


def test_the_environment_wins_over_both_defaults(example_dir: Path) -> None:
    _policy_default(example_dir, "2026-04-17")
    config = ProjectConfig.load(example_dir, {"WEEK06_DEFAULT_PARTITION": "2026-04-18"})
    assert config.default_partition == "2026-04-18"
    assert config.policy.default_partition == "2026-04-18"
    config = ProjectConfig.load(
        example_dir, {"WEEK06_BACKFILLER_POLICY_DEFAULT_PARTITION": "2026-04-19"}
    )
    assert config.default_partition == "2026-04-19"


def test_two_different_defaults_from_the_environment_are_refused(example_dir: Path) -> None:
    _policy_default(example_dir, "2026-04-17")
    with pytest.raises(ConfigError, match="set only one of them"):
        ProjectConfig.load(
            example_dir,
            {
                "WEEK06_DEFAULT_PARTITION": "2026-04-18",
                "WEEK06_BACKFILLER_POLICY_DEFAULT_PARTITION": "2026-04-19",
            },
        )


def test_a_bad_policy_default_is_a_bad_key(example_dir: Path) -> None:
    _edit_toml(example_dir, 'default = "2026-04-17"', "")
    _policy_default(example_dir, "17.4.")
    (example_dir / "infra" / "env" / ".env.example").unlink()
    with pytest.raises(InvalidPartitionKeyError, match=r"'17\.4\.'"):
        load_project(example_dir, environ={})


# -- validation against the graph: one message naming every problem -------------------------


def test_a_required_check_the_asset_lacks_is_a_load_error(example_dir: Path) -> None:
    _edit_toml(
        example_dir,
        '["idempotency_key_unique", "in_window(event_time)"]',
        '["idempotency_key_unique", "not_null(ticket_id)"]',
    )
    with pytest.raises(ConfigError) as info:
        load_project(example_dir, environ={})
    message = info.value.message
    assert f"asset {SILVER!r} does not declare the required check 'not_null(ticket_id)'" in message
    assert "its checks: idempotency_key_unique, in_window(event_time)" in message
    assert info.value.exit_code == ExitCode.BAD_INPUT


def test_every_unknown_name_is_listed(example_dir: Path) -> None:
    _set_policy(
        example_dir,
        "[policy]\n"
        'backfill_assets = ["week06/gold/nope"]\n'
        'protected = ["week06/other", "' + SILVER + '@2026-2-01"]\n'
        "[policy.required_checks]\n"
        '"week06/ghost" = ["x"]\n',
    )
    with pytest.raises(ConfigError) as info:
        load_project(example_dir, environ={})
    message = info.value.message
    assert "(4 problems)" in message
    assert "backfill_assets: unknown asset 'week06/gold/nope'" in message
    assert "protected: unknown asset 'week06/other'" in message
    assert f"protected: '{SILVER}@2026-2-01'" in message and "expected YYYY-MM-DD" in message
    assert "required_checks: unknown asset 'week06/ghost'" in message
    assert info.value.hint is not None and RAW in info.value.hint


@pytest.mark.parametrize(
    ("block", "expected"),
    [
        pytest.param('[policy]\nbackfill_asset = ["x"]\n', "unknown setting(s): backfill_asset"),
        pytest.param('[policy]\nbackfill_assets = "x"\n', "backfill_assets must be a list"),
        pytest.param("[policy]\nprotected = [1]\n", "protected must be a list"),
        pytest.param('[policy]\nprotected = ["a@"]\n', "neither 'asset' nor 'asset@partition'"),
        pytest.param('[policy]\nrequired_checks = "x"\n', "required_checks must be a table"),
        pytest.param("[policy]\nstrategy_path = 3\n", "strategy_path must be a string"),
        pytest.param(
            '[policy]\ndry_run_report_path = "{root}/x"\n', "the only placeholder is {report_dir}"
        ),
        pytest.param(
            '[policy]\ndry_run_report_path = "s3://lake/plans"\n', "a URI is not taken here"
        ),
    ],
)
def test_badly_shaped_settings(example_dir: Path, block: str, expected: str) -> None:
    _set_policy(example_dir, block)
    with pytest.raises(ConfigError) as info:
        ProjectConfig.load(example_dir, {})
    assert expected in info.value.message
    assert info.value.exit_code == ExitCode.BAD_INPUT


# -- the pure model -------------------------------------------------------------------------


def test_protected_objects_cover_one_partition_or_all() -> None:
    one, whole = ProtectedObject(SILVER, "2026-03-01"), ProtectedObject(RAW)
    policy = Policy(protected=(one, whole))
    assert one.spec == f"{SILVER}@2026-03-01" and whole.spec == RAW
    assert policy.protection(SILVER, "2026-03-01") == one
    assert policy.protection(SILVER, "2026-03-02") is None
    assert policy.protection(RAW, "2026-04-30") == whole


def test_require_allowed_names_the_refused_and_the_allowed(example_dir: Path) -> None:
    project = load_project(example_dir, environ={})
    policy = Policy(backfill_assets=(RAW,))
    require_allowed(policy, project.graph, [RAW], action="This rerun")
    with pytest.raises(PreconditionError) as info:
        require_allowed(policy, project.graph, [RAW, SILVER], action="This rerun")
    assert info.value.message == (
        f"This rerun would recompute {SILVER}, which [policy] backfill_assets does not allow "
        f"(allowed: {RAW})"
    )
    assert info.value.exit_code == ExitCode.BAD_INPUT


def test_parse_policy_resolves_paths(tmp_path: Path) -> None:
    policy = parse_policy(
        {"dry_run_report_path": "{report_dir}", "strategy_path": "s.md"},
        root=tmp_path,
        report_dir=tmp_path / "r",
        default_partition=None,
    )
    assert policy.dry_run_report_path == tmp_path / "r"
    assert policy.strategy_path == tmp_path / "s.md"


def test_the_policy_block_is_in_the_example(example_dir: Path) -> None:
    block = _policy_block(example_dir)
    assert "protected" in block and "[policy.required_checks]" in block


def test_a_protected_partition_before_the_start_protects_nothing_and_loads(
    example_dir: Path,
) -> None:
    # the start can come from the environment; the example protects 2026-03-01
    project = load_project(example_dir, environ={"WEEK06_PARTITION_START_DATE": "2026-04-01"})
    assert project.policy.protection(SILVER, "2026-03-01") is not None
