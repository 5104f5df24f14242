"""MODEL.WEIGHTS as a URL through the command lines, as subprocesses run from another folder
against a real HTTP server on 127.0.0.1: train_net.py --eval-only with two processes downloads
an mmdet checkpoint once, converts it once and evaluates it; demo.py then uses the cache
without a request; every download failure is one "error:" line and leaves nothing cached."""
import json
import os
import subprocess
import sys

import pytest
import torch

from conftest import ROOT, TINY_OPTS, require_mmdet, write_test_image, write_toy_coco
from solo_d2.checkpoint import mmdet_config_to_d2
from solo_d2.checkpoint.download import MIRROR_ENV, cached_path
from weights_server import WeightsServer, files_left_in, refused_url, sha256_name

TOY_CLASSES = ["rect", "ellipse", "triangle"]  # write_toy_coco's categories


def _run(args, cwd, env, timeout=600):
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture
def env(tmp_path):
    """The package from this checkout, an empty weights cache and torch.hub folder."""
    e = {k: v for k, v in os.environ.items() if k != MIRROR_ENV}
    e.update(PYTHONPATH=ROOT, FVCORE_CACHE=str(tmp_path / "cache"),
             TORCH_HOME=str(tmp_path / "torch_home"), OMP_NUM_THREADS="1")
    return e


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    """A tiny random SOLOv2 (3 classes) saved as mmdet publishes checkpoints, named with its
    true hash prefix, with confident masks; the yaml that rebuilds it; a toy COCO dataset."""
    ref = require_mmdet()
    mm = ref.small_solo_config("SOLOV2Head", mmdet2=True)
    mm["model"]["mask_head"]["num_classes"] = len(TOY_CLASSES)
    model = ref.build_mmdet_model(mm, seed=5)
    ref.shift_head_biases(model, cls_shift=2.0, mask_shift=4.0)
    d = tmp_path_factory.mktemp("published")
    tmp = str(d / "tmp.pth")
    ref.save_mmdet_checkpoint(model, mm, tmp, mmdet2=True, classes=TOY_CLASSES, published=True)
    name = sha256_name("tiny_solov2_r18_fpn_1x_toy_20240101_000000", open(tmp, "rb").read())
    path = str(d / name)
    os.rename(tmp, path)
    cfg, _ = mmdet_config_to_d2(mm)
    cfg.MODEL.DEVICE = "cpu"
    cfg.DATALOADER.NUM_WORKERS = 0
    yaml_path = str(d / "tiny_solov2.yaml")
    with open(yaml_path, "w") as f:
        f.write(cfg.dump())
    json_file = write_toy_coco(str(d / "toy"), num_images=4)
    return path, yaml_path, json_file


def test_train_net_eval_only_and_demo_by_url_download_once(published, env, tmp_path):
    path, yaml_path, json_file = published
    name = os.path.basename(path)
    route = "/mmdetection/v2.0/solov2/" + name
    image = str(tmp_path / "a.jpg")
    write_test_image(image, 120, 160)
    with WeightsServer() as server:
        url = server.add(route, open(path, "rb").read())
        images = os.path.join(os.path.dirname(json_file), "images")
        register = f"[['toy_val', '{json_file}', '{images}']]"
        r = _run([os.path.join(ROOT, "train_net.py"), "--config-file", yaml_path, "--eval-only",
                  "--num-gpus", "2", "--dist-url", "auto", "MODEL.DEVICE", "cpu",
                  "DATASETS.REGISTER_COCO_INSTANCES", register, "DATASETS.TEST", "('toy_val',)",
                  "MODEL.WEIGHTS", url, "OUTPUT_DIR", str(tmp_path / "eval")],
                 cwd=tmp_path, env=env)
        out = r.stdout + r.stderr
        assert r.returncode == 0, out[-4000:]
        assert server.requests[route] == 1  # two processes, one download
        # whichever process won the lock says so in its log (rank 0: log.txt and stdout)
        logs = "".join(open(os.path.join(tmp_path, "eval", f)).read()
                       for f in os.listdir(tmp_path / "eval") if f.startswith("log.txt"))
        assert logs.count(f"Downloading {url}") == 1, logs[-4000:]
        assert logs.count(f"Converted {name} (solo_d2 mmdet converter)") == 1, logs[-4000:]
        # every tensor found its place: Detectron2 lists missing or unused keys otherwise
        assert "not found in the checkpoint" not in out and "not used by the model" not in out
        assert "copypaste: Task: segm" in out
        results = json.load(open(tmp_path / "eval" / "inference" / "coco_instances_results.json"))
        assert results and {p["category_id"] for p in results} <= {1, 2, 3}

        # the second use: demo.py reads the cached conversion, no request
        r = _run([os.path.join(ROOT, "demo.py"), "--config-file", yaml_path, "--input", image,
                  "--output", str(tmp_path / "vis"), "--confidence-threshold", "0.3",
                  "MODEL.WEIGHTS", url], cwd=tmp_path, env=env)
        assert r.returncode == 0, r.stderr[-4000:]
        assert server.requests[route] == 1
        assert "Downloading" not in r.stderr and "Converted" not in r.stderr
        assert os.path.isfile(tmp_path / "vis" / "a.png")
    cache = env["FVCORE_CACHE"]
    assert files_left_in(cache) == [f"mmdetection/v2.0/solov2/{name}",
                               f"mmdetection/v2.0/solov2/{name[:-4]}.solo_d2-v1.pth"]
    converted = torch.load(os.path.join(cache, files_left_in(cache)[1]), weights_only=True)
    assert converted["thing_classes"] == TOY_CLASSES  # what demo.py labels with


