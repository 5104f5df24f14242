"""bf16 and int8 files: what is quantized, the output contract they keep in both runtimes,
and the checks that refuse a file that would not pay (nothing left behind)."""
import json
import os
import sys

import numpy as np
import pytest
import torch
from detectron2.modeling import build_model

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytest.importorskip("openvino")

from solo_d2.export import export_onnx  # noqa: E402
from solo_d2.export.backends import default_backend, open_backend  # noqa: E402
from solo_d2.export.low_precision import MIN_GAIN, check_gain, write_bf16  # noqa: E402
from solo_d2.export.precision import (  # noqa: E402
    PRECISION_KEY,
    QUANTIZED_KEY,
    PrecisionError,
    check_cpu_supports,
    file_precision,
    read_metadata,
)
from solo_d2.export.quantize import quantizable_convs, quantize_int8  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from conftest import make_head_confident, tiny_cfg  # noqa: E402

HEADS = {"solo": ("SOLOHead", "SOLO_R50_1x.yaml"),
         "decoupled": ("DecoupledSOLOHead", "Decoupled_SOLO_R50_1x.yaml"),
         "solov2": ("SOLOV2Head", "SOLOv2_R50_1x.yaml")}


def _image(hw, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand((3, *hw), generator=g) * 255).to(torch.uint8)


@pytest.fixture(scope="module", params=sorted(HEADS))
def files(request, tmp_path_factory):
    """One head's fp32, bf16 and int8 files (int8 calibrated on two random images)."""
    head, config = HEADS[request.param]
    torch.manual_seed(0)
    model = build_model(tiny_cfg(head, 3, config)).eval()
    make_head_confident(model, cls_bias=-1.0)
    tmp = tmp_path_factory.mktemp(request.param)
    paths = {"fp32": export_onnx(model, str(tmp / "fp32.onnx"), _image((96, 128)))}
    paths["bf16"] = str(tmp / "bf16.onnx")
    write_bf16(paths["fp32"], paths["bf16"])
    paths["int8"] = str(tmp / "int8.onnx")
    calib = [_image((96, 128), 1).numpy(), _image((128, 96), 2).numpy()]
    summary = quantize_int8(paths["fp32"], paths["int8"], calib, progress=False)
    return request.param, model, paths, summary


def _io(path):
    graph = onnx.load(path).graph

    def dims(v):
        return [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]

    return ([(v.name, v.type.tensor_type.elem_type, dims(v)) for v in graph.input],
            [(v.name, v.type.tensor_type.elem_type, dims(v)) for v in graph.output])


def test_int8_quantizes_the_network_convolutions_and_nothing_else(files):
    name, _, paths, summary = files
    fp32, int8 = onnx.load(paths["fp32"]), onnx.load(paths["int8"])
    convs = [n for n in fp32.graph.node if n.op_type == "Conv"]
    network = [n.name for n in convs if n.name.startswith(("/backbone/", "/head/"))]
    assert quantizable_convs(fp32) == network and len(network) > 20
    assert summary["quantized_convs"] == len(network) and summary["calibration_images"] == 2
    produced = {o: n for n in int8.graph.node for o in n.output}
    inits = {i.name for i in int8.graph.initializer}

    def dequantized(node, i):
        src = produced.get(node.input[i]) if i < len(node.input) else None
        return src is not None and src.op_type == "DequantizeLinear"

    # int8 weights (a dequantized constant): the network's convolutions, nothing else
    int8_weights = [n for n in int8.graph.node if n.op_type != "DequantizeLinear"
                    and len(n.input) > 1 and dequantized(n, 1)
                    and produced[n.input[1]].input[0] in inits]
    assert {n.op_type for n in int8_weights} == {"Conv"}, name
    assert sorted(n.name for n in int8_weights) == sorted(network)
    # the rest of the graph reads no rounded value: Matrix NMS, mask scoring, the category
    # sigmoid, the masks' upsampling, the dynamic (SOLOv2, decoupled) mask convolutions
    post = [n for n in int8.graph.node if not n.name.startswith(("/backbone/", "/head/"))
            and n.op_type not in ("QuantizeLinear", "DequantizeLinear")]
    assert {"MatMul", "Sigmoid", "Resize"} <= {n.op_type for n in post}
    readers = [n.name for n in post if any(dequantized(n, i) for i in range(len(n.input)))]
    assert readers == [], (name, readers)
    if name == "decoupled":
        dynamic = [n for n in post if n.op_type == "Conv"]
        assert dynamic and not any(n.input[1] in inits for n in dynamic)
    # a convolution's output is rounded only as the next convolution's input: the category
    # logits (conv_cls), read by the sigmoid that makes the scores, stay fp32
    logits = {o for n in int8.graph.node if n.name.startswith("/head/conv_cls") for o in n.output}
    assert logits and not [n for n in int8.graph.node
                           if n.op_type == "QuantizeLinear" and n.input[0] in logits]
    meta = read_metadata(paths["int8"])
    assert file_precision(meta) == "int8" and meta["input_format"] == "BGR"
    assert json.loads(meta[QUANTIZED_KEY])["quantized_convs"] == len(network)
    assert file_precision(read_metadata(paths["fp32"])) == "fp32"
    assert PRECISION_KEY not in read_metadata(paths["fp32"])  # fp32 files are as before
    assert file_precision(read_metadata(paths["bf16"])) == "bf16"


