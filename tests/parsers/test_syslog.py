"""The `syslog` stage on the RFCs' own examples and real Linux lines (tests/parsers/cases/syslog_*.log).

A fixed clock (`loglake.parsers.syslog.stage.now`) stands in for the real date: 2023-11-15 12:00 UTC unless
a test sets another, so RFC 3164 lines without `year` land in 2023.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from loglake.parsers.syslog import stage as syslog_stage
from loglake.schemas.errors import SpecError
from loglake.schemas.parsing import ParseFailure
from loglake.schemas.records import TIMESTAMP_TYPE, normalize_level
from tests.support import batch_of, build_stage

CASES = Path(__file__).parent / "cases"
LINUX = (CASES / "syslog_linux.log").read_text(encoding="utf-8").splitlines()
"""Linux lines as files hold them (no PRI: auth, cron, kernel, mail, …) and as the network carries them."""
IETF = (CASES / "syslog_rfc5424.log").read_text(encoding="utf-8").splitlines()
"""RFC 5424 lines from rsyslog, applications, haproxy, kubelet."""
NOW = datetime(2023, 11, 15, 12, 0, tzinfo=timezone.utc)
UTC = timezone.utc
BOM = "\ufeff"

# RFC 5424 section 6.5, written out ("BOM" is the UTF-8 byte order mark).
RFC5424_EXAMPLE_1 = f"<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - {BOM}'su root' failed for lonvick on /dev/pts/8"
RFC5424_EXAMPLE_2 = "<165>1 2003-08-24T05:14:15.000003-07:00 192.0.2.1 myproc 8710 - - %% It's time to make the do-nuts."
RFC5424_EXAMPLE_3 = (
    '<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut="3" '
    f'eventSource="Application" eventID="1011"] {BOM}An application event log entry...'
)
RFC5424_EXAMPLE_4 = (
    '<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut="3" '
    'eventSource="Application" eventID="1011"][examplePriority@32473 class="high"]'
)
# RFC 3164 section 5.4: the four examples, and for 2 and 4 what the RFC's relay turns them into.
RFC3164_EXAMPLE_1 = "<34>Oct 11 22:14:15 mymachine su: 'su root' failed for lonvick on /dev/pts/8"
RFC3164_EXAMPLE_2 = "Use the BFG!"
RFC3164_EXAMPLE_2_RELAYED = "<13>Feb  5 17:32:18 10.0.0.99 Use the BFG!"
RFC3164_EXAMPLE_3 = (
    "<165>Aug 24 05:34:00 CST 1987 mymachine myproc[10]: %% It's time to make the do-nuts.  %%  Ingredients: "
    "Mix=OK, Jelly=OK # Devices: Mixer=OK, Jelly_Injector=OK, Frier=OK # Transport: Conveyer1=OK, Conveyer2=OK # %%"
)
RFC3164_EXAMPLE_4 = "<0>1990 Oct 22 10:52:01 TZ-6 scapegoat.dmz.example.org 10.1.2.3 sched[0]: That's All Folks!"
RFC3164_EXAMPLE_4_RELAYED = (
    "<0>Oct 22 10:52:12 scapegoat 1990 Oct 22 10:52:01 TZ-6 scapegoat.dmz.example.org 10.1.2.3 sched[0]: That's All Folks!"
)
ID47 = {"exampleSDID@32473": {"iut": "3", "eventSource": "Application", "eventID": "1011"}}


@pytest.fixture(autouse=True)
def fixed_clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every test reads RFC 3164 years against NOW, never the real date."""
    monkeypatch.setattr(syslog_stage, "now", lambda: NOW)
    yield


def _parse(line: str, snippet: str = "{type: syslog}") -> Any:
    return build_stage(snippet, name="parse").parse_lines([line])[0]


def _process(lines: list[Any], snippet: str = "{type: syslog}", **extra: list[Any]) -> Any:
    return build_stage(snippet, name="parse").process(batch_of(message=lines, **extra))


def _pri(priority: int, facility: str, severity: str) -> dict[str, Any]:
    return {"priority": priority, "facility": facility, "severity": severity}


@pytest.mark.parametrize(
    "line, expected",
    [
        (RFC5424_EXAMPLE_1, {**_pri(34, "auth", "crit"), "version": 1, "timestamp": "2003-10-11T22:14:15.003000+00:00",
                             "hostname": "mymachine.example.com", "appname": "su", "msgid": "ID47",
                             "message": "'su root' failed for lonvick on /dev/pts/8"}),
        (RFC5424_EXAMPLE_2, {**_pri(165, "local4", "notice"), "version": 1, "timestamp": "2003-08-24T05:14:15.000003-07:00",
                             "hostname": "192.0.2.1", "appname": "myproc", "procid": "8710",
                             "message": "%% It's time to make the do-nuts."}),
        (RFC5424_EXAMPLE_3, {**_pri(165, "local4", "notice"), "version": 1, "timestamp": "2003-10-11T22:14:15.003000+00:00",
                             "hostname": "mymachine.example.com", "appname": "evntslog", "msgid": "ID47",
                             "structured_data": ID47, "message": "An application event log entry..."}),
        (RFC5424_EXAMPLE_4, {**_pri(165, "local4", "notice"), "version": 1, "timestamp": "2003-10-11T22:14:15.003000+00:00",
                             "hostname": "mymachine.example.com", "appname": "evntslog", "msgid": "ID47",
                             "structured_data": {**ID47, "examplePriority@32473": {"class": "high"}}}),
    ],
    ids=["6.5-1-no-sd-bom", "6.5-2-offset-micro", "6.5-3-sd-bom", "6.5-4-two-elements-no-msg"],
)
def test_rfc5424_examples(line: str, expected: dict[str, Any]) -> None:
    assert _parse(line) == expected


