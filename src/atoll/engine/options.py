"""Table options beyond keys and indexes: kept and described back, or refused.

Theory of operation: every CreateTable/UpdateTable member of DynamoDB's service model is
either kept in the table definition and described back the way DynamoDB describes it,
or refused with a ValidationException that says why. None is accepted and dropped
(tests/integration/test_table_options.py walks botocore's model to hold that).

Kept (in `TableDef.options`, a JSON-ready dict that replicates with the definition):
- TableClass -> TableClassSummary {TableClass, LastUpdateDateTime once changed}. A cost
  tier in DynamoDB; Atoll stores every table alike, so the class is a label.
- OnDemandThroughput (on PAY_PER_REQUEST tables) -> OnDemandThroughput, the unset side
  as -1 (no maximum). WarmThroughput -> WarmThroughput {..., Status}. Atoll throttles
  nothing: like ProvisionedThroughput, these are described, not enforced.
- GlobalTableSettingsReplicationMode ENABLED: what Atoll does (a table's settings
  replicate to every region). DisassociationProtectionEnabled: kept; no region can be
  disassociated from an Atoll table anyway. MultiRegionConsistency EVENTUAL: what Atoll
  does; described on every table of a cluster.
- SSESpecification without a KMS key (Enabled false or absent): DynamoDB's default,
  which DescribeTable does not describe; so neither does Atoll.
StreamSpecification is not an option here: streams are built (atoll.engine.streams,
validated and described by the table definition).
Refused: SSE with AWS KMS (Atoll does not encrypt data at rest), resource policies (Atoll's own keys and roles decide access), vector indexes, creating a
table from a global table source, settings modes other than ENABLED, strong
multi-region consistency, witnesses, and any ReplicaUpdates entry (globaltables.py):
every Atoll table lives in every region of its cluster.
"""

from __future__ import annotations

from typing import Any

from atoll.errors import ValidationError

_INVALID = "One or more parameter values were invalid: "
NO_MAXIMUM = -1

# Members refused wherever they appear, with the reason.
_REFUSED: dict[str, str] = {
    "ResourcePolicy": "Atoll does not support resource-based policies (ResourcePolicy): "
                      "access is decided by Atoll's access keys and roles",
    "VectorIndexes": "Atoll does not support vector indexes (VectorIndexes)",
    "VectorIndexUpdates": "Atoll does not support vector indexes (VectorIndexUpdates)",
    "GlobalTableSourceArn": "Atoll does not create tables from a global table source "
                            "(GlobalTableSourceArn): every Atoll table already lives in every "
                            "region of its cluster",
    "GlobalTableWitnessUpdates": "Atoll does not support global table witnesses "
                                 "(GlobalTableWitnessUpdates)",
}


def refuse_unsupported(request: dict[str, Any]) -> None:
    """ValidationError for the first member Atoll refuses whatever its value."""
    for member, reason in _REFUSED.items():
        if request.get(member) is not None:
            raise ValidationError(_INVALID + reason)


def check_sse(spec: dict[str, Any] | None, member: str = "SSESpecification") -> None:
    """Only DynamoDB's default (no KMS key) is accepted: Atoll does not encrypt at rest."""
    if spec is None:
        return
    if spec.get("Enabled") or spec.get("SSEType") is not None \
            or spec.get("KMSMasterKeyId") is not None:
        raise ValidationError(
            _INVALID + f"Atoll does not encrypt table data at rest with AWS KMS keys: {member} "
            "may only have Enabled set to false (or be omitted)")


def _check_settings_mode(request: dict[str, Any]) -> str | None:
    mode = request.get("GlobalTableSettingsReplicationMode")
    if mode is not None and mode != "ENABLED":
        raise ValidationError(
            _INVALID + f"GlobalTableSettingsReplicationMode {mode} is not supported: an Atoll "
            "table's settings always replicate to every region (ENABLED)")
    return mode


def _check_consistency(request: dict[str, Any]) -> str | None:
    consistency = request.get("MultiRegionConsistency")
    if consistency is not None and consistency != "EVENTUAL":
        raise ValidationError(
            _INVALID + f"MultiRegionConsistency {consistency} is not supported: Atoll "
            "replicates between regions asynchronously (EVENTUAL)")
    return consistency


def on_demand_throughput(spec: dict[str, Any], billing_mode: str, what: str = "table"
                         ) -> dict[str, int]:
    """An OnDemandThroughput member, validated, with an unset side as -1 (no maximum)."""
    if billing_mode != "PAY_PER_REQUEST":
        raise ValidationError(_INVALID + f"OnDemandThroughput for {what} can only be "
                              "specified when BillingMode is PAY_PER_REQUEST")
    read, write = spec.get("MaxReadRequestUnits"), spec.get("MaxWriteRequestUnits")
    if read is None and write is None:
        raise ValidationError(_INVALID + "OnDemandThroughput must specify "
                              "MaxReadRequestUnits, MaxWriteRequestUnits, or both")
    for name, value in (("MaxReadRequestUnits", read), ("MaxWriteRequestUnits", write)):
        if value is not None and value != NO_MAXIMUM and value < 1:
            raise ValidationError(_INVALID + f"OnDemandThroughput {name} must be at least 1, "
                                  f"or -1 for no maximum; got {value}")
    return {"MaxReadRequestUnits": int(read) if read is not None else NO_MAXIMUM,
            "MaxWriteRequestUnits": int(write) if write is not None else NO_MAXIMUM}


