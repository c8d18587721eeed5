"""Dynamic partitions through the CLI, on both ledgers: ``backfiller partitions add|remove|list``
on a project whose keys are the values of a dimension, the values' whole life (added, planned
by status, backfilled, refused removal while published data exists, removed when asked, shown
in ``history``), and every refusal exiting 2 with nothing written."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from cli_calls import run, run_json
from conftest import (
    both_backends,
    cli_environment,
    environ_ledger_fingerprint,
    tree_fingerprint,
)

ASSET = "dyn/orders"

pytestmark = both_backends


@pytest.fixture(autouse=True)
def _cli_environment(monkeypatch: pytest.MonkeyPatch, project_environ: dict[str, str]) -> None:
    cli_environment(monkeypatch, project_environ)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A project partitioned by customer: its keys are the values added at run time."""
    folder = tmp_path / "dyn"
    folder.mkdir()
    (folder / "backfiller.toml").write_text(
        textwrap.dedent(
            """
            [project]
            name = "dyn"
            operator = "ann"

            [partitions]
            kind = "dynamic"
            dimension = "customer"

            [policy]
            backfill_assets = ["dyn/orders"]
            """
        ),
        encoding="utf-8",
    )
    (folder / "assets.py").write_text(
        textwrap.dedent(
            """
            from backfiller import asset
            from backfiller.checks import unique_key


            @asset("dyn/orders", idempotency_key=("order_id", "partition_key"),
                   checks=[unique_key()])
            def orders(context):
                return [{"order_id": f"{context.partition_key}-{i}", "n": i} for i in range(4)]
            """
        ),
        encoding="utf-8",
    )
    return folder


def files(root: Path) -> dict[str, str]:
    found = {k: v for k, v in tree_fingerprint(root).items() if "__pycache__" not in k}
    return found | environ_ledger_fingerprint()


def one_line(text: str) -> str:
    return " ".join(text.split())


def refused(capsys: pytest.CaptureFixture[str], root: Path, *args: str) -> str:
    """Run a command that must be refused with exit 2 and write nothing; its stderr."""
    before = files(root)
    code, _, err = run(capsys, root, *args)
    assert code == 2, err
    assert files(root) == before
    return one_line(err)


def test_a_dynamic_dimension_lives_through_add_backfill_remove_and_history(
    capsys: pytest.CaptureFixture[str], root: Path
) -> None:
    # no value yet: the commands say so and how to add one
    err = refused(capsys, root, "status")
    assert "The dynamic dimension 'customer' has no values yet" in err
    assert "backfiller partitions add --dimension customer --value VALUE" in err

    code, out, err = run(
        capsys, root, "partitions", "add", "--value", "acme", "--value", "globex",
        "--reason", "onboarded",
    )  # fmt: skip
    assert code == 0, err
    assert "added to customer: acme, globex" in out
    doc = run_json(capsys, root, "partitions", "list")
    assert doc["kind"] == "partition_values"
    assert (doc["dimension"], doc["values"]) == ("customer", ["acme", "globex"])
    assert [(e["value"], e["verb"], e["operator"], e["reason"]) for e in doc["events"]] == [
        ("acme", "add", "ann", "onboarded"),
        ("globex", "add", "ann", "onboarded"),
    ]

    status = run_json(capsys, root, "status")
    assert status["window"] == {"first": "acme", "last": "globex", "count": 2}
    assert status["assets"][0]["partitions"] == {
        "acme": "no_expected_input",
        "globex": "no_expected_input",
    }
    code, out, err = run(capsys, root, "rerun", "--asset", ASSET, "--partition", "acme")
    assert code == 0, err
    status = run_json(capsys, root, "status")
    assert status["assets"][0]["partitions"]["acme"] == "materialized"

    # removing a value with published data is refused, then done when asked for
    err = refused(capsys, root, "partitions", "remove", "--value", "acme", "--reason", "churned")
    assert "Published data in the partitions of: acme (1 asset(s)); nothing was removed" in err
    assert "--allow-published" in err
    code, out, err = run(
        capsys, root, "partitions", "remove", "--value", "acme", "--reason", "churned",
        "--allow-published", "--operator", "bob",
    )  # fmt: skip
    assert code == 0, err
    assert "removed from customer: acme" in out
    assert "acme: published data in 1 asset(s) stays in the tables" in one_line(out)
    assert run_json(capsys, root, "partitions", "list")["values"] == ["globex"]
    # the removed value is no partition any more; the data stays in the table
    err = refused(capsys, root, "rerun", "--asset", ASSET, "--partition", "acme")
    assert "not a current value of the dynamic dimension 'customer'" in err
    history = run_json(capsys, root, "history", "--asset", ASSET)
    assert [
        (e["value"], e["verb"], e["operator"], e["reason"], e["published"])
        for e in history["dimension_events"]
    ] == [
        ("acme", "add", "ann", "onboarded", 0),
        ("globex", "add", "ann", "onboarded", 0),
        ("acme", "remove", "bob", "churned", 1),
    ]
    assert any("acme" in c["partition_keys"] for c in history["commits"])
    code, out, _ = run(capsys, root, "history", "--asset", ASSET)
    assert code == 0
    assert "Values added and removed" in out and "churned" in out
    code, out, _ = run(capsys, root, "partitions", "list", "--history")
    assert code == 0 and "churned" in out and "onboarded" in out