@pytest.mark.parametrize(
    "line, expected",
    [
        (RFC3164_EXAMPLE_1, {**_pri(34, "auth", "crit"), "timestamp": "2023-10-11T22:14:15+00:00", "hostname": "mymachine",
                             "appname": "su", "message": "'su root' failed for lonvick on /dev/pts/8"}),
        (RFC3164_EXAMPLE_2, ParseFailure("expected TIMESTAMP 'Mmm dd hh:mm:ss', got 'Use the BFG!'")),
        (RFC3164_EXAMPLE_2_RELAYED, {**_pri(13, "user", "notice"), "timestamp": "2023-02-05T17:32:18+00:00",
                                     "hostname": "10.0.0.99", "message": "Use the BFG!"}),
        (RFC3164_EXAMPLE_3, {**_pri(165, "local4", "notice"), "timestamp": "2023-08-24T05:34:00+00:00", "hostname": "CST",
                             "message": RFC3164_EXAMPLE_3.split("CST ", 1)[1]}),
        (RFC3164_EXAMPLE_4, ParseFailure("expected TIMESTAMP 'Mmm dd hh:mm:ss', got '1990 Oct 22 10:52:01 TZ-6 scapegoat.dmz…'")),
        (RFC3164_EXAMPLE_4_RELAYED, {**_pri(0, "kern", "emerg"), "timestamp": "2023-10-22T10:52:12+00:00",
                                     "hostname": "scapegoat", "message": RFC3164_EXAMPLE_4[3:]}),
    ],
    ids=["5.4-1", "5.4-2-no-header", "5.4-2-relayed", "5.4-3-cst-as-host", "5.4-4-year-first", "5.4-4-relayed"],
)
def test_rfc3164_examples(line: str, expected: dict[str, Any] | ParseFailure) -> None:
    assert _parse(line) == expected


@pytest.mark.parametrize(
    "index, appname, procid, message",
    [
        (0, "sshd", "4721", "Accepted publickey for deploy from 203.0.113.7 port 51234 ssh2: ED25519 SHA256:Jm4kqv0lq3r9yXJb8PzQ0c2m8mUo1VgWm6o0q1YyX7E"),
        (4, "sudo", None, "  deploy : TTY=pts/0 ; PWD=/home/deploy ; USER=root ; COMMAND=/usr/bin/systemctl restart nginx"),
        (12, "CRON", "12391", "(root) CMD (   cd / && run-parts --report /etc/cron.hourly)"),
        (17, "kernel", None, "[1234574.101010] usb 1-1: new high-speed USB device number 2 using xhci_hcd"),
        (19, "postfix/smtpd", "2211", "connect from unknown[198.51.100.23]"),
        (24, "sshd(pam_unix)", "5120", "authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=192.0.2.44  user=root"),
        (25, "rsyslogd", None, '[origin software="rsyslogd" swVersion="8.2112.0" x-pid="702" x-info="https://www.rsyslog.com"] rsyslogd was HUPed'),
    ],
    ids=["sshd-auth", "sudo-no-pid", "cron", "kernel", "postfix-slash", "pam-parens", "rsyslogd-sd-lookalike"],
)
def test_linux_file_lines(index: int, appname: str, procid: str | None, message: str) -> None:
    parsed = _parse(LINUX[index])
    assert parsed["appname"] == appname and parsed.get("procid") == procid and parsed["message"] == message
    assert parsed["hostname"] == "web-01"
    assert _pri(parsed["priority"], parsed["facility"], parsed["severity"]) == _pri(13, "user", "notice")


@pytest.mark.parametrize(
    "line, expected",
    [
        (LINUX[30], {**_pri(38, "auth", "info"), "timestamp": "2023-10-11T22:17:45+00:00", "hostname": "web-01",
                     "appname": "sshd", "procid": "4802", "message": "Failed password for invalid user admin from 192.0.2.44 port 40112 ssh2"}),
        (LINUX[31], {**_pri(86, "authpriv", "info"), "timestamp": "2023-10-11T22:14:21+00:00", "hostname": "web-01", "appname": "sudo",
                     "message": "pam_unix(sudo:session): session opened for user root(uid=0) by deploy(uid=1001)"}),
        (LINUX[32], {**_pri(78, "cron", "info"), "timestamp": "2023-10-11T22:15:01+00:00", "hostname": "web-01", "appname": "CRON",
                     "procid": "12345", "message": "(root) CMD (command -v debian-sa1 > /dev/null && debian-sa1 1 1)"}),
        (LINUX[36], {**_pri(3, "kern", "err"), "timestamp": "2023-10-11T22:25:40+00:00", "hostname": "web-01", "appname": "kernel",
                     "message": "[1234700.000000] Out of memory: Killed process 3123 (java) total-vm:8123456kB, anon-rss:4012345kB, file-rss:0kB, shmem-rss:0kB"}),
        (LINUX[28], {**_pri(13, "user", "notice"), "timestamp": "2023-10-02T03:17:01+00:00", "hostname": "db-02", "appname": "CRON",
                     "procid": "8812", "message": "(postgres) CMD (/usr/local/bin/pg_backup.sh >> /var/log/pg_backup.log 2>&1)"}),
    ],
    ids=["auth-info", "authpriv-info", "cron-info", "kern-err", "space-padded-day"],
)
def test_linux_network_lines(line: str, expected: dict[str, Any]) -> None:
    assert _parse(line) == expected


@pytest.mark.parametrize(
    "msg, appname, procid, message",
    [
        ("su: ok", "su", None, "ok"),
        ("sshd[123]: ok", "sshd", "123", "ok"),
        ("sshd(pam_unix)[123]: ok", "sshd(pam_unix)", "123", "ok"),
        ("postfix/smtpd[2211]: ok", "postfix/smtpd", "2211", "ok"),
        ("org.gnome.Shell.desktop[2040]: ok", "org.gnome.Shell.desktop", "2040", "ok"),
        ("su:", "su", None, ""),
        ("su:  two spaces", "su", None, " two spaces"),
        ("Use the BFG!", None, None, "Use the BFG!"),
        ("myproc[10] no colon", None, None, "myproc[10] no colon"),
        ("http://example.com/ is down", None, None, "http://example.com/ is down"),
        ("app:no-space", None, None, "app:no-space"),
        ("app[]: empty pid", None, None, "app[]: empty pid"),
        ("a:b: two colons", None, None, "a:b: two colons"),
        ("app[12]:\tx", None, None, "app[12]:\tx"),
    ],
    ids=["colon", "pid", "parens", "slash", "dots", "tag-only", "extra-space-kept", "no-tag", "pid-no-colon", "url",
         "no-space-after-colon", "empty-pid", "two-colons", "tab-after-colon"],
)
def test_rfc3164_tag_forms(msg: str, appname: str | None, procid: str | None, message: str) -> None:
    parsed = _parse(f"<13>Oct 11 22:14:15 host {msg}")
    assert (parsed.get("appname"), parsed.get("procid"), parsed["message"]) == (appname, procid, message)


