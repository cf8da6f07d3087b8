"""The import contracts of tests/importlinter.ini hold: nothing below the front ends imports
graph/cli, the layers of graph/ import only downwards (and every module of graph/ has a
layer), and no package of graph/ has an import cycle among its modules."""

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_import_contracts_hold():
    lint = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")
    assert lint, "import-linter is not installed (pip install -r tests/requirements.txt)"
    out = subprocess.run([lint, "--no-cache", "--no-logo", str(ROOT / "tests" / "importlinter.ini")], cwd=ROOT,
                         capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
