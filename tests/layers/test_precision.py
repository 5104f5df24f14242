"""Autocast (bf16, fp16 on the CPU) on tiny models of every head: losses and instances near the
fp32 model's, and post-processing in fp32 on masks whose pixel counts overflow fp16."""
import math

import pytest
import torch
from detectron2.modeling import build_model
from detectron2.structures import BitMasks, Boxes, Instances

from conftest import capture_logs, tiny_cfg
from solo_d2.layers import precision
from solo_d2.benchmark.compare import match_instances
from solo_d2.layers.postprocess import (
    Candidates,
    InferenceSettings,
    candidates_to_predictions,
    mask_matrix_nms,
)
from solo_d2.layers.precision import amp_dtype, fp32_region, to_fp32, train_amp_dtype

# the five heads (solo_d2.convert.mmdet.MMDET_HEADS) through their configs
HEADS = [
    ("SOLOHead", "Base-SOLO.yaml"),
    ("DecoupledSOLOHead", "Decoupled_SOLO_R50_1x.yaml"),
    ("DecoupledSOLOLightHead", "Decoupled_SOLO_Light_R50_3x.yaml"),
    ("SOLOV2Head", "SOLOv2_R50_1x.yaml"),
    ("SOLOV2Head", "SOLOv2_Light_R50_3x.yaml"),
]
IDS = ["solo", "decoupled", "decoupled_light", "solov2", "solov2_light"]
DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16}
# Relative loss tolerance. Autocast rounds each conv's inputs and weights to 8 (bf16) or 11
# (fp16) significant bits, relative error u = 2^-9 and 2^-12, accumulating in fp32; through the
# ~20 convs of R18-FPN + head the errors add up to a few u at most (measured: <= 1.3e-3 bf16,
# <= 4e-4 fp16). The losses are then summed in fp32. 8 u bounds that with a margin.
LOSS_RTOL = {"bfloat16": 8 * 2.0**-9, "float16": 8 * 2.0**-12}


def _model(head: str, config: str, amp: str = "") -> torch.nn.Module:
    """The tiny model with confident, spread-out outputs (as a trained model's), seeded: the
    category bias raised so that candidates exist, mask projections scaled x30 without bias
    so that masks are mostly far from the 0.5 threshold (random init gives ~0.5 everywhere)."""
    cfg = tiny_cfg(head, config=config)
    cfg.MODEL.SOLO.TEST.AMP = amp
    torch.manual_seed(0)
    model = build_model(cfg)
    with torch.no_grad():
        model.head.conv_cls.bias.add_(3.5)
        for name, p in model.head.named_parameters():
            if name.startswith(("conv_mask_list", "conv_kernel")):
                p.mul_(30.0) if name.endswith("weight") else p.zero_()
    return model


def _input(h=128, w=160, seed=1):
    g = torch.Generator().manual_seed(seed)
    img = torch.randint(0, 256, (3, h, w), generator=g).float()
    boxes = [(10, 20, 60, 70), (30, 40, 120, 100), (5, 5, 150, 120)]
    inst = Instances((h, w))
    masks = torch.zeros(len(boxes), h, w, dtype=torch.bool)
    for m, (x0, y0, x1, y1) in zip(masks, boxes):
        m[y0:y1, x0:x1] = True
    inst.gt_masks = BitMasks(masks)
    inst.gt_boxes = Boxes(torch.tensor(boxes, dtype=torch.float32))
    inst.gt_classes = torch.tensor([0, 2, 1])
    return {"image": img, "instances": inst, "height": h, "width": w}


@pytest.fixture(scope="module", params=list(zip(HEADS, IDS)), ids=IDS)
def head_model(request):
    (head, config), _ = request.param
    model = _model(head, config)
    return head, config, model


@pytest.mark.parametrize("dtype", list(DTYPES))
def test_losses_under_autocast_are_fp32_and_near_fp32(head_model, dtype):
    _, _, model = head_model
    model.train()
    inputs = [_input()]
    ref = model(inputs)
    with torch.autocast("cpu", dtype=DTYPES[dtype]):
        low = model(inputs)
    for k, v in low.items():
        assert v.dtype == torch.float32 and torch.isfinite(v), (k, v)
        assert v.item() == pytest.approx(ref[k].item(), rel=LOSS_RTOL[dtype]), k
    assert ref["loss_mask"].item() < 0.99 * 3.0  # dice not saturated: the masks matter