def test_missing_pri_is_user_notice_and_hostname_only_line_has_no_message() -> None:
    assert _parse("Oct 11 22:14:15 host") == {**_pri(13, "user", "notice"), "timestamp": "2023-10-11T22:14:15+00:00", "hostname": "host"}
    assert _parse("Oct 11 22:14:15 host ")["message"] == ""


@pytest.mark.parametrize(
    "line, rfc, expected",
    [
        (RFC5424_EXAMPLE_2, "auto", 1),
        (RFC3164_EXAMPLE_1, "auto", None),
        (LINUX[0], "auto", None),
        (RFC5424_EXAMPLE_2, "rfc3164", "expected TIMESTAMP 'Mmm dd hh:mm:ss', got '1 2003-08-24T05:14:15.000003-07:00 192.…'"),
        (RFC3164_EXAMPLE_1, "rfc5424", "invalid VERSION 'Oct'"),
        (LINUX[0], "rfc5424", "expected '<PRI>' at the start of an RFC 5424 line, got 'Oct 11 22:14:15 web-01 sshd[4721]: Acce…'"),
        ("<13>2 2023-01-01T00:00:00Z h a p m -", "auto", "unsupported VERSION 2 (only 1 is defined)"),
    ],
    ids=["auto-5424", "auto-3164", "auto-no-pri", "3164-only", "5424-only", "5424-needs-pri", "auto-version-2"],
)
def test_format_detection(line: str, rfc: str, expected: int | str | None) -> None:
    parsed = _parse(line, f"{{type: syslog, format: {rfc}}}")
    if isinstance(expected, str):
        assert parsed == ParseFailure(expected)
    else:
        assert parsed.get("version") == expected and "hostname" in parsed


H = "<13>1 2023-01-01T00:00:00Z"


@pytest.mark.parametrize(
    "line, reason",
    [
        ("<13>1  2023-01-01T00:00:00Z h a p m -", "empty TIMESTAMP: fields are separated by a single space"),
        (f"{H}  h a p m -", "empty HOSTNAME: fields are separated by a single space"),
        (f"{H} h a p m  -", "empty STRUCTURED-DATA: fields are separated by a single space"),
        (f"{H} {'h' * 256} a p m -", "HOSTNAME longer than 255 characters"),
        (f"{H} h {'a' * 49} p m -", "APP-NAME longer than 48 characters"),
        (f"{H} h a {'p' * 129} m -", "PROCID longer than 128 characters"),
        (f"{H} h a p {'m' * 33} -", "MSGID longer than 32 characters"),
        (f"{H} h a p m [{'s' * 33}]", f"SD-ID longer than 32 characters: '{'s' * 33}'"),
        (f'{H} h a p m [s {"n" * 33}="1"]', f"PARAM-NAME longer than 32 characters: '{'n' * 33}'"),
        (f"{H} hé a p m -", "invalid character 'é' in HOSTNAME"),
        ("<13>1 2003-08-24T05:14:15.000000003-07:00 h a p m -", "invalid TIMESTAMP '2003-08-24T05:14:15.000000003-07:00': more than 6 fraction digits"),
        ("<13>1 2023-02-30T10:00:00Z h a p m -", "impossible date 2023-02-30"),
        ("<13>1 2023-02-29T10:00:00Z h a p m -", "impossible date 2023-02-29"),
        ("<13>1 2023-04-31T10:00:00Z h a p m -", "impossible date 2023-04-31"),
        ("<13>1 2023-13-01T10:00:00Z h a p m -", "impossible date 2023-13-01"),
        ("<13>1 2016-12-31T23:59:60Z h a p m -", "impossible time 23:59:60"),
        ("<13>1 2023-01-01t10:00:00z h a p m -", "invalid TIMESTAMP '2023-01-01t10:00:00z'"),
        ("<13>1 2023-01-01T10:00:00 h a p m -", "invalid TIMESTAMP '2023-01-01T10:00:00'"),
        ("<13>1 2023-01-01T10:00:00+24:00 h a p m -", "impossible UTC offset +24:00"),
        ("<13>1 0001-01-01T00:00:00+01:00 h a p m -", "TIMESTAMP '0001-01-01T00:00:00+01:00' is out of range"),
        ("<192>1 2023-01-01T00:00:00Z h a p m -", "invalid PRI '<192>'"),
        ("<013>1 2023-01-01T00:00:00Z h a p m -", "invalid PRI '<013>'"),
        ("<>1 2023-01-01T00:00:00Z h a p m -", "invalid PRI '<>'"),
        ("<1000000>1 x", "invalid PRI '<100000…'"),
        ("<13>01 2023-01-01T00:00:00Z h a p m -", "invalid VERSION '01'"),
        (f'{H} h a p m [exampleSDID@32473 iut="3"][exampleSDID@32473 iut="4"]', "duplicate SD-ID 'exampleSDID@32473'"),
        ('<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [ exampleSDID@32473 iut="3" '
         'eventSource="Application" eventID="1011"][examplePriority@32473 class="high"]', "empty SD-ID"),
        (f'{H} h a p m [id k="a]b"]', "unescaped ']' in PARAM-VALUE of 'k'"),
        (f'{H} h a p m [id k="abc', "truncated line: unterminated PARAM-VALUE of 'k'"),
        (f'{H} h a p m [id k="abc\\', "truncated line: unterminated PARAM-VALUE of 'k'"),
        (f'{H} h a p m [id k="1"', "truncated line: unterminated SD-ELEMENT 'id'"),
        (f"{H} h a p m [id k=1]", "expected '=\"' after PARAM-NAME 'k', got '=1'"),
        (f'{H} h a p m [id ="1"]', "empty PARAM-NAME"),
        (f'{H} h a p m [idé k="1"]', "invalid character 'é' in SD-ID 'id'"),
        (f"{H} h a p m -msg", "expected a space after STRUCTURED-DATA, got 'msg'"),
        (f'{H} h a p m [id k="1"]msg', "expected a space after STRUCTURED-DATA, got 'msg'"),
        (f"{H} h a p m msg", "invalid STRUCTURED-DATA: expected '-' or '[', got 'msg'"),
    ],
    ids=["double-space-first", "double-space-host", "double-space-sd", "hostname-256", "appname-49", "procid-129", "msgid-33",
         "sd-id-33", "param-name-33", "non-ascii-host", "nine-fraction-digits", "feb-30", "feb-29-2023", "apr-31", "month-13",
         "leap-second", "lowercase-t-z", "no-offset", "offset-24h", "before-year-1", "pri-192", "pri-leading-zero", "pri-empty",
         "pri-long", "version-leading-zero", "duplicate-sd-id", "rfc-space-after-bracket", "unescaped-bracket", "unterminated-value",
         "trailing-backslash", "unterminated-element", "unquoted-value", "empty-param-name", "non-ascii-sd-id", "sd-dash-then-text",
         "sd-then-text", "no-sd"],
)
def test_rfc5424_rules_are_enforced(line: str, reason: str) -> None:
    assert _parse(line) == ParseFailure(reason)