def test_status_shows_the_values_as_ranges_and_as_a_grid(
    capsys: pytest.CaptureFixture[str], root: Path
) -> None:
    """Values of ten characters are values, not days, in the grid."""
    values = ["customer01", "customer02", "customer03"]
    code, _, err = run(
        capsys, root, "partitions", "add", *[a for v in values for a in ("--value", v)],
        "--reason", "three",
    )  # fmt: skip
    assert code == 0, err
    code, out, err = run(capsys, root, "rerun", "--asset", ASSET, "--partition", "customer02")
    assert code == 0, err
    code, out, err = run(capsys, root, "status")
    assert code == 0, err
    assert "dynamic customer (customer01, customer02, customer03); 3 partitions" in out
    assert "customer02 (1 partition) materialized" in out
    code, out, err = run(capsys, root, "status", "--each")
    assert code == 0, err
    assert "customer01  -█-" in out


def test_every_refusal_exits_2_and_writes_nothing(
    capsys: pytest.CaptureFixture[str], root: Path
) -> None:
    code, _, err = run(capsys, root, "partitions", "add", "--value", "acme", "--reason", "x")
    assert code == 0, err
    err = refused(capsys, root, "partitions", "add", "--value", "acme", "--reason", "again")
    assert "Already a value of customer: acme; nothing was added" in err
    err = refused(capsys, root, "partitions", "add", "--value", "b", "--value", "acme",
                  "--reason", "two")  # fmt: skip
    assert "Already a value of customer: acme" in err  # and b was not added either
    err = refused(capsys, root, "partitions", "remove", "--value", "nope", "--reason", "x")
    assert "Not a current value of customer: nope; nothing was removed" in err
    err = refused(capsys, root, "partitions", "add", "--value", "c", "--reason", "  ")
    assert "A reason is required" in err
    err = refused(capsys, root, "partitions", "add", "--value", "c")
    assert "A reason is required" in err
    err = refused(capsys, root, "partitions", "add", "--value", "a/b", "--reason", "x")
    assert "Invalid partition value 'a/b'" in err
    err = refused(
        capsys, root, "partitions", "add", "--dimension", "custmer", "--value", "c",
        "--reason", "x",
    )  # fmt: skip
    assert "Unknown dimension 'custmer' (did you mean 'customer'?)" in err
    assert run_json(capsys, root, "partitions", "list")["values"] == ["acme"]


def test_a_project_without_dynamic_partitions_says_so(
    capsys: pytest.CaptureFixture[str], example_dir: Path
) -> None:
    err = refused(capsys, example_dir, "partitions", "add", "--value", "x", "--reason", "y")
    assert "has no dynamic partitions" in err
    assert 'kind = "dynamic"' in err


def test_a_dynamic_scheme_without_a_dimension_name_is_a_config_error(
    capsys: pytest.CaptureFixture[str], root: Path
) -> None:
    toml = root / "backfiller.toml"
    toml.write_text(
        toml.read_text(encoding="utf-8").replace('dimension = "customer"\n', ""),
        encoding="utf-8",
    )
    err = refused(capsys, root, "status")
    assert "a dynamic partition scheme needs a dimension name" in err


@both_backends
def test_a_loaded_project_takes_the_values_added_and_removed_since(
    root: Path, project_environ: dict[str, str]
) -> None:
    """``Project.refresh_dynamic_values`` (what the web view's server does per request): the
    project's own dynamic scheme gets the ledger's values; nothing moved, nothing replaced."""
    import os

    from backfiller import load_project
    from backfiller.dynamic import add_partition_values, remove_partition_values

    project = load_project(root, environ=dict(os.environ))
    assert project.scheme.keys() == []
    with project.ledger() as ledger:
        add_partition_values(project, ledger, ["acme", "globex"], operator="t", reason="r")
    graph = project.graph
    reader = project.reader()
    try:
        assert project.refresh_dynamic_values(reader)
        assert project.scheme.keys() == ["acme", "globex"]
        assert project.graph is not graph
        graph = project.graph
        assert not project.refresh_dynamic_values(reader)  # nothing moved
        assert project.graph is graph
        with project.ledger() as ledger:
            remove_partition_values(project, ledger, ["acme"], operator="t", reason="r")
        assert project.refresh_dynamic_values(reader)
        assert project.scheme.keys() == ["globex"]
    finally:
        reader.close()


def test_a_graph_replaced_meanwhile_by_another_thread_is_not_overwritten(
    root: Path, project_environ: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two requests of the web view refresh at once: the one whose read began from a graph
    another has replaced since leaves that newer graph alone."""
    import os

    import backfiller.project as project_module
    from backfiller import load_project
    from backfiller.dynamic import add_partition_values

    project = load_project(root, environ=dict(os.environ))
    with project.ledger() as ledger:
        add_partition_values(project, ledger, ["acme"], operator="t", reason="r")
    newer = load_project(root, environ=dict(os.environ)).graph
    real = project_module._filled

    def meanwhile(*args: object, **kwargs: object) -> object:
        project.graph = newer  # another request's refresh ended first
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(project_module, "_filled", meanwhile)
    reader = project.reader()
    try:
        assert not project.refresh_dynamic_values(reader)
    finally:
        reader.close()
    assert project.graph is newer
