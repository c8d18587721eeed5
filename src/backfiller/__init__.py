"""backfiller: make a data-pipeline backfill a controlled action.

See the gap, plan it as data, review the plan, apply exactly that plan, check, publish, write
evidence, and only then release downstream consumers.
"""

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
from backfiller.partitions import (
    Granularity,
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
    find_gaps,
    make_plan,
    read_plan,
    write_plan,
)
from backfiller.project import Project, load_project
from backfiller.store import CommitInfo, DataStore, DeltaStore

__version__ = "0.1.0"

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
    "DataStore",
    "DeltaStore",
    "Dependency",
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
    "PartitionMapping",
    "PartitionScheme",
    "PartitionStatus",
    "PlanDocument",
    "PreconditionError",
    "Project",
    "ProposedAction",
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
