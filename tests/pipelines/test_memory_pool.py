"""The engine picks Arrow's allocator before pyarrow loads: jemalloc, unless the user chose one."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

_PROBE = "import loglake.pipelines.cli, pyarrow; print(pyarrow.default_memory_pool().backend_name)"


@pytest.mark.parametrize("chosen, backend", [(None, "jemalloc"), ("system", "system")], ids=["default", "user-choice"])
def test_the_cli_runs_on_jemalloc_unless_told_otherwise(chosen: str | None, backend: str) -> None:
    env = {key: value for key, value in os.environ.items() if key != "ARROW_DEFAULT_MEMORY_POOL"}
    if chosen is not None:
        env["ARROW_DEFAULT_MEMORY_POOL"] = chosen
    probe = subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True, check=True)
    assert probe.stdout.strip() == backend
