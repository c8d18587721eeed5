"""Load a project: ``backfiller.toml`` + environment overrides + the assets module.

Every setting ``[section] key`` can be overridden by the environment variable
``<PREFIX><SECTION>_<KEY>`` (upper case; the prefix is ``BACKFILLER_`` unless ``[env] prefix``
says otherwise), and ``[env.aliases]`` maps other variable names onto settings, so that the
example reads the seed's ``WEEK06_PARTITION_START_DATE``, ``WEEK06_DEFAULT_PARTITION`` and
``WEEK06_REPORT_DIR``. Variables are read from the process environment first, then from the first
existing file of ``[env] files`` (``.env`` syntax).
"""

from __future__ import annotations

import dataclasses
import getpass
import importlib
import sys
import threading
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from backfiller.assets import Asset, AssetGraph
from backfiller.clock import Clock, system_clock
from backfiller.config import check_section, where
from backfiller.errors import BadInputError, ConfigError
from backfiller.ledger import (
    DatabaseLedger,
    LedgerReader,
    PostgresLedger,
    SqliteLedger,
    close_reader,
    open_postgres_reader,
    open_reader,
)
from backfiller.lineage_settings import LineageSettings, lineage_settings
from backfiller.locations import Location, ObjectPath, location_of
from backfiller.manifests import ManifestRegistry
from backfiller.names import did_you_mean
from backfiller.overlay import NO_OVERLAY, Overlay
from backfiller.partitions import DynamicScheme, MultiScheme, PartitionScheme, scheme_from_config
from backfiller.paths import configured_path
from backfiller.policy import POLICY_DEFAULTS, Policy, parse_policy, validate_policy
from backfiller.store import DataStore, DeltaStore
from backfiller.store.location import is_uri, local_path_of, object_store_uri
from backfiller.urls import redact

__all__ = [
    "CONFIG_FILE",
    "Project",
    "ProjectConfig",
    "find_project_root",
    "load_project",
    "read_env_file",
]

CONFIG_FILE = "backfiller.toml"

_DEFAULTS: dict[str, dict[str, Any]] = {
    "project": {
        "name": "",
        "assets_module": "assets",
        "store": "data/lake",
        "state_dir": ".backfiller",
        "ledger": "",
        "report_dir": "reports",
        "manifests": "data/manifests",
        "operator": "",
        "allow_paths_outside": False,
        "lease_ttl_seconds": 600,
        "group_size": 64,
    },
    "partitions": {
        "kind": "daily",
        "start": "",
        "end": "",
        "timezone": "UTC",
        "default": "",
        "values": [],
        "week_starts_on": 0,
        "cron": "",
        "minute_offset": 0,
        "hour_offset": 0,
        "day_offset": 0,
        "end_offset": 0,
        "key_format": "",
        # the name of a dynamic dimension (kind = "dynamic"): its values are in the ledger
        "dimension": "",
    },
    "downstream": {"consumers": [], "impact": ""},
    # sqlite:///path or postgresql://… (team mode); wins over [project] ledger
    "ledger": {"url": ""},
    # where run lineage goes (besides the standard OPENLINEAGE_* variables): see lineage_settings
    "lineage": {"url": "", "endpoint": "", "namespace": ""},
    # where the steps' computations run: "local" (the run's threads) or "dask" (a cluster)
    "executor": {"kind": "local", "scheduler": ""},
    # options of the object storage [project] store names (endpoint, region, credentials...),
    # besides the environment's AWS_* / GOOGLE_* / AZURE_* variables that deltalake reads
    "storage": {"options": {}},
    "policy": POLICY_DEFAULTS,
}


#: names of files that document settings rather than hold them
_EXAMPLE_SUFFIXES = (".example", ".sample", ".template", ".dist")


def read_env_file(path: Path) -> dict[str, str]:
    """Parse a ``.env`` file: ``KEY=value`` lines, ``#`` comments, optional quotes."""
    values: dict[str, str] = {}
    for number, raw in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export ") :].lstrip()
        name, sep, value = line.partition("=")
        name = name.strip()
        if not sep or not name.replace("_", "").isalnum():
            raise ConfigError(
                f"{path}:{number}: expected KEY=value, got {raw!r}", hint="fix the line"
            )
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[name] = value
    return values


