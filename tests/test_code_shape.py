"""The code keeps its shape: no function in src/ over 60 lines, no module over 450."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_no_function_over_60_lines_and_no_module_over_450():
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "code_sizes.py"), str(ROOT / "src")],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout
    assert "longest function" in proc.stdout and "largest module" in proc.stdout
