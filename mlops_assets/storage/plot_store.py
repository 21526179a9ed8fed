"""A region's report plots kept in the data store, named by a digest of what they draw.

Why: the fleet's monitoring run writes every region's HTML report, and drawing its plots
is most of that work (about 1.4 s a region on rossmann-100, under cProfile). A refresh of
one region then redrew the plots of every other region as well, though nothing they draw
had changed. A plot is stored as ``monitoring/<region>/<name>.<digest>.<png|svg>``; the digest
covers the plot's inputs and the drawing code, so a plot is drawn again exactly when it
would come out different. One file a plot name is kept a region.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlops_assets.workspace import Workspace

IMAGE_SUFFIXES = (".png", ".svg")


@cache
def _drawing_code_digest() -> bytes:
    """The source of the modules that draw the plots: a changed drawing redraws them."""
    from mlops_assets import plots, reports
    from mlops_assets.charts import heatmap

    digest = hashlib.sha256()
    for module in (reports, plots, heatmap):
        digest.update(Path(module.__file__ or "").read_bytes())
    return digest.digest()


def inputs_digest(*inputs: Any) -> str:
    """A digest of a plot's inputs: data frames by their columns, dtypes and values (not
    their index), anything else by its JSON text. Equal inputs give equal digests in any
    process."""
    import pandas as pd

    digest = hashlib.sha256(_drawing_code_digest())
    for value in inputs:
        if isinstance(value, pd.DataFrame):
            digest.update(b"frame")
            digest.update(json.dumps([[str(c), str(t)] for c, t in value.dtypes.items()]).encode())
            try:
                hashed = pd.util.hash_pandas_object(value, index=False).to_numpy().tobytes()
            except TypeError:  # cells pandas cannot hash (lists, dicts): their JSON text
                hashed = value.to_json(orient="values", date_format="iso").encode()
            digest.update(hashed)
        else:
            digest.update(b"value")
            digest.update(json.dumps(value, sort_keys=True, default=str).encode())
    return digest.hexdigest()[:16]


class RegionPlotStore:
    """The stored plots of one region (see the module docstring)."""

    def __init__(self, ws: Workspace, region: str) -> None:
        self.region = region
        self.data = ws.data
        self.folder = ws.monitoring_folder(region)
        self.key = lambda name: ws.monitoring_key(region, name)
        self.given: dict[str, str] = {}  # name -> the image this store last gave out for it

    def image(
        self,
        name: str,
        inputs: tuple[Any, ...],
        draw: Callable[[], str],
        *,
        fmt: str = "png",
        redraw: bool = False,
    ) -> str:
        """The plot ``name`` of ``inputs`` as a base64 image in format ``fmt`` (``png`` or
        ``svg``, what ``draw`` returns): the stored one when the inputs and the drawing
        code are those it was drawn from, else ``draw()``, stored in place of the region's
        previous ``name`` plot (of either format). ``redraw``: draw and store it whatever
        is stored. The format is declared, not guessed, so that finding a stored plot is
        one read (a request on object storage)."""
        from mlops_assets.plots import image_format

        if "." in name or "/" in name:
            raise ValueError(f"plot name {name!r}: no dots or slashes")
        if f".{fmt}" not in IMAGE_SUFFIXES:
            raise ValueError(f"plot format {fmt!r}: expected one of {IMAGE_SUFFIXES}")
        key = self.key(f"{name}.{inputs_digest(*inputs)}.{fmt}")
        if not redraw:
            try:
                image = base64.b64encode(self.data.read_bytes(key)).decode("ascii")
            except FileNotFoundError:
                pass  # not drawn for these inputs yet, or replaced meanwhile
            else:
                self.given[name] = image
                return image
        drawn = draw()
        if image_format(drawn) != fmt:
            raise ValueError(f"plot {name!r} was drawn as {image_format(drawn)}, not {fmt}")
        self.data.write_bytes(key, base64.b64decode(drawn))
        for old in self.data.keys(self.folder, suffix=""):  # one listing, either format
            file = old.rsplit("/", 1)[-1]
            if old != key and file.startswith(f"{name}.") and file.endswith(IMAGE_SUFFIXES):
                self.data.delete(old)
        self.given[name] = drawn
        return drawn