#: guards each project's kept manifests (:attr:`Project.manifests`) and the replacing of its
#: graph (:meth:`Project.refresh_dynamic_values`)
_PROJECT_LOCK = threading.Lock()


@dataclass(frozen=True)
class ProjectConfig:
    root: Path
    name: str
    assets_module: str
    #: the local folder of the Delta tables (``None``: they are on object storage)
    store_path: Path | None
    state_dir: Path
    ledger_path: Path
    #: a local folder, or a prefix on object storage (``s3://…``)
    report_dir: Location
    #: a local folder, or a prefix on object storage (``s3://…``)
    manifests_dir: Location
    operator: str
    partitions: dict[str, Any]
    default_partition: str | None
    downstream_consumers: tuple[str, ...]
    downstream_impact: str
    #: how long a lease excludes others without a renewal (renewed every third of it)
    lease_ttl_seconds: int = 600
    #: partitions of one asset a run publishes by one Delta commit (1: a commit per partition)
    group_size: int = 64
    #: the PostgreSQL ledger's URL (team mode); empty: the SQLite file at ``ledger_path``
    ledger_url: str = ""
    env_sources: tuple[str, ...] = ()
    raw: dict[str, Any] = field(default_factory=dict)
    policy: Policy = field(default_factory=Policy)
    #: where each setting that is not a default came from: "section.key" → the file's path,
    #: "$VARIABLE" (the process environment) or "VARIABLE in FILE" (an [env] files file)
    origins: dict[str, str] = field(default_factory=dict)
    #: whether and where each run's OpenLineage events are sent (default: nowhere)
    lineage: LineageSettings = field(default_factory=LineageSettings)
    #: where the Delta tables are: ``store_path``, or an object-storage URI (``s3://…``)
    store_uri: str = ""
    #: ``[storage] options``: how object storage is reached (deltalake's storage options)
    storage_options: dict[str, str] = field(default_factory=dict)
    #: ``[executor] kind``: where the steps' computations run ("local" or "dask")
    executor_kind: str = "local"
    #: ``[executor] scheduler``: the Dask scheduler's address
    executor_scheduler: str = ""

    def origin(self, setting: str) -> str:
        """Where ``setting`` ("section.key") came from, in words."""
        found = self.origins.get(setting)
        return where(found)[0] if found else "its default"

    @classmethod
    def load(cls, root: Path, environ: Mapping[str, str] | None = None) -> ProjectConfig:
        root = Path(root).resolve()
        path = root / CONFIG_FILE
        if not path.is_file():
            raise ConfigError(
                f"No {CONFIG_FILE} in {root} (nor in a folder above it)",
                hint="run backfiller inside a project folder, pass --project PATH, or start "
                "one with 'backfiller init'",
            )
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path} is not valid TOML: {exc}") from exc
        _require_known_keys(path, data)
        origins = {
            f"{section}.{key}": str(path)
            for section, body in data.items()
            for key in body
            if isinstance(body, dict)
        }
        settings: dict[str, Any] = {s: {**d, **data.get(s, {})} for s, d in _DEFAULTS.items()}
        env_conf = check_section("env", data.get("env", {}), origins, str(path))
        prefix = str(env_conf["prefix"])
        file_vars: dict[str, str] = {}
        file_name = ""
        sources: list[str] = []
        for candidate in env_conf["files"]:
            if Path(str(candidate)).name.lower().endswith(_EXAMPLE_SUFFIXES):
                raise ConfigError(
                    f"[env] files lists {candidate!r}, an example file: an example is not "
                    "configuration",
                    hint=f"copy it to a file of your own (e.g. .env.local), list that in "
                    f"{CONFIG_FILE}, and edit it there",
                )
            file = root / candidate
            if file.is_file():
                file_vars = read_env_file(file)
                file_name = str(candidate)
                sources.append(str(candidate))
                break
        process_env = dict(environ) if environ is not None else {}
        aliases: dict[str, str] = dict(env_conf.get("aliases", {}))
        # the env file first, then the process environment: the process wins, whatever name
        for variables in (file_vars, process_env):
            for section, body in settings.items():
                if not isinstance(body, dict):
                    continue
                for key in list(body):
                    names = [f"{prefix}{section}_{key}".upper()]
                    names += [a for a, target in aliases.items() if target == f"{section}.{key}"]
                    for name in names:
                        if name in variables:
                            origin = (
                                f"${name}"
                                if variables is process_env
                                else (f"{name} in {file_name}")
                            )
                            body[key] = _coerce(variables[name], body[key], where(origin)[0])
                            origins[f"{section}.{key}"] = origin
        for alias, target in aliases.items():
            section, _, key = target.partition(".")
            if section not in settings or key not in settings[section]:
                raise ConfigError(
                    f"[env.aliases] {alias} = {target!r} names no setting",
                    hint="use 'section.key', e.g. 'partitions.default'",
                )
        for section in (
            "project",
            "partitions",
            "downstream",
            "ledger",
            "lineage",
            "executor",
            "storage",
        ):
            settings[section] = check_section(section, settings[section], origins, str(path))
        lineage = lineage_settings(
            settings["lineage"],
            process_env,
            url_origin=where(origins.get("lineage.url", str(path)))[0],
        )
        default_partition = _default_partition(data, settings)
        proj = settings["project"]
        outside = bool(proj["allow_paths_outside"])

        def came_from(key: str) -> str | None:
            found = origins.get(f"project.{key}")
            return where(found)[0] if found else None

        def inside(key: str) -> Path:
            return configured_path(
                root,
                str(proj[key]),
                f"[project] {key}",
                allow_outside=outside,
                origin=came_from(key),
            )

        state_dir = inside("state_dir")
        lease_ttl = int(proj["lease_ttl_seconds"])
        ledger_setting = "[ledger] url" if settings["ledger"]["url"] else "[project] ledger"
        ledger = settings["ledger"]["url"] or proj["ledger"]
        ledger = ledger or "sqlite:///" + str(Path(proj["state_dir"]) / "ledger.db")
        ledger_url = ""
        ledger_path = state_dir / "ledger.db"
        if ledger.startswith(("postgresql://", "postgres://")):
            ledger_url = ledger
        elif ledger.startswith("sqlite:///"):
            ledger_path = configured_path(
                root,
                ledger[len("sqlite:///") :],
                ledger_setting,
                allow_outside=outside,
                origin=came_from("ledger"),
            )
        else:
            raise ConfigError(
                f"Unsupported ledger URL {redact(ledger)!r} ({ledger_setting})",
                hint="use sqlite:///relative/or/absolute/path.db, or postgresql://user@host/db "
                "for a ledger shared by a team",
            )
        parts = settings["partitions"]
        parts["default"] = default_partition
        options = dict(settings["storage"]["options"])

        def unreachable(key: str, exc: ValueError) -> ConfigError:
            return ConfigError(
                f"[project] {key} = {proj[key]!r} is not a location backfiller can reach: {exc}",
                hint="give a local folder (file:///absolute/path or a path relative to the "
                "project) or an object-storage URI with a bucket (s3://bucket/prefix, gs://…, "
                "az://…)",
            )

        def local(key: str) -> Path:
            """``[project] key`` as a local folder: a path, or a ``file://`` URI."""
            if is_uri(str(proj[key])):
                try:
                    proj[key] = str(local_path_of(str(proj[key])))
                except ValueError as exc:
                    raise unreachable(key, exc) from exc
            return inside(key)

        def placed(key: str) -> Location:
            """``[project] key`` as a local folder or a prefix on object storage."""
            if object_store_uri(str(proj[key])) is None:
                return local(key)
            try:
                return ObjectPath.parse(str(proj[key]), options, setting=f"[project] {key}")
            except ValueError as exc:
                raise unreachable(key, exc) from exc

        report_dir = placed("report_dir")
        store_uri = object_store_uri(str(proj["store"]))
        # the tables: a prefix on object storage (store_uri), else a local folder
        store_path = None if store_uri is not None else local("store")
        return cls(
            root=root,
            name=proj["name"] or root.name,
            assets_module=proj["assets_module"],
            store_path=store_path,
            store_uri=store_uri or str(store_path),
            storage_options=options,
            state_dir=state_dir,
            ledger_path=ledger_path,
            ledger_url=ledger_url,
            report_dir=report_dir,
            manifests_dir=placed("manifests"),
            operator=proj["operator"],
            lease_ttl_seconds=lease_ttl,
            group_size=int(proj["group_size"]),
            partitions=parts,
            default_partition=default_partition or None,
            downstream_consumers=tuple(settings["downstream"]["consumers"]),
            downstream_impact=settings["downstream"]["impact"],
            env_sources=tuple(sources),
            raw=settings,
            origins=origins,
            lineage=lineage,
            executor_kind=settings["executor"]["kind"],
            executor_scheduler=settings["executor"]["scheduler"],
            policy=parse_policy(
                settings["policy"],
                root=root,
                report_dir=report_dir,
                default_partition=default_partition or None,
                allow_outside=outside,
            ),
        )


