"""Project run evidence as OpenLineage events (optional: ``pip install 'backfiller[lineage]'``).

One parent run per apply run (job ``<project>.<action>``), and one child run per attempted
(asset, partition) (job ``<project>.<asset>``), each with a START and a terminal event. Run ids
are stable: uuid5 of the backfiller run id (and asset and partition key), so emitting the same
evidence twice describes the same runs. Child runs carry the ``parent``, ``nominalTime`` (the
partition's half-open window), ``processing_engine`` and ``test`` (the checks) run facets; a
published partition's output carries its Delta table version (``version``) and row count
(``outputStatistics``); the upstream versions it consumed are its inputs.

The transport is the client's own configuration (``OpenLineageClient()`` reads
``OPENLINEAGE_CONFIG``, ``openlineage.yml`` or ``OPENLINEAGE__*`` variables). Lineage is a side
channel: an error while building or emitting events is logged, never raised.
"""

from __future__ import annotations

import importlib
import logging
import uuid
from typing import TYPE_CHECKING, Any, cast

from backfiller.checks.model import CheckStatus
from backfiller.errors import MissingDependencyError
from backfiller.evidence.model import CheckEntry, PartitionEntry, PartitionOutcome, RunEvidence

if TYPE_CHECKING:
    from openlineage.client import OpenLineageClient
    from openlineage.client.event_v2 import RunEvent
    from openlineage.client.facet_v2 import RunFacet

__all__ = ["INSTALL_LINE", "child_run_id", "emit_lineage", "lineage_events", "parent_run_id"]

log = logging.getLogger(__name__)

INSTALL_LINE = "pip install 'backfiller[lineage]'"
DEFAULT_NAMESPACE = "backfiller"
_ID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:backfiller:openlineage")
_TERMINAL = {
    PartitionOutcome.PUBLISHED: "COMPLETE",
    PartitionOutcome.FAILED: "FAIL",
    PartitionOutcome.CHECK_FAILED: "FAIL",
    PartitionOutcome.INTERRUPTED: "ABORT",
}


def parent_run_id(run_id: str) -> str:
    return str(uuid.uuid5(_ID_NAMESPACE, run_id))


def child_run_id(run_id: str, asset: str, partition_key: str) -> str:
    return str(uuid.uuid5(_ID_NAMESPACE, f"{run_id}\x00{asset}\x00{partition_key}"))


def _require_openlineage() -> None:
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
    """The ``test`` run facet; where the installed client predates it, the same content as
    the custom facet ``backfiller_checks``."""
    from openlineage.client.facet_v2 import RunFacet

    tests = [
        {
            "name": c.name,
            "status": "pass" if c.status is CheckStatus.PASSED else "fail",
            "severity": c.severity.value,
            "expected": None if c.expected is None else str(c.expected),
            "actual": None if c.actual is None else str(c.actual),
        }
        for c in checks
    ]
    try:
        module = importlib.import_module("openlineage.client.generated.test_run")
    except ImportError:
        module = None
    execution = getattr(module, "TestExecution", None) or getattr(module, "Test", None)
    if module is None or execution is None:
        custom = RunFacet(producer=producer).with_additional_properties(tests=tests)
        return "backfiller_checks", cast("RunFacet", custom)
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


def _backfiller_facet(doc: RunEvidence, producer: str, **extra: Any) -> RunFacet:
    from openlineage.client.facet_v2 import RunFacet

    facet = RunFacet(producer=producer).with_additional_properties(
        runId=doc.run.id,
        evidenceId=doc.evidence_id,
        planId=doc.plan.plan_id if doc.plan else None,
        operator=doc.run.operator,
        reason=doc.run.reason,
        **extra,
    )
    return cast("RunFacet", facet)


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
        "backfiller": _backfiller_facet(
            doc, producer, asset=entry.asset, partitionKey=entry.partition_key
        ),
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
    _require_openlineage()
    from openlineage.client.event_v2 import Job, Run, RunEvent
    from openlineage.client.event_v2 import RunState as EventType

    producer = _producer(doc)
    parent_id = parent_run_id(doc.run.id)
    job = Job(namespace=namespace, name=f"{doc.project}.{doc.run.action}")
    facets: dict[str, RunFacet] = {
        "processing_engine": _engine(doc, producer),
        "backfiller": _backfiller_facet(doc, producer),
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
    _require_openlineage()
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
