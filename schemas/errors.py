"""Exceptions a user can see, each carrying the node, YAML path and line it is about."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["UsageError", 
    "LoglakeError",
    "SpecIssue",
    "SpecError",
    "ConfigError",
    "TransientError",
    "TerminalError",
    "MissingExtraError",
]


class LoglakeError(Exception):
    """Base of every error loglake raises on purpose; the CLI prints these without a traceback."""


@dataclass(frozen=True)
class SpecIssue:
    """One problem in a pipeline file, located as precisely as the YAML allows."""

    message: str
    path: tuple[str | int, ...] = ()
    node: str | None = None
    node_type: str | None = None
    file: str | None = None
    line: int | None = None
    column: int | None = None
    about_key: bool = False
    """The problem is the key itself (unknown, misspelt), so it is located at the key rather than its value."""

    @property
    def dotted_path(self) -> str:
        """The YAML path as `stages.parse.field` (list items as `[2]`)."""
        out = ""
        for part in self.path:
            out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
        return out

    def render(self) -> str:
        """`file:line:col  path  message (node 'x', type t)`, the form the CLI prints."""
        where = self.file or "<pipeline>"
        if self.line is not None:
            where += f":{self.line}:{self.column or 1}"
        text = f"{where}  {self.dotted_path or '<top>'}  {self.message}"
        if self.node is not None:
            text += f" (node '{self.node}'" + (f", type {self.node_type})" if self.node_type else ")")
        return text


class SpecError(LoglakeError):
    """A pipeline file that cannot run; holds every problem found, not just the first."""

    def __init__(self, issues: list[SpecIssue], file: str | None = None, partial: object | None = None) -> None:
        self.issues = issues
        self.file = file
        self.partial = partial
        """What could be validated despite the issues (the engine's partial spec), for further checks."""
        super().__init__(self.render())

    def render(self) -> str:
        """All issues, one per line, and a closing count."""
        lines = [issue.render() for issue in self.issues]
        count = len(self.issues)
        lines.append(f"{count} problem{'s' if count != 1 else ''} in {self.file or 'the pipeline'}; nothing was started.")
        return "\n".join(lines)


class ConfigError(LoglakeError):
    """A node's configuration that is well-formed but unusable (a missing file, a bad SQL expression).

    Raised by a stage or connector constructor; the spec loader turns it into a located `SpecIssue`.
    `field` names the config key at fault (a dotted path such as `fields.level`), when there is one.
    """

    def __init__(self, message: str, field: str | None = None) -> None:
        self.message = message
        self.field = field
        super().__init__(message)


class TransientError(LoglakeError):
    """A connector failure worth retrying with backoff (a broker not reachable yet)."""


class TerminalError(LoglakeError):
    """A runtime failure that stops the pipeline with a clear message (disk full, unreadable input)."""

    def __init__(self, message: str, node: str | None = None) -> None:
        self.node = node
        super().__init__(f"{node}: {message}" if node else message)


class MissingExtraError(LoglakeError):
    """An optional package is not installed; names the extra that brings it."""

    def __init__(self, package: str, extra: str) -> None:
        self.package = package
        self.extra = extra
        super().__init__(f"the '{package}' package is needed; install it with: pip install 'loglake[{extra}]'")



class UsageError(LoglakeError):
    """Command-line options that contradict each other."""