def test_every_file_keeps_the_graph_contract(files):
    _, _, paths, _ = files
    ref = _io(paths["fp32"])
    assert ref[0] == [("image", onnx.TensorProto.UINT8, [3, "height", "width"])]
    assert [o[0] for o in ref[1]] == ["masks", "scores", "classes", "boxes"]
    for precision in ("bf16", "int8"):
        assert _io(paths[precision]) == ref, precision


@pytest.mark.parametrize("precision", ["fp32", "bf16", "int8"])
def test_both_backends_give_the_same_output_contract(files, precision):
    name, model, paths, _ = files
    image = _image((101, 77), seed=3).numpy()
    outs = {}
    if name == "decoupled":  # convolutions with computed weights: OpenVINO refuses, by name
        with pytest.raises(PrecisionError, match=r"OpenVINO cannot run this graph.*/Conv"):
            open_backend(paths[precision], "openvino", threads=1)
        assert open_backend(paths[precision], None, 1).name == "onnxruntime"
    for backend in ("onnxruntime", "openvino")[: 1 if name == "decoupled" else 2]:
        runner = open_backend(paths[precision], backend, threads=1)
        assert runner.precision == precision and runner.threads == 1
        out = runner.run(image)
        assert list(out) == ["masks", "scores", "classes", "boxes"]
        k = len(out["scores"])
        assert k > 0, (name, backend)
        assert out["masks"].dtype == np.bool_ and out["masks"].shape == (k, 101, 77)
        assert out["scores"].dtype == np.float32 and out["classes"].dtype == np.int64
        assert out["boxes"].dtype == np.float32 and out["boxes"].shape == (k, 4)
        assert np.all(np.diff(out["scores"]) <= 0)  # by decreasing score
        outs[backend] = out
    if precision == "fp32" and len(outs) == 2:  # the same numbers: both run fp32
        a, b = outs["onnxruntime"], outs["openvino"]
        assert len(a["scores"]) == len(b["scores"]) and np.array_equal(a["classes"], b["classes"])
        # the crowded random head amplifies kernel rounding in a few Matrix NMS decays
        assert (np.abs(a["scores"] - b["scores"]) < 1e-4).mean() >= 0.98
        assert np.abs(a["scores"] - b["scores"]).max() < 1e-2
        assert (a["masks"] == b["masks"]).mean() >= 0.999


def test_an_image_without_detections_is_empty_in_both_backends(tmp_path):
    torch.manual_seed(0)
    model = build_model(tiny_cfg("SOLOV2Head", 3, "SOLOv2_R50_1x.yaml")).eval()
    make_head_confident(model, cls_bias=-30.0)  # no cell passes the score threshold
    fp32 = export_onnx(model, str(tmp_path / "fp32.onnx"), _image((64, 96)))
    int8 = str(tmp_path / "int8.onnx")
    quantize_int8(fp32, int8, [_image((64, 96)).numpy()], progress=False)
    for path in (fp32, int8):
        for backend in ("onnxruntime", "openvino"):
            out = open_backend(path, backend, 1).run(_image((80, 112), 5).numpy())
            assert out["masks"].shape == (0, 80, 112) and out["masks"].dtype == np.bool_
            assert out["scores"].shape == out["classes"].shape == (0,)
            assert out["boxes"].shape == (0, 4)


def test_default_runtime_per_precision():
    assert default_backend("fp32") == "onnxruntime"
    assert default_backend("int8") == default_backend("bf16") == "openvino"
    assert default_backend("int8", dynamic_convs=["/Conv"]) == "onnxruntime"


def test_precision_needs_the_cpu_units_and_a_measured_gain():
    vnni_less = {"avx2", "avx512f"}
    with pytest.raises(PrecisionError, match="int8 is not worth it on this CPU.*avx512_vnni"):
        check_cpu_supports("int8", vnni_less)
    with pytest.raises(PrecisionError, match="bf16 is not worth it on this CPU.*avx512_bf16"):
        check_cpu_supports("bf16", vnni_less | {"avx512_vnni"})
    check_cpu_supports("int8", {"avx512_vnni"})
    check_cpu_supports("fp32", set())
    line = check_gain("int8", "openvino", 2, t_fp32=3.0, t_low=1.0)
    assert "3.00x" in line and "int8 in openvino" in line
    with pytest.raises(PrecisionError, match=r"int8 is not worth it here.*1.05x.*below 1.2x"):
        check_gain("int8", "openvino", 2, t_fp32=1.05, t_low=1.0)
    with pytest.raises(PrecisionError, match="OpenVINO cannot run this head's graph"):
        check_gain("int8", "onnxruntime", 2, t_fp32=1.1, t_low=1.0)
    assert MIN_GAIN == 1.2