@pytest.mark.parametrize("dtype", list(DTYPES))
def test_inference_switch_keeps_the_fp32_instances(head_model, dtype):
    head, config, model = head_model
    model.eval()
    inputs = [_input()]
    ref = model(inputs)[0]["instances"]
    amp_model = _model(head, config, amp=dtype).eval()
    seen = {}

    def record(module, inp, out) -> None:
        seen["dtype"] = next(iter(out.values())).dtype

    hook = amp_model.backbone.register_forward_hook(record)
    out = amp_model(inputs)[0]["instances"]
    hook.remove()
    assert seen["dtype"] == DTYPES[dtype]  # the switch runs the convolutions in low precision
    assert out.scores.dtype == torch.float32 and out.pred_masks.dtype == torch.bool
    # Order-free: random weights give dozens of near-tied candidates (scores ~0.1-0.3, many
    # overlapping masks of one class); a rounding that swaps two of them changes which one
    # Matrix NMS decays, so a few instances differ and a matched one may keep another
    # decay. Measured on the five heads: 91-100 of 100 instances matched (mask IoU >= 0.9,
    # same class), median score difference <= 2.3e-3 (bf16), <= 4e-4 (fp16).
    m = match_instances(ref, out, iou=0.9)
    assert len(ref) >= 20 and m["matched"] >= 0.85 * len(ref), m
    assert m["median_score_diff"] <= (5e-3 if dtype == "bfloat16" else 1e-3), m


def test_inference_switch_is_fp32_postprocessing_of_low_precision_heads():
    """Independent path: autocast around the head only, then the fp32 post-processing by hand;
    the switch must give exactly that."""
    model = _model("SOLOHead", "Base-SOLO.yaml", amp="bfloat16").eval()
    inputs = [_input()]
    out = model(inputs)[0]["instances"]
    with torch.no_grad():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            images, cls_logits, mask_inputs = model.forward_head(inputs)
        assert cls_logits[0].dtype == torch.bfloat16
        cls_logits, mask_inputs = to_fp32((cls_logits, mask_inputs))
        with fp32_region():
            ref = model.inference(cls_logits, mask_inputs, images.image_sizes, [(128, 160)])[0]
    assert len(out) == len(ref) > 0
    assert torch.equal(out.scores, ref.scores) and torch.equal(out.pred_masks, ref.pred_masks)


# ------------------------------------------------------- fp32 post-processing, big masks
def _big_masks():
    """Two same-class candidates at 1/4 scale of a 1040x1040 image (260x260 = 67,600 pixels,
    over fp16's 65,504): A covers all of it with p = 127/128, B its left half with p = 7/8;
    elsewhere p = 1/16. Every value is exact in fp16."""
    probs = torch.full((2, 260, 260), 1 / 16)
    probs[0] = 127 / 128
    probs[1, :, :130] = 7 / 8
    cand = Candidates(scores=torch.tensor([0.75, 0.875]), labels=torch.tensor([1, 1]),
                      mask_ids=torch.tensor([0, 1]), cells=torch.tensor([[0, 3], [0, 7]]))
    return cand, probs


def _expected_big_masks():
    """By hand: maskness A 127/128, B 7/8; scores A 0.75 * 127/128 = 0.744, B 0.875 * 7/8 =
    0.766: B first; IoU(A, B) = 33,800 / 67,600 = 0.5; A decays by exp(-2 * 0.5^2)."""
    a, b = 0.75 * 127 / 128, 0.875 * 7 / 8
    return [b, a * math.exp(-2 * 0.25)]


@pytest.mark.parametrize("dtype", list(DTYPES))
def test_mask_scoring_and_matrix_nms_are_fp32_on_masks_over_65504_pixels(dtype):
    cand, probs = _big_masks()
    settings = InferenceSettings(score_thresh=0.1, filter_thresh=0.05)
    kw = {"level_strides": [8], "image_size": (1040, 1040), "output_size": None,
          "settings": settings, "mask_stride": 4}
    ref_masks, ref_scores, ref_classes, _ = candidates_to_predictions(cand, probs, **kw)
    low_cand = Candidates(cand.scores.to(DTYPES[dtype]), cand.labels, cand.mask_ids, cand.cells)
    with torch.autocast("cpu", dtype=DTYPES[dtype]):
        low_masks, low_scores, _, _ = candidates_to_predictions(
            low_cand, probs.to(DTYPES[dtype]), **kw
        )
    scores = _expected_big_masks()
    assert ref_scores.tolist() == pytest.approx(scores, rel=1e-6)
    assert low_scores.dtype == torch.float32
    assert torch.equal(low_scores, ref_scores) and torch.equal(low_masks, ref_masks)
    # B (left half: the 0.5 crossing of the x4 bilinear upsampling falls at column 519.35)
    # then A (all of the image)
    assert ref_masks.sum((1, 2)).tolist() == [1040 * 520, 1040 * 1040]
    assert ref_classes.tolist() == [1, 1]


