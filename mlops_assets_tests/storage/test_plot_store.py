"""Report plots kept by a digest of what they draw: drawn again exactly when they would
come out different."""

import base64
from pathlib import Path

import pandas as pd
import pytest

from mlops_assets.storage.plot_store import RegionPlotStore, inputs_digest
from mlops_assets.workspace import Workspace


def _png(label: str) -> str:
    return base64.b64encode(b"\x89PNG\r\n\x1a\n" + f"png of {label}".encode()).decode()


def _svg(label: str) -> str:
    return base64.b64encode(f"<svg>{label}</svg>".encode()).decode()


class Drawer:
    def __init__(self, image=_png) -> None:
        self.calls = 0
        self.image = image

    def __call__(self, label: str):
        def draw() -> str:
            self.calls += 1
            return self.image(label)

        return draw


def test_a_plot_is_drawn_once_for_the_same_inputs_and_again_when_they_change(tmp_path: Path):
    ws = Workspace(tmp_path / "ws")
    frame = pd.DataFrame({"week": ["2024-01-01", "2024-01-08"], "value": [1.0, 2.0]})
    draw = Drawer()

    first = RegionPlotStore(ws, "Nord").image("estimated", (frame, 3.5), draw("a"))
    # another store (another run), the same rows under another index: reused
    again = RegionPlotStore(ws, "Nord").image("estimated", (frame.set_axis([7, 9]), 3.5), draw("b"))
    assert first == again == _png("a") and draw.calls == 1

    changed = frame.assign(value=[1.0, 2.5])
    assert RegionPlotStore(ws, "Nord").image("estimated", (changed, 3.5), draw("c")) == _png("c")
    assert RegionPlotStore(ws, "Nord").image("estimated", (changed, 4.0), draw("d")) == _png("d")
    assert draw.calls == 3
    # one file a plot name; other names and other regions keep theirs
    RegionPlotStore(ws, "Nord").image("attribution", ({"promo": 0.4},), draw("e"))
    RegionPlotStore(ws, "Ost").image("estimated", (frame, 3.5), draw("f"))
    names = sorted(p.name.split(".")[0] for p in (ws.root / "monitoring" / "Nord").iterdir())
    assert names == ["attribution", "estimated"]
    assert draw.calls == 5


def test_redraw_replaces_the_stored_plot(tmp_path: Path):
    ws = Workspace(tmp_path / "ws")
    store = RegionPlotStore(ws, "Nord")
    store.image("heatmap", ("t",), Drawer()("old"))
    assert store.image("heatmap", ("t",), Drawer()("new"), redraw=True) == _png("new")
    assert store.image("heatmap", ("t",), Drawer()("unused")) == _png("new")


def test_a_plot_drawn_in_another_format_replaces_the_old_file(tmp_path: Path):
    """The drift heatmap was a PNG and is an SVG: a region's old file goes when it is drawn."""
    ws = Workspace(tmp_path / "ws")
    store = RegionPlotStore(ws, "Nord")
    store.image("heatmap", ("t",), Drawer()("old"))
    new = store.image("heatmap", ("t",), Drawer(_svg)("new"), fmt="svg", redraw=True)
    assert new == _svg("new")
    files = [p.name for p in (ws.root / "monitoring" / "Nord").iterdir()]
    assert len(files) == 1 and files[0].startswith("heatmap.") and files[0].endswith(".svg")
    unused = Drawer(_svg)
    assert RegionPlotStore(ws, "Nord").image("heatmap", ("t",), unused("x"), fmt="svg") == new
    assert unused.calls == 0


def test_a_stored_plot_is_found_with_one_read_of_its_declared_format(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    ws = Workspace(tmp_path / "ws")
    RegionPlotStore(ws, "Nord").image("heatmap", ("t",), Drawer(_svg)("a"), fmt="svg")
    reads: list[str] = []
    store_type = type(ws.data)
    read_bytes = store_type.read_bytes

    def counted(self, key: str) -> bytes:
        reads.append(key)
        return read_bytes(self, key)

    monkeypatch.setattr(store_type, "read_bytes", counted)
    drawer = Drawer(_svg)
    assert RegionPlotStore(ws, "Nord").image("heatmap", ("t",), drawer("b"), fmt="svg") == _svg("a")
    assert len(reads) == 1 and reads[0].endswith(".svg") and drawer.calls == 0


def test_a_plot_drawn_in_a_format_other_than_declared_is_refused(tmp_path: Path):
    store = RegionPlotStore(Workspace(tmp_path / "ws"), "Nord")
    with pytest.raises(ValueError, match="drawn as png, not svg"):
        store.image("heatmap", ("t",), Drawer()("a"), fmt="svg")
    with pytest.raises(ValueError, match="plot format 'gif'"):
        store.image("heatmap", ("t",), Drawer()("a"), fmt="gif")
    assert not (tmp_path / "ws" / "monitoring" / "Nord").exists() or not any(
        (tmp_path / "ws" / "monitoring" / "Nord").iterdir()
    )


def test_digests_tell_dtypes_and_values_apart():
    ints = pd.DataFrame({"x": [1, 2]})
    assert inputs_digest(ints) == inputs_digest(ints.copy())
    assert inputs_digest(ints) != inputs_digest(ints.astype(float))
    assert inputs_digest(ints) != inputs_digest(ints.rename(columns={"x": "y"}))
    assert inputs_digest({"a": 1, "b": 2}) == inputs_digest({"b": 2, "a": 1})
    assert inputs_digest(None, 1) != inputs_digest(1, None)
    lists = pd.DataFrame({"x": [[1, 2], [3]]})  # cells pandas cannot hash
    assert inputs_digest(lists) == inputs_digest(lists.copy())
    assert inputs_digest(lists) != inputs_digest(pd.DataFrame({"x": [[1, 2], [4]]}))


@pytest.mark.parametrize("name", ["a.b", "../x", "a/b"])
def test_a_plot_name_cannot_leave_its_region_folder(tmp_path: Path, name: str):
    with pytest.raises(ValueError, match="no dots or slashes"):
        RegionPlotStore(Workspace(tmp_path / "ws"), "Nord").image(name, (), Drawer()("x"))
