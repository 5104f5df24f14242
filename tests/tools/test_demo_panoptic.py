"""demo.py on a panoptic model: the image with its stuff regions, things and a legend whose
swatches are the colours drawn, at the image's size."""
import os
import sys

import cv2
import numpy as np
import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.modeling import build_model

from conftest import ROOT, make_head_confident, write_toy_panoptic

sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests", "engine"))
import demo  # noqa: E402
from solo_d2 import SOLOPredictor  # noqa: E402
from solo_d2.engine import get_solo_cfg  # noqa: E402
from test_panoptic_train_net import CONFIG, TINY  # noqa: E402


def test_demo_draws_panoptic_results_with_a_legend(tmp_path):
    info = write_toy_panoptic(str(tmp_path / "data"), num_images=1, size=160)
    opts = [*TINY, "MODEL.SOLO.NUM_CLASSES", "2", "MODEL.SEM_SEG_HEAD.NUM_CLASSES", "3",
            "MODEL.PANOPTIC_FPN.COMBINE.STUFF_AREA_LIMIT", "64",
            "MODEL.PANOPTIC_FPN.COMBINE.INSTANCES_CONFIDENCE_THRESH", "0.9",
            "MODEL.SOLO.TEST.MASK_THRESH", "0.995",  # the random model's masks: not everywhere
            "DATASETS.REGISTER_COCO_PANOPTIC",
            f"[['demo_toy', {', '.join(map(repr, info['entry']))}]]",
            "DATASETS.TRAIN", "()", "DATASETS.TEST", "('demo_toy',)"]
    cfg = get_solo_cfg(CONFIG, opts)
    torch.manual_seed(0)
    model = build_model(cfg)
    make_head_confident(model, cls_bias=-1.0)
    with torch.no_grad():  # stuff wins where no thing is: both kinds get drawn
        model.sem_seg_head.predictor.bias.copy_(torch.tensor([-20.0, 0.0, 0.0]))
    DetectionCheckpointer(model, save_dir=str(tmp_path)).save("w")
    opts += ["MODEL.WEIGHTS", str(tmp_path / "w.pth")]
    image = os.path.join(info["image_root"], "0000.png")
    rc = demo.main(["--config-file", CONFIG, "--input", image, "--output", str(tmp_path / "vis"),
                    "--confidence-threshold", "0.0", *opts])
    assert rc == 0
    drawn = cv2.imread(str(tmp_path / "vis" / "0000.png"))
    original = cv2.imread(image)
    assert drawn.shape == original.shape == (160, 160, 3)
    # the first legend row: the first stuff region's class, in the colour it is drawn with
    out = SOLOPredictor(get_solo_cfg(CONFIG, opts))(original)
    ids, segments = out["panoptic_seg"]
    stuff = [s for s in segments if not s["isthing"]]
    assert stuff and any(s["isthing"] for s in segments)
    colors = [[82, 18, 128], [70, 130, 180], [152, 251, 152]]  # the toy's stuff colours
    swatch = drawn[8, 7, ::-1].tolist()  # RGB
    assert swatch == colors[stuff[0]["category_id"]]
    region = (ids == stuff[0]["id"]).numpy()
    assert np.abs(drawn[region].astype(int) - original[region]).mean() > 10  # painted over