@pytest.mark.parametrize(
    "line, field, value",
    [
        (f"{H} {'h' * 255} a p m -", "hostname", "h" * 255),
        (f"{H} h {'a' * 48} p m -", "appname", "a" * 48),
        (f"{H} h a {'p' * 128} m -", "procid", "p" * 128),
        (f"{H} h a p {'m' * 32} -", "msgid", "m" * 32),
        (f"{H} h a p m [{'s' * 32}]", "structured_data", {"s" * 32: {}}),
        ("<13>1 2024-02-29T10:00:00Z h a p m -", "timestamp", "2024-02-29T10:00:00+00:00"),
        ("<191>1 2023-01-01T00:00:00Z h a p m -", "severity", "debug"),
        ("<0>1 2023-01-01T00:00:00Z h a p m -", "facility", "kern"),
        ("<13>1 1985-04-12T23:20:50.52Z h a p m -", "timestamp", "1985-04-12T23:20:50.520000+00:00"),
        ("<13>1 1985-04-12T19:20:50.52-04:00 h a p m -", "timestamp", "1985-04-12T19:20:50.520000-04:00"),
        ("<13>1 2003-10-11T22:14:15.000Z h a p m -", "timestamp", "2003-10-11T22:14:15+00:00"),
        ("<13>1 2003-10-11T22:14:15.1+05:45 h a p m -", "timestamp", "2003-10-11T22:14:15.100000+05:45"),
        ("<13>1 2003-10-11T22:14:15-00:00 h a p m -", "timestamp", "2003-10-11T22:14:15+00:00"),
    ],
    ids=["hostname-255", "appname-48", "procid-128", "msgid-32", "sd-id-32", "leap-day", "pri-191", "pri-0",
         "rfc3339-example-1", "rfc3339-example-2", "zero-fraction", "nepal-offset", "unknown-offset"],
)
def test_rfc5424_limits_and_timestamps_accepted(line: str, field: str, value: Any) -> None:
    assert _parse(line)[field] == value


@pytest.mark.parametrize(
    "sd, expected",
    [
        ('[id k="say \\"hi\\""]', {"id": {"k": 'say "hi"'}}),
        ('[id k="C:\\\\temp"]', {"id": {"k": "C:\\temp"}}),
        ('[id k="a\\]b"]', {"id": {"k": "a]b"}}),
        ('[id k="line\\nbreak"]', {"id": {"k": "line\\nbreak"}}),
        ('[id k="\\\\\\]\\""]', {"id": {"k": '\\]"'}}),
        ('[id k=""]', {"id": {"k": ""}}),
        ('[id k="[x\\] = y é"]', {"id": {"k": "[x] = y é"}}),
        ('[origin ip="192.0.2.1" ip="192.0.2.129"]', {"origin": {"ip": ["192.0.2.1", "192.0.2.129"]}}),
        ("[id]", {"id": {}}),
        ('[timeQuality tzKnown="1" isSynced="1"][meta sequenceId="29"]', {"timeQuality": {"tzKnown": "1", "isSynced": "1"}, "meta": {"sequenceId": "29"}}),
    ],
    ids=["escaped-quote", "escaped-backslash", "escaped-bracket", "other-backslash-kept", "all-three", "empty-value",
         "brackets-equals-utf8", "repeated-param", "no-params", "two-iana-elements"],
)
def test_structured_data_escapes(sd: str, expected: dict[str, Any]) -> None:
    parsed = _parse(f"{H} h a p m {sd} msg")
    assert parsed["structured_data"] == expected and parsed["message"] == "msg"


def test_space_between_elements_makes_the_second_one_the_message() -> None:
    line = f'{H} h a p m [exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"] [examplePriority@32473 class="high"]'
    parsed = _parse(line)
    assert parsed["structured_data"] == ID47 and parsed["message"] == '[examplePriority@32473 class="high"]'


@pytest.mark.parametrize(
    "line, expected",
    [
        ("<13>1 - - - - - -", {**_pri(13, "user", "notice"), "version": 1}),
        ("<13>1 - - - - - - ", {**_pri(13, "user", "notice"), "version": 1, "message": ""}),
        ("<13>1 - - - - - - -", {**_pri(13, "user", "notice"), "version": 1, "message": "-"}),
        ("<14>1 - host - 42 - - up", {**_pri(14, "user", "info"), "version": 1, "hostname": "host", "procid": "42", "message": "up"}),
    ],
    ids=["all-nil", "empty-msg", "dash-msg-is-text", "some-nil"],
)
def test_nilvalues_are_left_out(line: str, expected: dict[str, Any]) -> None:
    assert _parse(line) == expected


