"""The `redact` stage: mask or hash personal data (emails, IPs, card numbers, tokens) inside text columns."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from functools import cached_property
from typing import ClassVar, Literal

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, SecretStr

from loglake.schemas.config import StageConfig
from loglake.schemas.errors import ConfigError
from loglake.schemas.registry import register_stage
from loglake.schemas.stage import NodeContext, StageOutput

__all__ = ["Kind", "KINDS", "RedactConfig", "RedactStage"]

Kind = Literal["email", "ipv4", "ipv6", "card", "bearer", "api_key"]
KINDS: tuple[Kind, ...] = ("bearer", "api_key", "email", "card", "ipv6", "ipv4")
"""Built-in kinds, in the order they are applied (tokens first, IPv6 before the IPv4 it may embed)."""

_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4 = rf"{_OCTET}\.{_OCTET}\.{_OCTET}\.{_OCTET}"
_H = r"[0-9A-Fa-f]{1,4}"
_IPV6 = "|".join(
    [
        rf"\b(?:{_H}:){{7}}{_H}\b",
        rf"::(?:[fF]{{4}}(?::0{{1,4}})?:){_IPV4}\b",
        rf"\b(?:{_H}:){{1,4}}:{_IPV4}\b",
        rf"\b{_H}:(?::{_H}){{1,6}}\b",
        rf"\b(?:{_H}:){{1,2}}(?::{_H}){{1,5}}\b",
        rf"\b(?:{_H}:){{1,3}}(?::{_H}){{1,4}}\b",
        rf"\b(?:{_H}:){{1,4}}(?::{_H}){{1,3}}\b",
        rf"\b(?:{_H}:){{1,5}}(?::{_H}){{1,2}}\b",
        rf"\b(?:{_H}:){{1,6}}:{_H}\b",
        rf"::(?:{_H}:){{0,6}}{_H}\b",
        rf"\b(?:{_H}:){{1,7}}:",
    ]
)
_PATTERNS: dict[Kind, tuple[str, bool]] = {
    "bearer": (r"(?i)(\bbearer\s+)[A-Za-z0-9\-._~+/]{8,}=*", True),
    "api_key": (
        r"(?i)(\b(?:api[_-]?key|apikey|access[_-]?token|auth[_-]?token|secret|token)[\"']?\s*[:=]\s*[\"']?)[A-Za-z0-9_\-.]{16,}"
        r"|()\b(?:sk|pk|rk)_(?:live|test)_[A-Za-z0-9]{16,}\b|()\bAKIA[0-9A-Z]{16}\b|()\bgh[pousr]_[A-Za-z0-9]{36,}\b"
        r"|()\bxox[abprs]-[A-Za-z0-9-]{10,}\b|()\bAIza[0-9A-Za-z_\-]{35}\b",
        True,
    ),
    "email": (r"\b[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}\b", False),
    "card": (r"\b(?:[0-9][ \-]?){12,18}[0-9]\b", False),
    "ipv6": (_IPV6, False),
    "ipv4": (rf"\b{_IPV4}\b", False),
}
"""Kind → (RE2 pattern, whether group 1 is a prefix kept in clear such as `Bearer `)."""
_IPV4_GROUPS = rf"\b({_OCTET})\.({_OCTET})\.({_OCTET})\.({_OCTET})\b"
_NETWORK = {8: r"\1.0.0.0/8", 16: r"\1.\2.0.0/16", 24: r"\1.\2.\3.0/24"}


class RedactConfig(StageConfig):
    """Mask or hash personal data inside text columns: emails, IP addresses, card numbers, tokens, custom patterns.

    Example:
        pii: {type: redact, fields: [message, clientip], kinds: [email, ipv4, card], keep_ip_prefix: 24}
    """

    type: Literal["redact"]
    fields: list[str] | None = Field(default=None, min_length=1)
    """Text columns to scan; default every string column except loglake's `_`-prefixed ones. Missing or non-text columns are skipped."""
    kinds: list[Kind] = Field(default_factory=lambda: list(KINDS))
    """Built-in detectors to apply; card numbers must pass the Luhn check."""
    patterns: dict[str, str] = Field(default_factory=dict)
    """Name → RE2 regex of extra data to redact; the whole match is replaced by `[name]` (or hashed)."""
    mode: Literal["mask", "hash"] = "mask"
    """`mask` replaces a match with `[kind]`; `hash` with `kind:<16 hex digits>`, a keyed hash stable across runs so joins still work."""
    hash_key: SecretStr | None = None
    """Key of the BLAKE2b hash in `hash` mode; without one the hash is unkeyed (guessable for small value sets)."""
    keep_ip_prefix: Literal[8, 16, 24] | None = None
    """Keep the network of IPv4 addresses: 24 turns `192.168.1.77` into `192.168.1.0/24` (in both modes); IPv6 is always redacted whole."""


