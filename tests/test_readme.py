"""The README's Python code runs as written (each block on its own, in a fresh interpreter)."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from warpfields.fields.hybrid import HybridField, preset_config
from warpfields.io.fieldfile import save_field

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"^```python\n(.*?)^```", README.read_text(), re.MULTILINE | re.DOTALL)


def test_the_readme_has_python_blocks():
    assert len(BLOCKS) >= 2


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_python_block_runs(tmp_path, index):
    # The field file `warpfields demo` writes, stood in for by an untrained tiny field of the same format.
    (tmp_path / "warpfields-demo").mkdir()
    save_field(HybridField(preset_config("tiny"), seed=0), tmp_path / "warpfields-demo" / "field.wfield")
    script = tmp_path / "block.py"  # Warp reads kernels' source from their file
    script.write_text(BLOCKS[index])
    run = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip()
