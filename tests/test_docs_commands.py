"""Docs that cannot rot: every shell command of the README and the user guides is extracted
and checked against the code: the script exists, its own argument parser accepts the flags,
the config exists and takes every KEY VALUE option (a LazyConfig: every key=value names one
of its keys), and every weights name resolves. A
renamed flag, config, config key or weights name fails here, not for a reader.

Parsing is what ``--help`` checks and no more: each script's ``main`` (or ``parse_args``) runs
until its parser has parsed the command line, then stops. Files a reader brings (their
images, checkpoints, ONNX graphs) need not exist; configs under configs/ must.
"""
import argparse
import importlib.util
import os
import re
import shlex
import sys
from typing import List, Tuple

import pytest
from detectron2.config import LazyConfig, get_cfg

import solo_d2
from conftest import ROOT
from solo_d2.checkpoint.catalog import NAME_SCHEMES, resolve_weights_name
from solo_d2.utils.cli import readable_file

DOCS = ["README.md", "docs/GETTING_STARTED.md", "docs/MODEL_ZOO.md", "docs/DEPLOYMENT.md",
        "docs/MIXED_PRECISION.md", "docs/BENCHMARKS.md", "docs/LAZYCONFIG.md", "docs/CLUSTERS.md",
        "docs/PANOPTIC.md"]
PROGRAMS = ("python", "pip", "git", "bash", "cd", "torchrun", "srun")
_ENV_ASSIGN = re.compile(r"^[A-Z_][A-Z0-9_]*=\S*$")


def _code_lines(text: str) -> List[str]:
    """Lines of shell code blocks: fenced ones (no language, bash, sh, shell, console) and
    indented ones (4+ spaces after a blank line, as in lists)."""
    lines, fence, indented = [], None, False
    prev_blank = True
    for line in text.splitlines():
        m = re.match(r"^\s*```(\w*)", line)
        if m:
            fence = None if fence is not None else m.group(1)
            continue
        if fence is not None:
            if fence in ("", "bash", "sh", "shell", "console"):
                lines.append(line)
            continue
        if line.strip() == "":
            prev_blank = True
            lines.append("")
            continue
        if re.match(r"^ {4,}\S", line) and (prev_blank or indented):
            indented = True
            lines.append(line)
        else:
            indented = False
        prev_blank = False
    return lines


def shell_commands(path: str) -> List[Tuple[str, List[str]]]:
    """(command as written, its words without environment assignments) of a markdown file."""
    out, buf = [], ""
    for line in _code_lines(open(os.path.join(ROOT, path)).read()) + [""]:
        buf += line.strip()
        if buf.endswith("\\"):
            buf = buf[:-1] + " "
            continue
        command, buf = buf.strip(), ""
        if not command:
            continue
        words = shlex.split(command, comments=True)
        while words and _ENV_ASSIGN.match(words[0]):
            words = words[1:]
        if words and words[0] in PROGRAMS:
            out.append((command, words))
    return out


class _Parsed(Exception):
    def __init__(self, namespace: argparse.Namespace):
        self.namespace = namespace


def _parse_only(monkeypatch, run, argv: List[str]) -> argparse.Namespace:
    """Run ``run(argv)`` until its argparse parser has parsed ``argv``; the namespace. Input
    files other than --config-file are the reader's own, so their existence is not checked."""
    original = argparse.ArgumentParser.parse_args

    def parse(self, args=None, namespace=None):
        for action in self._actions:
            if action.type is readable_file and action.dest != "config_file":
                action.type = None
        raise _Parsed(original(self, args, namespace))

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse)
    try:
        run(argv)
    except _Parsed as p:
        return p.namespace
    finally:
        monkeypatch.undo()
    raise AssertionError("the script returned without parsing its arguments")


def _module(script: str):
    name = "docs_cmd_" + re.sub(r"\W", "_", script)
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, script))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _check_lazy_config(path: str, opts: List[str]) -> None:
    """A LazyConfig loads and every key=value override names a key it has (apply_overrides
    would add a misspelt one); its weights name resolves."""
    from omegaconf import OmegaConf

    cfg = LazyConfig.load(path)
    missing = object()
    for o in opts:
        key = o.split("=", 1)[0]
        assert "=" in o and OmegaConf.select(cfg, key, default=missing) is not missing, o
    cfg = LazyConfig.apply_overrides(cfg, list(opts))
    _check_weights(cfg.train.init_checkpoint)


def _check_config(config_file: str, opts: List[str]) -> None:
    """The config exists and merges every option (unknown keys, bad values fail); a weights
    name resolves."""
    assert os.path.isfile(os.path.join(ROOT, config_file)), config_file
    if config_file.endswith(".py"):
        return _check_lazy_config(os.path.join(ROOT, config_file), opts)
    cfg = get_cfg()
    solo_d2.add_solo_config(cfg)
    cfg.merge_from_file(os.path.join(ROOT, config_file))
    cfg.merge_from_list(list(opts))
    _check_weights(cfg.MODEL.WEIGHTS)


