"""The public surface of ``backfiller``: __all__ is exact, and the core never imports the CLI
or the lab (the lesson wing above it)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import types

import backfiller

INCLUDED_PRIVATE = {"__version__"}


def test_all_is_sorted_and_unique() -> None:
    assert backfiller.__all__ == sorted(backfiller.__all__)
    assert len(backfiller.__all__) == len(set(backfiller.__all__))


def test_every_name_resolves() -> None:
    missing = [n for n in backfiller.__all__ if not hasattr(backfiller, n)]
    assert missing == []
    assert backfiller.__version__ == "0.1.0"
    assert backfiller.load_project.__module__ == "backfiller.project"
    assert backfiller.SqliteLedger.__module__ == "backfiller.ledger.sqlite"


def test_all_equals_the_public_namespace() -> None:
    # like httpx's tests/test_exported_members.py; submodules are attributes, not exports.
    # The names are imported on first use: resolve them all, then nothing else may be public
    for name in backfiller.__all__:
        getattr(backfiller, name)
    public = {
        name
        for name, value in vars(backfiller).items()
        if (not name.startswith("_") or name in INCLUDED_PRIVATE)
        and not isinstance(value, types.ModuleType)
    }
    assert set(backfiller.__all__) == public
    assert len(public) == len(backfiller.__all__)


def test_every_lazy_name_is_exported_and_nothing_else() -> None:
    assert set(backfiller._EXPORTS) | INCLUDED_PRIVATE == set(backfiller.__all__)
    assert set(dir(backfiller)) >= set(backfiller.__all__)


def test_no_submodule_is_exported() -> None:
    for name in backfiller.__all__:
        assert not isinstance(getattr(backfiller, name), types.ModuleType), name


def test_the_core_never_imports_the_cli_or_the_lab() -> None:
    code = textwrap.dedent(
        """
        import sys
        import backfiller
        import backfiller.planning
        import backfiller.actions
        import backfiller.project
        loaded = sorted(m for m in sys.modules if m.startswith("backfiller"))
        assert "backfiller.project" in loaded, loaded
        wings = (["backfiller", "cli"], ["backfiller", "lab"])
        above = [m for m in loaded if m.split(".")[:2] in wings]
        assert not above, above
        print(len(loaded))
        """
    )
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert int(result.stdout.strip()) > 10
