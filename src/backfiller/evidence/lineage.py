"""Project run evidence as OpenLineage events (optional: ``pip install 'backfiller[lineage]'``).

One parent run per apply run (job ``<project>.<action>``), and one child run per attempted
(asset, partition) (job ``<project>.<asset>``), each with a START and a terminal event. Run ids
are stable: uuid5 of the backfiller run id (and asset and partition key), so emitting the same
evidence twice describes the same runs. Child runs carry the ``parent``, ``nominalTime`` (the
partition's half-open window), ``processing_engine`` and ``test`` (the checks: a result's
expected and actual values are their canonical JSON text, as the facet's string fields demand)
run facets; a published partition's output carries its Delta table version (``version``) and
row count (``outputStatistics``); the upstream versions it consumed are its inputs. Every run
also carries the custom ``backfiller`` facet (:mod:`backfiller.evidence.lineage_facet`: the
backfiller run, evidence and plan), whose schema is published under ``contracts/``.

:func:`emit_lineage` sends them through a client (by default the client's own configuration:
``OpenLineageClient()`` reads ``OPENLINEAGE_CONFIG``, ``openlineage.yml`` or ``OPENLINEAGE__*``
variables); runs send theirs as the project's settings say
(:mod:`backfiller.evidence.lineage_emission`). Lineage is a side channel: an error while
building or emitting events is logged, never raised.
"""

from __future__ import annotations

import importlib
import logging
import uuid
from typing import TYPE_CHECKING, Any, cast

from backfiller.canonical import canonical_json
from backfiller.checks.model import CheckStatus
from backfiller.errors import MissingDependencyError
from backfiller.evidence.lineage_facet import FACET_NAME, FACET_SCHEMA_URL, BackfillerRunFacet
from backfiller.evidence.model import CheckEntry, PartitionEntry, PartitionOutcome, RunEvidence
from backfiller.lineage_settings import DEFAULT_NAMESPACE

if TYPE_CHECKING:
    from openlineage.client import OpenLineageClient
    from openlineage.client.event_v2 import RunEvent
    from openlineage.client.facet_v2 import RunFacet

__all__ = [
    "INSTALL_LINE",
    "child_run_id",
    "emit_lineage",
    "json_text",
    "lineage_events",
    "parent_run_id",
    "require_openlineage",
]

log = logging.getLogger(__name__)

INSTALL_LINE = "pip install 'backfiller[lineage]'"
#: the official schema of the ``test`` run facet (what the installed client's class names)
TEST_FACET_SCHEMA_URL = (
    "https://openlineage.io/spec/facets/1-0-1/TestRunFacet.json#/$defs/TestRunFacet"
)
_ID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:backfiller:openlineage")
_TERMINAL = {
    PartitionOutcome.PUBLISHED: "COMPLETE",
    PartitionOutcome.REPORT_REISSUED: "COMPLETE",
    PartitionOutcome.FAILED: "FAIL",
    PartitionOutcome.CHECK_FAILED: "FAIL",
    PartitionOutcome.INTERRUPTED: "ABORT",
}


def parent_run_id(run_id: str) -> str:
    return str(uuid.uuid5(_ID_NAMESPACE, run_id))


def child_run_id(run_id: str, asset: str, partition_key: str) -> str:
    return str(uuid.uuid5(_ID_NAMESPACE, f"{run_id}\x00{asset}\x00{partition_key}"))


def json_text(value: Any) -> str:
    """``value`` as canonical JSON text (sorted keys, no spaces): ``json.loads`` gives it back."""
    return canonical_json(value).decode("utf-8")


def require_openlineage() -> None:
    try:
        importlib.import_module("openlineage.client")
    except ImportError:
        raise MissingDependencyError(
            "OpenLineage events need the optional package openlineage-python",
            hint=INSTALL_LINE,
        ) from None


def _producer(doc: RunEvidence) -> str:
    # OpenLineage wants a URI; the evidence's "backfiller/<version>" is not an absolute one
    return f"urn:backfiller:{doc.run.backfiller_version}"


