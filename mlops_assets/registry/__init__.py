"""Per-region model versions with an approval step.

Every trained model of a region becomes a numbered version (``Nord:v1``, ``Nord:v2``, ...)
with a status. :meth:`ModelRegistry.latest_approved` is the one call that resolves "the
approved model of region R"; forecasting and monitoring use nothing else.

Statuses and transitions
------------------------
``pending_approval``  -> ``approved`` (:meth:`~ModelRegistry.approve`)
                      -> ``rejected`` (:meth:`~ModelRegistry.reject`)
``approved``          -> ``archived``, only implicitly, when another version is approved
``archived``          -> ``approved`` (:meth:`~ModelRegistry.rollback`)
``rejected``          -> nothing: a rejected version is never approved; register a new one

Retention (:meth:`ModelRegistry.prune`)
---------------------------------------
A weekly recalibration adds a version per region per week, each with its model text and
monitoring reference (megabytes on real data). ``prune`` deletes the artifacts of old
``archived`` and ``rejected`` versions beyond the newest ``keep_archived`` /
``keep_rejected``; the approved and every pending version are never pruned. The version
record (metrics, parameters, data version) and the audit log stay: a pruned version is
still listed and explained, but it can no longer be rolled back to or loaded. A ``prune``
line in the audit log (status unchanged) records who pruned it and when; it is logged
in the same transaction as the record's ``pruned_at``, before the files are deleted, and a
prune interrupted in between finishes on the region's next mutation.

At most one version of a region is approved at any time. Approving (or rolling back to)
a version archives the one approved before it, in the same step.

Approval policy (:func:`decide_status`)
---------------------------------------
* a model that fails the quality gate is registered ``rejected`` (kept for the audit trail,
  never served);
* a **recalibration** (retraining on new data with the reviewed, fixed hyper-parameters)
  that passes the gate is registered ``approved`` and serves at once - nothing a person
  has not reviewed changed; ``auto_approve_recalibration=False`` makes it wait instead;
* a **tuning** result (new hyper-parameters found by a search) that passes the gate is
  registered ``pending_approval``: a person reviews it and calls ``approve`` or ``reject``.

Storage
-------
Records, statuses and the audit log are rows of the workspace's state database (SQLite in
a local workspace, PostgreSQL in production; tables in
:mod:`mlops_assets.storage.registry_tables`): ``registry_versions`` (one row per version:
region, version, status, created_at, actor, and the record - reasons, artifact URIs and
checksums, and the caller's ``record``: training data version and date range, code
version, hyper-parameters, features, metrics, baseline metrics, run id, source) and
``registry_events``, the append-only audit log (one row per registration and status
change with ``at`` (UTC, ISO 8601), ``actor``, ``action``, ``version``, ``from_status``,
``to_status``, ``reason`` and ``seq``).

Every mutation of a region is one transaction that first locks the region's row in
``registry_regions``: concurrent threads, processes and machines never allocate the same
version number or approve two versions, and a partial unique index in the database
refuses a second approved row for a region whatever the code does. The status change and
its audit lines commit together, so every read sees one consistent state: never two
approved versions, never none while an approval replaces another. Readers take no lock.

Artifacts (the LightGBM text model and its JSON metadata) go through a
:class:`~mlops_assets.model_store.ModelStore` at ``<region>/<NNNN>/model.txt`` and
``<region>/<NNNN>/model.json``; their SHA-256 is recorded and checked on load (see
"Integrity" below). Nothing is pickled. Optionally a third,
``<region>/<NNNN>/reference.parquet``: the rows the model was fitted on, as monitoring
compares new data with them (frozen with the model, so a later correction or
recomputation of the feature table does not move the reference). Versions registered
before it was Parquet hold ``reference.csv`` instead, which is still read; versions
registered without either (older models) have none and monitoring falls back to the
feature table's rows of the training window. ``fleet_gap.csv`` (a few columns a day) holds
the region's weather gap to the fleet over the training window.

Integrity
---------
Every artifact of a version has a mandatory SHA-256 in its record: loading one whose
record has none (a record from before checksums were recorded) or whose bytes do not
match is refused with :class:`RegistryError`, never trusted. :meth:`ModelRegistry.verify`
checks every version that is not pruned (``mlops-assets registry verify``, and the
``registry_artifacts_intact`` asset check) and lists what does not match.

A registration writes the artifacts inside its transaction, then commits its rows;
killed before the commit, the transaction rolls back and leaves artifacts no committed
version owns, and possibly an unfinished write (a hidden ``*.partial.tmp``, see
:func:`~mlops_assets.workspace.is_temp_name`). Every mutation, under the region's lock,
first sweeps them (:meth:`ModelRegistry.sweep`; ``verify`` sweeps too). Version numbers
come from the committed rows (the highest plus one), so the number of a registration
killed before its commit was never taken and the next registration reuses it: numbers
stay dense, and the audit log never names a version that does not exist.

Workspaces from before the database kept the registry in files
(``registry/<region>/events.jsonl`` and ``versions/<NNNN>.json``); ``for_workspace``
imports them once (``mlops-assets migrate-state`` does it explicitly).
"""

from mlops_assets.registry.model_registry import ModelRegistry
from mlops_assets.registry.versions import (
    APPROVED,
    ARCHIVED,
    ARTIFACT_FILES,
    CHECKSUM_MISMATCH,
    FLEET_GAP_FILE,
    META_FILE,
    MISSING_ARTIFACT,
    MISSING_CHECKSUM,
    MISSING_RECORD,
    MODEL_FILE,
    OPTIONAL_ARTIFACT_FILES,
    PENDING,
    PROBLEM_KINDS,
    RECALIBRATION,
    REFERENCE_CSV_FILE,
    REFERENCE_FILE,
    REGISTRABLE,
    REJECTED,
    SOURCES,
    STATUSES,
    TUNING,
    IntegrityProblem,
    IntegrityReport,
    ModelVersion,
    PrunedVersion,
    RegistryError,
    artifact_key,
    decide_status,
)

__all__ = [
    "APPROVED", "ARCHIVED", "ARTIFACT_FILES", "CHECKSUM_MISMATCH", "FLEET_GAP_FILE",
    "META_FILE", "MISSING_ARTIFACT", "MISSING_CHECKSUM", "MISSING_RECORD", "MODEL_FILE",
    "OPTIONAL_ARTIFACT_FILES", "PENDING", "PROBLEM_KINDS", "RECALIBRATION",
    "REFERENCE_CSV_FILE", "REFERENCE_FILE", "REGISTRABLE", "REJECTED", "SOURCES", "STATUSES",
    "TUNING", "IntegrityProblem", "IntegrityReport", "ModelRegistry", "ModelVersion",
    "PrunedVersion", "RegistryError", "artifact_key", "decide_status",
]  # fmt: skip