@pytest.mark.parametrize(
    "line, message",
    [
        (f"{H} h a p m - {BOM}héllo", "héllo"),
        (f"{H} h a p m - {BOM}", ""),
        (f"{H} h a p m - {BOM}{BOM}x", f"{BOM}x"),
        (f"{H} h a p m - x{BOM}", f"x{BOM}"),
        (f"<13>Oct 11 22:14:15 h {BOM}x", f"{BOM}x"),
    ],
    ids=["bom-removed", "bom-only", "only-the-first", "bom-inside-kept", "rfc3164-keeps-it"],
)
def test_bom_opening_an_rfc5424_msg_is_removed(line: str, message: str) -> None:
    assert _parse(line)["message"] == message
    assert _process([line]).main.column("message").to_pylist() == [message]


@pytest.mark.parametrize(
    "now, line, expected",
    [
        (datetime(2024, 1, 2, 9, 0, tzinfo=UTC), "Dec 31 23:59:59 h x", "2023-12-31T23:59:59+00:00"),
        (datetime(2024, 1, 2, 9, 0, tzinfo=UTC), "Jan  2 08:59:00 h x", "2024-01-02T08:59:00+00:00"),
        (datetime(2023, 12, 31, 23, 0, tzinfo=UTC), "Jan  1 00:00:05 h x", "2024-01-01T00:00:05+00:00"),
        (datetime(2023, 6, 15, 12, 0, tzinfo=UTC), "Dec 25 10:00:00 h x", "2022-12-25T10:00:00+00:00"),
        (datetime(2023, 6, 15, 12, 0, tzinfo=UTC), "Jun 16 11:00:00 h x", "2023-06-16T11:00:00+00:00"),
        (datetime(2023, 6, 15, 12, 0, tzinfo=UTC), "Jun 16 12:00:01 h x", "2022-06-16T12:00:01+00:00"),
        (datetime(2024, 3, 1, 0, 0, tzinfo=UTC), "Feb 29 12:00:00 h x", "2024-02-29T12:00:00+00:00"),
        (datetime(2023, 6, 15, 12, 0, tzinfo=UTC), "Feb 29 12:00:00 h x", "impossible date 2023-02-29"),
    ],
    ids=["december-in-january", "today", "new-year-skew", "christmas-in-june", "tomorrow", "beyond-a-day", "leap-day", "no-leap-day"],
)
def test_rfc3164_year_rolls_over(monkeypatch: pytest.MonkeyPatch, now: datetime, line: str, expected: str) -> None:
    monkeypatch.setattr(syslog_stage, "now", lambda: now)
    parsed = _parse(line)
    assert (parsed.reason if isinstance(parsed, ParseFailure) else parsed["timestamp"]) == expected


@pytest.mark.parametrize(
    "snippet, line, expected",
    [
        ("{type: syslog, year: 2020}", "Dec 31 23:59:59 h x", "2020-12-31T23:59:59+00:00"),
        ("{type: syslog, year: 2020}", "Feb 29 00:00:00 h x", "2020-02-29T00:00:00+00:00"),
        ("{type: syslog, year: 2023}", "Feb 29 00:00:00 h x", "impossible date 2023-02-29"),
        ("{type: syslog, timezone: Europe/Paris}", "Jul  1 12:00:00 h x", "2023-07-01T12:00:00+02:00"),
        ("{type: syslog, timezone: Europe/Paris}", "Jan 15 12:00:00 h x", "2023-01-15T12:00:00+01:00"),
        ("{type: syslog, timezone: America/New_York}", "Nov  5 01:30:00 h x", "2023-11-05T01:30:00-04:00"),
        ("{type: syslog, timezone: Europe/Paris}", RFC5424_EXAMPLE_2, "2003-08-24T05:14:15.000003-07:00"),
    ],
    ids=["fixed-year", "fixed-leap-year", "fixed-non-leap-year", "paris-summer", "paris-winter", "ambiguous-takes-first",
         "rfc5424-keeps-its-offset"],
)
def test_year_and_timezone_options(snippet: str, line: str, expected: str) -> None:
    parsed = _parse(line, snippet)
    assert (parsed.reason if isinstance(parsed, ParseFailure) else parsed["timestamp"]) == expected


def test_rollover_is_judged_in_the_configured_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(syslog_stage, "now", lambda: datetime(2023, 12, 31, 23, 30, tzinfo=UTC))  # 00:30 in Paris
    assert _parse("Jan  1 00:10:00 h x", "{type: syslog, timezone: Europe/Paris}")["timestamp"] == "2024-01-01T00:10:00+01:00"
    assert _parse("Dec 31 23:50:00 h x", "{type: syslog, timezone: Europe/Paris}")["timestamp"] == "2023-12-31T23:50:00+01:00"


