"""Grok pattern libraries: pygrok's pattern files and the user's folders, each read once per process.

A pattern file holds one `NAME regex` definition a line (blank lines and `#` comments skipped), as in
Logstash: the name is letters, digits and `_`, the regex is the rest of the line after the blank(s) that
follow it. Files of a folder are read in name order and a later definition of a name replaces an earlier
one; folders given later replace earlier ones, and pygrok's own library comes first of all.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping, Sequence
from pathlib import Path

from loglake.schemas.errors import ConfigError

__all__ = ["DEFAULT_PATTERN_DIR", "read_pattern_dir", "load_library"]


def _pygrok_patterns() -> Path:
    spec = importlib.util.find_spec("pygrok")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the 'pygrok' package is needed for its grok pattern library; pip install pygrok")
    return Path(next(iter(spec.submodule_search_locations))) / "patterns"


DEFAULT_PATTERN_DIR = _pygrok_patterns()
"""pygrok's pattern library (Logstash's legacy, non-ECS patterns): `COMBINEDAPACHELOG`, `IPORHOST`, …"""

_Signature = tuple[str, tuple[tuple[str, int, int], ...]]
_cache: dict[_Signature, dict[str, str]] = {}
"""Definitions per folder, keyed by the folder and the name, mtime and size of each file in it."""


def _parse_file(path: Path) -> dict[str, str]:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"pattern file '{path}' is not UTF-8 text (byte {exc.start})") from None
    found: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.lstrip()
        if not stripped or stripped.startswith("#"):
            continue
        parts = stripped.split(maxsplit=1)
        name = parts[0]
        if len(parts) < 2 or not (name.isascii() and name.replace("_", "a").isalnum()):
            raise ConfigError(f"{path}:{number}: expected 'NAME regex' with NAME of letters, digits and _, got {line.strip()!r}")
        found[name] = stripped[len(name):].lstrip()
    return found


def read_pattern_dir(folder: Path) -> dict[str, str]:
    """The definitions in every file of `folder` (not hidden ones), read once while the files stay unchanged."""
    if not folder.is_dir():
        raise ConfigError(f"pattern folder '{folder}' does not exist or is not a folder")
    files = sorted(path for path in folder.iterdir() if path.is_file() and not path.name.startswith("."))
    stats = [(path, path.stat()) for path in files]
    key = (str(folder), tuple((path.name, stat.st_mtime_ns, stat.st_size) for path, stat in stats))
    found = _cache.get(key)
    if found is None:
        found = {}
        for path in files:
            found.update(_parse_file(path))
        _cache[key] = found
    return found


def load_library(folders: Sequence[Path] = (), definitions: Mapping[str, str] | None = None) -> dict[str, str]:
    """pygrok's patterns, then each folder's, then `definitions`: a later definition of a name wins.

    Raises:
        ConfigError: a folder is missing or holds a malformed line (`field` is `pattern_dirs.<index>`).
    """
    library = dict(read_pattern_dir(DEFAULT_PATTERN_DIR))
    for index, folder in enumerate(folders):
        try:
            library.update(read_pattern_dir(folder))
        except ConfigError as exc:
            raise ConfigError(exc.message, field=f"pattern_dirs.{index}") from None
    library.update(definitions or {})
    return library