def warm_throughput(spec: dict[str, Any], previous: dict[str, int] | None = None
                    ) -> dict[str, int]:
    read, write = spec.get("ReadUnitsPerSecond"), spec.get("WriteUnitsPerSecond")
    if read is None and write is None:
        raise ValidationError(_INVALID + "WarmThroughput must specify ReadUnitsPerSecond, "
                              "WriteUnitsPerSecond, or both")
    warm = dict(previous or {})
    for name, value in (("ReadUnitsPerSecond", read), ("WriteUnitsPerSecond", write)):
        if value is None:
            continue
        if value < 1:
            raise ValidationError(_INVALID + f"WarmThroughput {name} must be at least 1; "
                                  f"got {value}")
        warm[name] = int(value)
    return warm


# --- tables ------------------------------------------------------------------------------

def parse_create(request: dict[str, Any], billing_mode: str) -> dict[str, Any]:
    """The options a CreateTable keeps; ValidationError for one Atoll refuses."""
    refuse_unsupported(request)
    check_sse(request.get("SSESpecification"))
    options: dict[str, Any] = {}
    if request.get("TableClass") is not None:
        options["TableClass"] = request["TableClass"]
    if request.get("OnDemandThroughput") is not None:
        options["OnDemandThroughput"] = on_demand_throughput(request["OnDemandThroughput"],
                                                             billing_mode)
    if request.get("WarmThroughput") is not None:
        options["WarmThroughput"] = warm_throughput(request["WarmThroughput"])
    mode = _check_settings_mode(request)
    if mode is not None:
        options["GlobalTableSettingsReplicationMode"] = mode
    return options


UPDATE_MEMBERS = ("TableClass", "OnDemandThroughput", "WarmThroughput",
                  "GlobalTableSettingsReplicationMode", "MultiRegionConsistency",
                  "DisassociationProtectionEnabled")


def apply_update(options: dict[str, Any], request: dict[str, Any], billing_mode: str,
                 now_s: float) -> dict[str, Any]:
    """The options after an UpdateTable (on the billing mode it leaves the table in)."""
    refuse_unsupported(request)
    check_sse(request.get("SSESpecification"))
    updated = dict(options)
    table_class = request.get("TableClass")
    if table_class is not None and table_class != options.get("TableClass", "STANDARD"):
        updated["TableClass"] = table_class
        updated["TableClassUpdatedAt"] = now_s
    elif table_class is not None:
        updated.setdefault("TableClass", table_class)
    if billing_mode != "PAY_PER_REQUEST":
        updated.pop("OnDemandThroughput", None)  # a maximum of on-demand tables only
    if request.get("OnDemandThroughput") is not None:
        given = on_demand_throughput(request["OnDemandThroughput"], billing_mode)
        current = updated.get("OnDemandThroughput") or {}
        updated["OnDemandThroughput"] = {
            k: v if request["OnDemandThroughput"].get(k) is not None else current.get(k, v)
            for k, v in given.items()}
    if request.get("WarmThroughput") is not None:
        updated["WarmThroughput"] = warm_throughput(request["WarmThroughput"],
                                                    updated.get("WarmThroughput"))
    mode = _check_settings_mode(request)
    if mode is not None:
        updated["GlobalTableSettingsReplicationMode"] = mode
    consistency = _check_consistency(request)
    if consistency is not None:
        updated["MultiRegionConsistency"] = consistency
    if request.get("DisassociationProtectionEnabled") is not None:
        updated["DisassociationProtectionEnabled"] = bool(
            request["DisassociationProtectionEnabled"])
    return updated


def describe(options: dict[str, Any], description: dict[str, Any], global_table: bool) -> None:
    """Add the kept options to a DescribeTable answer, as DynamoDB describes them."""
    if "TableClass" in options:
        summary: dict[str, Any] = {"TableClass": options["TableClass"]}
        if "TableClassUpdatedAt" in options:
            summary["LastUpdateDateTime"] = options["TableClassUpdatedAt"]
        description["TableClassSummary"] = summary
    if "OnDemandThroughput" in options:
        description["OnDemandThroughput"] = dict(options["OnDemandThroughput"])
    if "WarmThroughput" in options:
        description["WarmThroughput"] = {**options["WarmThroughput"], "Status": "ACTIVE"}
    if "GlobalTableSettingsReplicationMode" in options:
        description["GlobalTableSettingsReplicationMode"] = \
            options["GlobalTableSettingsReplicationMode"]
    if "DisassociationProtectionEnabled" in options:
        description["DisassociationProtectionEnabled"] = \
            options["DisassociationProtectionEnabled"]
    if global_table or "MultiRegionConsistency" in options:
        description["MultiRegionConsistency"] = options.get("MultiRegionConsistency", "EVENTUAL")


# --- global secondary indexes -----------------------------------------------------------

def index_options(spec: dict[str, Any], billing_mode: str, name: str,
                  previous: dict[str, Any] | None = None) -> dict[str, Any]:
    """OnDemandThroughput and WarmThroughput of a GSI entry (Create or Update)."""
    options = dict(previous or {})
    if spec.get("OnDemandThroughput") is not None:
        options["OnDemandThroughput"] = on_demand_throughput(
            spec["OnDemandThroughput"], billing_mode, f"index {name}")
    if spec.get("WarmThroughput") is not None:
        options["WarmThroughput"] = warm_throughput(spec["WarmThroughput"],
                                                    options.get("WarmThroughput"))
    return options


def describe_index(options: dict[str, Any], description: dict[str, Any], status: str) -> None:
    if "OnDemandThroughput" in options:
        description["OnDemandThroughput"] = dict(options["OnDemandThroughput"])
    if "WarmThroughput" in options:
        description["WarmThroughput"] = {**options["WarmThroughput"], "Status": status}
