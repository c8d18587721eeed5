"""Fuzzing the command line in-process (click's ``CliRunner`` isolation around the one error
boundary): random arguments, plan files, manifests, ``backfiller.toml`` contents and
environment overrides. Never an exit 1 (an unexpected error); every refusal is exit 2 or 4
and writes nothing (the project folder's files, sizes and hashes are the same before and
after). 2,100 cases in all; marked slow (about a minute and a half on a 2-core machine).
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import sys
import tomllib
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from conftest import GAP_DAY, tree_fingerprint
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from json_paths import json_paths

from backfiller.cli.main import main

pytestmark = pytest.mark.slow

RAW = "week06/ingestion/raw_ticket_events_partitioned"
SILVER = "week06/silver/ticket_fact_partitioned"
MANIFEST = "data/manifests/week06-seed-manifest-001.json"
FUZZ = settings(
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    database=None,
)


class Project:
    """One copy of the materialized example, restored from a pristine copy whenever a case
    that succeeded changed it (so every case starts from the same state)."""

    def __init__(self, template: Path, folder: Path) -> None:
        self.pristine = folder / "pristine"
        self.root = folder / "omni"
        shutil.copytree(template, self.pristine)
        code, out, err = self._plan_document()
        assert code == 0, err
        self.plan: dict[str, Any] = json.loads(out)["plan"]
        shutil.copytree(self.pristine, self.root)
        self.toml = (self.root / "backfiller.toml").read_text(encoding="utf-8")
        self.manifest = json.loads((self.root / MANIFEST).read_text(encoding="utf-8"))
        self.baseline = self.files()
        self.codes: dict[int, int] = {}

    def _plan_document(self) -> tuple[int, str, str]:
        return invoke(self.pristine, ["plan", "--partition", GAP_DAY, "--json"])

    def files(self) -> dict[str, str]:
        return {
            k: v
            for k, v in tree_fingerprint(self.root).items()
            if "__pycache__" not in k and not k.endswith(("-wal", "-shm"))
        }

    def reset(self) -> None:
        if self.files() != self.baseline:
            shutil.rmtree(self.root)
            shutil.copytree(self.pristine, self.root)

    def run(self, args: list[str], env: dict[str, str] | None = None) -> int:
        """Run ``args``; assert the rules; return the exit code."""
        before = self.files()
        code, _, err = invoke(self.root, args, env)
        self.codes[code] = self.codes.get(code, 0) + 1
        assert code != 1, f"exit 1 for {args} {env or ''}:\n{err}"
        assert code in (0, 2, 3, 4), (code, args, err)
        if code in (2, 4):
            assert self.files() == before, f"a refusal wrote files: {args} {env or ''}\n{err}"
            assert err.startswith("error:") or "Error:" in err or "Usage:" in err, err
        return code


def invoke(root: Path, args: list[str], env: dict[str, str] | None = None) -> tuple[int, str, str]:
    with CliRunner().isolation(env=env) as (out, err, _):
        code = main(["--project", str(root), *args])
        return code, out.getvalue().decode(), err.getvalue().decode()


@pytest.fixture(scope="module")
def project(april_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    saved = {k: v for k, v in os.environ.items() if k.startswith(("WEEK06_", "BACKFILLER_"))}
    for name in saved:
        del os.environ[name]
    os.environ["COLUMNS"] = os.environ.get("COLUMNS", "200")
    folder, cwd = tmp_path_factory.mktemp("fuzz"), Path.cwd()
    os.chdir(folder)  # a relative path given to a command lands here, never in the checkout
    try:
        yield Project(april_template, folder)
    finally:
        os.chdir(cwd)
        os.environ.update(saved)


# -- strategies ----------------------------------------------------------------------------

SAFE_TEXT = st.text(max_size=14).filter(
    lambda s: "\x00" not in s and s.split(".")[0] not in sys.stdlib_module_names
)
EDGE_KEYS = st.sampled_from(["9999-12-31", "0001-01-01", "2026-04-31", GAP_DAY])
KEYS = st.one_of(
    EDGE_KEYS,
    st.sampled_from(
        [
            GAP_DAY,
            "2026-04-14",
            "2026-03-01",
            "2026-02-28",
            "2026-04-31",
            "2026-4-17",
            "9999-12-31",
            "9999-12-30",
            "0001-01-01",
            "2026-04-17T00:00",
            "2026-05-01",
            "2027-01-01",
            "",
            " ",
            "-1",
        ]
    ),
    st.dates(min_value=date(1, 1, 1), max_value=date(9999, 12, 31)).map(str),
    SAFE_TEXT,
)
ASSET_NAMES = st.one_of(
    st.sampled_from([RAW, SILVER, "week06/silver", "week07/retrieval_index", ""]), SAFE_TEXT
)
PATTERNS = st.one_of(
    st.sampled_from(["*", "*silver*", "silver/*", "week06/*/*", "[", "[!a]*", "**", "?"]),
    SAFE_TEXT,
)
WORDS = st.one_of(
    st.sampled_from(
        ["missing_partition", "check_failed", "dry-run", "apply", "DRY-RUN", "run-x", "x" * 300]
    ),
    SAFE_TEXT,
)
NUMBERS = st.one_of(
    st.integers(-5, 20_000).map(str), st.sampled_from(["99999999999999999999999", "1e3", ""])
)


def _options(pool: dict[str, st.SearchStrategy[str] | None]) -> st.SearchStrategy[list[str]]:
    """A list of up to five options from ``pool`` (a flag when its strategy is None)."""
    if not pool:
        return st.just([])

    def one(name: str) -> st.SearchStrategy[list[str]]:
        value = pool[name]
        return st.just([name]) if value is None else value.map(lambda v: [name, v])

    return st.lists(st.sampled_from(sorted(pool)).flatmap(one), max_size=5).map(
        lambda parts: [token for part in parts for token in part]
    )


WINDOW = {"--start": KEYS, "--end": KEYS, "--partition": KEYS}
SELECT = {"--asset": ASSET_NAMES, "--select": PATTERNS}
COMMANDS: dict[str, st.SearchStrategy[list[str]]] = {
    "status": _options({"--start": KEYS, "--end": KEYS, **SELECT, "--json": None}),
    "gaps": _options(
        {**WINDOW, **SELECT, "--reason": WORDS, "--needs-action": None, "--json": None}
    ),
    "plan": _options(
        {
            **WINDOW,
            **SELECT,
            "--mode": WORDS,
            "--reason": WORDS,
            "--operator": WORDS,
            "--include-materialized": None,
            "--override-protected": None,
            "--json": None,
        }
    ),
    "runs": _options({"--run": WORDS, "--json": None}),
    "history": _options({"--asset": ASSET_NAMES, "--limit": NUMBERS, "--json": None}),
    "holds": _options({"--asset": ASSET_NAMES, "--consumer": ASSET_NAMES, "--json": None}),
    "check": _options({"--asset": ASSET_NAMES, "--partition": KEYS, "--json": None}),
    "verify": _options({}),
}
ARGUMENTS = st.one_of(
    *(st.tuples(st.just(name), opts) for name, opts in COMMANDS.items()),
    st.tuples(st.just("evidence"), st.tuples(st.just("show"), WORDS).map(list)),
    st.tuples(st.just("simulate"), st.sampled_from([["list"], ["list", "--all"], ["undo", "x"]])),
).map(lambda t: [t[0], *t[1]])


def _mutations(document: Any) -> st.SearchStrategy[Any]:
    """``document`` with one to three places replaced, removed or added."""
    values = st.recursive(
        st.one_of(
            st.none(),
            st.booleans(),
            st.integers(-(2**70), 2**70),
            st.floats(allow_nan=False),
            SAFE_TEXT,
            KEYS,
        ),
        lambda inner: st.one_of(
            st.lists(inner, max_size=3), st.dictionaries(SAFE_TEXT, inner, max_size=3)
        ),
        max_leaves=5,
    )

    @st.composite
    def mutate(draw: st.DrawFn) -> Any:
        doc = copy.deepcopy(document)
        for _ in range(draw(st.integers(1, 3))):
            paths = json_paths(doc)
            path = draw(st.sampled_from(paths))
            if not path:
                return draw(values)
            parent = doc
            for step in path[:-1]:
                parent = parent[step]
            how = draw(st.sampled_from(["replace", "remove", "add"]))
            if how == "remove":
                del parent[path[-1]]
            elif how == "add" and isinstance(parent, dict):
                parent[draw(SAFE_TEXT)] = draw(values)
            else:
                parent[path[-1]] = draw(values)
        return doc

    return mutate()


NASTY_JSON = st.sampled_from(
    [
        "",
        "null",
        "[]",
        "{}",
        "1e999",
        '{"schema_version": 1}',
        "[" * 100_000 + "]" * 100_000,
        '{"a":' * 50_000 + "1" + "}" * 50_000,
        "\ufeff{}",
        '{"partitions": [' + ",".join(["{}"] * 2000) + "]}",
    ]
)


def _document_text(document: Any) -> st.SearchStrategy[str]:
    return st.one_of(
        _mutations(document).map(lambda d: json.dumps(d, indent=1)),
        NASTY_JSON,
        st.text(max_size=40),
    )


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value) if value == value else "nan"
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return (
            "{" + ", ".join(f"{json.dumps(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"
        )
    return json.dumps(str(value))


def _toml(document: Any) -> str:
    if not isinstance(document, dict):
        return _toml_value(document)
    top = [
        f"{json.dumps(k)} = {_toml_value(v)}"
        for k, v in document.items()
        if not isinstance(v, dict)
    ]
    sections = [
        f"[{json.dumps(k)}]\n"
        + "".join(f"{json.dumps(n)} = {_toml_value(v)}\n" for n, v in body.items())
        for k, body in document.items()
        if isinstance(body, dict)
    ]
    return "\n".join(top) + "\n" + "\n".join(sections)


ENV_NAMES = [
    "WEEK06_DEFAULT_PARTITION",
    "WEEK06_PARTITION_START_DATE",
    "WEEK06_REPORT_DIR",
    "WEEK06_BACKFILLER_PROJECT_ALLOW_PATHS_OUTSIDE",
    "WEEK06_BACKFILLER_PROJECT_STORE",
    "WEEK06_BACKFILLER_PROJECT_LEDGER",
    "WEEK06_BACKFILLER_PROJECT_ASSETS_MODULE",
    "WEEK06_BACKFILLER_PARTITIONS_KIND",
    "WEEK06_BACKFILLER_PARTITIONS_TIMEZONE",
    "WEEK06_BACKFILLER_PARTITIONS_WEEK_STARTS_ON",
    "WEEK06_BACKFILLER_PARTITIONS_VALUES",
    "WEEK06_BACKFILLER_DOWNSTREAM_CONSUMERS",
    "WEEK06_BACKFILLER_POLICY_BACKFILL_ASSETS",
]
ENV = st.dictionaries(
    st.sampled_from(ENV_NAMES),
    st.one_of(KEYS, SAFE_TEXT, st.sampled_from(["../x", "/tmp", "true", "maybe", "99", "hourly"])),
    max_size=3,
)
READ = [
    ["status", "--start", "2026-04-14", "--end", "2026-04-20"],
    ["gaps", "--partition", GAP_DAY],
]


# -- the fuzz ------------------------------------------------------------------------------


@settings(FUZZ, max_examples=int(os.environ.get("FUZZ_N", 1000)))
@given(args=ARGUMENTS)
def test_random_arguments(project: Project, args: list[str]) -> None:
    code = project.run(args)
    if code in (0, 3):
        project.reset()


@settings(FUZZ, max_examples=int(os.environ.get("FUZZ_N", 300)))
@given(data=st.data())
def test_random_plan_files(project: Project, data: st.DataObject) -> None:
    text = data.draw(_document_text(project.plan))
    plan = project.root.parent / "fuzzed-plan.json"  # outside the project folder
    plan.write_text(text, encoding="utf-8")
    code = project.run(["apply", str(plan)])
    if code in (0, 3):
        project.reset()


@settings(FUZZ, max_examples=int(os.environ.get("FUZZ_N", 400)))
@given(data=st.data())
def test_random_manifests(project: Project, data: st.DataObject) -> None:
    text = data.draw(_document_text(project.manifest), "manifest")
    extra = data.draw(st.none() | _document_text(project.manifest), "another manifest")
    args = data.draw(st.sampled_from([*READ, ["plan", "--partition", GAP_DAY]]), "command")
    path, other = project.root / MANIFEST, project.root / "data" / "manifests" / "extra.json"
    original = path.read_bytes()
    path.write_text(text, encoding="utf-8")
    if extra is not None:
        other.write_text(extra, encoding="utf-8")
    try:
        code = project.run(args)
    finally:
        path.write_bytes(original)
        other.unlink(missing_ok=True)
    if code in (0, 3):
        project.reset()


@settings(FUZZ, max_examples=int(os.environ.get("FUZZ_N", 400)))
@given(data=st.data())
def test_random_configuration(project: Project, data: st.DataObject) -> None:
    document = tomllib.loads(project.toml)
    text = data.draw(st.one_of(_mutations(document).map(_toml), st.text(max_size=40)), "toml")
    env = data.draw(ENV, "environment")
    args = data.draw(st.sampled_from(READ), "command")
    (project.root / "backfiller.toml").write_text(text, encoding="utf-8")
    try:
        code = project.run(args, env)
    finally:
        (project.root / "backfiller.toml").write_text(project.toml, encoding="utf-8")
    if code in (0, 3):
        project.reset()


def test_the_fuzz_reached_successes_and_refusals(project: Project) -> None:
    """Not a vacuous fuzz: across the cases above, commands succeeded and were refused.

    The share of successes depends on hypothesis's draws: 85 to 127 of the 2,100 cases were
    seen, so the floor sits well below that range (a floor at 100 failed one CI run with 85).
    """
    if sum(project.codes.values()) < 1000:
        pytest.skip("run with the fuzz tests above")
    assert project.codes.get(0, 0) >= 40, project.codes
    assert project.codes.get(2, 0) >= 500, project.codes
    assert set(project.codes) <= {0, 2, 3, 4}, project.codes
    print(f"exit codes over {sum(project.codes.values())} cases: {project.codes}")
