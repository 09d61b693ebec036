"""Benchmark: what `loglake` costs before and after the work, against another revision of the code.

The nginx benchmark pipeline (nginx/pipeline.yaml) reading a file of `--lines` generated lines (nginx/file_copy.py;
200 by default, so the run is almost all start-up and teardown). Round by round, each command runs in its own
process, for this checkout and, with `--baseline REV`, for that revision's code (`git archive` of its four code
folders, put first on PYTHONPATH):

- `help`: `loglake --help` (importing the CLI and building its parser: what every command pays);
- `validate`: `loglake validate` of the pipeline (load, compile: every stage built, GeoIP opened, SQL bound);
- `run`: `loglake run --reset` of the pipeline into a fresh lake; its summary's dataflow seconds are subtracted
  from the wall time to give start-up and teardown.

Reported per variant and command: CPU seconds (user + system of the process, from `wait4`; the measure to quote,
the machine being shared) and wall seconds, median and min–max, and the baseline's median over this checkout's.
Appended to benchmarks/results/startup.jsonl.

    python benchmarks/startup.py [--runs 7] [--lines 200] [--baseline HEAD]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from nginx.children import BENCHMARKS, Run, loglake_summary, run_child  # type: ignore[import-not-found]
from nginx.data import WORK, make_input  # type: ignore[import-not-found]
from nginx.file_copy import file_pipeline  # type: ignore[import-not-found]
from recording import CODE_FOLDERS, compile_sources, header, record  # type: ignore[import-not-found]

RUNS_DIR = WORK / "startup"


def _git(*argv: str) -> str:
    return subprocess.run(["git", *argv], cwd=BENCHMARKS, capture_output=True, text=True, check=True).stdout.strip()


def _baseline_code(revision: str, into: Path) -> dict[str, str]:
    """The environment that makes `loglake` that revision's: its code folders as `into/loglake/*`, first on the path."""
    archive = subprocess.run(["git", "archive", revision, *CODE_FOLDERS], cwd=BENCHMARKS.parent, capture_output=True, check=True).stdout
    (into / "loglake").mkdir(parents=True)
    subprocess.run(["tar", "x"], cwd=into / "loglake", input=archive, check=True)
    compile_sources(into / "loglake")
    return {"PYTHONPATH": str(into)}


def _commands(pipeline: Path) -> dict[str, list[str]]:
    cli = [sys.executable, "-m", "loglake.pipelines.cli"]
    return {"help": [*cli, "--help"], "validate": [*cli, "validate", str(pipeline)], "run": [*cli, "run", str(pipeline), "--reset"]}


def _measure(command: list[str], name: str, env: dict[str, str], folder: Path) -> dict[str, float]:
    shutil.rmtree(folder, ignore_errors=True)
    run: Run = run_child(command, folder / f"{name}.log", {**env, "LOGLAKE_LAKE": str(folder / "lake")})
    measured = {"cpu_s": round(run.cpu_s, 3), "wall_s": round(run.wall_s, 3)}
    if name == "run":
        dataflow_s = loglake_summary(run.output)["dataflow_s"]
        measured["outside_dataflow_s"] = round(run.wall_s - dataflow_s, 3)
    return measured


def _spread(values: list[float]) -> dict[str, float]:
    return {"median": round(statistics.median(values), 3), "min": round(min(values), 3), "max": round(max(values), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--lines", type=int, default=200)
    parser.add_argument("--baseline", metavar="REV", help="also measure this git revision's code (e.g. HEAD, to measure uncommitted work)")
    args = parser.parse_args()
    compile_sources()
    source, facts = make_input(args.lines, False)
    RUNS_DIR.mkdir(parents=True, exist_ok=True)
    pipeline = RUNS_DIR / "pipeline.yaml"
    pipeline.write_text(file_pipeline(source), encoding="utf-8")
    with tempfile.TemporaryDirectory(prefix="loglake-baseline-") as baseline_dir:
        variants: dict[str, dict[str, str]] = {"current": {}}
        if args.baseline:
            variants[f"baseline {args.baseline}"] = _baseline_code(args.baseline, Path(baseline_dir))
        runs: dict[str, dict[str, list[dict[str, float]]]] = {variant: {} for variant in variants}
        for index in range(args.runs):
            for variant, env in variants.items() if index % 2 == 0 else reversed(variants.items()):
                for name, command in _commands(pipeline).items():
                    measured = _measure(command, name, env, RUNS_DIR / f"{index}-{variant.split()[0]}-{name}")
                    runs[variant].setdefault(name, []).append(measured)
                    print(f"{variant} {name}: {measured}", file=sys.stderr)
    summary = {
        variant: {name: {key: _spread([run[key] for run in measured]) for key in measured[0]} for name, measured in commands.items()}
        for variant, commands in runs.items()
    }
    result: dict[str, Any] = {
        **header(lines=args.lines, runs=args.runs, pipeline="nginx/pipeline.yaml, file source (nginx/file_copy.py)"),
        "code": {"commit": _git("rev-parse", "--short", "HEAD"), "files_changed": len(_git("status", "--porcelain", "--untracked-files=no").splitlines())},
        "baseline": args.baseline,
        "variants": summary,
    }
    if args.baseline:
        ours, theirs = summary["current"], summary[f"baseline {args.baseline}"]
        result["baseline_cpu_over_current"] = {name: round(theirs[name]["cpu_s"]["median"] / ours[name]["cpu_s"]["median"], 2) for name in ours}
    record("startup", result)


if __name__ == "__main__":
    main()
