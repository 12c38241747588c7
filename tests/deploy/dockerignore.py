"""Docker's .dockerignore semantics, to compute a build context without a Docker engine.

A port of what `docker build` uses (moby/patternmatcher and its ignorefile reader, the
same code in the classic builder and BuildKit):

- each line is trimmed; empty lines and lines starting with ``#`` are skipped; ``!``
  makes an exception; the pattern is cleaned like Go's ``filepath.Clean`` and a leading
  ``/`` is dropped (patterns are relative to the context root);
- ``*`` matches any run of characters but ``/``, ``?`` one character but ``/``,
  ``[...]`` a character class, ``**`` any number of directories (also none), ``\\``
  escapes the next character;
- the last pattern that matches a path decides; a pattern also matches every path below
  a directory it matches (``data`` excludes ``data/01_raw/x.parquet``).
"""

from __future__ import annotations

import os
import posixpath
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

_WILDCARDS = "*?[\\"


@dataclass(frozen=True)
class Pattern:
    """One cleaned pattern of a .dockerignore file."""

    text: str
    exclusion: bool
    regex: re.Pattern[str]

    def matches(self, path: str) -> bool:
        return self.regex.fullmatch(path) is not None

    def literal_prefix(self) -> str:
        """The pattern up to its first wildcard (used to prune the walk)."""
        cut = min((i for i, ch in enumerate(self.text) if ch in _WILDCARDS), default=None)
        return self.text if cut is None else self.text[:cut]


def _clean(pattern: str) -> str:
    cleaned = posixpath.normpath(pattern) if pattern else pattern
    if cleaned.startswith("//"):  # posixpath keeps a leading "//"; Go's Clean does not
        cleaned = "/" + cleaned.lstrip("/")
    if len(cleaned) > 1 and cleaned.startswith("/"):
        cleaned = cleaned[1:]
    return cleaned


def _stars(pattern: str, i: int) -> tuple[str, int]:
    """Regex of the ``*`` or ``**`` at ``i``, and the index of its last character."""
    n = len(pattern)
    if i + 1 >= n or pattern[i + 1] != "*":
        return "[^/]*", i
    while i + 1 < n and pattern[i + 1] == "*":  # "**", "***": any number of directories
        i += 1
    if i + 1 < n and pattern[i + 1] == "/":  # "**/" is "**"
        i += 1
    return (".*" if i + 1 >= n else "(.*/)?"), i


def _char_class(pattern: str, i: int) -> tuple[str, int]:
    """Regex of the ``[...]`` class opening at ``i``, and the index of its ``]``."""
    end = pattern.find("]", i + 1)
    if end == -1:
        raise ValueError(f"unterminated character class in pattern {pattern!r}")
    body = pattern[i + 1 : end]
    negate = body.startswith("^")
    body = re.escape(body[1:] if negate else body).replace("\\-", "-")
    return f"[{'^' if negate else ''}{body}]", end


def _regex(pattern: str) -> re.Pattern[str]:
    out: list[str] = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "*":
            part, i = _stars(pattern, i)
        elif ch == "?":
            part = "[^/]"
        elif ch == "[":
            part, i = _char_class(pattern, i)
        elif ch == "\\":
            if i + 1 >= len(pattern):
                raise ValueError(f"pattern {pattern!r} ends with an escape character")
            i += 1
            part = re.escape(pattern[i])
        else:
            part = re.escape(ch)
        out.append(part)
        i += 1
    return re.compile("".join(out))


def parse(text: str) -> list[Pattern]:
    """The patterns of a .dockerignore file, in order."""
    patterns = []
    for raw in text.removeprefix("\ufeff").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        exclusion = line.startswith("!")
        if exclusion:
            line = line[1:].strip()
            if not line:
                raise ValueError('illegal exclusion pattern: "!"')
        cleaned = _clean(line)
        patterns.append(Pattern(cleaned, exclusion, _regex(cleaned)))
    return patterns


class DockerIgnore:
    """Which paths of a build context `docker build` leaves out."""

    def __init__(self, patterns: list[Pattern]):
        self.patterns = patterns

    @classmethod
    def from_file(cls, path: Path) -> DockerIgnore:
        return cls(parse(path.read_text(encoding="utf-8")))

    def excluded(self, path: str) -> bool:
        """Whether ``path`` (relative to the context, ``/``-separated) is left out."""
        path = _clean(path)
        parents = path.split("/")[:-1]
        excluded = False
        for pattern in self.patterns:
            if pattern.exclusion != excluded:
                continue  # an exception only matters once excluded, and vice versa
            match = pattern.matches(path) or any(
                pattern.matches("/".join(parents[: i + 1])) for i in range(len(parents))
            )
            if match:
                excluded = not pattern.exclusion
        return excluded

    def _may_reinclude_below(self, directory: str) -> bool:
        below = directory + "/"
        for pattern in self.patterns:
            if not pattern.exclusion:
                continue
            prefix = pattern.literal_prefix()
            if prefix.startswith(below) or below.startswith(prefix) or prefix == directory:
                return True
        return False

    def context(self, root: Path) -> Iterator[str]:
        """Every file of the build context of ``root`` (paths relative to it)."""
        for current, dirs, files in os.walk(root):
            rel = Path(current).relative_to(root).as_posix()
            prefix = "" if rel == "." else rel + "/"
            dirs[:] = [
                d
                for d in dirs
                if not self.excluded(prefix + d) or self._may_reinclude_below(prefix + d)
            ]
            for name in files:
                if not self.excluded(prefix + name):
                    yield prefix + name
