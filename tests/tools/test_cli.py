"""Every command line: --help prints the tool's description and the defaults; a missing input
file is one "error:" line, not a traceback."""
import os
import subprocess
import sys

import pytest

from conftest import ROOT

# tool -> (words of its description, whether it has options with defaults to show)
TOOLS = {
    "train_net.py": ("Train and evaluate SOLO-family models", True),
    "demo.py": ("Run a SOLO-family model on images", True),
    "tools/convert_mmdet_checkpoint.py": ("Convert an mmdetection", True),
    "tools/convert_torchvision_backbone.py": ("Convert a torchvision ImageNet ResNet", False),
    "tools/eval_class_agnostic.py": ("COCO AP of saved predictions", True),
    "tools/benchmark.py": ("Speed and memory benchmark", True),
    "tools/export_model.py": ("Export a SOLO-family model to ONNX", True),
    "tools/benchmark_export.py": ("ONNX Runtime (CPU provider) vs PyTorch latency", True),
    "tools/check_dataset.py": ("Check every image and annotation", True),
}


def _run(tool, *args):
    return subprocess.run([sys.executable, os.path.join(ROOT, tool), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("tool", TOOLS)
def test_help_has_description_and_defaults(tool):
    r = _run(tool, "--help")
    assert r.returncode == 0, r.stderr[-2000:]
    description, has_defaults = TOOLS[tool]
    assert description in r.stdout
    assert ("(default:" in r.stdout) == has_defaults


@pytest.mark.parametrize("tool,args", [
    ("train_net.py", ["--config-file", "missing.yaml"]),
    ("demo.py", ["--config-file", "missing.yaml", "--input", "x.png", "--output", "o"]),
    ("demo.py", ["--config-file", "configs/Base-SOLO.yaml", "--video-input", "missing.mp4",
                 "--output", "o"]),
    ("tools/convert_mmdet_checkpoint.py", ["missing.pth", "out.pth"]),
    ("tools/convert_torchvision_backbone.py", ["missing.pth", "out.pkl"]),
    ("tools/eval_class_agnostic.py", ["missing.json", "results.json"]),
    ("tools/export_model.py", ["--config-file", "missing.yaml", "--output", "o"]),
    ("tools/check_dataset.py", ["--config-file", "missing.yaml"]),
    ("tools/export_model.py", ["--config-file", "configs/Base-SOLO.yaml", "--output", "o",
                               "--sample-image", "missing.png"]),
    ("demo.py", ["--config-file", "configs/Base-SOLO.yaml", "--onnx", "missing.onnx",
                 "--input", "README.md", "--output", "o"]),
    ("tools/benchmark_export.py", ["--config-file", "missing.yaml"]),
])
def test_missing_input_is_one_error_line(tool, args):
    r = _run(tool, *args)
    assert r.returncode != 0
    assert "Traceback" not in r.stderr
    errors = [line for line in r.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and "missing" in errors[0], r.stderr[-2000:]
