"""Send a finished run's OpenLineage events where the project's settings say
(:mod:`backfiller.lineage_settings`), as a side channel.

Every run (apply, and every recovery action) calls :func:`emit_run_lineage` once its evidence
is written. With no configuration it returns at once and imports nothing. Otherwise nothing it
meets fails the run: a missing ``lineage`` extra (said once, with the install line), a client
that cannot be configured, an event that cannot be built or a transport that refuses are each
one WARNING log line (``backfiller.evidence.lineage_emission``; the traceback at DEBUG) and the
returned :class:`LineageOutcome` names it.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from backfiller.errors import MissingDependencyError
from backfiller.evidence.lineage import INSTALL_LINE, lineage_events, require_openlineage
from backfiller.evidence.model import RunEvidence
from backfiller.lineage_settings import LineageSettings
from backfiller.locations import Location
from backfiller.urls import redact

if TYPE_CHECKING:
    from openlineage.client import OpenLineageClient

__all__ = ["LineageOutcome", "emit_run_lineage"]

log = logging.getLogger(__name__)

#: the client's fallback when its configuration names no transport: it only logs the events at
#: INFO level, so they would be lost without a word
_NOT_A_DESTINATION = frozenset({"console"})


@dataclass(frozen=True)
class LineageOutcome:
    """What became of a run's events: how many were sent of how many, where, and the problem
    that stopped them (``None``: all were sent)."""

    sent: int
    total: int
    target: str
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None


def emit_run_lineage(settings: LineageSettings, evidence: Location) -> LineageOutcome | None:
    """Send the events of the run evidence document at ``evidence`` as ``settings`` say;
    ``None`` when lineage is not configured. Never raises (but for what stops the process)."""
    if not settings.enabled:
        return None
    target = redact(settings.target)
    try:
        require_openlineage()
    except MissingDependencyError:
        return _warn(
            LineageOutcome(0, 0, target),
            f"OpenLineage is configured ({settings.source}) but openlineage-python is not "
            f"installed: no lineage is sent; to send it, {INSTALL_LINE}",
        )
    try:
        doc = RunEvidence.from_bytes(evidence.read_bytes())
        events = lineage_events(doc, namespace=settings.namespace)
    except Exception as exc:
        return _warn(
            LineageOutcome(0, 0, target),
            f"OpenLineage: the events of {evidence.name} could not be built ({_said(exc)})",
            exc,
        )
    try:
        client = _client(settings)
    except Exception as exc:
        return _warn(
            LineageOutcome(0, len(events), target),
            f"OpenLineage: no client could be configured from {settings.source} ({_said(exc)})",
            exc,
        )
    sent = 0
    failure: Exception | None = None
    try:
        for event in events:
            client.emit(event)
            sent += 1
    except Exception as exc:
        failure = exc
    finally:
        try:
            client.close()
        except Exception:
            log.debug("OpenLineage: closing the client failed", exc_info=True)
    outcome = LineageOutcome(sent, len(events), target)
    if failure is not None:
        return _warn(
            outcome,
            f"OpenLineage: sending the events of run {doc.run.id} to {target} failed after "
            f"{sent} of {len(events)} ({_said(failure)})",
            failure,
        )
    log.debug("OpenLineage: sent %d events of run %s to %s", sent, doc.run.id, target)
    return outcome


def _client(settings: LineageSettings) -> OpenLineageClient:
    """A client for ``settings``: an HTTP transport to its URL, or the client's own
    configuration (which must name a transport)."""
    from openlineage.client import OpenLineageClient

    if settings.url:
        from openlineage.client.transport.http import HttpConfig, HttpTransport

        config: dict[str, Any] = {"url": settings.url, "endpoint": settings.endpoint}
        if settings.api_key:
            config["auth"] = {"type": "api_key", "apiKey": settings.api_key}
        return OpenLineageClient(transport=HttpTransport(HttpConfig.from_dict(config)))
    if settings.config_file:  # the file the decision was made on, whatever the process has
        client = OpenLineageClient(config=_yaml_file(settings.config_file))
    else:
        client = OpenLineageClient()
    kind = str(getattr(client.transport, "kind", ""))
    if kind in _NOT_A_DESTINATION:
        raise ValueError(f"it names no transport (the client fell back to its {kind} transport)")
    return client


def _yaml_file(path: str) -> dict[str, Any]:
    """The client configuration in ``path`` (the client itself would ignore a file it cannot
    read and fall back to another transport without a word)."""
    yaml = importlib.import_module("yaml")  # the client's own dependency
    with Path(path).open(encoding="utf-8") as file:
        content = yaml.safe_load(file)
    if not isinstance(content, dict):
        raise ValueError(f"{path} is not a YAML mapping of OpenLineage settings")
    return content


def _warn(
    outcome: LineageOutcome, problem: str, exc: BaseException | None = None
) -> LineageOutcome:
    message = f"{problem}; the run itself is not affected"
    log.warning(message)
    if exc is not None:
        log.debug("OpenLineage: the problem in detail", exc_info=exc)
    return LineageOutcome(outcome.sent, outcome.total, outcome.target, message)


def _said(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    if len(text) > 300:
        text = text[:297] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
