"""The `syslog` stage: RFC 5424 and RFC 3164 (BSD) syslog lines into the core columns and syslog fields.

What a line becomes (`loglake parse syslog` prints the `parse_lines` form, one JSON object per line):

- `priority` (int), `facility` and `severity` as keywords (`auth`, `local4`, …; `emerg` … `debug`),
  `version` (RFC 5424 only), `timestamp`, `hostname`, `appname`, `procid` (text), `msgid`,
  `structured_data` and `message` (the MSG part). Absent fields and RFC 5424 NILVALUEs (`-`) are left
  out; an empty MSG after its separating space is `""`. In RFC 3164 lines `-` is a value like any other.
- `timestamp` is ISO 8601 with the offset the line gives (`datetime.isoformat()`: microseconds when the
  fraction is not zero, e.g. `2003-10-11T22:14:15.003000+00:00`). RFC 3164 times are read in `timezone`,
  in the configured `year` or else the year that puts them closest to now and at most a day ahead.
- `structured_data` maps SD-ID to {PARAM-NAME: value} with `\\"`, `\\\\` and `\\]` unescaped (a backslash
  before anything else is kept); a PARAM-NAME repeated within an element (RFC 5424 allows it) gives a list
  of its values in order. In batches the column holds the same mapping as JSON text.
- RFC 3164 lines without `<PRI>` get PRI 13, user.notice, as RFC 3164 section 4.3.3 prescribes. Their
  TIMESTAMP (`Mmm dd hh:mm:ss`, the day space- or zero-padded) and HOSTNAME are required: a line without
  them is not taken for syslog (section 4.3.2 would have a relay invent both). The TAG is the first word of
  MSG only when it ends in `:` or `[pid]:` and is followed by a space or the end of the line; it may hold
  anything but whitespace, `[`, `]` and `:` (`sshd(pam_unix)[123]:`, `postfix/smtpd[2211]:`).
- RFC 5424 is read strictly: single spaces, PRI 0–191 without leading zeros, VERSION 1, the field
  lengths, at most 6 fraction digits, real dates and times, SD names and escaping, no repeated SD-ID; a
  UTF-8 BOM opening MSG is removed. `auto` takes a line for RFC 5424 when `<PRI>` is followed by a
  number and a space.

In `process` the fields become the columns `timestamp` (event time), `host`, `level` (the severity
normalised: `err` → `error`, `warning` → `warn`, …), `message`, `priority`, `facility`, `severity`,
`version`, `appname`, `procid`, `msgid` and `structured_data` (JSON text), always all of them, or one
struct column `target` with the same fields. RFC 3164 years are judged against `stage.now()`, read once per
batch (or per `parse_lines` call); tests replace that function.
"""

from loglake.parsers.syslog.columns import COLUMNS
from loglake.parsers.syslog.grammar import FACILITIES, SEVERITIES
from loglake.parsers.syslog.stage import SyslogConfig, SyslogStage

__all__ = ["SyslogConfig", "SyslogStage", "COLUMNS", "FACILITIES", "SEVERITIES"]