def _checks_facet(checks: list[CheckEntry], producer: str) -> tuple[str, RunFacet]:
    """The ``test`` run facet. A result's expected and actual values are JSON values of any
    kind; the facet's fields are strings, so they are sent as canonical JSON text (a missing
    value is left out). Where the installed client predates the facet's class, the same
    document is built by hand, with the official schema URL."""
    from openlineage.client.facet_v2 import RunFacet

    tests = []
    for c in checks:
        test: dict[str, Any] = {
            "name": c.name,
            "status": "pass" if c.status is CheckStatus.PASSED else "fail",
            "severity": c.severity.value,
        }
        if c.expected is not None:
            test["expected"] = json_text(c.expected)
        if c.actual is not None:
            test["actual"] = json_text(c.actual)
        tests.append(test)
    try:
        module = importlib.import_module("openlineage.client.generated.test_run")
    except ImportError:
        module = None
    execution = getattr(module, "TestExecution", None)
    if module is None or execution is None:
        by_hand = cast(
            "RunFacet", RunFacet(producer=producer).with_additional_properties(tests=tests)
        )
        by_hand._schemaURL = TEST_FACET_SCHEMA_URL
        return "test", by_hand
    facet: RunFacet = module.TestRunFacet(tests=[execution(**t) for t in tests], producer=producer)
    return "test", facet


def _engine(doc: RunEvidence, producer: str) -> RunFacet:
    from openlineage.client.facet_v2 import processing_engine_run

    try:
        from importlib.metadata import version

        adapter: str | None = version("openlineage-python")
    except Exception:  # pragma: no cover - metadata missing in odd installs
        adapter = None
    return processing_engine_run.ProcessingEngineRunFacet(
        version=doc.run.backfiller_version,
        name="backfiller",
        openlineageAdapterVersion=adapter,
        producer=producer,
    )


def _backfiller_facet(
    doc: RunEvidence, producer: str, entry: PartitionEntry | None = None
) -> RunFacet:
    """The custom ``backfiller`` facet (:class:`BackfillerRunFacet`, its own schema): of the
    run, or of one partition's run (``entry``)."""
    from openlineage.client.facet_v2 import RunFacet

    content = BackfillerRunFacet.model_validate(
        {
            "_producer": producer,
            "_schemaURL": FACET_SCHEMA_URL,
            "runId": doc.run.id,
            "action": doc.run.action,
            "evidenceId": doc.evidence_id,
            "planId": doc.plan.plan_id if doc.plan else None,
            "operator": doc.run.operator,
            "reason": doc.run.reason,
            "asset": entry.asset if entry else None,
            "partitionKey": entry.partition_key if entry else None,
            "attempts": entry.attempts if entry else None,
        }
    ).model_dump(by_alias=True, exclude_none=True)
    fields = {k: v for k, v in content.items() if not k.startswith("_")}
    facet = cast("RunFacet", RunFacet(producer=producer).with_additional_properties(**fields))
    facet._schemaURL = FACET_SCHEMA_URL
    return facet


def _child_events(
    doc: RunEvidence, entry: PartitionEntry, namespace: str, producer: str
) -> list[RunEvent]:
    from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent
    from openlineage.client.event_v2 import RunState as EventType
    from openlineage.client.facet_v2 import (
        dataset_version_dataset,
        error_message_run,
        nominal_time_run,
        output_statistics_output_dataset,
        parent_run,
    )

    run_id = child_run_id(doc.run.id, entry.asset, entry.partition_key)
    parent_job = f"{doc.project}.{doc.run.action}"
    parent_id = parent_run_id(doc.run.id)
    facets: dict[str, RunFacet] = {
        "parent": parent_run.ParentRunFacet(
            run=parent_run.Run(runId=parent_id),
            job=parent_run.Job(namespace=namespace, name=parent_job),
            root=parent_run.Root(
                run=parent_run.RootRun(runId=parent_id),
                job=parent_run.RootJob(namespace=namespace, name=parent_job),
            ),
            producer=producer,
        ),
        "processing_engine": _engine(doc, producer),
        FACET_NAME: _backfiller_facet(doc, producer, entry),
    }
    if entry.window is not None:
        facets["nominalTime"] = nominal_time_run.NominalTimeRunFacet(
            nominalStartTime=entry.window.start.isoformat(),
            nominalEndTime=entry.window.end.isoformat(),
            producer=producer,
        )
    job = Job(namespace=namespace, name=f"{doc.project}.{entry.asset}")
    start = RunEvent(
        eventType=EventType.START,
        eventTime=(entry.started_at or doc.run.started_at).isoformat(),
        run=Run(runId=run_id, facets=dict(facets)),
        job=job,
        producer=producer,
    )
    checks = [
        c for c in doc.checks if (c.asset, c.partition_key) == (entry.asset, entry.partition_key)
    ]
    if checks:
        key, facet = _checks_facet(checks, producer)
        facets[key] = facet
    if entry.error:
        facets["errorMessage"] = error_message_run.ErrorMessageRunFacet(
            message=entry.error, programmingLanguage="python", producer=producer
        )
    outputs: list[OutputDataset] = []
    inputs: list[InputDataset] = []
    if entry.status is PartitionOutcome.PUBLISHED:
        version = dataset_version_dataset.DatasetVersionDatasetFacet
        stats = output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet
        outputs.append(
            OutputDataset(
                namespace=namespace,
                name=entry.asset,
                facets=(
                    {
                        "version": version(
                            datasetVersion=str(entry.new_data_version), producer=producer
                        )
                    }
                    if entry.new_data_version is not None
                    else {}
                ),
                outputFacets={
                    "outputStatistics": stats(rowCount=entry.rows_after, producer=producer)
                },
            )
        )
        consumed: dict[str, int | None] = {}
        for up in entry.upstream:
            known = consumed.get(up.asset)
            if up.asset not in consumed or (
                up.data_version is not None and (known is None or up.data_version > known)
            ):
                consumed[up.asset] = up.data_version
        for asset, data_version in sorted(consumed.items()):
            inputs.append(
                InputDataset(
                    namespace=namespace,
                    name=asset,
                    facets=(
                        {"version": version(datasetVersion=str(data_version), producer=producer)}
                        if data_version is not None
                        else {}
                    ),
                )
            )
    end = RunEvent(
        eventType=EventType(_TERMINAL[entry.status]),
        eventTime=(entry.ended_at or doc.run.ended_at).isoformat(),
        run=Run(runId=run_id, facets=facets),
        job=job,
        inputs=inputs,
        outputs=outputs,
        producer=producer,
    )
    return [start, end]


