"""`replay --from dead-letter`: records that failed re-run through the fixed YAML, from the stage they failed in.

The pipeline reads real access-log lines; `stamp` adds a column, then `octet` casts the first octet of the client
address to TINYINT, which overflows for addresses from 128.0.0.0 up: those lines become dead letters (with no
event time yet, since `parse` comes after, so the dead-letter sink stamps them). The expected datasets come from
a run of the fixed pipeline over all the lines, compared in DuckDB with EXCEPT ALL both ways.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import duckdb
import pytest

from loglake.pipelines import replay
from loglake.pipelines.replay import NothingToReplay, ReplayError, ReplayRequest, plan_replay, run_replay
from loglake.pipelines.runner import RunOptions, run_pipeline
from loglake.schemas.errors import TerminalError
from tests.e2e.conftest import loglake_command
from tests.support import APACHE_LOG

LINES = 1500
PIPELINE = """\
pipeline: access
lake: LAKE
sources:
  access: {type: file, paths: [access.log], batch_size: 100}
stages:
  stamp: {type: eval, fields: {run: "'RUN'"}}
  octet: {type: eval, fields: {first_octet: "OCTET"}}
  parse: {type: apache_combined}
sinks:
  records: {type: parquet, dataset: records}
"""
BROKEN = "CAST(split_part(message, '.', 1) AS TINYINT)"
"""Overflows for first octets 128-255."""
HALF_FIXED = "CAST(split_part(message, '.', 1)::INTEGER - 72 AS TINYINT)"
"""Still overflows for first octets 200-255, with another error."""
FIXED = "CAST(split_part(message, '.', 1) AS UTINYINT)"


def _write(folder: Path, octet: str, run: str = "first", lake: str = "lake", name: str = "pipeline.yaml") -> Path:
    path = folder / name
    path.write_text(PIPELINE.replace("OCTET", octet).replace("RUN", run).replace("LAKE", lake), encoding="utf-8")
    return path


def _dataset(folder: Path, name: str, lake: str = "lake", exclude: tuple[str, ...] = ()) -> str:
    columns = f"* EXCLUDE ({', '.join(exclude)})" if exclude else "*"
    glob = folder / lake / name / "**" / "*.parquet"
    return f"SELECT {columns} FROM read_parquet('{glob}', hive_partitioning = true, union_by_name = true, hive_types = {{'hour': INTEGER}})"


def _rows(query: str) -> list[tuple[object, ...]]:
    return duckdb.sql(query).fetchall()


def _count(query: str) -> int:
    return int(_rows(f"SELECT count(*) FROM ({query})")[0][0])


def _except_all(left: str, right: str) -> tuple[int, int]:
    return _count(f"({left}) EXCEPT ALL ({right})"), _count(f"({right}) EXCEPT ALL ({left})")


def _octets(low: int, high: int) -> int:
    """Lines whose first octet is between `low` and `high`."""
    return sum(low <= int(line.split(".", 1)[0]) <= high for line in (APACHE_LOG.read_text(encoding="utf-8").splitlines()[:LINES]))


def _replay(pipeline: Path, **flags: str) -> replay.ReplayPlan:
    plan = plan_replay(pipeline, ReplayRequest("dead-letter", **flags), cwd=pipeline.parent)  # type: ignore[arg-type]
    run_replay(plan)
    return plan


def _expected(folder: Path, octet: str) -> str:
    """The records dataset a run of the pipeline with `octet` (and `stamp` as in the first run) makes of all the lines."""
    run_pipeline(_write(folder, octet, lake="expected", name="expected.yaml"))
    return _dataset(folder, "records", "expected")


@pytest.fixture
def broken(tmp_path: Path) -> Path:
    """The broken pipeline, run once over the first lines of the real access log."""
    lines = APACHE_LOG.read_text(encoding="utf-8").splitlines(keepends=True)[:LINES]
    (tmp_path / "access.log").write_text("".join(lines), encoding="utf-8")
    pipeline = _write(tmp_path, BROKEN)
    run_pipeline(pipeline)
    return pipeline


def test_the_broken_run_leaves_the_high_addresses_in_dead_letters_stamped_by_the_sink(broken: Path) -> None:
    letters = _dataset(broken.parent, "dead_letter")

    assert _count(letters) == _octets(128, 255) > 0
    assert _rows(f"SELECT DISTINCT _error_node, run, _timestamp_defaulted FROM ({letters})") == [("octet", "first", True)]
    assert _count(f"SELECT * FROM ({letters}) WHERE _error NOT LIKE '%INT8%'") == 0
    assert _count(_dataset(broken.parent, "records")) == LINES - _octets(128, 255)


def test_fixed_records_join_the_live_dataset_once_and_leave_the_dead_letters(broken: Path) -> None:
    folder = broken.parent
    expected = _expected(folder, FIXED)
    _write(folder, FIXED, run="second")  # a stage before the failed one changed too: it must not run again

    plan = _replay(broken)

    assert plan.description == f"the dead letters in {folder / 'lake' / 'dead_letter'}: octet ({_octets(128, 255):,})"
    assert plan.dead_letters is not None and plan.dead_letters.removed == _octets(128, 255)
    live = _dataset(folder, "records")
    assert _count(live) == LINES
    assert _except_all(live, expected) == (0, 0)
    assert _rows(f"SELECT DISTINCT run FROM ({live})") == [("first",)]
    assert not list((folder / "lake" / "dead_letter").rglob("*.parquet"))
    with pytest.raises(NothingToReplay):
        plan_replay(broken, ReplayRequest("dead-letter"), cwd=folder)


def test_records_that_fail_again_are_back_in_dead_letters_with_the_new_error(broken: Path) -> None:
    folder = broken.parent
    live, letters = _dataset(folder, "records"), _dataset(folder, "dead_letter")
    duckdb.sql(f"COPY ({live}) TO '{folder / 'before.parquet'}' (FORMAT parquet)")
    fixed_now = _expected(folder, HALF_FIXED) + " WHERE first_octet >= 56"  # the first octets 128-199, minus 72
    expected = f"SELECT * FROM '{folder / 'before.parquet'}' UNION ALL BY NAME {fixed_now}"
    _write(folder, HALF_FIXED)
    old_errors = {row[0] for row in _rows(f"SELECT _error FROM ({letters})")}

    plan = _replay(broken)

    assert plan.dead_letters is not None and plan.dead_letters.removed == _octets(128, 255)
    assert _except_all(live, expected) == (0, 0)
    assert _count(live) == LINES - _octets(200, 255)
    again = _rows(f"SELECT _error, message FROM ({letters})")
    assert len(again) == _octets(200, 255) > 0
    assert all(error not in old_errors and "INT32" in error for error, _ in again)
    assert sorted(message for _, message in again) == sorted(
        line for line in APACHE_LOG.read_text(encoding="utf-8").splitlines()[:LINES] if int(line.split(".", 1)[0]) >= 200
    )


def test_the_command_reports_what_was_re_run_landed_failed_and_removed_and_then_has_nothing_left(broken: Path) -> None:
    _write(broken.parent, HALF_FIXED)
    command = [*loglake_command("replay", str(broken), "--from", "dead-letter", "--node", "octet")]

    done = subprocess.run(command, capture_output=True, text=True, check=True, timeout=120)
    again = subprocess.run([*command[:-2], "--where", "_error LIKE '%convert string%'"], capture_output=True, text=True, check=True, timeout=120)

    total, failed = _octets(128, 255), _octets(200, 255)
    folder = broken.parent / "lake" / "dead_letter"
    assert f"dead letters: {total:,} re-run, {total - failed:,} landed, {failed:,} failed again, {total:,} removed from {folder}" in done.stdout
    assert again.stdout.strip() == f"0 records: nothing to replay in the dead letters in {folder} where _error LIKE '%convert string%'"


def test_a_run_that_fails_removes_nothing(broken: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write(broken.parent, FIXED)
    real = replay.run_compiled

    def fails_at_the_end(*args: object, **kwargs: object) -> object:
        real(*args, **kwargs)  # type: ignore[arg-type]
        raise TerminalError("the run failed")

    monkeypatch.setattr(replay, "run_compiled", fails_at_the_end)
    with pytest.raises(TerminalError):
        _replay(broken)

    assert _count(_dataset(broken.parent, "dead_letter")) == _octets(128, 255)


def test_the_records_of_one_stage_only_and_what_cannot_be_replayed(broken: Path) -> None:
    folder = broken.parent

    def refusal(pipeline: Path, **flags: object) -> str:
        with pytest.raises(ReplayError) as caught:
            plan_replay(pipeline, ReplayRequest("dead-letter", **flags), cwd=folder)  # type: ignore[arg-type]
        return str(caught.value)

    assert refusal(broken, node="octe") == "--node octe: the pipeline has no stage 'octe'; did you mean 'octet'?"
    with pytest.raises(NothingToReplay):
        plan_replay(broken, ReplayRequest("dead-letter", node="parse"), cwd=folder)
    renamed = folder / "renamed.yaml"
    renamed.write_text(broken.read_text(encoding="utf-8").replace("octet:", "first_octet_of:"), encoding="utf-8")
    assert refusal(renamed).startswith(f"{_octets(128, 255):,} dead letters failed in 'octet', and the pipeline has no stage 'octet'")
    printed = folder / "printed.yaml"
    printed.write_text(broken.read_text(encoding="utf-8") + "dead_letter: {type: stdout}\n", encoding="utf-8")
    assert "dead_letter sink is a stdout sink" in refusal(printed)
    assert refusal(broken, since=replay.datetime(2015, 5, 17)) == "--since applies to --from lake and --from kafka only"