@pytest.mark.parametrize(
    "line, reason",
    [
        ("", "empty line"),
        ("   ", "empty line"),
        ("<34>", "truncated line: expected TIMESTAMP"),
        ("<34>Oct 11 22:14:15", "truncated line: expected HOSTNAME"),
        ("<34>Oct 11 22:14:15 ", "truncated line: expected HOSTNAME"),
        ("<34>Oct 11 22:14", "expected TIMESTAMP 'Mmm dd hh:mm:ss', got 'Oct 11 22:14'"),
        ("<34>1", "truncated line: expected TIMESTAMP"),
        ("<34>1 2003-10-11T22:14:15.003Z", "truncated line: expected HOSTNAME"),
        ("<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su", "truncated line: expected PROCID"),
        ("<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47", "truncated line: expected STRUCTURED-DATA"),
        ("<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 ", "truncated line: expected STRUCTURED-DATA"),
        ("<999>Oct 11 22:14:15 mymachine su: x", "invalid PRI '<999>'"),
        ("<34", "invalid PRI '<34'"),
        ("<34>Feb 30 10:00:00 host x", "impossible date 2023-02-30"),
        ("<34>Oct 32 10:00:00 host x", "impossible date 2023-10-32"),
        ("<34>Oct 11 24:00:00 host x", "impossible time 24:00:00"),
        ("<34>oct 11 22:14:15 host x", "unknown month 'oct' in TIMESTAMP 'oct 11 22:14:15'"),
        ("<34>Oct 1 22:14:15 host x", "expected TIMESTAMP 'Mmm dd hh:mm:ss', got 'Oct 1 22:14:15 host x'"),
        ("<34>Oct 11 22:14:15.123 host x", "expected a space after TIMESTAMP, got '.123 host x'"),
        ("<34>Oct 11 22:14:15  host x", "empty HOSTNAME: fields are separated by a single space"),
        ("<34>Oct 11 22:14:15 hôte x", "invalid character 'ô' in HOSTNAME"),
        ("GET /index.html HTTP/1.1", "expected TIMESTAMP 'Mmm dd hh:mm:ss', got 'GET /index.html HTTP/1.1'"),
        ('{"msg": "json, not syslog"}', "expected TIMESTAMP 'Mmm dd hh:mm:ss', got '{\"msg\": \"json, not syslog\"}'"),
        ("2023-10-11T22:14:15Z host app: an ISO time", "expected TIMESTAMP 'Mmm dd hh:mm:ss', got '2023-10-11T22:14:15Z host app: an ISO t…'"),
    ],
    ids=["empty", "blank", "pri-only", "no-host", "no-host-trailing-space", "cut-in-timestamp", "5424-version-only", "5424-no-host",
         "5424-no-procid", "5424-no-sd", "5424-no-sd-trailing-space", "pri-999", "pri-unclosed", "feb-30", "day-32", "hour-24",
         "lowercase-month", "unpadded-day", "fraction-in-3164", "double-space", "non-ascii-host", "http-line", "json-line", "iso-no-pri"],
)
def test_failures_say_why(line: str, reason: str) -> None:
    assert _parse(line) == ParseFailure(reason)


@pytest.mark.parametrize("on_error, rows, discarded", [("route", 3, 0), ("keep", 5, 0), ("discard", 3, 2)], ids=["route", "keep", "discard"])
def test_bad_lines_follow_on_error(on_error: str, rows: int, discarded: int) -> None:
    lines = [RFC3164_EXAMPLE_1, "", RFC5424_EXAMPLE_3, "<999>Oct 11 22:14:15 h x", LINUX[12]]
    out = _process(lines, f"{{type: syslog, on_error: {on_error}}}", seq=list(range(5)))
    assert out.main.num_rows == rows and out.discarded == discarded
    assert out.main.column("seq").to_pylist()[:3] == [0, 2, 4]
    assert out.main.column("appname").to_pylist()[:3] == ["su", "evntslog", "CRON"]
    if on_error == "route":
        dropped = out.extra["dropped"]
        assert dropped.column("message").to_pylist() == ["", "<999>Oct 11 22:14:15 h x"]
        assert dropped.column("_error").to_pylist() == ["empty line", "invalid PRI '<999>'"]
        assert dropped.column("_error_node").to_pylist() == ["parse", "parse"]
    if on_error == "keep":
        assert out.main.column("_error").to_pylist() == [None, None, None, "empty line", "invalid PRI '<999>'"]
        assert out.main.column("message").to_pylist()[3:] == ["", "<999>Oct 11 22:14:15 h x"]


def test_process_sets_core_columns_and_every_syslog_column() -> None:
    out = _process([RFC5424_EXAMPLE_3, RFC3164_EXAMPLE_1])
    main = out.main
    assert main.schema.names == ["message", "timestamp", "host", "level", "priority", "facility", "severity", "version",
                                 "appname", "procid", "msgid", "structured_data"]
    assert main.schema.field("timestamp").type == TIMESTAMP_TYPE
    assert main.schema.field("priority").type == pa.int32() and main.schema.field("version").type == pa.int32()
    assert main.column("timestamp").to_pylist() == [datetime(2003, 10, 11, 22, 14, 15, 3000, tzinfo=UTC),
                                                    datetime(2023, 10, 11, 22, 14, 15, tzinfo=UTC)]
    assert main.column("host").to_pylist() == ["mymachine.example.com", "mymachine"]
    assert main.column("level").to_pylist() == ["notice", "critical"]
    assert main.column("message").to_pylist() == ["An application event log entry...", "'su root' failed for lonvick on /dev/pts/8"]
    assert main.column("version").to_pylist() == [1, None]
    assert main.column("msgid").to_pylist() == ["ID47", None]
    assert main.column("structured_data").to_pylist() == [
        '{"exampleSDID@32473":{"iut":"3","eventSource":"Application","eventID":"1011"}}', None]


def test_nil_timestamp_is_a_null_event_time() -> None:
    out = _process(["<13>1 - - - - - -", "<13>1 - host - - - - up"])
    assert out.main.column("timestamp").to_pylist() == [None, None]
    assert out.main.column("host").to_pylist() == [None, "host"]
    assert out.main.column("message").to_pylist() == [None, "up"]


def test_a_sliced_batch_parses_like_a_fresh_one() -> None:
    lines = [LINUX[0], RFC5424_EXAMPLE_3, "", RFC3164_EXAMPLE_1, IETF[3]]
    stage = build_stage("{type: syslog}")
    sliced = stage.process(batch_of(message=lines).slice(1, 3))
    fresh = stage.process(batch_of(message=lines[1:4]))
    assert sliced.main.to_pylist() == fresh.main.to_pylist()
    assert sliced.main.column("message").to_pylist() == ["An application event log entry...", "'su root' failed for lonvick on /dev/pts/8"]


def test_utc_column_from_offsets() -> None:
    out = _process([RFC5424_EXAMPLE_2, "<13>Jul  1 12:00:00 h x"], "{type: syslog, timezone: Europe/Paris}")
    assert out.main.column("timestamp").to_pylist() == [datetime(2003, 8, 24, 12, 14, 15, 3, tzinfo=UTC),
                                                        datetime(2023, 7, 1, 10, 0, tzinfo=UTC)]


@pytest.mark.parametrize(
    "severity, level",
    [(0, "emergency"), (1, "alert"), (2, "critical"), (3, "error"), (4, "warn"), (5, "notice"), (6, "info"), (7, "debug")],
    ids=["emerg", "alert", "crit", "err", "warning", "notice", "info", "debug"],
)
def test_level_is_the_normalised_severity(severity: int, level: str) -> None:
    out = _process([f"<{8 + severity}>Oct 11 22:14:15 h x", f"<{8 + severity}>1 - - - - - -"])
    assert out.main.column("level").to_pylist() == [level, level]
    assert out.main.column("facility").to_pylist() == ["user", "user"]