def _luhn_valid(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


class _Rule:
    """One detector: its RE2 pattern for Arrow, the same pattern for Python's `re`, and how a match is rewritten."""

    def __init__(self, name: str, pattern: str, has_prefix: bool) -> None:
        self.name = name
        self.pattern = pattern
        self.has_prefix = has_prefix

    @cached_property
    def regex(self) -> re.Pattern[str]:
        """The pattern compiled for Python (used only for Luhn candidates and hashing)."""
        return re.compile(self.pattern, re.ASCII)

    def rewrite(self, text: str, token: Callable[[str, str], str | None]) -> str:
        """`text` with every match whose secret part `token(name, secret)` maps to a string replaced by it."""

        def replace(match: re.Match[str]) -> str:
            whole = match.group(0)
            prefix = next((g for g in match.groups() if g is not None), "") if self.has_prefix else ""
            secret = whole[len(prefix):]
            new = token(self.name, secret)
            return whole if new is None else prefix + new

        return self.regex.sub(replace, text)


@register_stage(RedactConfig)
class RedactStage:
    """Rewrites text columns with Arrow's RE2 per detector; Python runs only on Luhn candidates and values to hash."""

    outputs: ClassVar[tuple[str, ...]] = ("dropped",)

    def __init__(self, config: RedactConfig, ctx: NodeContext) -> None:
        self.config = config
        self.ctx = ctx
        self._key = config.hash_key.get_secret_value().encode() if config.hash_key is not None else b""
        if len(self._key) > 64:
            raise ConfigError("hash_key must be at most 64 bytes (BLAKE2b key size)", field="hash_key")
        wanted = set(config.kinds)
        rules = [_Rule(kind, *_PATTERNS[kind]) for kind in KINDS if kind in wanted]
        if config.keep_ip_prefix is not None:
            rules = [rule for rule in rules if rule.name != "ipv4"]
        for name, pattern in config.patterns.items():
            try:
                pc.replace_substring_regex(pa.array(["probe"]), pattern, "")
                rule = _Rule(name, pattern, False)
                if config.mode == "hash":
                    rule.regex  # hashing rewrites matches in Python: the pattern must suit `re` too
                rules.append(rule)
            except (pa.ArrowInvalid, re.error) as exc:
                raise ConfigError(f"pattern '{name}' does not compile: {exc}", field=f"patterns.{name}") from None
        self._rules = rules
        self._cards = next((rule for rule in rules if rule.name == "card"), None)

    def _token(self, kind: str, secret: str) -> str | None:
        """The replacement of one match (None: leave it, a card number that fails the Luhn check)."""
        if kind == "card":
            digits = re.sub(r"[ \-]", "", secret)
            if not _luhn_valid(digits):
                return None
            secret = digits
        if self.config.mode == "mask":
            return f"[{kind}]"
        digest = hashlib.blake2b(secret.encode(), key=self._key, digest_size=8, person=b"loglake-redact").hexdigest()
        return f"{kind}:{digest}"

    def _per_distinct(self, column: pa.Array, mask: pa.Array, rules: list[_Rule]) -> pa.Array:
        """`column` with the rows in `mask` rewritten by `rules` in Python, once per distinct value."""
        mask = pc.fill_null(mask, False)
        if not pc.any(mask).as_py():
            return column
        encoded = pc.dictionary_encode(column.filter(mask))
        rewritten = []
        for value in encoded.dictionary.to_pylist():
            for rule in rules:
                value = rule.rewrite(value, self._token)
            rewritten.append(value)
        return pc.replace_with_mask(column, mask, pa.array(rewritten, pa.string()).take(encoded.indices))

    def _redacted(self, column: pa.Array) -> pa.Array:
        for rule in self._rules:
            if rule is self._cards or self.config.mode == "hash":  # Python only on the rows this rule matches
                column = self._per_distinct(column, pc.match_substring_regex(column, rule.pattern), [rule])
            else:
                column = pc.replace_substring_regex(column, rule.pattern, rf"\1[{rule.name}]" if rule.has_prefix else f"[{rule.name}]")
        if self.config.keep_ip_prefix is not None:  # after IPv6, so an embedded IPv4 went with its address
            column = pc.replace_substring_regex(column, _IPV4_GROUPS, _NETWORK[self.config.keep_ip_prefix])
        return column

    def _columns(self, batch: pa.RecordBatch) -> list[int]:
        schema = batch.schema
        if self.config.fields is None:
            names = [name for name in schema.names if not name.startswith("_")]
        else:
            names = [name for name in self.config.fields if name in schema.names]
        return [schema.get_field_index(name) for name in names if pa.types.is_string(schema.field(name).type) or pa.types.is_large_string(schema.field(name).type)]

    def output_fields(self, upstream: frozenset[str] | None) -> frozenset[str] | None:
        """The input's fields (values are rewritten in place)."""
        return upstream

    def output_types(self, upstream: Mapping[str, pa.DataType]) -> dict[str, pa.DataType]:
        """The input's types (text is rewritten as text)."""
        return dict(upstream)

    def process(self, batch: pa.RecordBatch) -> StageOutput:
        """The batch with personal data in its text columns masked or hashed; no record fails."""
        if batch.num_rows == 0:
            return StageOutput(main=batch)
        for index in self._columns(batch):
            column = batch.column(index)
            batch = batch.set_column(index, batch.schema.field(index), self._redacted(column))
        return StageOutput(main=batch)
