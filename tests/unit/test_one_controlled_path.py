"""The controlled path exists once: every write of data, ledger record, partition report,
hold, run outcome and evidence is made from exactly one call site in the core, so that every
action — backfill, rerun, replay, retry, resume, restore, report re-issue — goes through it.

A second call site of any of these (a copy of the path) fails this test; the CLI and the lab
may not call them at all.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import backfiller

PACKAGE = Path(backfiller.__file__).parent

#: the call ("function" or "ledger part.method") -> the one module that may make it, and what
#: it is
ONE_PLACE = {
    "runs.begin": ("actions/run.py", "a run begins"),
    "write_partitions": ("actions/runner.py", "publish: the atomic data commit"),
    "partitions.publish": ("actions/runner.py", "the ledger's record of a publication"),
    "partitions.reissue_attempt": (
        "actions/runner.py",
        "the ledger's record of a re-issued report",
    ),
    "write_partition_report": ("actions/runner.py", "the partition report"),
    "place_holds": ("actions/run.py", "holds on what a run affected"),
    "leases.release_run": ("actions/run.py", "leases a killed step left behind"),
    "runs.settle": ("actions/run.py", "the run's outcome (finish)"),
    "runs.reopen": ("actions/recovery.py", "a failed run reopened by retry"),
    "evidence.append": ("evidence/writer.py", "the evidence, chained; seals the run"),
}


def _name(func: ast.expr) -> str | None:
    """``f`` for ``f(...)`` and ``x.f(...)``; ``part.f`` for ``ledger.part.f(...)``."""
    if isinstance(func, ast.Name):
        return func.id
    if not isinstance(func, ast.Attribute):
        return None
    part = func.value
    if isinstance(part, ast.Attribute) and _is_ledger(part.value):
        return f"{part.attr}.{func.attr}"
    return func.attr


def _is_ledger(node: ast.expr) -> bool:
    """``ledger`` or ``<anything>.ledger``: how the core names the ledger it writes to."""
    return (isinstance(node, ast.Name) and node.id == "ledger") or (
        isinstance(node, ast.Attribute) and node.attr == "ledger"
    )


def _call_sites() -> dict[str, list[str]]:
    sites: dict[str, list[str]] = defaultdict(list)
    for path in sorted(PACKAGE.rglob("*.py")):
        module = path.relative_to(PACKAGE).as_posix()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and (name := _name(node.func)) in ONE_PLACE:
                sites[name].append(f"{module}:{node.lineno}")
    return sites


def test_each_step_of_the_controlled_path_has_exactly_one_call_site() -> None:
    sites = _call_sites()
    wrong = {
        name: (what, sites.get(name, []))
        for name, (module, what) in ONE_PLACE.items()
        if len(sites.get(name, [])) != 1 or not sites[name][0].startswith(f"{module}:")
    }
    assert wrong == {}, "the controlled path must exist once:\n" + "\n".join(
        f"  {name} ({what}): called at {found or 'nowhere'}, expected once in {ONE_PLACE[name][0]}"
        for name, (what, found) in wrong.items()
    )


def test_the_one_path_is_what_every_action_calls() -> None:
    """Every action module reaches the path through ``execute`` or ``continue_run``."""
    source = (PACKAGE / "actions" / "recovery.py").read_text(encoding="utf-8")
    tree = ast.parse(source)
    calls = {
        fn.name: {
            n.func.id
            for n in ast.walk(fn)
            if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
        }
        for fn in tree.body
        if isinstance(fn, ast.FunctionDef) and not fn.name.startswith("_")
    }
    entry = {"execute", "continue_run"}
    for action in ("rerun", "replay", "retry", "resume", "restore"):
        assert calls[action] & entry, f"{action} does not go through the run"
    apply_source = (PACKAGE / "actions" / "apply.py").read_text(encoding="utf-8")
    assert "execute(" in apply_source
