"""Package attributes imported on first use (PEP 562), so that importing a package — and the
command line's ``--help`` — does not import DuckDB, Arrow, Delta Lake or jsonschema."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_getattr"]


def lazy_getattr(namespace: dict[str, Any], exports: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``namespace`` (a package's ``globals()``) that imports
    ``exports[name]`` (a module name) when ``name`` is first used, and keeps the value."""

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {namespace['__name__']!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    return __getattr__
