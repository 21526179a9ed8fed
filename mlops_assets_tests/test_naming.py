"""Names from data become partition keys and path parts: they must come out harmless."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlops_assets.naming import (
    UnsafeNameError,
    is_safe_key,
    region_key,
    region_keys,
    require_safe_key,
    safe_file_name,
)
from mlops_assets.workspace import Workspace

FORBIDDEN_IN_KEYS = set(",'\"/\\;:*?<>| \t\r\n.%$`")


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("HB,NI", "HB_NI"),
        ("Rhein, Main", "Rhein_Main"),
        ("Süd", "Sud"),
        ("Nord", "Nord"),
        ("  Ost  ", "Ost"),
        ("Région Île-de-France", "Region_Ile-de-France"),
        ("Ñandú", "Nandu"),
        ("Region 06", "Region_06"),
        ("../etc", "etc"),
        ("a'b;DROP TABLE x", "a_b_DROP_TABLE_x"),
        ("-x-", "x"),
    ],
)
def test_region_key_examples(name: str, key: str) -> None:
    assert region_key(name) == key
    assert is_safe_key(key)


NASTY_NAMES = [
    "../etc",
    "../../etc/passwd",
    "..\\..\\windows",
    "/abs/path",
    "a'b;DROP TABLE x",
    'quo"te',
    "x`rm -rf`",
    "$(whoami)",
    "%2e%2e%2f",
    "<script>alert(1)</script>",
    "comma,separated,list",
    "tab\tinside",
    "semi;colon",
    "C:\\Windows",
    "💥",
    "💥 Nord 💥",
    "",
    "   ",
    ".",
    "..",
    "-",
    "___",
    "\x00",
    "Nord\x00",
    "Nord\x07",
    "Nord\n",
    "\nNord",
    "\u202eNord",  # right-to-left override
    "Nord\u200b",  # zero-width space
    "x" * 500,
    "Süd " * 30,
    "a" * 121,
    "b" * 120,
    "ß",
    "東京",
]


@pytest.mark.parametrize("name", NASTY_NAMES, ids=lambda n: repr(n)[:30])
def test_keys_from_nasty_names_are_safe_or_refused(name: str) -> None:
    try:
        key = region_key(name)
    except UnsafeNameError:
        return
    assert key
    assert not (set(key) & FORBIDDEN_IN_KEYS), key
    assert key.isascii() and key.isprintable()
    assert len(key) <= 64
    assert is_safe_key(key)
    assert require_safe_key(key) == key
    assert ".." not in key


@pytest.mark.parametrize(
    "name",
    ["", "   ", "\x00", "Nord\x07", "Nord\n", "\u202eNord", "x" * 500, "💥", "..", "东京"],
    ids=lambda n: repr(n)[:30],
)
def test_unusable_names_are_refused(name: str) -> None:
    with pytest.raises(UnsafeNameError):
        region_key(name)


def test_long_names_are_cut_to_a_bounded_key() -> None:
    key = region_key("Region " + "x" * 100)
    assert len(key) == 64
    assert key.startswith("Region_x")


@pytest.mark.parametrize(
    "names",
    [
        ["A,B", "A B"],
        ["Süd", "Sud"],
        ["Rhein, Main", "Rhein Main", "Rhein/Main"],
        ["HB,NI", "HB_NI"],
    ],
)
def test_two_names_with_one_key_are_refused(names: list[str]) -> None:
    with pytest.raises(UnsafeNameError) as exc:
        region_keys(names)
    assert region_key(names[0]) in str(exc.value)


def test_region_keys_maps_each_distinct_name() -> None:
    names = ["Nord", "Süd", "Rhein, Main", "HB,NI", "Süd"]
    assert region_keys(names) == {
        "Nord": "Nord",
        "Süd": "Sud",
        "Rhein, Main": "Rhein_Main",
        "HB,NI": "HB_NI",
    }


@pytest.mark.parametrize(
    "key",
    ["", "Nord\n", "Nord\r", "\nNord", "a b", "a,b", "_x", "-x", "../x", "x/y", "Süd", "x" * 65],
    ids=repr,
)
def test_unsafe_keys_read_back_are_refused(key: str) -> None:
    """Keys read back from Dagster or a cursor are checked before they become paths."""
    assert not is_safe_key(key)
    with pytest.raises(UnsafeNameError):
        require_safe_key(key)


@pytest.mark.parametrize("key", ["Nord\n", "../Nord", "a,b"], ids=repr)
def test_workspace_paths_refuse_unsafe_keys(tmp_path: Path, key: str) -> None:
    ws = Workspace(tmp_path)
    with pytest.raises(UnsafeNameError):
        ws.features_path(key)
    with pytest.raises(UnsafeNameError):
        ws.landing_dir(key)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("sales_2023.csv", "sales_2023.csv"),
        ("../../etc/passwd", "passwd"),
        ("..\\..\\evil.csv", "evil.csv"),
        ("/abs/dir/file.csv", "file.csv"),
        ("x'; DROP TABLE y; --.csv", "x_DROP_TABLE_y_--.csv"),
        (".hidden.csv", "hidden.csv"),
        ("..", "file"),
        ("", "file"),
        ("dir/", "file"),
        ("💥.csv", "_.csv"),
    ],
)
def test_safe_file_name_strips_path_parts(name: str, expected: str) -> None:
    assert safe_file_name(name) == expected


@pytest.mark.parametrize("name", NASTY_NAMES + ["a" * 500 + ".csv"], ids=lambda n: repr(n)[:30])
def test_safe_file_name_is_always_one_harmless_path_part(name: str) -> None:
    cleaned = safe_file_name(name)
    assert cleaned
    assert len(cleaned) <= 100
    assert not cleaned.startswith(".")
    assert Path(cleaned).name == cleaned
    assert all(ch.isascii() and (ch.isalnum() or ch in "._-") for ch in cleaned)
