"""demo.py: writes one PNG of the input's size per input, filters by score, clear bad-input errors."""
import logging
import os
import sys

import cv2
import numpy as np
import pytest
import torch
from detectron2.data import MetadataCatalog
from detectron2.structures import Boxes, Instances

from conftest import LogRecords, ROOT, write_test_image
from conftest import TINY_OPTS as CONFTEST_TINY_OPTS

sys.path.insert(0, ROOT)
import demo  # noqa: E402

BASE = os.path.join(ROOT, "configs", "Base-SOLO.yaml")
# conftest's tiny model (random init, on the CPU) with the 3 classes of solo_shapes_val
TINY_OPTS = [
    *CONFTEST_TINY_OPTS, "MODEL.SOLO.NUM_CLASSES", "3",
    # every cell a candidate, so that the random model's predictions go through drawing too
    "MODEL.SOLO.TEST.SCORE_THRESH", "0.0", "MODEL.SOLO.TEST.NMS_PRE", "50",
    "DATASETS.TRAIN", "()", "DATASETS.TEST", "('solo_shapes_val',)",
]


def test_demo_writes_png_of_input_size(tmp_path):
    a, b = str(tmp_path / "a.png"), str(tmp_path / "b.jpg")
    write_test_image(a, 100, 150)
    write_test_image(b, 90, 64, seed=1)
    out = tmp_path / "vis"
    rc = demo.main(
        ["--config-file", BASE, "--input", a, str(tmp_path / "*.jpg"), "--output", str(out),
         "--confidence-threshold", "0.0", "--opts", *TINY_OPTS]
    )
    assert rc == 0
    assert sorted(os.listdir(out)) == ["a.png", "b.png"]
    assert cv2.imread(str(out / "a.png")).shape == (100, 150, 3)
    assert cv2.imread(str(out / "b.png")).shape == (90, 64, 3)


def test_missing_input_is_a_clear_error(tmp_path, capsys):
    missing = str(tmp_path / "nope.png")
    with pytest.raises(SystemExit) as e:
        demo.main(["--config-file", BASE, "--input", missing, "--output", str(tmp_path / "o")])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "nope.png" in err and "does not exist" in err
    with pytest.raises(SystemExit):
        demo.main(["--config-file", BASE, "--input", str(tmp_path / "*.png"),
                   "--output", str(tmp_path / "o")])
    assert "matches no file" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_output_that_is_a_file_is_a_clear_error(tmp_path, capsys):
    img, out = str(tmp_path / "a.png"), tmp_path / "out.png"
    write_test_image(img, 32, 32)
    out.write_text("not a folder")
    with pytest.raises(SystemExit) as e:
        demo.main(["--config-file", BASE, "--input", img, "--output", str(out)])
    assert e.value.code == 2
    assert "is an existing file" in capsys.readouterr().err


def test_visualize_draws_only_instances_above_threshold():
    """A fake predictor returns two masks: only the one scoring >= 0.3 changes its pixels."""
    h, w = 64, 96
    image = np.full((h, w, 3), 128, np.uint8)
    masks = torch.zeros(2, h, w, dtype=torch.bool)
    masks[0, 5:25, 5:35] = True
    masks[1, 35:60, 50:90] = True
    inst = Instances((h, w))
    inst.pred_masks = masks
    inst.scores = torch.tensor([0.9, 0.2])
    inst.pred_classes = torch.tensor([0, 1])
    inst.pred_boxes = Boxes(torch.tensor([[5.0, 5, 35, 25], [50, 35, 90, 60]]))
    drawing, num = demo.visualize(
        lambda img: {"instances": inst}, image, MetadataCatalog.get("solo_shapes_val"), 0.3
    )
    assert num == 1 and drawing.shape == (h, w, 3) and drawing.dtype == np.uint8
    changed = np.abs(drawing.astype(int) - 128).sum(-1) > 0
    assert changed[10:20, 10:30].mean() > 0.9  # drawn mask
    assert not changed[40:55, 55:85].any()     # filtered out (score 0.2 < 0.3)


def test_demo_reports_an_unreadable_input_and_goes_on(tmp_path):
    good, bad = str(tmp_path / "good.png"), str(tmp_path / "bad.png")
    cv2.imwrite(good, np.full((64, 80, 3), 120, np.uint8))
    cv2.imwrite(bad, np.full((64, 80, 3), 120, np.uint8))
    _truncate(bad)
    out = tmp_path / "vis"
    records = LogRecords()
    logging.getLogger("solo_d2.demo").addHandler(records)  # demo's logger does not propagate
    try:
        rc = demo.main(["--config-file", BASE, "--input", bad, good, "--output", str(out),
                        "--opts", *TINY_OPTS])
    finally:
        logging.getLogger("solo_d2.demo").removeHandler(records)
    assert rc == 1
    assert os.listdir(out) == ["good.png"]
    assert any("bad.png" in m and "truncated" in m and "skipped" in m for m in records.messages)


def _truncate(path):
    data = open(path, "rb").read()
    with open(path, "wb") as f:
        f.write(data[: len(data) // 2])


def _run_demo_logged(argv):
    records = LogRecords()
    logging.getLogger("solo_d2.demo").addHandler(records)
    try:
        return demo.main(argv), records.messages
    finally:
        logging.getLogger("solo_d2.demo").removeHandler(records)


def test_demo_says_loudly_when_the_model_is_untrained(tmp_path):
    img = str(tmp_path / "a.png")
    write_test_image(img, 64, 80)
    rc, messages = _run_demo_logged(["--config-file", BASE, "--input", img, "--output",
                                     str(tmp_path / "vis"), "--opts", *TINY_OPTS])
    assert rc == 0
    assert any("MODEL.WEIGHTS is empty" in m and "UNTRAINED" in m for m in messages)


def test_demo_draws_the_class_names_of_the_checkpoint(tmp_path):
    cfg = demo.setup_cfg(demo.get_parser().parse_args(
        ["--config-file", BASE, "--input", "x", "--output", "o", "--opts", *TINY_OPTS]))
    model = demo.SOLOPredictor(cfg).model
    names = [f"class_{i}" for i in range(3)]
    weights = str(tmp_path / "converted.pth")
    torch.save({"model": model.state_dict(), "thing_classes": names}, weights)
    cfg.defrost()
    cfg.MODEL.WEIGHTS = weights
    predictor = demo.SOLOPredictor(cfg)
    assert demo.demo_metadata(cfg, predictor).thing_classes == names  # not solo_shapes_val's


def test_demo_takes_a_video(tmp_path):
    video = str(tmp_path / "clip.mp4")
    writer = cv2.VideoWriter(video, cv2.VideoWriter_fourcc(*"mp4v"), 5, (96, 64))
    for k in range(3):
        frame = np.full((64, 96, 3), 40 * k, np.uint8)
        cv2.circle(frame, (48, 32), 15, (20, 200, 20), -1)
        writer.write(frame)
    writer.release()
    out = tmp_path / "vis"
    rc, _ = _run_demo_logged(["--config-file", BASE, "--video-input", video, "--output",
                              str(out), "--confidence-threshold", "0.0", "--opts", *TINY_OPTS])
    assert rc == 0 and os.listdir(out) == ["clip.mp4"]
    drawn = cv2.VideoCapture(str(out / "clip.mp4"))
    frames = 0
    while True:
        ok, frame = drawn.read()
        if not ok:
            break
        assert frame.shape == (64, 96, 3)
        frames += 1
    assert frames == 3
