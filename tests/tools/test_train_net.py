"""End to end through train_net.py: 20 iterations lower the loss; --eval-only reports AP."""
import math
import os
import sys

import pytest
import torch
from detectron2.data import DatasetCatalog
from detectron2.data.datasets import register_coco_instances
from detectron2.engine import default_argument_parser

from conftest import ROOT, TINY_OPTS, write_toy_coco
from solo_d2.engine import SOLOTrainer

sys.path.insert(0, ROOT)
import train_net  # noqa: E402


@pytest.fixture(scope="module")
def toy_dataset(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("toy"))
    json_file = write_toy_coco(root, num_images=8)
    name = "solo_toy_train_net"
    if name not in DatasetCatalog.list():
        register_coco_instances(name, {}, json_file, os.path.join(root, "images"))
    return name


def _opts(name, out, extra=()):
    return [
        *TINY_OPTS, "DATASETS.TRAIN", f"('{name}',)", "DATASETS.TEST", f"('{name}',)",
        "SOLVER.IMS_PER_BATCH", "4", "SOLVER.BASE_LR", "0.01", "SOLVER.WARMUP_ITERS", "5",
        "SOLVER.MAX_ITER", "20", "SOLVER.STEPS", "()", "SOLVER.CHECKPOINT_PERIOD", "1000",
        "TEST.EVAL_PERIOD", "0", "OUTPUT_DIR", out, *extra,
    ]


def test_train_then_eval_only(toy_dataset, tmp_path):
    out = str(tmp_path / "out")
    args = default_argument_parser().parse_args(
        ["--config-file", os.path.join(ROOT, "configs", "Base-SOLO.yaml"),
         *_opts(toy_dataset, out, ["DATASETS.TEST", "()"])]
    )
    trainer = SOLOTrainer(train_net.setup(args))
    trainer.resume_or_load(resume=False)
    trainer.train()
    losses = [v for v, _ in trainer.storage.history("total_loss").values()]
    assert len(losses) == 20
    assert all(math.isfinite(v) for v in losses)
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < 0.9 * first, losses  # measured: 4.02 -> 3.35

    # 20 iterations move the category scores but barely the masks (their bias starts at
    # the 0.01 prior): lift the mask biases so that the model predicts masks to evaluate.
    ckpt = torch.load(os.path.join(out, "model_final.pth"), weights_only=False)
    for k, v in ckpt["model"].items():
        if k.startswith("head.conv_mask_list.") and k.endswith(".bias"):
            v += 5.0
    shifted = os.path.join(out, "shifted.pth")
    torch.save(ckpt, shifted)
    args = default_argument_parser().parse_args(
        ["--config-file", os.path.join(ROOT, "configs", "Base-SOLO.yaml"), "--eval-only",
         *_opts(toy_dataset, out, ["MODEL.WEIGHTS", shifted])]
    )
    res = train_net.main(args)
    assert {"segm", "bbox"} <= set(res)
    for task in ("segm", "bbox"):
        assert math.isfinite(res[task]["AP"]) and 0 <= res[task]["AP"] <= 100, res
