"""backfiller: make a data-pipeline backfill a controlled action.

See the gap, plan it as data, review the plan, apply exactly that plan, check, publish, write
evidence, and only then release downstream consumers.
"""

import typing

from backfiller import _lazy

__version__ = "0.1.0"

#: each public name and the module it comes from: imported when first used, so that
#: ``import backfiller`` (and the command line's ``--help``) stays cheap
_EXPORTS: dict[str, str] = {
    "Asset": "backfiller.assets",
    "AssetContext": "backfiller.assets",
    "AssetGraph": "backfiller.assets",
    "BackfillerError": "backfiller.errors",
    "BadInputError": "backfiller.errors",
    "ChecksFailedError": "backfiller.errors",
    "CommitInfo": "backfiller.store",
    "ConfigError": "backfiller.errors",
    "ConflictError": "backfiller.errors",
    "CronScheme": "backfiller.partitions",
    "DataStore": "backfiller.store",
    "DeltaStore": "backfiller.store",
    "Dependency": "backfiller.assets",
    "Dimension": "backfiller.partitions",
    "DynamicScheme": "backfiller.partitions",
    "ExitCode": "backfiller.errors",
    "FixedClock": "backfiller.clock",
    "Gap": "backfiller.planning",
    "GapReason": "backfiller.planning",
    "Granularity": "backfiller.partitions",
    "IdentityMapping": "backfiller.assets",
    "InvalidPartitionKeyError": "backfiller.errors",
    "LedgerReader": "backfiller.ledger",
    "Manifest": "backfiller.manifests",
    "ManifestError": "backfiller.errors",
    "ManifestPartition": "backfiller.manifests",
    "ManifestRegistry": "backfiller.manifests",
    "Mode": "backfiller.planning",
    "MultiScheme": "backfiller.partitions",
    "MultiToSingleDimensionMapping": "backfiller.mappings",
    "PartitionMapping": "backfiller.assets",
    "PartitionScheme": "backfiller.partitions",
    "PartitionStatus": "backfiller.ledger",
    "PlanDocument": "backfiller.planning",
    "RangePlan": "backfiller.planning",
    "PreconditionError": "backfiller.errors",
    "Project": "backfiller.project",
    "ProposedAction": "backfiller.planning",
    "RunResult": "backfiller.actions",
    "RunState": "backfiller.ledger",
    "SqliteLedger": "backfiller.ledger",
    "StalePlanError": "backfiller.errors",
    "StaticScheme": "backfiller.partitions",
    "StepOutcome": "backfiller.actions",
    "StepResult": "backfiller.actions",
    "TimeWindowMapping": "backfiller.assets",
    "TimeWindowScheme": "backfiller.partitions",
    "UnsupportedModeError": "backfiller.errors",
    "Window": "backfiller.partitions",
    "asset": "backfiller.assets",
    "execute": "backfiller.actions",
    "find_gaps": "backfiller.planning",
    "load_manifest": "backfiller.manifests",
    "load_project": "backfiller.project",
    "make_plan": "backfiller.planning",
    "read_plan": "backfiller.planning",
    "scheme_from_config": "backfiller.partitions",
    "sql_asset": "backfiller.assets",
    "write_plan": "backfiller.planning",
}

if typing.TYPE_CHECKING:
    from backfiller.actions import RunResult, StepOutcome, StepResult, execute
    from backfiller.assets import (
        Asset,
        AssetContext,
        AssetGraph,
        Dependency,
        IdentityMapping,
        PartitionMapping,
        TimeWindowMapping,
        asset,
        sql_asset,
    )
    from backfiller.clock import FixedClock
    from backfiller.errors import (
        BackfillerError,
        BadInputError,
        ChecksFailedError,
        ConfigError,
        ConflictError,
        ExitCode,
        InvalidPartitionKeyError,
        ManifestError,
        PreconditionError,
        StalePlanError,
        UnsupportedModeError,
    )
    from backfiller.ledger import LedgerReader, PartitionStatus, RunState, SqliteLedger
    from backfiller.manifests import Manifest, ManifestPartition, ManifestRegistry, load_manifest
    from backfiller.mappings import MultiToSingleDimensionMapping
    from backfiller.partitions import (
        CronScheme,
        Dimension,
        DynamicScheme,
        Granularity,
        MultiScheme,
        PartitionScheme,
        StaticScheme,
        TimeWindowScheme,
        Window,
        scheme_from_config,
    )
    from backfiller.planning import (
        Gap,
        GapReason,
        Mode,
        PlanDocument,
        ProposedAction,
        RangePlan,
        find_gaps,
        make_plan,
        read_plan,
        write_plan,
    )
    from backfiller.project import Project, load_project
    from backfiller.store import CommitInfo, DataStore, DeltaStore


__getattr__ = _lazy.lazy_getattr(globals(), _EXPORTS)


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


__all__ = [
    "Asset",
    "AssetContext",
    "AssetGraph",
    "BackfillerError",
    "BadInputError",
    "ChecksFailedError",
    "CommitInfo",
    "ConfigError",
    "ConflictError",
    "CronScheme",
    "DataStore",
    "DeltaStore",
    "Dependency",
    "Dimension",
    "DynamicScheme",
    "ExitCode",
    "FixedClock",
    "Gap",
    "GapReason",
    "Granularity",
    "IdentityMapping",
    "InvalidPartitionKeyError",
    "LedgerReader",
    "Manifest",
    "ManifestError",
    "ManifestPartition",
    "ManifestRegistry",
    "Mode",
    "MultiScheme",
    "MultiToSingleDimensionMapping",
    "PartitionMapping",
    "PartitionScheme",
    "PartitionStatus",
    "PlanDocument",
    "PreconditionError",
    "Project",
    "ProposedAction",
    "RangePlan",
    "RunResult",
    "RunState",
    "SqliteLedger",
    "StalePlanError",
    "StaticScheme",
    "StepOutcome",
    "StepResult",
    "TimeWindowMapping",
    "TimeWindowScheme",
    "UnsupportedModeError",
    "Window",
    "__version__",
    "asset",
    "execute",
    "find_gaps",
    "load_manifest",
    "load_project",
    "make_plan",
    "read_plan",
    "scheme_from_config",
    "sql_asset",
    "write_plan",
]