_ENV_KEYS = ("prefix", "files", "aliases")


def _require_known_keys(path: Path, data: dict[str, Any]) -> None:
    """A misspelled section or key is an error naming it and the nearest valid one (a
    silently ignored ``strat =`` would leave the default in force)."""
    known: dict[str, tuple[str, ...]] = {s: tuple(d) for s, d in _DEFAULTS.items()}
    known["env"] = _ENV_KEYS
    for section, body in data.items():
        if section not in known:
            raise ConfigError(
                f"{path}: unknown section [{section}]{did_you_mean(section, known)}",
                hint="sections: " + ", ".join(f"[{s}]" for s in known),
            )
        if not isinstance(body, dict):
            raise ConfigError(
                f"{path}: [{section}] must be a table of settings, got {section} = {body!r}",
                hint=f"write the settings under a [{section}] header",
            )
        if section == "policy" or not isinstance(body, dict):
            continue  # the policy names its own unknown settings
        for key in body:
            if key not in known[section]:
                raise ConfigError(
                    f"{path}: unknown setting [{section}] {key}{did_you_mean(key, known[section])}",
                    hint=f"[{section}] settings: " + ", ".join(known[section]),
                )


def _default_partition(data: dict[str, Any], settings: dict[str, Any]) -> str:
    """``[policy] default_partition`` and ``[partitions] default`` are one setting: in the file
    they must agree; a value from the environment wins over the file."""
    in_file = str(data.get("partitions", {}).get("default", "") or "")
    policy_in_file = str(data.get("policy", {}).get("default_partition", "") or "")
    if in_file and policy_in_file and in_file != policy_in_file:
        raise ConfigError(
            f"[partitions] default = {in_file!r} and [policy] default_partition = "
            f"{policy_in_file!r} disagree",
            hint="they are the same setting: keep one, or make them equal",
        )
    current = str(settings["partitions"]["default"] or "")
    policy_current = str(settings["policy"].get("default_partition", "") or "")
    from_env = current != in_file
    policy_from_env = policy_current != policy_in_file
    if from_env and policy_from_env and current != policy_current:
        raise ConfigError(
            f"The environment sets the default partition to {current!r} and the policy's "
            f"default partition to {policy_current!r}",
            hint="set only one of them",
        )
    if from_env:
        return current
    if policy_from_env:
        return policy_current
    return in_file or policy_in_file