def _bad_urls(server):
    data = b"x" * (1 << 20)
    return {
        "wrong_hash": server.add("/m/solo_20210821-00000000.pth", data),
        "404": server.url("/m/solo_20210821-2290a6b8.pth"),
        "cut_off": server.add("/m/" + sha256_name("cut", data), data, mode="cut"),
        "refused": refused_url("/m/" + sha256_name("refused", data)),
    }


DEMO_OPTS = [*TINY_OPTS, "DATASETS.TRAIN", "()", "DATASETS.TEST", "()"]


def _command(tool: str, base: str, image: str, tmp_path) -> list:
    """The command line of ``tool`` on the tiny config, MODEL.WEIGHTS to be appended."""
    if tool == "demo.py":
        return [os.path.join(ROOT, "demo.py"), "--config-file", base, "--input", image,
                "--output", str(tmp_path / "vis"), *DEMO_OPTS]
    if tool == "train_net.py":
        return [os.path.join(ROOT, "train_net.py"), "--config-file", base, "--eval-only",
                *DEMO_OPTS, "OUTPUT_DIR", str(tmp_path / "out")]
    return [os.path.join(ROOT, "tools", "export_model.py"), "--config-file", base,
            "--output", str(tmp_path / "export"), *DEMO_OPTS]


def test_each_download_failure_is_one_error_line_from_each_command_line(env, tmp_path):
    """Each failure through one of the three command lines that load weights (the message
    comes from the checkpointer, the same whichever command line loads)."""
    image = str(tmp_path / "a.jpg")
    write_test_image(image, 64, 64)
    base = os.path.join(ROOT, "configs", "Base-SOLO.yaml")
    cases = {"wrong_hash": ("demo.py", "the downloaded file's SHA-256 starts with "),
             "cut_off": ("demo.py", "the download stopped after 524288 of 1048576 bytes"),
             "404": ("train_net.py", "HTTP 404 Not Found"),
             "refused": ("export_model.py", "cannot connect (")}
    with WeightsServer() as server:
        for case, url in _bad_urls(server).items():
            tool, what = cases[case]
            r = _run([*_command(tool, base, image, tmp_path), "MODEL.WEIGHTS", url],
                     cwd=tmp_path, env=env)
            errors = [x for x in r.stderr.splitlines() if x.startswith("error:")]
            assert r.returncode == 1 and "Traceback" not in r.stderr, (case, r.stderr[-3000:])
            assert len(errors) == 1 and errors[0] == r.stderr.strip().splitlines()[-1], (
                case, r.stderr[-3000:])
            assert errors[0].startswith(f"error: cannot download {url}: {what}"), errors
            if case == "wrong_hash":
                assert "its name says 00000000 (corrupt or altered)" in errors[0], errors
            assert errors[0].endswith(f"pass the file's path as MODEL.WEIGHTS, or save it as "
                                      f"{cached_path(url, env['FVCORE_CACHE'])}"), errors
            assert files_left_in(env["FVCORE_CACHE"]) == [], case


def test_unknown_name_and_missing_file_are_one_error_line(env, tmp_path):
    image = str(tmp_path / "a.jpg")
    write_test_image(image, 64, 64)
    base = os.path.join(ROOT, "configs", "Base-SOLO.yaml")
    for weights, message in (
        ("solo_d2://SOLOv2_R50_9x", "error: 'solo_d2://SOLOv2_R50_9x' is unknown; published: "
                                    "solo_d2://SOLO_R50_1x"),
        ("nope/model_final.pth", "error: MODEL.WEIGHTS 'nope/model_final.pth': no such file"),
    ):
        r = _run([*_command("export_model.py", base, image, tmp_path), "MODEL.WEIGHTS", weights],
                 cwd=tmp_path, env=env)
        assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr[-3000:]
        assert r.stderr.strip().splitlines()[-1].startswith(message), r.stderr[-3000:]
