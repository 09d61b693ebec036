"""Progress while a replay runs: a plain line every few seconds off a terminal, a rich bar on one; totals from files."""

from __future__ import annotations

import gzip
import io
import itertools
import re
import time
from pathlib import Path

import pytest

from loglake.pipelines.progress import Total, estimate_lines, show_progress
from tests.support import APACHE_LOG


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_off_a_terminal_a_plain_line_reports_count_total_rate_and_eta() -> None:
    stream = io.StringIO()
    counter = itertools.count(10, 10)

    with show_progress(lambda: next(counter), Total(1_000_000, approximate=True), "replay access", stream, interval=0.05):
        time.sleep(0.18)

    lines = stream.getvalue().splitlines()
    assert len(lines) >= 2
    assert re.fullmatch(r"replay access: \d+ of ~1,000,000 records \(0%\), [\d,]+/s, ETA \d+:\d\d:\d\d", lines[0]), lines[0]


def test_without_a_total_the_line_has_count_and_rate() -> None:
    stream = io.StringIO()

    with show_progress(lambda: 1234, None, "replay in", stream, interval=0.05):
        time.sleep(0.08)

    assert re.fullmatch(r"replay in: 1,234 records, [\d,]+/s", stream.getvalue().splitlines()[0])


def test_on_a_terminal_a_bar_shows_records_of_the_total_and_the_rate() -> None:
    stream = _Terminal()
    done = iter(range(0, 10**9, 250))

    with show_progress(lambda: next(done), Total(5_000), "replay access", stream):
        time.sleep(0.9)

    shown = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", stream.getvalue())  # colours and cursor moves
    assert "replay access" in shown and "of 5,000 records" in shown and "records/s" in shown and "0:00:" in shown


def test_line_totals_are_exact_for_small_files_and_estimated_for_large_ones(tmp_path: Path) -> None:
    small = tmp_path / "small.log"
    small.write_bytes(b"one\ntwo\nthree without newline")
    packed = tmp_path / "access.log.gz"
    packed.write_bytes(gzip.compress(APACHE_LOG.read_bytes()))

    assert estimate_lines([str(small)]) == Total(3)
    for files in ([str(APACHE_LOG)], [str(packed)], [str(APACHE_LOG), str(small)]):
        total = estimate_lines(files)
        assert total.approximate and str(total).startswith("~")
        assert total.count == pytest.approx(10_000 + 3 * (len(files) == 2), rel=0.05)