_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off", ""}


def _coerce(value: str, default: Any, name: str) -> Any:
    """``value`` of a variable, as the type of the setting's default; ``name`` says where the
    value came from."""
    if isinstance(default, bool):
        if value.strip().lower() not in _TRUE | _FALSE:
            raise ConfigError(
                f"{value!r} ({name}) must be true or false", hint="use true/false, 1/0, yes/no"
            )
        return value.strip().lower() in _TRUE
    if isinstance(default, int):
        try:
            return int(value)
        except ValueError:
            raise ConfigError(
                f"{value!r} ({name}) is not a whole number", hint="fix or unset it"
            ) from None
    if isinstance(default, list):
        return [v.strip() for v in value.split(",") if v.strip()]
    return value


def _import_assets(root: Path, module_name: str) -> list[Asset]:
    top = module_name.split(".")[0]
    for name in [m for m in sys.modules if m == top or m.startswith(top + ".")]:
        file = getattr(sys.modules[name], "__file__", None)
        if file is None or not Path(file).resolve().is_relative_to(root):
            del sys.modules[name]
    sys.path.insert(0, str(root))
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(
            f"Cannot import the assets module {module_name!r} from {root}: {exc}",
            hint="set [project] assets_module in backfiller.toml",
        ) from exc
    except SyntaxError as exc:
        where = f"{exc.filename}:{exc.lineno}" if exc.filename else module_name
        raise ConfigError(
            f"The assets module {module_name!r} does not parse: {exc.msg} at {where}",
            hint="fix the Python syntax there (run with --debug for the traceback)",
        ) from exc
    except Exception as exc:  # the user's module raised while it was imported
        raise ConfigError(
            f"Importing the assets module {module_name!r} raised {type(exc).__name__}: {exc}",
            hint="fix the module's top-level code (run with --debug for the traceback)",
        ) from exc
    finally:
        sys.path.remove(str(root))
    return [v for v in vars(module).values() if isinstance(v, Asset)]


