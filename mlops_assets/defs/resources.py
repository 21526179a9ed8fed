"""Resources shared by every domain: the workspace (paths + dataset spec)."""

import dagster as dg
from pydantic import Field

from mlops_assets.notifications import Notification, Notifier
from mlops_assets.registry import ModelRegistry
from mlops_assets.spec import DatasetSpec, load_spec
from mlops_assets.workspace import Workspace


class WorkspaceResource(dg.ConfigurableResource):
    """The workspace root folder and the dataset spec the pipeline serves."""

    root: str
    spec: str = "sample"
    database_url: str | None = Field(
        default=None,
        description="the state database's SQLAlchemy URL (MLOPS_DATABASE_URL, passed in as an "
        "EnvVar: it may carry a password); unset: SQLite below the root",
    )

    storage_root: str | None = Field(
        default=None,
        description="shared storage every worker reaches (MLOPS_STORAGE_ROOT: a path or an "
        "fsspec URL such as s3://bucket/prefix): the data tables, the model artifacts, the "
        "landing zone and the quarantine live below it; unset: below the root",
    )

    def workspace(self) -> Workspace:
        # a Secret made with `kubectl create secret --from-file` keeps the file's final newline
        return Workspace(
            self.root, (self.database_url or "").strip() or None, self.storage_root or None
        )

    def dataset(self) -> DatasetSpec:
        return load_spec(self.spec)

    def registry(self) -> ModelRegistry:
        """The model registry (one place resolves "the approved model of region R")."""
        return ModelRegistry.for_workspace(self.workspace())


class NotifierResource(dg.ConfigurableResource):
    """Where notifications go: the feed in the workspace's state database, plus a webhook
    when ``MLOPS_WEBHOOK_URL`` is set (passed in as an ``EnvVar``, never written in config)."""

    workspace: WorkspaceResource
    webhook_url: str | None = None
    ui_url: str = Field(
        default="http://127.0.0.1:3000",
        description="the Dagster UI's address, for links to runs in notifications (`make "
        "dev` serves it here; set MLOPS_UI_URL for a deployment elsewhere)",
    )

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        """Refuse a URL that is not http(s) when a run or sensor starts, not at its first
        notification (the message names the setting, never the secret URL)."""
        self.notifier()

    def notifier(self) -> Notifier:
        return Notifier.for_workspace(self.workspace.workspace(), self.webhook_url)

    @staticmethod
    def feed_hint(region: str | None = None) -> str:
        """Where a person reads the feed (asset metadata shows it beside what notified)."""
        where = f" --region {region}" if region else ""
        return f"mlops-assets notifications{where} (table notifications of the state database)"

    def send(
        self,
        kind: str,
        message: str,
        region: str | None = None,
        *,
        deliver: bool = True,
        **details: object,
    ) -> bool:
        """Record (and post, unless ``deliver`` is false) one notification; delivery
        problems never raise."""
        return self.notifier().send(Notification(kind, message, region, details), deliver=deliver)

    def run_url(self, run_id: str) -> str:
        return f"{self.ui_url.rstrip('/')}/runs/{run_id}"
