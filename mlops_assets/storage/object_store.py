"""Model artifacts in object storage (``s3://``, ``gs://``, ``memory://``, any fsspec URL),
so that every worker host reads and writes the same artifacts.

``storage_root`` (``MLOPS_STORAGE_ROOT``) names the shared root; the model store keeps its
artifacts at ``<root>/models/<region>/<NNNN>/<file>``. A plain path or ``file://`` URL
keeps using :class:`~mlops_assets.model_store.LocalModelStore` (atomic renames, temp-file
sweeps); any other protocol uses :class:`FsspecModelStore`. Credentials and endpoints come
from the filesystem's own configuration (for S3: the standard AWS variables, e.g.
``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_ENDPOINT_URL``), never from code or
the URL.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops_assets.model_store import LocalModelStore, ModelStore, check_artifact, check_key
from mlops_assets.naming import is_safe_key

if TYPE_CHECKING:
    from mlops_assets.workspace import Workspace

LOCAL_PROTOCOLS = ("file", "local")


def is_local_url(url: str) -> bool:
    """Whether ``url`` is a path on this machine (no protocol, or ``file://``)."""
    protocol, _, _ = url.partition("://")
    return "://" not in url or protocol in LOCAL_PROTOCOLS


def model_store_for(workspace: Workspace) -> ModelStore:
    """The workspace's model store: below ``storage_root`` when one is set, else the
    workspace's local ``models/`` folder."""
    root = workspace.storage_root
    if root is None:
        return LocalModelStore(workspace.models_dir)
    if is_local_url(root):
        return LocalModelStore(Path(root.removeprefix("file://")) / "models")
    return FsspecModelStore(root.rstrip("/") + "/models")


class FsspecModelStore(ModelStore):
    """Artifacts as objects below an fsspec URL (``s3://bucket/prefix/models``).

    An object store writes an object whole or not at all, so a reader never sees half an
    artifact and a killed writer leaves nothing to sweep. Listings bypass the filesystem's
    listing cache: other hosts write to the same prefix."""

    def __init__(self, url: str, **storage_options: Any) -> None:
        from fsspec.core import url_to_fs

        self.url = url.rstrip("/")
        self.fs, self.root = url_to_fs(self.url, **storage_options)
        self.root = self.root.rstrip("/")

    def __repr__(self) -> str:
        return f"FsspecModelStore({self.url!r})"

    def _path(self, key: str) -> str:
        return f"{self.root}/{check_key(key)}"

    def put(self, key: str, data: bytes) -> str:
        path = self._path(key)
        self.fs.pipe_file(path, check_artifact(key, data))
        self.fs.invalidate_cache(path)
        return self.uri(key)

    def get(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return self.fs.cat_file(path)
        except FileNotFoundError:
            raise FileNotFoundError(f"no artifact {key!r} in {self!r}") from None

    def exists(self, key: str) -> bool:
        path = self._path(key)
        self.fs.invalidate_cache(path)
        return self.fs.isfile(path)

    def delete(self, key: str) -> bool:
        if not self.exists(key):
            return False
        path = self._path(key)
        with contextlib.suppress(FileNotFoundError):  # another host deleted it meanwhile
            self.fs.rm_file(path)
        self.fs.invalidate_cache(path)
        return True

    def size(self, key: str) -> int:
        path = self._path(key)
        self.fs.invalidate_cache(path)
        try:
            return int(self.fs.size(path) or 0)
        except FileNotFoundError:
            return 0

    def uri(self, key: str) -> str:
        return self.fs.unstrip_protocol(self._path(key))

    def keys(self, prefix: str) -> list[str]:
        base = self._path(prefix)
        self.fs.invalidate_cache(base)
        try:
            found = self.fs.find(base)
        except FileNotFoundError:
            return []
        out = []
        for path in found:
            key = path.removeprefix(self.root + "/")
            with contextlib.suppress(ValueError):  # strangers are no keys
                out.append(check_key(key))
        return sorted(out)

    def folders(self) -> list[str]:
        self.fs.invalidate_cache(self.root)
        try:
            entries = self.fs.ls(self.root, detail=True)
        except FileNotFoundError:
            return []
        names = (e["name"].rstrip("/").rsplit("/", 1)[-1] for e in entries)
        kinds = (e.get("type") for e in entries)
        return sorted(
            n for n, k in zip(names, kinds, strict=True) if k == "directory" and is_safe_key(n)
        )

    def sweep_temp(self, prefix: str) -> list[str]:
        check_key(prefix)
        return []  # whole-object writes leave no partial files


def _is_dir(entry: dict[str, Any]) -> bool:
    return entry.get("type") == "directory"


def copy_artifacts(source: ModelStore, target: ModelStore) -> dict[str, int]:
    """Copy every model artifact of ``source`` to ``target`` under the same keys (moving a
    workspace's models below a new storage root); one already there with the same size is
    left alone, nothing is deleted. The registry's checksums then vouch for every byte
    (``ModelRegistry.verify``). Returns the artifacts copied and skipped."""
    copied = skipped = 0
    for folder in source.folders():
        for key in source.keys(folder):
            data = source.get(key)
            if target.size(key) == len(data):
                skipped += 1
                continue
            target.put(key, data)
            copied += 1
    return {"copied": copied, "skipped": skipped}