class Project:
    """A loaded project: config, graph, manifests, store, and ledger access."""

    def __init__(
        self,
        config: ProjectConfig,
        graph: AssetGraph,
        *,
        clock: Clock,
        store: DataStore | None = None,
        overlay: Overlay = NO_OVERLAY,
    ) -> None:
        self.config = config
        self.graph = graph
        self.clock = clock
        self.overlay = overlay
        if store is not None:  # another store than the configured Delta tables
            self.__dict__["store"] = store

    @property
    def root(self) -> Path:
        return self.config.root

    @property
    def scheme(self) -> PartitionScheme:
        """The scheme of the first asset (the project's ``[partitions]``); an asset with a
        scheme of its own has its keys read with :meth:`scheme_of`."""
        return self.graph.scheme(self.graph.keys[0]) if len(self.graph) else _scheme(self.config)

    def scheme_of(self, asset: str) -> PartitionScheme:
        """The scheme ``asset``'s keys belong to: its own, else the project's."""
        return self.graph.scheme(asset)

    @property
    def policy(self) -> Policy:
        return self.config.policy

    @property
    def manifests(self) -> ManifestRegistry:
        """The manifests (read on first use, then kept); the overlay's stand-ins (a
        broken-manifest simulation's copy) are read instead of the real files (which are only
        read). A read that began before :meth:`reload_manifests` was called (by another
        thread: the web view's server) serves its caller but is not kept: what it read may be
        older than what the caller of the reload saw."""
        kept: ManifestRegistry | None = self.__dict__.get("_manifests")
        if kept is not None:
            return kept
        began = self.__dict__.get("_manifests_forgotten", 0)
        registry = self.load_manifests()
        with _PROJECT_LOCK:
            if self.__dict__.get("_manifests_forgotten", 0) == began:
                self.__dict__.setdefault("_manifests", registry)
        return registry

    def load_manifests(self) -> ManifestRegistry:
        """The manifests as they are now, read again (not kept: :meth:`use_manifests`)."""
        return ManifestRegistry.from_folder(
            self.config.manifests_dir,
            _scheme(self.config),
            overrides=dict(self.overlay.manifest_stand_ins),
        )

    def use_manifests(self, registry: ManifestRegistry) -> None:
        """Keep ``registry`` as the project's manifests (one read by :meth:`load_manifests`
        under the caller's own bookkeeping of when)."""
        with _PROJECT_LOCK:
            self.__dict__["_manifests"] = registry

    def with_overlay(self, overlay: Overlay) -> Project:
        """The same project (and store) under ``overlay``."""
        return Project(self.config, self.graph, clock=self.clock, store=self.store, overlay=overlay)

    def reload_manifests(self) -> None:
        """Forget the loaded manifests (a simulation started or ended; the web view's server
        saw them change): the next use reads them again."""
        with _PROJECT_LOCK:
            self.__dict__["_manifests_forgotten"] = self.__dict__.get("_manifests_forgotten", 0) + 1
            self.__dict__.pop("_manifests", None)

    def refresh_dynamic_values(self, reader: LedgerReader) -> bool:
        """Fill the graph's dynamic schemes with the values ``reader``'s ledger records now,
        the graph replaced when any moved (``True``): a long-lived process — the web view's
        server — loads its project once, and values are added and removed while it runs. A
        project with no dynamic dimension asks the ledger nothing."""
        graph = self.graph
        assets = graph.assets
        default = graph.default_scheme
        wanted = _dynamic_dimensions_of(assets)
        if isinstance(default, DynamicScheme) and default.dimension not in wanted:
            wanted.append(default.dimension)
        if not wanted:
            return False
        values = {d: reader.dimensions.values(d) for d in wanted}
        filled = _filled(assets, values)
        if isinstance(default, DynamicScheme):
            default = DynamicScheme(default.dimension, tuple(values[default.dimension]))
        if default == graph.default_scheme and all(
            a.scheme == b.scheme for a, b in zip(filled, assets, strict=True)
        ):
            return False
        fresh = AssetGraph(filled, default)
        with _PROJECT_LOCK:
            if self.graph is not graph:  # another thread's newer read replaced it meanwhile
                return False
            self.graph = fresh
        return True

    @cached_property
    def store(self) -> DataStore:
        return DeltaStore(self.config.store_uri, self.config.storage_options)

    def reader(self) -> LedgerReader:
        """A read-only view of the ledger; creates nothing."""
        return open_config_reader(self.config)

    def ledger(self, *, max_parallel: int = 1) -> DatabaseLedger:
        """The ledger writer: the SQLite file, or PostgreSQL (``[ledger] url``) with a pool of
        at most ``max_parallel + 2`` connections."""
        return open_config_ledger(self.config, clock=self.clock, max_parallel=max_parallel)

    def operator(self, override: str | None = None) -> str:
        return override or self.config.operator or getpass.getuser()

    @property
    def plan_dir(self) -> Location:
        """Where plans go: ``[policy] dry_run_report_path``, by default <report_dir>/backfill."""
        return self.policy.dry_run_report_path or self.config.report_dir / "backfill"

    def partition_report_dir(self, asset: str) -> Location:
        """The folder of ``asset``'s partition reports (one ``<key>.json`` each)."""
        return self.config.report_dir.joinpath("partitions", *asset.split("/"))

    def partition_report_path(self, asset: str, key: str) -> Location:
        return self.partition_report_dir(asset) / f"{key}.json"

    def location(self, text: str) -> Location:
        """A location recorded by :meth:`relative` (a plan's ``report_path``, an evidence
        index entry): relative to the project, absolute, or an object-storage URI."""
        return location_of(
            text,
            root=self.root,
            options=self.config.storage_options,
            setting="[project] report_dir",
        )

    def relative(self, path: Location) -> str:
        """``path`` relative to the project folder when it is inside it; otherwise as it is
        (an absolute path, or an object-storage URI)."""
        if isinstance(path, ObjectPath):
            return str(path)
        try:
            return Path(path).resolve().relative_to(self.root).as_posix()
        except ValueError:
            return str(path)


