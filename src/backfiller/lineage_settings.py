"""Whether a run's OpenLineage events are sent, and where: the ``[lineage]`` section and the
standard OpenLineage variables of the environment a project is loaded with.

Emission is on when one of these is present (the first wins):

1. ``[lineage] url`` (or its environment override, ``BACKFILLER_LINEAGE_URL``): events are
   posted to ``<url>/<endpoint>``;
2. ``OPENLINEAGE_CONFIG`` or an ``OPENLINEAGE__TRANSPORT__*`` variable: the client's own
   configuration decides the transport (file, Kafka, HTTP, ...);
3. ``OPENLINEAGE_URL``: events are posted to ``<url>/<endpoint>``.

``OPENLINEAGE_DISABLED=true`` turns it off whatever else is set, as it does for every OpenLineage
integration. ``OPENLINEAGE_API_KEY`` authenticates an HTTP transport, ``OPENLINEAGE_ENDPOINT``
is its path unless ``[lineage] endpoint`` says otherwise, and ``OPENLINEAGE_NAMESPACE`` names
the namespace unless ``[lineage] namespace`` does. Deciding this imports nothing of the client.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["DEFAULT_ENDPOINT", "DEFAULT_NAMESPACE", "LineageSettings", "lineage_settings"]

DEFAULT_ENDPOINT = "api/v1/lineage"
DEFAULT_NAMESPACE = "backfiller"
_TRANSPORT_VARIABLES = "OPENLINEAGE__TRANSPORT__"


@dataclass(frozen=True)
class LineageSettings:
    """Where a run's events go. ``source`` says what turned emission on, in words (empty:
    it is off); ``url`` empty with a source: the client's own configuration decides, read from
    ``config_file`` when ``OPENLINEAGE_CONFIG`` names one, else from the process environment."""

    source: str = ""
    url: str = ""
    config_file: str = ""
    endpoint: str = DEFAULT_ENDPOINT
    api_key: str | None = field(default=None, repr=False)
    namespace: str = DEFAULT_NAMESPACE

    @property
    def enabled(self) -> bool:
        return bool(self.source)

    @property
    def target(self) -> str:
        """Where the events go, in words (no secret in it)."""
        if self.url:
            return f"{self.url.rstrip('/')}/{self.endpoint.lstrip('/')}"
        if self.config_file:
            return f"the transport of {self.config_file}"
        return "the transport of the OpenLineage configuration"


def lineage_settings(
    section: Mapping[str, Any], environ: Mapping[str, str], *, url_origin: str
) -> LineageSettings:
    """The settings of ``[lineage]`` (checked values) with the standard variables of
    ``environ``; ``url_origin`` says where ``[lineage] url`` came from ("in backfiller.toml")."""
    if environ.get("OPENLINEAGE_DISABLED", "").strip().lower() == "true":
        return LineageSettings()
    namespace = str(section.get("namespace") or "") or environ.get("OPENLINEAGE_NAMESPACE", "")
    endpoint = str(section.get("endpoint") or "") or environ.get("OPENLINEAGE_ENDPOINT", "")
    common: dict[str, Any] = {
        "namespace": namespace or DEFAULT_NAMESPACE,
        "endpoint": endpoint or DEFAULT_ENDPOINT,
        "api_key": environ.get("OPENLINEAGE_API_KEY") or None,
    }
    url = str(section.get("url") or "")
    if url:
        return LineageSettings(source=f"[lineage] url ({url_origin})", url=url, **common)
    if environ.get("OPENLINEAGE_CONFIG"):
        return LineageSettings(
            source="$OPENLINEAGE_CONFIG", config_file=environ["OPENLINEAGE_CONFIG"], **common
        )
    dynamic = sorted(name for name in environ if name.startswith(_TRANSPORT_VARIABLES))
    if dynamic:
        return LineageSettings(source=f"${dynamic[0]}", **common)
    if environ.get("OPENLINEAGE_URL"):
        return LineageSettings(source="$OPENLINEAGE_URL", url=environ["OPENLINEAGE_URL"], **common)
    return LineageSettings()