def lineage_events(doc: RunEvidence, *, namespace: str = DEFAULT_NAMESPACE) -> list[RunEvent]:
    """The events of one run's evidence, in order: parent START, each attempted partition's
    START and terminal event, parent COMPLETE (or FAIL)."""
    require_openlineage()
    from openlineage.client.event_v2 import Job, Run, RunEvent
    from openlineage.client.event_v2 import RunState as EventType

    producer = _producer(doc)
    parent_id = parent_run_id(doc.run.id)
    job = Job(namespace=namespace, name=f"{doc.project}.{doc.run.action}")
    facets: dict[str, RunFacet] = {
        "processing_engine": _engine(doc, producer),
        FACET_NAME: _backfiller_facet(doc, producer),
    }
    events = [
        RunEvent(
            eventType=EventType.START,
            eventTime=doc.run.started_at.isoformat(),
            run=Run(runId=parent_id, facets=dict(facets)),
            job=job,
            producer=producer,
        )
    ]
    for entry in doc.partitions:
        if entry.status is not PartitionOutcome.NOT_ATTEMPTED:
            events += _child_events(doc, entry, namespace, producer)
    if doc.run.error:
        from openlineage.client.facet_v2 import error_message_run

        facets["errorMessage"] = error_message_run.ErrorMessageRunFacet(
            message=doc.run.error, programmingLanguage="python", producer=producer
        )
    events.append(
        RunEvent(
            eventType=EventType.COMPLETE if doc.run.state == "succeeded" else EventType.FAIL,
            eventTime=doc.run.ended_at.isoformat(),
            run=Run(runId=parent_id, facets=facets),
            job=job,
            producer=producer,
        )
    )
    return events


def emit_lineage(
    doc: RunEvidence,
    client: OpenLineageClient | None = None,
    *,
    namespace: str = DEFAULT_NAMESPACE,
) -> int:
    """Emit the OpenLineage events of ``doc``; return how many were emitted.

    Raises :class:`~backfiller.errors.MissingDependencyError` if openlineage-python is not
    installed; any other error is logged and ends the emission (lineage never fails a run).
    """
    require_openlineage()
    try:
        events = lineage_events(doc, namespace=namespace)
    except Exception:
        log.exception("OpenLineage: could not build the events of run %s", doc.run.id)
        return 0
    owned = client is None
    if client is None:
        try:
            from openlineage.client import OpenLineageClient

            client = OpenLineageClient()
        except Exception:
            log.exception("OpenLineage: could not configure a client (see OPENLINEAGE_CONFIG)")
            return 0
    sent = 0
    try:
        for event in events:
            client.emit(event)
            sent += 1
    except Exception:
        log.exception(
            "OpenLineage: emitting the events of run %s failed after %d of %d",
            doc.run.id,
            sent,
            len(events),
        )
    finally:
        if owned:
            try:
                client.close()
            except Exception:
                log.exception("OpenLineage: closing the client failed")
    return sent
