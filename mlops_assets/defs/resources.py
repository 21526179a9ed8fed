"""Resources shared by every domain: the workspace (paths + dataset spec)."""

import dagster as dg

from mlops_assets.registry import ModelRegistry
from mlops_assets.spec import DatasetSpec, load_spec
from mlops_assets.workspace import Workspace


class WorkspaceResource(dg.ConfigurableResource):
    """The workspace root folder and the dataset spec the pipeline serves."""

    root: str
    spec: str = "sample"

    def workspace(self) -> Workspace:
        return Workspace(self.root)

    def dataset(self) -> DatasetSpec:
        return load_spec(self.spec)

    def registry(self) -> ModelRegistry:
        """The model registry (one place resolves "the approved model of region R")."""
        return ModelRegistry.for_workspace(self.workspace())
