"""SOLOPredictor preprocesses exactly as the test loader (so demo output equals evaluation
output, also for converted mmdet checkpoints that evaluate with OpenCV resizing), loads weights
through SOLOCheckpointer and keeps the class names a checkpoint carries."""
import cv2
import numpy as np
import pytest
import torch
from detectron2.data import DatasetCatalog
from detectron2.data.datasets import register_coco_instances
from detectron2.engine import DefaultPredictor
from detectron2.modeling import build_model

from bad_inputs import write_corpus
from conftest import tiny_cfg
from solo_d2.data import SOLODatasetMapper
from solo_d2.engine import SOLOPredictor


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """A tiny model whose biases make it predict instances, saved with class names."""
    torch.manual_seed(0)
    model = build_model(tiny_cfg())
    with torch.no_grad():
        model.head.conv_cls.bias.fill_(2.0)
        for conv in model.head.conv_mask_list:
            conv.bias.fill_(1.0)
    path = str(tmp_path_factory.mktemp("w") / "model.pth")
    torch.save({"model": model.state_dict(), "thing_classes": ["rect", "ellipse", "triangle"]},
               path)
    return path


@pytest.mark.parametrize("backend", ["cv2", "pil"])
def test_predictor_equals_the_test_loader(weights, tmp_path, backend):
    c = write_corpus(str(tmp_path), cases=("objects",))
    name = f"solo_test_predictor_{backend}"
    register_coco_instances(name, {}, c["json"], c["images"])
    cfg = tiny_cfg()
    cfg.MODEL.WEIGHTS = weights
    cfg.INPUT.RESIZE_BACKEND = backend
    cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MAX_SIZE_TEST = 200, 333  # 128 px -> 200: a real resize
    predictor = SOLOPredictor(cfg)
    d = DatasetCatalog.get(name)[0]
    loader_input = SOLODatasetMapper(cfg, False)(d)
    bgr = loader_input["image"].numpy()  # the loader's resized image, to compare pixels
    image_bgr = cv2.imread(d["file_name"], cv2.IMREAD_COLOR)
    resized = predictor.aug.get_transform(image_bgr).apply_image(image_bgr[:, :, ::-1])
    assert np.array_equal(resized.transpose(2, 0, 1), bgr)  # INPUT.FORMAT is RGB
    with torch.no_grad():
        expected = predictor.model([loader_input])[0]["instances"]
    got = predictor(image_bgr)["instances"]
    assert len(got) == len(expected) > 0
    assert torch.equal(got.pred_masks, expected.pred_masks)
    assert torch.equal(got.scores, expected.scores)
    if backend == "cv2":  # Detectron2's DefaultPredictor resizes with PIL: other pixels
        d2 = DefaultPredictor(cfg).aug.get_transform(image_bgr).apply_image(image_bgr[:, :, ::-1])
        assert not np.array_equal(d2, resized)


def test_predictor_keeps_the_checkpoint_class_names(weights):
    cfg = tiny_cfg()
    cfg.MODEL.WEIGHTS = weights
    assert SOLOPredictor(cfg).thing_classes == ["rect", "ellipse", "triangle"]
    cfg.MODEL.WEIGHTS = ""
    assert SOLOPredictor(cfg).thing_classes is None


def test_predictor_honours_the_inference_amp_switch(weights):
    """MODEL.SOLO.TEST.AMP reaches the predictor (and demo.py, eval) through the model: its
    convolutions run in bf16, its instances stay those of fp32 (top one: same class, mask)."""
    cfg = tiny_cfg()
    cfg.MODEL.WEIGHTS = weights
    image = np.random.default_rng(0).integers(0, 255, (128, 160, 3), dtype=np.uint8)
    ref = SOLOPredictor(cfg)(image)["instances"]
    cfg.MODEL.SOLO.TEST.AMP = "bfloat16"
    predictor = SOLOPredictor(cfg)
    seen = {}

    def record(module, inp, out) -> None:
        seen["dtype"] = next(iter(out.values())).dtype

    predictor.model.backbone.register_forward_hook(record)
    got = predictor(image)["instances"]
    assert seen["dtype"] == torch.bfloat16 and got.scores.dtype == torch.float32
    assert len(got) > 0 and got.pred_classes[0] == ref.pred_classes[0]
    iou = (got.pred_masks[0] & ref.pred_masks[0]).sum() / (got.pred_masks[0] | ref.pred_masks[0]).sum()
    assert iou > 0.9 and abs(got.scores[0] - ref.scores[0]) < 0.03