def test_target_writes_one_struct_and_keeps_the_line() -> None:
    out = _process([RFC5424_EXAMPLE_2, None], "{type: syslog, target: syslog}")
    assert out.main.schema.names == ["message", "syslog"]
    assert out.main.column("message").to_pylist() == [RFC5424_EXAMPLE_2, None]
    record, empty = out.main.column("syslog").to_pylist()
    assert empty is None
    assert record["host"] == "192.0.2.1" and record["procid"] == "8710" and record["level"] == "notice"
    assert record["message"] == "%% It's time to make the do-nuts."
    assert record["timestamp"] == datetime(2003, 8, 24, 12, 14, 15, 3, tzinfo=UTC)


def test_null_line_passes_through_keeping_its_columns() -> None:
    batch = batch_of(raw=[None, RFC3164_EXAMPLE_1], message=["kept", "old"])
    out = build_stage("{type: syslog, field: raw}").process(batch)
    assert out.extra == {}
    assert out.main.column("message").to_pylist() == ["kept", "'su root' failed for lonvick on /dev/pts/8"]
    assert out.main.column("host").to_pylist() == [None, "mymachine"]
    assert out.main.column("raw").to_pylist() == [None, RFC3164_EXAMPLE_1]


def test_missing_or_non_text_field_fails_every_record() -> None:
    missing = _process([RFC3164_EXAMPLE_1], "{type: syslog, field: body}")
    assert missing.main.num_rows == 0
    assert missing.extra["dropped"].column("_error").to_pylist() == ["no field 'body' in the record"]
    numbers = build_stage("{type: syslog, field: n}").process(batch_of(n=[1, 2]))
    assert numbers.extra["dropped"].column("_error").to_pylist() == ["field 'n' holds int64, not text"] * 2


@pytest.mark.parametrize(
    "kind", [pa.large_string(), pa.dictionary(pa.int32(), pa.string()), pa.binary()], ids=["large-string", "dictionary", "binary"]
)
def test_text_column_types(kind: pa.DataType) -> None:
    lines = pa.array([RFC3164_EXAMPLE_1, "nope"], pa.string()).cast(kind)
    out = build_stage("{type: syslog}").process(pa.RecordBatch.from_arrays([lines], names=["message"]))
    assert out.main.column("appname").to_pylist() == ["su"]
    assert out.extra["dropped"].num_rows == 1


def test_invalid_utf8_bytes_are_replaced_not_fatal() -> None:
    lines = pa.array([b"<13>Oct 11 22:14:15 h app: J\xf6rg logged in", b"\xff\xfe"], pa.binary())
    out = build_stage("{type: syslog}").process(pa.RecordBatch.from_arrays([lines], names=["message"]))
    assert out.main.column("message").to_pylist() == ["J\ufffdrg logged in"]
    assert out.extra["dropped"].column("_error").to_pylist() == ["expected TIMESTAMP 'Mmm dd hh:mm:ss', got '\ufffd\ufffd'"]


def test_one_megabyte_lines() -> None:
    body = "x" * (1 << 20)
    good, bad = f"<13>1 2023-01-01T00:00:00Z h a p m - {body}", f"<13>1 2023-01-01T00:00:00Z h a p m [id k=\"{body}"
    garbage = "\x00" * (1 << 20)
    out = _process([good, bad, garbage])
    assert out.main.column("message").to_pylist() == [body]
    assert out.extra["dropped"].column("_error").to_pylist() == [
        "truncated line: unterminated PARAM-VALUE of 'k'", f"expected TIMESTAMP 'Mmm dd hh:mm:ss', got {chr(0) * 39 + '…'!r}"]
    assert _parse(good)["message"] == body


def test_empty_batch_is_returned_as_is() -> None:
    empty = batch_of(message=[RFC3164_EXAMPLE_1]).slice(0, 0)
    out = build_stage("{type: syslog}").process(empty)
    assert out.main.num_rows == 0 and out.main.schema == empty.schema


def _as_row(result: dict[str, Any]) -> dict[str, Any]:
    """What `process` should hold for a `parse_lines` result."""
    stamp = result.get("timestamp")
    return {
        "timestamp": datetime.fromisoformat(stamp).astimezone(UTC) if stamp else None,
        "host": result.get("hostname"), "level": normalize_level(result["severity"]), "message": result.get("message"),
        "priority": result["priority"], "facility": result["facility"], "severity": result["severity"],
        "version": result.get("version"), "appname": result.get("appname"), "procid": result.get("procid"),
        "msgid": result.get("msgid"), "structured_data": result.get("structured_data"),
    }


def _assert_agreement(lines: list[str], snippet: str = "{type: syslog}") -> None:
    stage = build_stage(snippet.replace("}", ", on_error: keep}"), name="parse")
    expected = stage.parse_lines(lines)
    out = stage.process(batch_of(message=lines)).main
    errors = out.column("_error").to_pylist() if "_error" in out.schema.names else [None] * out.num_rows
    rows = out.to_pylist()
    good = [r for r, e in zip(rows, errors) if e is None]
    assert [r.reason for r in expected if isinstance(r, ParseFailure)] == [e for e in errors if e is not None]
    for result, row in zip([r for r in expected if not isinstance(r, ParseFailure)], good):
        data = row["structured_data"]
        got = {name: row[name] for name in _as_row(result)} | {"structured_data": json.loads(data) if data else None}
        assert got == _as_row(result), result


def _tabled_lines() -> list[str]:
    """Every line in this module's parametrize tables whose first argument is `line`."""
    found = []
    for test in vars(sys.modules[__name__]).values():
        for mark in getattr(test, "pytestmark", []) if callable(test) else []:
            if mark.name == "parametrize" and mark.args[0].startswith("line"):
                found.extend(case[0] for case in mark.args[1] if isinstance(case[0], str))
    return found


