"""The custom ``backfiller`` run facet of the OpenLineage events: which backfiller run, evidence
document and plan an OpenLineage run stands for (and, on a partition's run, which partition).

Its JSON Schema is published as ``contracts/lineage_run_facet/lineage_run_facet.schema.json``
(generated from :class:`BackfillerRunFacet`); a facet's ``_schemaURL`` is that schema's ``$id``.
"""

from __future__ import annotations

from typing import Annotated, Final, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["FACET_NAME", "FACET_SCHEMA_URL", "BackfillerRunFacet"]

FACET_NAME: Final = "backfiller"
FACET_SCHEMA_URL: Final = "urn:backfiller:schema:lineage_run_facet:v1"


class BackfillerRunFacet(BaseModel):
    """The facet as it is sent (field names are the JSON ones; ``None`` fields are left out)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    producer: str = Field(
        alias="_producer",
        description="URI of what produced the facet",
        json_schema_extra={"format": "uri"},
    )
    schema_url: Literal["urn:backfiller:schema:lineage_run_facet:v1"] = Field(
        alias="_schemaURL",
        description="the $id of this facet's schema",
        json_schema_extra={"format": "uri"},
    )
    run_id: str = Field(alias="runId", description="the backfiller run id, as the ledger has it")
    action: str = Field(description="backfill, rerun, replay or restore")
    evidence_id: str = Field(alias="evidenceId", description="the run's evidence document")
    plan_id: str | None = Field(None, alias="planId", description="the applied plan, if any")
    operator: str = Field(description="who ran it")
    reason: str | None = Field(None, description="why, as recorded")
    asset: str | None = Field(None, description="a partition's run: its asset")
    partition_key: str | None = Field(
        None, alias="partitionKey", description="a partition's run: its partition key"
    )
    attempts: Annotated[int, Field(ge=0)] | None = Field(
        None, description="a partition's run: the attempts this run made of it"
    )
