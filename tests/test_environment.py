"""What the installed dependencies must give loglake beyond their APIs."""

from __future__ import annotations

import subprocess
import sys

_FAILED_IMPORTS = """
import sys
import pyarrow as pa
import pyarrow.compute as pc

column = pa.array(["a", "", "b"])
pc.equal(column, ""); pa.array(["x", None])  # the first conversion may import what it needs
missed = []

class Spy:  # the last finder: asked only for modules no other finder has
    @staticmethod
    def find_spec(name, path=None, target=None):
        missed.append(name)
        return None

sys.meta_path.append(Spy)
for _ in range(3):
    pc.equal(column, ""); pa.array(["x", None]); pa.scalar(1.5)
print(sorted(set(missed)))
"""


def test_pyarrow_converts_python_values_without_searching_for_missing_modules() -> None:
    """Each stage compares columns with Python values once per batch; a module pyarrow looks for on every
    conversion and does not find (dateutil) costs a search of sys.path each time, 35 times the call itself."""
    found = subprocess.run([sys.executable, "-c", _FAILED_IMPORTS], capture_output=True, text=True, check=True)
    assert found.stdout.strip() == "[]"