def test_process_agrees_with_parse_lines_on_every_case() -> None:
    cases = [RFC5424_EXAMPLE_1, RFC5424_EXAMPLE_2, RFC5424_EXAMPLE_3, RFC5424_EXAMPLE_4, RFC3164_EXAMPLE_1, RFC3164_EXAMPLE_2,
             RFC3164_EXAMPLE_2_RELAYED, RFC3164_EXAMPLE_3, RFC3164_EXAMPLE_4, RFC3164_EXAMPLE_4_RELAYED, *LINUX, *IETF]
    tabled = _tabled_lines()
    assert len(tabled) > 100
    cases.extend(tabled)
    for rfc in ("auto", "rfc3164", "rfc5424"):
        _assert_agreement(cases, f"{{type: syslog, format: {rfc}, timezone: Europe/Paris}}")


def test_process_agrees_with_parse_lines_on_mutated_lines() -> None:
    rng = random.Random(5424)
    base = [*LINUX, *IETF, RFC5424_EXAMPLE_1, RFC5424_EXAMPLE_3, RFC5424_EXAMPLE_4]
    alphabet = ' <>[]="\\-:0123456789TZaé\ufeff'
    mutated = []
    for _ in range(3000):
        line = list(rng.choice(base))
        for _ in range(rng.randint(1, 3)):
            at = rng.randrange(len(line) + 1)
            action = rng.random()
            if action < 0.4:
                line.insert(at, rng.choice(alphabet))
            elif action < 0.8 and at < len(line):
                del line[at]
            elif at < len(line):
                line[at] = rng.choice(alphabet)
        mutated.append("".join(line))
    _assert_agreement(mutated)


def test_many_lines_across_both_paths() -> None:
    rng = random.Random(7)
    lines = [rng.choice([*LINUX, *IETF, "", "garbage"]) for _ in range(50_000)]
    out = _process(lines, "{type: syslog}")
    expected = build_stage("{type: syslog}").parse_lines(lines)
    assert out.main.column("message").to_pylist() == [r.get("message") for r in expected if not isinstance(r, ParseFailure)]
    assert out.main.column("procid").to_pylist() == [r.get("procid") for r in expected if not isinstance(r, ParseFailure)]
    assert out.extra["dropped"].column("_error").to_pylist() == [r.reason for r in expected if isinstance(r, ParseFailure)]
    assert out.extra["dropped"].num_rows == sum(line in ("", "garbage") for line in lines)


def test_process_is_safe_from_several_threads() -> None:
    stage = build_stage("{type: syslog}")
    batches = [batch_of(message=[*LINUX[i:], *IETF[: i + 1], ""]) for i in range(8)]
    expected = [stage.process(batch).main.to_pylist() for batch in batches]
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda b: stage.process(b).main.to_pylist(), batches * 4))
    assert results == expected * 4


@pytest.mark.parametrize(
    "snippet, path, message",
    [
        ("{type: syslog, timezone: Mars/Olympus}", ("timezone",), "unknown time zone 'Mars/Olympus': use an IANA name such as 'UTC' or 'Europe/Paris'"),
        ("{type: syslog, timezone: ../etc/passwd}", ("timezone",), "unknown time zone '../etc/passwd': use an IANA name such as 'UTC' or 'Europe/Paris'"),
        ("{type: syslog, format: rfc3339}", ("format",), "Input should be 'auto', 'rfc3164' or 'rfc5424'"),
        ("{type: syslog, year: 0}", ("year",), "Input should be greater than or equal to 1"),
    ],
    ids=["unknown-zone", "path-as-zone", "bad-format", "year-zero"],
)
def test_bad_config_is_a_spec_error(snippet: str, path: tuple[str, ...], message: str) -> None:
    with pytest.raises(SpecError) as caught:
        build_stage(snippet, name="parse")
    [issue] = caught.value.issues
    assert issue.path == path and issue.message == message and issue.node == "parse"


def _cli(*args: str, stdin: bytes) -> subprocess.CompletedProcess[bytes]:
    command = [sys.executable, "-m", "loglake.pipelines.cli", "parse", "syslog", *args]
    return subprocess.run(command, input=stdin, capture_output=True, timeout=120, check=False)


def test_cli_prints_one_json_object_per_line() -> None:
    lines = [RFC3164_EXAMPLE_1, RFC5424_EXAMPLE_3, "", "<999>Oct 11 22:14:15 h x", LINUX[24], "Jan 15 08:00:00 h a: winter"]
    result = _cli("--year", "2023", "--tz", "Europe/Paris", stdin=("\n".join(lines) + "\n").encode())
    assert result.returncode == 0, result.stderr.decode()
    out = result.stdout.decode().splitlines()
    assert out[0] == ('{"priority":34,"facility":"auth","severity":"crit","timestamp":"2023-10-11T22:14:15+02:00",'
                      '"hostname":"mymachine","appname":"su","message":"\'su root\' failed for lonvick on /dev/pts/8"}')
    assert [json.loads(line) for line in out] == [
        json.loads(out[0]),
        {**_pri(165, "local4", "notice"), "version": 1, "timestamp": "2003-10-11T22:14:15.003000+00:00",
         "hostname": "mymachine.example.com", "appname": "evntslog", "msgid": "ID47", "structured_data": ID47,
         "message": "An application event log entry..."},
        {"_error": "empty line", "message": ""},
        {"_error": "invalid PRI '<999>'", "message": "<999>Oct 11 22:14:15 h x"},
        {**_pri(13, "user", "notice"), "timestamp": "2023-10-11T22:21:05+02:00", "hostname": "web-01", "appname": "sshd(pam_unix)",
         "procid": "5120", "message": "authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=192.0.2.44  user=root"},
        {**_pri(13, "user", "notice"), "timestamp": "2023-01-15T08:00:00+01:00", "hostname": "h", "appname": "a", "message": "winter"},
    ]


def test_cli_rejects_an_unknown_zone_before_reading() -> None:
    result = _cli("--tz", "Mars/Olympus", stdin=b"")
    assert result.returncode == 2
    assert "unknown time zone 'Mars/Olympus'" in result.stderr.decode()