def _check_weights(weights: str) -> None:
    if weights.startswith(NAME_SCHEMES):
        resolve_weights_name(weights)  # WeightsNameError naming the known ones


def _launched(words: List[str]) -> List[str]:
    """``python script args`` of a torchrun / srun command line (their own options dropped)."""
    at = next((i for i, w in enumerate(words) if w.endswith(".py")), None)
    assert at is not None, f"{words[0]} launches no script: {words}"
    return ["python", *words[at:]]


def check_command(words: List[str], monkeypatch) -> None:
    if words[0] in ("torchrun", "srun"):
        words = _launched(words)
    program, args = words[0], words[1:]
    if program in ("pip", "git", "cd"):
        return
    if program == "bash":
        assert os.path.isfile(os.path.join(ROOT, args[0])), args[0]
        return
    if args[:2] == ["-m", "pip"]:
        return
    if args[:2] == ["-m", "pytest"]:
        for a in args[2:]:
            assert a.startswith("-") or os.path.exists(os.path.join(ROOT, a)), a
        return
    script = args[0]
    assert os.path.isfile(os.path.join(ROOT, script)), f"no script {script}"
    mod = _module(script)
    run = mod.parse_args if script == "train_net.py" else mod.main
    ns = _parse_only(monkeypatch, run, args[1:])
    opts = list(getattr(ns, "trailing_opts", [])) + list(getattr(ns, "opts", None) or [])
    configs = getattr(ns, "config_file", None) or []
    for config_file in [configs] if isinstance(configs, str) else configs:  # or repeated
        _check_config(config_file, opts)
    for w in getattr(ns, "weights", []):  # tools/download_weights.py
        _check_weights(w)


@pytest.mark.parametrize("doc", DOCS)
def test_every_shell_command_of_the_docs_parses(doc, monkeypatch):
    monkeypatch.chdir(ROOT)
    commands = shell_commands(doc)
    assert commands, f"{doc}: no shell command found"
    failures = []
    for command, words in commands:
        try:
            check_command(words, monkeypatch)
        except (Exception, SystemExit) as e:  # noqa: BLE001 - report every broken command
            failures.append(f"{command}\n    -> {type(e).__name__}: {e}")
    assert not failures, f"{doc}:\n" + "\n".join(failures)


def test_the_readme_commands_are_found():
    """The extraction sees the README's commands (a change of markup must not hide them)."""
    found = [c for c, _ in shell_commands("README.md")]
    for expected in (
        "python -m pytest -q tests",
        "python demo.py --config-file configs/SOLOv2_R50_3x.yaml --input my_photo.jpg "
        "--output vis/ MODEL.WEIGHTS solo_d2://SOLOv2_R50_3x MODEL.DEVICE cpu",
        "python train_net.py --config-file configs/SOLOv2_R50_1x.yaml --num-gpus 8",
    ):
        assert any(re.sub(r"\s+", " ", c) == expected for c in found), (expected, found)
    assert len(found) >= 12, found


def test_a_broken_command_is_caught(monkeypatch):
    """The checks fail on a renamed flag, a missing config, an unknown key or weights name."""
    monkeypatch.chdir(ROOT)
    for bad in (
        "python demo.py --config-file configs/SOLOv2_R50_3x.yaml --inputs a.jpg --output vis/",
        "python train_net.py --config-file configs/SOLOv3_R50_3x.yaml",
        "python train_net.py --config-file configs/SOLOv2_R50_1x.yaml MODEL.SOLO.NUM_CLASS 5",
        "python train_net.py --config-file configs/SOLOv2_R50_1x.py model.num_class=5",
        "python demo.py --config-file configs/SOLOv2_R50_3x.yaml --input a.jpg --output vis/ "
        "MODEL.WEIGHTS solo_d2://SOLOv2_R50_9x",
        "python tools/download_weights.py torchvision://resnet5",
        "python tools/nope.py",
        "torchrun --nproc_per_node 2 train_net.py --config-file configs/SOLOv2_R50_1x.yaml "
        "CLUSTER.DEAD_PROCESS_TIMEOUT 60",  # an int where the key is a float
        "srun --ntasks-per-node 8 python train_net.py --config-file configs/SOLOv2_R50_1x.py "
        "train.cluster.dead_process_timeot=60.0",
    ):
        with pytest.raises((Exception, SystemExit)):
            check_command(shlex.split(bad), monkeypatch)
    check_command(shlex.split("python demo.py --config-file configs/SOLOv2_R50_3x.yaml "
                              "--input a.jpg --output vis/"), monkeypatch)


if __name__ == "__main__":  # list the commands found
    for d in DOCS:
        for c, _ in shell_commands(d):
            print(f"{d}: {c}")
    sys.exit(0)
