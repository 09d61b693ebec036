"""The `redact` stage: each kind masked, Luhn-checked cards, IPv6, custom patterns, stable keyed hashes."""

from __future__ import annotations

import re
from typing import Any

import pyarrow as pa
import pytest

from tests.support import APACHE_LOG, batch_of, build_stage, only_spec_issue


def _masked(snippet: str, values: list[str | None]) -> list[str | None]:
    out = build_stage(f"{{type: redact, {snippet}}}" if snippet else "{type: redact}").process(batch_of(m=values))
    assert "dropped" not in out.extra
    return out.main.column("m").to_pylist()


@pytest.mark.parametrize(
    "snippet, value, expected",
    [
        ("", "mail bob.smith+logs@example.co.uk now", "mail [email] now"),
        ("", "from 192.168.1.77 to 10.0.0.1:8080", "from [ipv4] to [ipv4]:8080"),
        ("", "octet 999.1.1.1 and 1.2.3", "octet 999.1.1.1 and 1.2.3"),
        ("", "v6 2001:db8::1 end", "v6 [ipv6] end"),
        ("", "full 2001:0db8:85a3:0000:0000:8a2e:0370:7334", "full [ipv6]"),
        ("", "link fe80::1ff:fe23:4567:890a%eth0", "link [ipv6]%eth0"),
        ("", "loopback ::1 and mapped ::ffff:192.0.2.128", "loopback [ipv6] and mapped [ipv6]"),
        ("", "at 10:05:03 in std::vector", "at 10:05:03 in std::vector"),
        ("", "visa 4111 1111 1111 1111 ok", "visa [card] ok"),
        ("", "mc 5500-0000-0000-0004 amex 378282246310005", "mc [card] amex [card]"),
        ("", "not luhn 4111 1111 1111 1112 order 1234567890123", "not luhn 4111 1111 1111 1112 order 1234567890123"),
        ("", "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.e30.sig", "Authorization: Bearer [bearer]"),
        ("", "api_key=abcd1234efgh5678ijkl&x=1", "api_key=[api_key]&x=1"),
        ("", "aws AKIAIOSFODNN7EXAMPLE stripe sk_live_4eC39HqLyjWDarjtT1zdp7dc", "aws [api_key] stripe [api_key]"),
        ("kinds: [email]", "bob@example.com from 10.0.0.1", "[email] from 10.0.0.1"),
        ("keep_ip_prefix: 24", "from 192.168.1.77 and ::ffff:192.0.2.128", "from 192.168.1.0/24 and [ipv6]"),
        ("keep_ip_prefix: 16", "from 192.168.1.77", "from 192.168.0.0/16"),
        ("keep_ip_prefix: 8", "from 192.168.1.77", "from 192.0.0.0/8"),
        ("patterns: {ssn: '[0-9]{3}-[0-9]{2}-[0-9]{4}'}", "ssn 123-45-6789 ip 10.1.1.1", "ssn [ssn] ip [ipv4]"),
        ("kinds: [], patterns: {user: 'user=\\w+'}", "login user=alice ok", "login [user] ok"),
    ],
    ids=[
        "email", "ipv4", "not-ipv4", "ipv6-short", "ipv6-full", "ipv6-link-local", "ipv6-loopback-and-mapped",
        "times-and-paths-untouched", "card-spaces", "card-dashes-and-amex", "card-luhn-invalid-kept", "bearer",
        "api-key-assignment", "api-key-shapes", "only-some-kinds", "keep-prefix-24", "keep-prefix-16", "keep-prefix-8",
        "custom-pattern", "custom-only",
    ],
)
def test_mask(snippet: str, value: str, expected: str) -> None:
    assert _masked(snippet, [value, None]) == [expected, None]


def test_fields_default_to_every_string_column_but_metadata() -> None:
    batch = batch_of(a=["x@y.io"], b=["10.0.0.1"], n=[42], _error=["bad 10.0.0.1"])
    out = build_stage("{type: redact}").process(batch)
    assert out.main.to_pylist() == [{"a": "[email]", "b": "[ipv4]", "n": 42, "_error": "bad 10.0.0.1"}]
    listed = build_stage("{type: redact, fields: [b, missing, n]}").process(batch)
    assert listed.main.to_pylist() == [{"a": "x@y.io", "b": "[ipv4]", "n": 42, "_error": "bad 10.0.0.1"}]


def test_real_apache_lines_lose_every_client_ip() -> None:
    lines = APACHE_LOG.read_text().splitlines()[:3000]
    out = build_stage("{type: redact, kinds: [ipv4]}").process(batch_of(message=lines)).main.column("message").to_pylist()
    assert all(line.startswith("[ipv4] - - [") for line in out)
    assert [line.split(" ", 1)[1] for line in out][:100] == [line.split(" ", 1)[1] for line in lines][:100]


HASHED = "{type: redact, mode: hash, hash_key: s3cret}"


def test_hash_is_stable_across_instances_and_keyed() -> None:
    values = ["bob@example.com logged in from 10.0.0.1", "card 4111-1111-1111-1111", "bob@example.com again"]
    first = _masked(HASHED[len("{type: redact, "):-1], values)
    second = build_stage(HASHED).process(batch_of(m=values)).main.column("m").to_pylist()
    other_key = build_stage("{type: redact, mode: hash, hash_key: other}").process(batch_of(m=values)).main.column("m").to_pylist()
    assert first == second
    assert re.fullmatch(r"email:[0-9a-f]{16} logged in from ipv4:[0-9a-f]{16}", first[0])
    assert first[2] == first[0].split(" ")[0] + " again"
    assert other_key[0] != first[0]


def test_hash_of_a_card_ignores_separators() -> None:
    out = build_stage(HASHED).process(batch_of(m=["4111-1111-1111-1111", "4111 1111 1111 1111", "4111 1111 1111 1112"]))
    first, second, invalid = out.main.column("m").to_pylist()
    assert first == second and first.startswith("card:")
    assert invalid == "4111 1111 1111 1112"


def test_hash_keeps_the_bearer_prefix() -> None:
    [value] = build_stage(HASHED).process(batch_of(m=["Bearer abcdefghijkl"])).main.column("m").to_pylist()
    assert re.fullmatch(r"Bearer bearer:[0-9a-f]{16}", value)


def test_empty_batch_and_non_text_columns_pass() -> None:
    batch = pa.RecordBatch.from_pydict({"m": pa.array([], pa.string())})
    assert build_stage("{type: redact}").process(batch).main.num_rows == 0


@pytest.mark.parametrize(
    "snippet, path, reason",
    [
        ("{type: redact, patterns: {broken: '(a'}}", ("patterns", "broken"), "pattern 'broken' does not compile"),
        ("{type: redact, mode: hash, patterns: {letters: '\\pL+'}}", ("patterns", "letters"), "does not compile"),
        ("{type: redact, kinds: [phone]}", ("kinds", 0), "Input should be"),
        ("{type: redact, keep_ip_prefix: 20}", ("keep_ip_prefix",), "Input should be"),
        ("{type: redact, mode: scramble}", ("mode",), "Input should be 'mask' or 'hash'"),
    ],
    ids=["regex-does-not-compile", "hash-needs-python-regex", "unknown-kind", "prefix-not-octet", "bad-mode"],
)
def test_bad_config_is_a_spec_error(snippet: str, path: tuple[Any, ...], reason: str) -> None:
    issue = only_spec_issue(snippet)
    assert issue.path == path
    assert reason in issue.message