def _scheme(config: ProjectConfig) -> PartitionScheme:
    p = config.partitions
    dynamic = p["kind"] == "dynamic"
    if p["kind"] not in {"static", "dynamic"} and not p["start"]:
        raise ConfigError(
            "[partitions] start is not set",
            hint="set it in backfiller.toml or through the environment",
        )
    return scheme_from_config(
        kind=p["kind"],
        start=p["start"] or None,
        end=p["end"] or None,
        timezone=p["timezone"],
        values=_dynamic_values(config) if dynamic else p["values"],
        week_starts_on=int(p["week_starts_on"]),
        cron=p["cron"],
        minute_offset=int(p["minute_offset"]),
        hour_offset=int(p["hour_offset"]),
        day_offset=int(p["day_offset"]),
        end_offset=int(p["end_offset"]),
        key_format=p["key_format"],
        dimension=p["dimension"],
    )


def open_config_reader(config: ProjectConfig) -> LedgerReader:
    """A read-only view of the ledger ``config`` names; creates nothing."""
    if config.ledger_url:
        return open_postgres_reader(config.ledger_url)
    return open_reader(config.ledger_path)


def open_config_ledger(
    config: ProjectConfig, *, clock: Clock = system_clock, max_parallel: int = 1
) -> DatabaseLedger:
    """The writer of the ledger ``config`` names (created, or migrated to this backfiller's
    schema, on opening)."""
    if config.ledger_url:
        return PostgresLedger(config.ledger_url, clock=clock, max_connections=max_parallel + 2)
    return SqliteLedger(config.ledger_path, clock=clock)


def _dynamic_values(config: ProjectConfig) -> list[str]:
    """The current values of the project's dynamic dimension, as the ledger records them
    (read-only: nothing is created; a ledger that does not exist yet has none)."""
    dimension = config.partitions["dimension"]
    if not dimension:
        return []  # scheme_from_config names the missing setting
    return _ledger_values(config, [dimension])[dimension]


