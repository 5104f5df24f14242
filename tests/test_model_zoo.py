"""Configs by name from any folder (solo_d2.model_zoo), and the README's Python snippet run as
written from another folder on this CPU-only machine."""
import os
import re
import subprocess
import sys

import pytest

import solo_d2
from conftest import ROOT


def test_every_config_is_shipped_and_found_by_name():
    names = solo_d2.model_zoo.list_configs()
    root = os.path.join(ROOT, "configs")
    on_disk = sorted(
        os.path.relpath(os.path.join(d, f), root)
        for d, _, files in os.walk(root) for f in files if f.endswith((".yaml", ".py"))
    )
    # the LazyConfig pieces under common/ are not recipes
    assert names == [n for n in on_disk if not n.startswith("common" + os.sep)]
    assert any(n.startswith("common" + os.sep) for n in on_disk)
    cfg = solo_d2.model_zoo.get_config("quick_schedules/SOLOv2_R18_shapes.yaml")
    assert cfg.MODEL.SOLO.HEAD_NAME == "SOLOV2Head" and cfg.MODEL.RESNETS.DEPTH == 18
    with pytest.raises(RuntimeError, match="'nope.yaml' is not a solo_d2 config.*SOLO_R50_1x"):
        solo_d2.model_zoo.get_config_file("nope.yaml")


def _readme_python_snippet() -> str:
    text = open(os.path.join(ROOT, "README.md")).read()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert blocks, "README has no python snippet"
    return blocks[0]


def test_readme_snippet_runs_from_another_folder(tmp_path):
    snippet = _readme_python_snippet()
    check = "\nassert type(model).__name__ == 'SOLO', model\nprint('built', cfg.MODEL.DEVICE)\n"
    r = subprocess.run([sys.executable, "-c", snippet + check], cwd=tmp_path,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "built cpu" in r.stdout or "built cuda" in r.stdout
