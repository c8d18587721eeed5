"""The strict shape of ``backfiller.toml``: every section but ``[policy]`` (which checks its
own) through one closed, strictly typed model, after the environment's overrides are merged.

A wrong type or value is a :class:`~backfiller.errors.ConfigError` (exit 2) that names the
setting, the value, what it must be, and where the value came from: the file, an environment
variable, or a variable in an ``[env] files`` file.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from backfiller.errors import ConfigError

__all__ = ["SECTIONS", "check_section", "where"]


def _date_as_text(value: Any) -> Any:
    """A TOML date (``start = 2026-03-01``, unquoted) is the key it spells."""
    if isinstance(value, date) and not isinstance(value, datetime):
        return value.isoformat()
    return value


DateText = Annotated[str, BeforeValidator(_date_as_text)]
ModuleName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")]
Name = Annotated[str, Field(min_length=1)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class ProjectSection(_Section):
    name: str
    assets_module: ModuleName
    store: str
    state_dir: str
    ledger: str
    report_dir: str
    manifests: str
    operator: str
    allow_paths_outside: bool
    #: how long a lease excludes others without renewal (renewed every third of it)
    lease_ttl_seconds: Annotated[int, Field(ge=1)]
    #: how many partitions of one asset a run publishes by one commit (1: one per partition)
    group_size: Annotated[int, Field(ge=1, le=10_000)]


class LedgerSection(_Section):
    url: str


class PartitionsSection(_Section):
    kind: str
    start: DateText
    end: DateText
    timezone: str
    default: DateText
    values: list[Name]
    week_starts_on: Annotated[int, Field(ge=0, le=6)]
    dimension: str
    #: kind = "cron": the 5-field schedule whose fire times bound the windows
    cron: str
    #: how far into its hour, day or month a window starts (checked with the kind)
    minute_offset: int
    hour_offset: int
    day_offset: int
    #: how many windows the last key listed moves: 1 includes the one in progress
    end_offset: int
    #: how keys are spelled (strftime), for projects whose keys already are ("": the default)
    key_format: str


class DownstreamSection(_Section):
    consumers: list[Name]
    impact: str


class LineageSection(_Section):
    #: an OpenLineage HTTP endpoint's base URL ("": none; the standard variables may set one)
    url: Annotated[str, Field(pattern=r"^(https?://\S+)?$")]
    #: the path under ``url`` the events are posted to
    endpoint: str
    #: the namespace of the jobs and datasets ("": ``$OPENLINEAGE_NAMESPACE``, else "backfiller")
    namespace: str


class ExecutorSection(_Section):
    #: where the steps' computations run: the run's own threads, or a Dask cluster
    kind: Literal["local", "dask"]
    #: the Dask scheduler's address (``kind = "dask"``), e.g. "tcp://scheduler:8786"
    scheduler: str


class StorageSection(_Section):
    #: deltalake's storage options for object storage, e.g. AWS_ENDPOINT_URL, AWS_REGION
    options: dict[str, str]


def _no_names() -> list[str]:
    """No names (a function, not ``list``: pydantic reads a builtin factory's signature
    from its text, which compiles the tokenizer's patterns, about 10 ms of every command's
    start-up)."""
    return []


def _no_aliases() -> dict[str, str]:
    """No aliases (a function, not ``dict``: pydantic reads a builtin factory's signature
    from its text, which compiles the tokenizer's patterns, about 10 ms of every command's
    start-up)."""
    return {}


class EnvSection(_Section):
    prefix: str = "BACKFILLER_"
    files: list[Name] = Field(default_factory=_no_names)
    aliases: dict[str, str] = Field(default_factory=_no_aliases)


SECTIONS: dict[str, type[_Section]] = {
    "project": ProjectSection,
    "partitions": PartitionsSection,
    "downstream": DownstreamSection,
    "ledger": LedgerSection,
    "lineage": LineageSection,
    "executor": ExecutorSection,
    "storage": StorageSection,
    "env": EnvSection,
}

_MUST = {
    "string_type": "must be a string",
    "bool_type": "must be true or false",
    "int_type": "must be a whole number",
    "list_type": "must be a list",
    "dict_type": "must be a table",
    "string_too_short": "must not be empty",
    "string_pattern_mismatch": "must be a dotted Python module name, like 'pipelines.assets'",
    "greater_than_equal": "must be 0 (Monday) to 6 (Sunday)",
    "less_than_equal": "must be 0 (Monday) to 6 (Sunday)",
}
#: what a setting with a pattern of its own must be (the others' patterns are module names)
_MUST_MATCH = {
    ("lineage", "url"): "must be an http:// or https:// URL, like 'http://localhost:5000'",
}


def where(origin: str) -> tuple[str, str]:
    """(how the message says where a value came from, the hint to fix it there)."""
    if origin.startswith("$"):
        return f"from the environment variable {origin[1:]}", f"fix or unset {origin[1:]}"
    if " in " in origin:  # "NAME in FILE"
        return f"from {origin}", f"fix {origin}"
    return f"in {origin}", f"fix it in {origin}"


def check_section(
    section: str, values: Mapping[str, Any], origins: Mapping[str, str], default_origin: str
) -> dict[str, Any]:
    """``values`` of ``[section]`` as its model accepts them (TOML dates as text); the first
    problem raised as a :class:`ConfigError` naming the setting and where it came from
    (``origins``: ``"section.key"`` → origin; ``default_origin`` for the rest)."""
    try:
        checked = SECTIONS[section].model_validate(dict(values))
    except ValidationError as exc:
        error = exc.errors()[0]
        loc = error["loc"]
        key = str(loc[0]) if loc else "?"
        setting = f"[{section}] {key}" + "".join(f"[{p}]" for p in loc[1:])
        value = error.get("input") if len(loc) > 1 else values.get(key, error.get("input"))
        shown = repr(value)
        if len(shown) > 60:
            shown = shown[:57] + "..."
        said, hint = where(origins.get(f"{section}.{key}", default_origin))
        must = _MUST.get(error["type"], error["msg"])
        if error["type"] == "literal_error":
            must = "must be " + str(error["msg"]).removeprefix("Input should be ")
        if error["type"] == "string_pattern_mismatch":
            must = _MUST_MATCH.get((section, key), must)
        if error["type"] == "extra_forbidden":  # an unknown key: named before, kept for safety
            must = "is not a setting"
        raise ConfigError(f"{setting} = {shown} ({said}) {must}", hint=hint) from None
    return checked.model_dump()
