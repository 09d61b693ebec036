"""The `csv` stage: delimited lines (CSV, TSV) into named columns, quoted per RFC 4180, strictly.

A field is either plain (no quote character in it) or quoted from its first to its last character, a
doubled quote standing for one (`"say ""hi"" now"`). A line breaks that rule when a quote is left open, a quote
stands inside a plain field (`a,b"c`) or text follows a closing quote (`"a"b`); it fails, as does an
empty or blank line. A line is one record: a line break inside a value (from a Kafka message) is kept.

Names: `columns`, or the `header` line, or `column1`, `column2`, … (Logstash style). A row with more fields
than names names the rest `columnN` by position; a row with fewer leaves the missing ones null (and absent
from `parse_lines` results). With `infer_types`, integers (no leading zeros, within int64), decimals and
`true`/`false` become typed and an empty field null: per column in a batch (a column that mixes kinds
stays text; integers with decimals become decimals), per value in `parse_lines`.

Header lines are remembered per value of the `source` column, so files with different headers can share a
stage. Where records carry `_line` (the file and stdin sources), the header is the line numbered 1: a
rotated or truncated file's new header replaces the old one, and a stream that starts inside a file
(`start_at: end`, a resumed run) fails its records ("no header line seen") instead of mislabelling them.
Without `_line`, the first line seen for a source is its header. With several workers this holds because
each file is read by one worker, in order. Without a `source` column one header serves every record: the
first line the stage sees, which with several workers is whichever worker gets there first; give
`columns` there instead.

Speed: lines without a quote character are split in one vectorised call (Arrow's `split_pattern`); quoted
lines that an RE2 check finds to be strict one-line rows of a common width are read by Arrow's CSV reader;
only the rest (blank lines, other widths, malformed rows) go through the per-line scanner (a compiled
regular expression), which also serves `parse_lines`. Python's `csv` module is not used: it accepts a
quote inside a plain field and reports no positions.

`config` holds the YAML model, `split` turns lines into lists of fields (Arrow first, the scanner for the
rest), and `stage` names and types the fields, keeps the headers and registers `csv`.
"""

from loglake.parsers.csv.config import CsvConfig
from loglake.parsers.csv.stage import CsvStage

__all__ = ["CsvConfig", "CsvStage"]
