"""One storage root, local folder or fsspec URL: what the data store and the landing zone
share (``storage.data_store``, ``storage.landing_zone``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem


class StorageRoot:
    """A root folder on this machine (``local_root``) or below an fsspec URL such as
    ``s3://bucket/prefix`` (``fs`` and its path); ``url`` names it for people."""

    def __init__(self, root: str | Path) -> None:
        from mlops_assets.storage.object_store import is_local_url

        text = str(root)
        self.fs: AbstractFileSystem | None = None
        if is_local_url(text):
            self.local_root: Path | None = Path(text.removeprefix("file://")).resolve()
            self.url = str(self.local_root)
        else:
            from fsspec.core import url_to_fs

            self.local_root = None
            self.url = text.rstrip("/")
            self.fs, root_path = url_to_fs(self.url)
            self._root_path = root_path.rstrip("/")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"

    @property
    def is_local(self) -> bool:
        return self.local_root is not None