def _ledger_values(config: ProjectConfig, dimensions: Sequence[str]) -> dict[str, list[str]]:
    """The current values of each of the dynamic ``dimensions``, as the ledger records them
    (read-only, one reader for them all)."""
    reader = open_config_reader(config)
    try:
        return {d: reader.dimensions.values(d) for d in dimensions}
    finally:
        close_reader(reader)


def _with_dynamic_values(config: ProjectConfig, assets: list[Asset]) -> list[Asset]:
    """``assets``, each dynamic scheme of their own (a ``DynamicScheme``, or a dimension of a
    multi-dimensional scheme) holding the values the ledger records (a declared scheme cannot
    know them)."""
    wanted = _dynamic_dimensions_of(assets)
    if not wanted:
        return assets
    return _filled(assets, _ledger_values(config, wanted))


def _dynamic_dimensions_of(assets: Sequence[Asset]) -> list[str]:
    """The dynamic dimensions of the schemes ``assets`` declare, each once."""
    wanted: dict[str, None] = {}
    for a in assets:
        if isinstance(a.scheme, MultiScheme):
            wanted.update(dict.fromkeys(a.scheme.dynamic_dimensions()))
        elif isinstance(a.scheme, DynamicScheme):
            wanted[a.scheme.dimension] = None
    return list(wanted)


def _filled(assets: Sequence[Asset], values: Mapping[str, Sequence[str]]) -> list[Asset]:
    """``assets``, each dynamic scheme of their own holding ``values`` (per dimension)."""
    filled = []
    for a in assets:
        scheme = a.scheme
        if isinstance(scheme, MultiScheme) and scheme.dynamic_dimensions():
            for d in scheme.dynamic_dimensions():
                scheme = scheme.with_values(d, values[d])
            a = dataclasses.replace(a, scheme=scheme)
        elif isinstance(scheme, DynamicScheme):
            a = dataclasses.replace(
                a, scheme=DynamicScheme(scheme.dimension, tuple(values[scheme.dimension]))
            )
        filled.append(a)
    return filled


def _default_setting(config: ProjectConfig) -> str:
    """Which setting the default partition came from."""
    if "partitions.default" in config.origins:
        return "partitions.default"
    return "policy.default_partition"


def find_project_root(start: Path | str = ".") -> Path:
    """The folder holding ``backfiller.toml``: ``start`` or its nearest parent that has one,
    as git finds its repository (``start`` itself when none has: loading it then says so)."""
    here = Path(start).resolve()
    for folder in (here, *here.parents):
        if (folder / CONFIG_FILE).is_file():
            return folder
    return here


def load_project(
    root: Path | str = ".",
    *,
    environ: Mapping[str, str] | None = None,
    clock: Clock = system_clock,
    overlay: Overlay = NO_OVERLAY,
    store: DataStore | None = None,
) -> Project:
    """Load the project at ``root``. ``environ`` defaults to nothing (pass ``os.environ``);
    ``overlay``: what a practice session changes (see :mod:`backfiller.overlay`); ``store``:
    where the partitions live (default: the Delta tables under ``[project] store``)."""
    config = ProjectConfig.load(Path(root), environ)
    try:
        scheme = _scheme(config)
    except BadInputError as exc:
        set_here = [
            f"{k} ({config.origin(f'partitions.{k}')})"
            for k in config.partitions
            if f"partitions.{k}" in config.origins
        ]
        raise type(exc)(
            f"[partitions] is invalid: {exc.message}"
            + (f"; set: {', '.join(set_here)}" if set_here else ""),
            hint=exc.hint,
        ) from exc
    if config.default_partition:
        try:
            scheme.parse(config.default_partition)
        except BadInputError as exc:
            setting = _default_setting(config)
            found = config.origins.get(setting)
            fix = where(found)[1] if found else f"set [{setting.replace('.', '] ')}"
            raise type(exc)(
                f"The configured default partition {config.default_partition!r} "
                f"({config.origin(setting)}) is invalid: {exc.message}",
                hint=f"{fix}: {exc.hint}" if exc.hint else fix,
            ) from exc
    assets = _with_dynamic_values(config, _import_assets(config.root, config.assets_module))
    graph = AssetGraph(assets, scheme)
    if not len(graph):
        raise ConfigError(
            f"The assets module {config.assets_module!r} defines no assets",
            hint="declare assets with @asset or sql_asset at module level",
        )
    validate_policy(config.policy, graph, scheme)
    return Project(config, graph, clock=clock, store=store, overlay=overlay)
