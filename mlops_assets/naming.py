"""Safe names for things that come from data: region partition keys and file names.

Names in data files are untrusted. They become Dagster partition keys (where commas break
UI backfills, dagster #32183) and path components, so they are mapped onto a small
alphabet here, and nowhere else, and the display name is kept alongside.
"""

from __future__ import annotations

import re
import unicodedata

_KEY_CHARS = re.compile(r"[^A-Za-z0-9_-]+")
_SAFE_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
MAX_DISPLAY_NAME = 120


class UnsafeNameError(ValueError):
    """A name from data cannot be used (empty, too long, control characters...)."""


def region_key(display_name: str) -> str:
    """Map a region's display name onto a partition key.

    ASCII letters, digits, ``_`` and ``-`` only; accents are transliterated
    (``"Süd"`` -> ``"Sud"``) and every other run of characters becomes one ``_``
    (``"HB,NI"`` -> ``"HB_NI"``, ``"Rhein, Main"`` -> ``"Rhein_Main"``).
    """
    check_display_name(display_name)
    ascii_name = (
        unicodedata.normalize("NFKD", display_name).encode("ascii", "ignore").decode("ascii")
    )
    key = _KEY_CHARS.sub("_", ascii_name).strip("_-")[:64].rstrip("_-")
    if not key:
        raise UnsafeNameError(f"region name {display_name!r} has no letters or digits")
    return key


def check_display_name(name: str) -> str:
    """Reject names that are empty, very long or hold control characters."""
    if not isinstance(name, str) or not name.strip():
        raise UnsafeNameError(f"empty name: {name!r}")
    if len(name) > MAX_DISPLAY_NAME:
        raise UnsafeNameError(f"name longer than {MAX_DISPLAY_NAME} characters: {name[:40]!r}...")
    if any(unicodedata.category(ch).startswith("C") for ch in name):
        raise UnsafeNameError(f"name holds control characters: {name!r}")
    return name


def is_safe_key(key: str) -> bool:
    """Whether ``key`` is a key this module could have produced (for keys read back)."""
    # fullmatch: with match, "$" also matches before a trailing newline ("Nord\n")
    return bool(_SAFE_KEY.fullmatch(key))


def require_safe_key(key: str) -> str:
    """Return ``key`` if it is safe to use in a path or SQL literal; raise otherwise."""
    if not is_safe_key(key):
        raise UnsafeNameError(f"not a safe key: {key!r}")
    return key


def region_keys(display_names: list[str]) -> dict[str, str]:
    """Display name -> key for many regions; raises if two names map onto one key."""
    keys: dict[str, str] = {}
    seen: dict[str, str] = {}
    for name in sorted(set(display_names)):
        key = region_key(name)
        if key in seen:
            raise UnsafeNameError(
                f"regions {seen[key]!r} and {name!r} both map onto the key {key!r}; rename one"
            )
        seen[key] = name
        keys[name] = key
    return keys


def safe_file_name(name: str) -> str:
    """A file name reduced to a harmless form, for quarantine copies (never for lookups)."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", base).lstrip(".")[:100]
    return cleaned or "file"
