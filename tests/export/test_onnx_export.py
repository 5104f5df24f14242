"""Every SOLO-family head exported to ONNX and run in ONNX Runtime gives the PyTorch model's
answer: instance count, classes and order, scores, masks and boxes, on images of several
sizes and aspect ratios, on a crowded image and on an image without detections."""
import os
import sys

import numpy as np
import pytest
import torch
from detectron2.modeling import build_model

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from solo_d2.export import compare_outputs, export_onnx, pytorch_outputs  # noqa: E402
from solo_d2.export.onnx_export import MIN_OPSET  # noqa: E402
from solo_d2.layers.postprocess import select_candidates  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from conftest import make_head_confident, tiny_cfg  # noqa: E402

HEADS = {
    "solo": ("SOLOHead", "SOLO_R50_1x.yaml"),
    "decoupled": ("DecoupledSOLOHead", "Decoupled_SOLO_R50_1x.yaml"),
    "decoupled_light": ("DecoupledSOLOLightHead", "Decoupled_SOLO_Light_R50_3x.yaml"),
    "solov2": ("SOLOV2Head", "SOLOv2_R50_1x.yaml"),
    "solov2_light": ("SOLOV2Head", "SOLOv2_Light_R50_3x.yaml"),
}
#: (H, W): landscape, portrait, wide, and one not a multiple of the backbone's 32
SIZES = [(96, 128), (160, 72), (64, 192), (101, 77)]
NUM_CLASSES = 10


def _model(head: str, config: str, cls_bias: float, **test_opts):
    """A tiny model with confident masks; ``cls_bias`` sets how many cells pass the score
    threshold; ``test_opts`` set MODEL.SOLO.TEST.* keys."""
    cfg = tiny_cfg(head, NUM_CLASSES, config)
    for key, value in test_opts.items():
        setattr(cfg.MODEL.SOLO.TEST, key, value)
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    make_head_confident(model, cls_bias)
    return model


def _assert_same_answer(model, session, image, feed=None):
    """ONNX Runtime's answer on ``image`` (fed as ``feed``, default uint8) is PyTorch's."""
    feed = image if feed is None else feed
    report = compare_outputs(pytorch_outputs(model, image), _run(session, feed))
    assert report.count_onnx == report.count_pytorch > 0 and report.same_classes, report
    assert report.max_score_diff < 1e-4 and report.pixel_agreement >= 0.999, report


def _image(hw, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand((3, *hw), generator=g) * 255).to(torch.uint8)


def _candidates(model, image) -> int:
    with torch.no_grad():
        _, cls_logits, _ = model.forward_head([{"image": image}])
        probs = [p[0] for p in model.category_probs(cls_logits)]
    return len(select_candidates(probs, model.inference_settings.score_thresh).scores)


@pytest.fixture(scope="module", params=sorted(HEADS))
def exported(request, tmp_path_factory):
    head, config = HEADS[request.param]
    model = _model(head, config, cls_bias=-1.0)
    path = export_onnx(model, str(tmp_path_factory.mktemp(request.param) / "model.onnx"), _image((96, 128)))
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    return request.param, model, session


def _run(session, image):
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(None, {"image": image.numpy()})))


def test_onnx_runtime_equals_pytorch_on_sizes_and_a_crowded_image(exported):
    name, model, session = exported
    crowded = 0
    for i, hw in enumerate(SIZES):
        image = _image(hw, seed=i)
        ref, got = pytorch_outputs(model, image), _run(session, image)
        report = compare_outputs(ref, got)
        assert got["masks"].shape[1:] == hw, (name, hw)
        assert report.count_onnx == report.count_pytorch > 0, (name, hw, report)
        assert report.same_classes, (name, hw, report)
        assert report.max_score_diff < 1e-4, (name, hw, report)
        assert report.pixel_agreement >= 0.999, (name, hw, report)
        assert got["masks"].dtype == np.bool_ and got["classes"].dtype == np.int64
        crowded = max(crowded, _candidates(model, image))
    assert crowded >= 500, f"{name}: the crowded case has only {crowded} candidates"


def test_image_without_detections_gives_empty_outputs(exported, tmp_path):
    name, model, _ = exported
    with torch.no_grad():
        model.head.conv_cls.bias.fill_(-30.0)  # no cell passes the score threshold
    try:
        path = export_onnx(model, str(tmp_path / "empty.onnx"), _image((96, 128)))
        session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        got = _run(session, _image((80, 112), seed=5))
    finally:
        with torch.no_grad():
            model.head.conv_cls.bias.fill_(-1.0)
    assert got["masks"].shape == (0, 80, 112)
    assert got["scores"].shape == got["classes"].shape == (0,)
    assert got["boxes"].shape == (0, 4)


def test_linear_matrix_nms_and_the_oldest_opset(tmp_path):
    # MODEL.SOLO.TEST.KERNEL linear, exported at the oldest opset accepted, still PyTorch's answer
    model = _model("SOLOV2Head", "SOLOv2_R50_1x.yaml", cls_bias=-1.0, KERNEL="linear")
    assert model.inference_settings.kernel == "linear"
    path = export_onnx(model, str(tmp_path / "m.onnx"), _image((96, 128)), opset=MIN_OPSET)
    assert onnx.load(path).opset_import[0].version == MIN_OPSET
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    _assert_same_answer(model, session, _image((112, 80), seed=3))


def test_float_input_graph_and_its_runner(tmp_path):
    # traced with a float image, the graph takes float images (Detectron2's DefaultPredictor
    # feeds float32); ONNXPredictor feeds what the graph's input asks for
    model = _model("SOLOV2Head", "SOLOv2_R50_1x.yaml", cls_bias=-1.0)
    path = export_onnx(model, str(tmp_path / "m.onnx"), _image((64, 96)).float())
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].type == "tensor(float)"
    image = _image((96, 64), seed=7)
    _assert_same_answer(model, session, image, feed=image.float())


def test_model_configured_for_bf16_inference_exports_its_fp32_graph(tmp_path):
    # MODEL.SOLO.TEST.AMP (and the NHWC layout it brings) does not reach the graph: it is the
    # fp32 model's, whatever the inference switch says
    model = _model("SOLOV2Head", "SOLOv2_R50_1x.yaml", cls_bias=-1.0, AMP="bfloat16")
    assert model.channels_last and model.inference_amp == torch.bfloat16
    path = export_onnx(model, str(tmp_path / "m.onnx"), _image((96, 128)))
    graph = onnx.load(path)
    assert {t.data_type for t in graph.graph.initializer} <= {
        onnx.TensorProto.FLOAT, onnx.TensorProto.INT64, onnx.TensorProto.BOOL}
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    model.inference_amp = None  # the fp32 answer
    _assert_same_answer(model, session, _image((100, 90), seed=4))