@pytest.mark.parametrize("dtype", list(DTYPES))
def test_matrix_nms_intersections_exact_over_65504(dtype):
    masks = torch.zeros(2, 300, 300, dtype=torch.bool)
    masks[0] = True  # 90,000 pixels
    masks[1, :, :240] = True  # 72,000 pixels, all inside mask 0
    areas = masks.sum((1, 2)).float()
    scores = torch.tensor([0.9, 0.8]).to(DTYPES[dtype])
    with torch.autocast("cpu", dtype=DTYPES[dtype]):
        s, _, keep = mask_matrix_nms(masks, torch.tensor([0, 0]), scores, areas,
                                          kernel="linear")
    # linear decay: 1 - IoU = 1 - 72,000 / 90,000; the scores are the fp16/bf16 0.9 and 0.8
    s0, s1 = scores.float().tolist()
    assert s.dtype == torch.float32
    assert s.tolist() == pytest.approx([s0, s1 * (1 - 0.8)], rel=1e-6)
    assert keep.tolist() == [0, 1]


def test_config_values_name_the_key(monkeypatch):
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: True)
    assert amp_dtype("", "MODEL.SOLO.TEST.AMP") is None
    assert amp_dtype("bfloat16", "MODEL.SOLO.TEST.AMP") is torch.bfloat16
    with pytest.raises(ValueError, match=r"MODEL.SOLO.TEST.AMP is 'bf16'; expected ''"):
        amp_dtype("bf16", "MODEL.SOLO.TEST.AMP")
    cfg = tiny_cfg()
    assert train_amp_dtype(cfg, "cpu") is None
    cfg.SOLVER.AMP.ENABLED = True
    assert train_amp_dtype(cfg, "cpu") is torch.bfloat16
    assert train_amp_dtype(cfg, "cuda") is torch.float16
    cfg.SOLVER.AMP.PRECISION = "half"
    with pytest.raises(ValueError, match="SOLVER.AMP.PRECISION is 'half'; expected 'auto'"):
        train_amp_dtype(cfg, "cpu")
    cfg = tiny_cfg()
    cfg.MODEL.SOLO.TEST.AMP = "fp16"
    with pytest.raises(ValueError, match=r"MODEL.SOLO.TEST.AMP is 'fp16'; expected one of"):
        build_model(cfg)


@pytest.mark.parametrize("line,expected", [
    # x86 with bf16 dot products (this project's AMD EPYC), without (AVX-512 only), AMX
    ("flags\t\t: fpu sse2 avx2 avx512f avx512_vnni avx512_bf16 vaes", True),
    ("flags\t\t: fpu sse2 avx2 avx512f avx512bw avx512_vnni vaes", False),
    ("flags\t\t: fpu avx512f amx_bf16 amx_tile amx_int8", True),
    ("flags\t\t: fpu sse2 avx2 fma", False),
    # Arm: Neoverse V1 (bf16), Cortex-A72 (none)
    ("Features\t: fp asimd evtstrm aes sha2 crc32 atomics fphp asimdhp bf16 i8mm", True),
    ("Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 cpuid", False),
])
def test_cpu_has_bf16_reads_the_first_flags_line(tmp_path, line, expected):
    path = tmp_path / "cpuinfo"
    path.write_text(f"processor\t: 0\nmodel name\t: some CPU\n{line}\n\n"
                    "processor\t: 1\nflags\t\t: avx512_bf16\n")  # only the first counts
    assert precision.cpu_has_bf16(str(path)) is expected
    assert precision.cpu_has_bf16(str(tmp_path / "absent")) is False  # not Linux: no claim


def test_auto_training_precision_falls_back_to_fp32_on_a_cpu_without_bf16(monkeypatch, caplog):
    """SOLVER.AMP.PRECISION "auto" trains in fp32 (with a warning naming the key) on a CPU
    without bf16 units, where bf16 autocast is slower than fp32; "bfloat16" is taken as asked,
    and CUDA's "auto" stays float16."""
    cfg = tiny_cfg()
    cfg.SOLVER.AMP.ENABLED = True
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: False)
    with capture_logs(caplog):
        assert train_amp_dtype(cfg, "cpu") is None
    assert len(caplog.records) == 1 and caplog.records[0].levelname == "WARNING"
    msg = caplog.records[0].getMessage()
    assert "SOLVER.AMP.PRECISION 'auto'" in msg and "training in fp32" in msg
    assert "avx512_bf16" in msg and "SOLVER.AMP.PRECISION bfloat16" in msg
    caplog.clear()
    with capture_logs(caplog):
        assert train_amp_dtype(cfg, "cuda") is torch.float16
        cfg.SOLVER.AMP.PRECISION = "bfloat16"
        assert train_amp_dtype(cfg, "cpu") is torch.bfloat16
        cfg.SOLVER.AMP.ENABLED = False
        assert train_amp_dtype(cfg, "cpu") is None
    assert caplog.records == []
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: True)
    cfg.SOLVER.AMP.ENABLED, cfg.SOLVER.AMP.PRECISION = True, "auto"
    assert train_amp_dtype(cfg, "cpu") is torch.bfloat16


def test_channels_last_switch_keeps_results_and_layout():
    """MODEL.SOLO.MEMORY_FORMAT: NHWC weights and input, the same losses and instances (fp32:
    the same arithmetic in another order, to float rounding); "auto" is NHWC with an AMP
    switch on, NCHW without."""
    ref_model = _model("SOLOHead", "Base-SOLO.yaml").eval()
    assert ref_model.head.conv_cls.weight.is_contiguous()
    assert _model("SOLOHead", "Base-SOLO.yaml", amp="bfloat16").channels_last
    cfg = tiny_cfg("SOLOHead", config="Base-SOLO.yaml")
    cfg.SOLVER.AMP.ENABLED = True
    assert cfg.MODEL.SOLO.MEMORY_FORMAT == "auto" and build_model(cfg).channels_last
    cfg = tiny_cfg("SOLOHead", config="Base-SOLO.yaml")
    cfg.MODEL.SOLO.MEMORY_FORMAT = "channels_last"
    model = build_model(cfg)
    model.load_state_dict(ref_model.state_dict())
    assert model.head.cls_convs[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert model.head.conv_cls.weight.is_contiguous(memory_format=torch.channels_last)
    model.eval()
    inputs = [_input()]
    ref, out = ref_model(inputs)[0]["instances"], model(inputs)[0]["instances"]
    assert len(out) == len(ref) > 0
    assert torch.allclose(out.scores, ref.scores, atol=1e-5)
    assert (out.pred_masks == ref.pred_masks).float().mean() > 0.999
    ref_model.train(), model.train()
    ref_l, out_l = ref_model(inputs), model(inputs)
    for k in ref_l:
        assert out_l[k].item() == pytest.approx(ref_l[k].item(), rel=1e-5)


@pytest.mark.parametrize("dtype", list(DTYPES))
def test_deformable_convs_under_autocast(dtype):
    """torchvision's deform_conv2d has no bf16 / fp16 CPU kernel: DeformConv runs it in fp32
    under autocast, the losses stay near fp32 (SOLOv2 light DCN: DCNv2 in the last conv)."""
    cfg = tiny_cfg("SOLOV2Head", config="SOLOv2_Light_R50_DCN_3x.yaml")
    cfg.MODEL.RESNETS.DEFORM_ON_PER_STAGE = [False] * 4  # R18 has no deformable stages
    assert cfg.MODEL.SOLO.DCN_TYPE == "DCNv2"
    torch.manual_seed(0)
    model = build_model(cfg).train()
    inputs = [_input()]
    ref = model(inputs)
    with torch.autocast("cpu", dtype=DTYPES[dtype]):
        low = model(inputs)
    for k, v in low.items():
        assert torch.isfinite(v) and v.item() == pytest.approx(ref[k].item(), rel=LOSS_RTOL[dtype])
