#!/usr/bin/env python
"""Speed and memory benchmark of solo_d2 models, optionally against mmdet 3.3.0's SOLO.

    python tools/benchmark.py --config-file configs/SOLO_R50_1x.yaml MODEL.WEIGHTS ""
    python tools/benchmark.py --config-file configs/SOLO_R50_1x.yaml --vs-mmdet \
        --num-iters 5 --warmup 3 --json-out out/bench.json MODEL.WEIGHTS ""

Measures, on one synthetic image of ``--size H W`` (default 800 1333, i.e. already at test
scale; the model pads it to its size divisibility):

* inference latency (median over ``--num-iters`` after ``--warmup``), split into
  backbone+FPN (incl. normalise/pad), head forward and post-processing; images/s;
* one training step (forward + losses + backward + SGD step, batch 1, a few random gt
  instances), split into backbone+FPN, head, loss, backward+step;
* peak memory: ``torch.cuda.max_memory_allocated`` on CUDA; on CPU the process's RSS
  high-water mark (VmHWM), measured for each model and phase in a fresh subprocess
  so that the marks of different models/phases do not mix.

``--vs-mmdet`` builds mmdet's model from the matching mmdet config (randomly initialised by
solo_d2.testing.mmdet_reference), converts its weights with solo_d2's converter into ours, and times
both in the same process, alternating ours/theirs every iteration. With random weights the
category bias is shifted so that a chosen number of (cell, class) candidates pass score_thr:
regime "typical" (``--typical-candidates``, default 20) and "crowded"
(``--crowded-candidates``, default 1000). Outputs of both are compared on the benchmark image.

``--vs-opts "KEY VALUE ..."`` adds a second solo_d2 model, "alt": the same config and weights
with these overrides, measured the same way alongside (an ablation, e.g.
``--vs-opts "MODEL.SOLO.RECOMPUTE_NORM_ACT False"``); its outputs are compared with ours.
"""
import argparse
import json
import math
import os
import platform
import resource
import shlex
import statistics
import subprocess
import sys
import time
import types
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

# median mask logit a calibrated random model is given: SOLO masks are sigmoid(x) (0.5 at 0);
# decoupled masks are sigmoid(x) * sigmoid(y) (0.5 at logit(sqrt(0.5)) = 0.881 each)
MASK_LOGIT_TARGET = {"SOLOHead": 0.0, "DecoupledSOLOHead": 0.881, "DecoupledSOLOLightHead": 0.881}
# SOLOv2 has no mask bias to shift: its masks are sigmoid(kernel . features), whose logits
# have an arbitrary scale for random kernels. Its kernel conv is scaled instead, until the
# median |mask logit| is this (masks neither all 0.5 nor saturated).
DYNAMIC_KERNEL_ABS_LOGIT = 2.0


# ----------------------------------------------------------------------------------------
# setup
# ----------------------------------------------------------------------------------------
def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config-file", required=True)
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--amp", action="store_true", help="autocast (fp16 on cuda, bf16 on cpu)")
    p.add_argument("--num-iters", type=int, default=5, help="timed inference iterations")
    p.add_argument("--warmup", type=int, default=3, help="untimed inference iterations")
    p.add_argument("--train-iters", type=int, default=3, help="timed training steps")
    p.add_argument("--train-warmup", type=int, default=2, help="untimed training steps")
    p.add_argument("--size", type=int, nargs=2, default=[800, 1333], metavar=("H", "W"))
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: all cores)")
    p.add_argument("--vs-mmdet", action="store_true", help="compare with mmdet 3.3.0")
    p.add_argument("--mmdet-config", default=None, help="mmdet .py config (default: by head)")
    p.add_argument("--vs-opts", default="",
                   help='also measure "alt": our model, same weights, with these config '
                        'overrides (one quoted string "KEY VALUE ...")')
    p.add_argument("--regimes", default=None,
                   help="comma list of typical,crowded,as-is (default: typical,crowded with "
                        "--vs-mmdet or without MODEL.WEIGHTS, else as-is)")
    p.add_argument("--typical-candidates", type=int, default=20)
    p.add_argument("--crowded-candidates", type=int, default=1000)
    p.add_argument("--skip", default="", help="comma list of phases to skip: infer,train,memory")
    p.add_argument("--memory-phases", default="train",
                   help="comma list of phases whose peak memory is measured: train,infer")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json-out", default=None)
    p.add_argument("--mem-worker", default=None, help=argparse.SUPPRESS)  # side:phase
    p.add_argument("opts", nargs=argparse.REMAINDER, default=[],
                   help="Detectron2 config overrides: KEY VALUE ...")
    return p


def setup_cfg(args):
    from detectron2.config import get_cfg

    import solo_d2

    cfg = get_cfg()
    solo_d2.add_solo_config(cfg)
    cfg.merge_from_file(args.config_file)
    cfg.merge_from_list(args.opts)
    cfg.MODEL.DEVICE = args.device
    cfg.DATASETS.TRAIN = ()
    cfg.DATASETS.TEST = ()
    if args.vs_mmdet:
        # the reference's semantics, so that the first-step losses can be compared: mmdet
        # trains cells whose instance mask vanishes at the mask resolution (dice target 0)
        cfg.MODEL.SOLO.DROP_VANISHED_TARGETS = False
    cfg.freeze()
    return cfg


def alt_cfg(cfg, vs_opts: str):
    """``cfg`` with the ``--vs-opts`` overrides applied (a copy)."""
    alt = cfg.clone()
    alt.defrost()
    alt.merge_from_list(shlex.split(vs_opts))
    alt.freeze()
    return alt


def set_threads(n: int = 0) -> int:
    n = n or os.cpu_count() or 1
    torch.set_num_threads(n)
    return n


def machine_info(device: str) -> Dict[str, Any]:
    info = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "loadavg": list(os.getloadavg()),
    }
    try:
        with open("/proc/cpuinfo") as f:
            names = [ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")]
        if names:
            info["cpu"] = names[0]
    except OSError:
        pass
    if device == "cuda":
        info["gpu"] = torch.cuda.get_device_name()
    return info


def make_image(h: int, w: int, seed: int = 0) -> torch.Tensor:
    """Smooth random RGB image in [0, 255], float (3, h, w)."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand((1, 3, h // 16 + 1, w // 16 + 1), generator=g) * 255
    img = torch.nn.functional.interpolate(coarse, size=(h, w), mode="bilinear")[0]
    return (img + 20 * torch.rand((3, h, w), generator=g)).clamp(0, 255).round()


def make_gt(h: int, w: int, num: int = 5, num_classes: int = 80, seed: int = 0):
    """``num`` random ellipse instances of varied sizes: boxes (num, 4), labels, masks (num,h,w)."""
    rng = np.random.RandomState(seed)
    yy, xx = np.mgrid[:h, :w]
    masks, boxes = [], []
    for i in range(num):
        size = min(h, w) * (0.05 + 0.6 * i / max(num - 1, 1))  # small .. large: all levels
        ry, rx = size / 2 * rng.uniform(0.6, 1.0), size / 2 * rng.uniform(0.6, 1.0)
        cy, cx = rng.uniform(ry, h - ry), rng.uniform(rx, w - rx)
        m = ((yy - cy) ** 2 / ry**2 + (xx - cx) ** 2 / rx**2) <= 1
        ys, xs = np.nonzero(m)
        masks.append(m.astype(np.uint8))
        boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
    labels = torch.as_tensor(rng.randint(0, num_classes, size=num), dtype=torch.long)
    return torch.tensor(boxes, dtype=torch.float32), labels, np.stack(masks)


def build_ours(cfg, load_weights: bool = True):
    from detectron2.checkpoint import DetectionCheckpointer
    from detectron2.modeling import build_model

    model = build_model(cfg)
    if load_weights and cfg.MODEL.WEIGHTS:
        DetectionCheckpointer(model).load(cfg.MODEL.WEIGHTS)
    model.eval()
    return model


def _mmdet_harness():
    from solo_d2.testing import mmdet_reference  # mmdet with its compiled mmcv ops stubbed

    if mmdet_reference.import_mmdet() is None:
        raise SystemExit("--vs-mmdet needs mmdet 3.3.0, mmengine and mmcv(-lite) installed")
    return mmdet_reference


def mmdet_config_path(cfg, explicit: Optional[str]) -> str:
    if explicit:
        return explicit
    from solo_d2.checkpoint.mmdet import MMDET_HEADS, MMDetConversionError

    head = cfg.MODEL.SOLO.HEAD_NAME
    if head not in MMDET_HEADS:
        raise SystemExit(f"no default mmdet config for head {head!r}; pass --mmdet-config")
    try:
        return MMDET_HEADS[head].reference_config_path()
    except MMDetConversionError as e:
        raise SystemExit(f"--vs-mmdet: {e}")


def build_mmdet(cfg, mmdet_config: str, seed: int = 0):
    """mmdet's model (random init, no pretrained download) and its mmdet config dict."""
    from solo_d2.checkpoint.mmdet import load_mmdet_config_file

    R = _mmdet_harness()
    mm_cfg = load_mmdet_config_file(mmdet_config)
    mm_cfg["model"]["backbone"]["init_cfg"] = None
    mm_cfg["model"]["mask_head"]["num_classes"] = cfg.MODEL.SOLO.NUM_CLASSES
    model = R.build_mmdet_model(mm_cfg, seed=seed)
    return model.to(cfg.MODEL.DEVICE), mm_cfg


def build_pair(cfg, mmdet_config: str, seed: int = 0):
    """(ours, theirs) with identical weights: mmdet random init converted into ours."""
    from solo_d2.checkpoint.mmdet import convert_state_dict, mmdet_config_to_d2

    mm, mm_cfg = build_mmdet(cfg, mmdet_config, seed)
    _, stages = mmdet_config_to_d2(mm_cfg, mmdet_config)
    sd = convert_state_dict(mm.state_dict(), mm_cfg["model"]["mask_head"]["type"], stages)
    ours = build_ours(cfg, load_weights=False)
    missing, unexpected = ours.load_state_dict(sd, strict=False)
    missing = [k for k in missing if k not in ("pixel_mean", "pixel_std")]
    if missing or unexpected:
        raise SystemExit(f"converted mmdet weights do not fit {cfg.MODEL.SOLO.HEAD_NAME}: "
                         f"missing {missing[:5]}, unexpected {unexpected[:5]}")
    return ours.eval(), mm.eval()


# ----------------------------------------------------------------------------------------
# timing primitives
# ----------------------------------------------------------------------------------------
class PhaseClock:
    """Wall-clock phases with device synchronisation at each boundary."""

    def __init__(self, device: str):
        self.cuda = device == "cuda"
        self.times: Dict[str, float] = {}

    def _sync(self):
        if self.cuda:
            torch.cuda.synchronize()

    def start(self):
        self._sync()
        self._t = time.perf_counter()

    def lap(self, name: str):
        self._sync()
        t = time.perf_counter()
        self.times[name] = self.times.get(name, 0.0) + t - self._t
        self._t = t


def _autocast(device: str, amp: bool):
    dtype = torch.float16 if device == "cuda" else torch.bfloat16
    return torch.autocast(device_type=device, dtype=dtype, enabled=amp)


def ours_infer(model, img: torch.Tensor, device: str, amp: bool = False):
    """One inference of solo_d2's model; (phase seconds, Instances)."""
    clock = PhaseClock(device)
    inputs = [{"image": img, "height": img.shape[-2], "width": img.shape[-1]}]
    with torch.no_grad(), _autocast(device, amp):
        clock.start()
        images = model.preprocess_image(inputs)
        feats = model.backbone(images.tensor)
        clock.lap("backbone_fpn")
        cls_logits, mask_inputs = model.head([feats[f] for f in model.head_in_features])
        clock.lap("head")
        out = model.inference(cls_logits, mask_inputs, images.image_sizes,
                              [(img.shape[-2], img.shape[-1])])[0]
        clock.lap("postprocess")
    return clock.times, out


def mm_image_meta(h: int, w: int, pad_hw: Tuple[int, int]) -> Dict[str, Any]:
    return dict(img_shape=(h, w), ori_shape=(h, w), pad_shape=pad_hw,
                batch_input_shape=pad_hw, scale_factor=(1.0, 1.0))


def _pad_hw(h: int, w: int, div: int = 32) -> Tuple[int, int]:
    return (math.ceil(h / div) * div, math.ceil(w / div) * div)


def mm_preprocess(img: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, pad_hw):
    x = img.new_zeros((1, 3, *pad_hw))
    x[0, :, : img.shape[-2], : img.shape[-1]] = (img - mean) / std
    return x


def mm_mean_std(mm, device) -> Tuple[torch.Tensor, torch.Tensor]:
    """mmdet's normalisation, (3, 1, 1) mean and std."""
    pre = mm.data_preprocessor
    return tuple(torch.as_tensor(v, dtype=torch.float32).view(3, 1, 1).to(device)
                 for v in (pre.mean, pre.std))


def mmdet_infer(mm, img: torch.Tensor, device: str, amp: bool = False):
    """One inference of mmdet's SOLO, split like ours: (phase seconds, InstanceData)."""
    h, w = img.shape[-2:]
    pad = _pad_hw(h, w)
    mean, std = mm_mean_std(mm, img.device)
    clock = PhaseClock(device)
    with torch.no_grad(), _autocast(device, amp):
        clock.start()
        feats = mm.extract_feat(mm_preprocess(img, mean, std, pad))
        clock.lap("backbone_fpn")
        outs = mm.mask_head(feats)
        clock.lap("head")
        res = mm.mask_head.predict_by_feat(*outs, batch_img_metas=[mm_image_meta(h, w, pad)])[0]
        clock.lap("postprocess")
    return clock.times, res


def ours_train_inputs(img, gt, device):
    from detectron2.structures import BitMasks, Boxes, Instances

    boxes, labels, masks = gt
    inst = Instances(tuple(img.shape[-2:]))
    inst.gt_boxes = Boxes(boxes)
    inst.gt_classes = labels
    inst.gt_masks = BitMasks(torch.from_numpy(masks).bool())
    return [{"image": img, "instances": inst.to(device)}]


def make_sgd(model):
    return torch.optim.SGD([p for p in model.parameters() if p.requires_grad],
                           lr=0.01, momentum=0.9, weight_decay=1e-4)


def _backward_step(model, opt, clock: "PhaseClock", losses: Dict[str, torch.Tensor]):
    """The timed tail both sides share: backward of the summed losses + optimizer step,
    then back to eval mode; (phase seconds, float losses)."""
    opt.zero_grad(set_to_none=True)
    sum(losses.values()).backward()
    opt.step()
    clock.lap("backward_step")
    model.eval()
    return clock.times, {k: float(v.detach()) for k, v in losses.items()}


def ours_train_step(model, opt, inputs, device: str, amp: bool = False):
    """forward (backbone, head, losses) + backward + SGD step; phase seconds and losses."""
    model.train()
    clock = PhaseClock(device)
    clock.start()
    with _autocast(device, amp):
        images = model.preprocess_image(inputs)
        feats = model.backbone(images.tensor)
        clock.lap("backbone_fpn")
        cls_logits, mask_inputs = model.head([feats[f] for f in model.head_in_features])
        clock.lap("head")
        gt = [x["instances"] for x in inputs]
        losses = model.losses(cls_logits, mask_inputs, gt, images.tensor.shape[-2:])
        clock.lap("loss")
    return _backward_step(model, opt, clock, losses)


def mmdet_train_inputs(img, gt, mm, device):
    R = _mmdet_harness()
    h, w = img.shape[-2:]
    pad = _pad_hw(h, w)
    boxes, labels, masks = gt
    gti = R.gt_instance_data(boxes, labels, masks, pad).to(device)
    meta = mm_image_meta(h, w, pad)
    mean, std = mm_mean_std(mm, img.device)
    return dict(img=img, mean=mean, std=std, pad=pad, gt=[gti], metas=[meta])


def mmdet_train_step(mm, opt, inputs, device: str, amp: bool = False):
    mm.train()  # ResNet keeps BN in eval (norm_eval) and stage 1 frozen, like ours
    clock = PhaseClock(device)
    clock.start()
    with _autocast(device, amp):
        x = mm_preprocess(inputs["img"], inputs["mean"], inputs["std"], inputs["pad"])
        feats = mm.extract_feat(x)
        clock.lap("backbone_fpn")
        outs = mm.mask_head(feats)
        clock.lap("head")
        losses = mm.mask_head.loss_by_feat(*outs, batch_gt_instances=inputs["gt"],
                                           batch_img_metas=inputs["metas"])
        clock.lap("loss")
    return _backward_step(mm, opt, clock, losses)


def saved_for_backward_mib(fn: Callable[[], Any]) -> float:
    """MiB of the distinct tensor storages (weights included) that autograd keeps for backward
    while ``fn()`` runs; the result is dropped. Tensors saved inside torch.utils.checkpoint
    regions are not seen, so use it where there are none (backbone+FPN)."""
    storages: Dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        s = t.untyped_storage()
        storages[s.data_ptr()] = s.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return sum(storages.values()) / 2**20


def backbone_saved_mib(model, img: torch.Tensor) -> float:
    """:func:`saved_for_backward_mib` of one training-mode backbone+FPN forward (ours or
    mmdet's, the preprocessed image as input)."""
    model.train()
    with torch.no_grad():
        if hasattr(model, "extract_feat"):
            x = mm_preprocess(img, *mm_mean_std(model, img.device), _pad_hw(*img.shape[-2:]))
            forward = model.extract_feat
        else:
            x = model.preprocess_image([{"image": img}]).tensor
            forward = model.backbone
    try:
        return saved_for_backward_mib(lambda: forward(x))
    finally:
        model.eval()


def run_alternating(fns: Dict[str, Callable[[], Dict[str, float]]], warmup: int, iters: int):
    """Call each fn once per round, alternating (drift cancels); median phase times per fn."""
    samples: Dict[str, List[Dict[str, float]]] = {k: [] for k in fns}
    for it in range(warmup + iters):
        order = list(fns) if it % 2 == 0 else list(fns)[::-1]
        for k in order:
            t = fns[k]()
            if it >= warmup:
                samples[k].append(t)
    out = {}
    for k, ts in samples.items():
        phases = list(ts[0])
        med = {p: statistics.median(t[p] for t in ts) for p in phases}
        med["total"] = statistics.median(sum(t.values()) for t in ts)
        med["all_totals"] = [round(sum(t.values()), 4) for t in ts]
        out[k] = med
    return out


# ----------------------------------------------------------------------------------------
# candidate-count calibration (random weights)
# ----------------------------------------------------------------------------------------
def _head_view(model):
    """Something with ``.mask_head`` (what mmdet_reference.shift_head_biases expects)."""
    return model if hasattr(model, "mask_head") else types.SimpleNamespace(mask_head=model.head)


def shift_cls_bias(model, shift: float) -> None:
    """Add ``shift`` to the category conv's bias (more or fewer candidates pass score_thr)."""
    with torch.no_grad():
        _head_view(model).mask_head.conv_cls.bias += shift


def adjust_masks(model, kind: str, value: float) -> None:
    """Make a random model's masks realistic: ``kind`` "bias_shift" adds ``value`` to every
    mask projection bias; "kernel_gain" (SOLOv2) multiplies the dynamic-kernel conv by it."""
    head = _head_view(model).mask_head
    with torch.no_grad():
        if kind == "kernel_gain":
            head.conv_kernel.weight *= value
            head.conv_kernel.bias *= value
            return
        for name in ("conv_mask_list", "conv_mask_list_x", "conv_mask_list_y"):
            for conv in getattr(head, name, []):
                conv.bias += value


def count_candidates(cls_logits: List[torch.Tensor], shift: float, score_thr: float) -> int:
    """(cell, class) pairs of image 0 that pass score_thr after point NMS."""
    from solo_d2.modeling.postprocess import point_nms, select_candidates

    probs = [point_nms((x[:1].float() + shift).sigmoid())[0] for x in cls_logits]
    return len(select_candidates(probs, score_thr).scores)


def calibrate(model, img: torch.Tensor, targets: Dict[str, int]):
    """Category-bias shifts giving each target candidate count, and the mask adjustment
    (kind, value) for :func:`adjust_masks`: the mask-bias shift that puts the median mask
    logit at MASK_LOGIT_TARGET (masks about half on), or for dynamic kernels the gain that
    puts the median |mask logit| at DYNAMIC_KERNEL_ABS_LOGIT."""
    from solo_d2.testing import full_mask_logits

    with torch.no_grad():
        _, cls_logits, mask_inputs = model.forward_head([{"image": img}])
        coarse = full_mask_logits(model.head, mask_inputs, len(cls_logits) - 1)
        coarse = coarse if isinstance(coarse, tuple) else (coarse,)
    if hasattr(model.head, "conv_kernel"):
        med_abs = statistics.median(float(c.float().abs().median()) for c in coarse)
        mask_adjust = ("kernel_gain", DYNAMIC_KERNEL_ABS_LOGIT / med_abs)
    else:
        med = statistics.median(float(c.float().median()) for c in coarse)
        target = MASK_LOGIT_TARGET.get(model.head.__class__.__name__, 0.0)
        mask_adjust = ("bias_shift", target - med)
    thr = model.inference_settings.score_thresh
    shifts, counts = {}, {}
    for name, k in targets.items():
        lo, hi = -20.0, 20.0
        for _ in range(40):  # count grows with the shift
            mid = (lo + hi) / 2
            if count_candidates(cls_logits, mid, thr) < k:
                lo = mid
            else:
                hi = mid
        shifts[name] = hi + 1e-3  # margin: the shifted conv rounds slightly differently
        counts[name] = count_candidates(cls_logits, shifts[name], thr)
    return shifts, counts, mask_adjust


# ----------------------------------------------------------------------------------------
# output comparison
# ----------------------------------------------------------------------------------------
def as_mmdet_like(instances):
    """Our Instances viewed with mmdet's field names, for :func:`compare_outputs`."""
    return types.SimpleNamespace(scores=instances.scores, labels=instances.pred_classes,
                                 masks=instances.pred_masks)


def compare_outputs(ours, theirs) -> Dict[str, Any]:
    n_o, n_t = len(ours), len(theirs.scores)
    res = {"instances_ours": n_o, "instances_mmdet": n_t, "same_count": n_o == n_t}
    if n_o == n_t and n_o > 0:
        res["labels_equal"] = bool(torch.equal(ours.pred_classes.cpu(), theirs.labels.cpu()))
        res["max_score_diff"] = float((ours.scores.cpu() - theirs.scores.cpu()).abs().max())
        res["mask_pixel_agreement"] = float(
            (ours.pred_masks.bool().cpu() == theirs.masks.bool().cpu()).float().mean())
    res["identical"] = bool(res["same_count"] and (n_o == 0 or (
        res["labels_equal"] and res["max_score_diff"] < 1e-3
        and res["mask_pixel_agreement"] > 0.999)))
    return res


# ----------------------------------------------------------------------------------------
# memory
# ----------------------------------------------------------------------------------------
def rss_peak_mib() -> float:
    """This process's RSS high-water mark (VmHWM). Not getrusage's ru_maxrss: that survives
    fork+exec, so a subprocess would report its parent's peak. The kernel folds threads' RSS
    counters into VmHWM lazily, so it can read below the current RSS: the peak is at least that.
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return max(int(line.split()[1]) / 1024.0, rss_now_mib())  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def rss_now_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def mem_worker(args, cfg) -> Dict[str, Any]:
    """In a fresh process: build one model ("ours" or "mmdet"), run one phase ("infer" or
    "train", warm-up count of iterations + 1), report the RSS / CUDA high-water marks."""
    side, phase = args.mem_worker.split(":")
    device = cfg.MODEL.DEVICE
    h, w = args.size
    img = make_image(h, w, args.seed).to(device)
    if side == "alt":
        cfg = alt_cfg(cfg, args.vs_opts)
    if side in ("ours", "alt"):
        model = build_ours(cfg, load_weights=True)
    else:
        model, _ = build_mmdet(cfg, mmdet_config_path(cfg, args.mmdet_config), args.seed)
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base_cuda = torch.cuda.memory_allocated() / 2**20
    base_rss = rss_now_mib()
    base_peak = rss_peak_mib()
    steps = max(args.train_warmup if phase == "train" else args.warmup, 1) + 1
    if phase == "train":
        gt = make_gt(h, w, num_classes=cfg.MODEL.SOLO.NUM_CLASSES, seed=args.seed)
        opt = make_sgd(model)
        if side in ("ours", "alt"):
            inputs = ours_train_inputs(img, gt, device)
            for _ in range(steps):
                ours_train_step(model, opt, inputs, device, args.amp)
        else:
            inputs = mmdet_train_inputs(img, gt, model, device)
            for _ in range(steps):
                mmdet_train_step(model, opt, inputs, device, args.amp)
    else:
        for _ in range(steps):
            (mmdet_infer if side == "mmdet" else ours_infer)(model, img, device, args.amp)
    out = {"side": side, "phase": phase, "steps": steps, "rss_after_build_mib": base_rss,
           "rss_peak_before_phase_mib": base_peak, "rss_peak_mib": rss_peak_mib()}
    out["rss_phase_increase_mib"] = out["rss_peak_mib"] - base_rss
    if device == "cuda":
        out["cuda_peak_mib"] = torch.cuda.max_memory_allocated() / 2**20
        out["cuda_phase_increase_mib"] = out["cuda_peak_mib"] - base_cuda
    return out


def measure_memory(args, side: str, phase: str) -> Dict[str, Any]:
    cmd = [sys.executable, os.path.abspath(__file__), "--config-file", args.config_file,
           "--device", args.device, "--size", str(args.size[0]), str(args.size[1]),
           "--warmup", "1", "--train-warmup", "1", "--threads", str(args.threads),
           "--seed", str(args.seed), "--mem-worker", f"{side}:{phase}"]
    if args.amp:
        cmd.append("--amp")
    if args.mmdet_config:
        cmd += ["--mmdet-config", args.mmdet_config]
    if args.vs_mmdet:
        cmd.append("--vs-mmdet")  # same config semantics as the timed runs (setup_cfg)
    if args.vs_opts:
        cmd += ["--vs-opts", args.vs_opts]
    cmd += list(args.opts)
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"memory worker {side}:{phase} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------------------
# report
# ----------------------------------------------------------------------------------------
def format_table(title: str, results: Dict[str, Dict[str, float]], phases: List[str]) -> str:
    """Seconds per phase for each side, and each other side's time over ours."""
    sides = list(results)
    others = [s for s in sides if s != "ours"] if "ours" in sides else []
    lines = [f"### {title}", "",
             "| phase | " + " | ".join([f"{s} (s)" for s in sides] + [f"{s}/ours" for s in others])
             + " |",
             "|---" * (len(sides) + len(others) + 1) + "|"]
    for p in phases + ["total"]:
        row = [f"{results[s][p]:.3f}" for s in sides]
        row += [f"{results[s][p] / max(results['ours'][p], 1e-9):.2f}x" for s in others]
        lines.append(f"| {p} | " + " | ".join(row) + " |")
    ips = " / ".join(f"{s} {1.0 / results[s]['total']:.3f}" for s in sides)
    lines += ["", f"images/s: {ips}", ""]
    return "\n".join(lines)


def _log(msg: str) -> None:
    print(f"[benchmark {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def main(argv=None) -> Dict[str, Any]:
    args = get_parser().parse_args(argv)
    if args.opts and args.opts[0] == "--":
        args.opts = args.opts[1:]
    args.threads = set_threads(args.threads)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda but CUDA is not available")
    import logging

    logging.getLogger("detectron2").setLevel(logging.WARNING)
    logging.getLogger("fvcore").setLevel(logging.WARNING)
    cfg = setup_cfg(args)
    if args.mem_worker:
        print(json.dumps(mem_worker(args, cfg)))
        return {}
    skip = set(filter(None, args.skip.split(",")))
    device = args.device
    h, w = args.size
    img = make_image(h, w, args.seed).to(device)
    report: Dict[str, Any] = {
        "config": args.config_file, "opts": args.opts, "device": device, "amp": args.amp,
        "size": [h, w], "padded": list(_pad_hw(h, w)), "machine": machine_info(device),
        "num_iters": args.num_iters, "warmup": args.warmup,
        "train_iters": args.train_iters, "train_warmup": args.train_warmup,
        "command": shlex.join(["python", os.path.relpath(__file__, os.getcwd())]
                              + list(sys.argv[1:] if argv is None else argv)),
    }
    text = [f"# solo_d2 benchmark: {args.config_file} on {device} "
            f"({report['machine']['cpu']}, {args.threads} threads, "
            f"load {report['machine']['loadavg']}), image {h}x{w}"]

    if args.vs_mmdet:
        mm_path = mmdet_config_path(cfg, args.mmdet_config)
        report["mmdet_config"] = mm_path
        ours, mm = build_pair(cfg, mm_path, args.seed)
        models = {"ours": ours, "mmdet": mm}
    else:
        ours = build_ours(cfg)
        models = {"ours": ours}
    if args.vs_opts:
        alt = build_ours(alt_cfg(cfg, args.vs_opts), load_weights=False)
        alt.load_state_dict(ours.state_dict())  # same weights (mmdet's, when --vs-mmdet)
        models["alt"] = alt
        report["vs_opts"] = args.vs_opts
        text[0] += f"; alt = ours with {args.vs_opts}"
    regimes = (args.regimes.split(",") if args.regimes else
               (["typical", "crowded"] if args.vs_mmdet or not cfg.MODEL.WEIGHTS else ["as-is"]))

    # -------- inference
    report["inference"] = {}
    if "infer" not in skip:
        targets = {r: getattr(args, f"{r}_candidates") for r in regimes if r != "as-is"}
        shifts, counts, mask_adjust = calibrate(ours, img, targets) if targets else ({}, {}, None)
        if mask_adjust:
            for m in models.values():
                adjust_masks(m, *mask_adjust)
        applied = 0.0
        for regime in regimes:
            delta = shifts.get(regime, 0.0) - applied if regime != "as-is" else 0.0
            for m in models.values():
                shift_cls_bias(m, delta)
            applied += delta
            _log(f"inference, regime {regime}")
            outs: Dict[str, Any] = {}

            def _runner(side):
                fn = mmdet_infer if side == "mmdet" else ours_infer

                def run():
                    t, o = fn(models[side], img, device, args.amp)
                    outs[side] = o
                    return t
                return run

            res = run_alternating({s: _runner(s) for s in models}, args.warmup, args.num_iters)
            entry: Dict[str, Any] = {"times": res}
            with torch.no_grad():
                images = ours.preprocess_image([{"image": img}])
                feats = ours.backbone(images.tensor)
                cls_logits, _ = ours.head([feats[f] for f in ours.head_in_features])
            entry["candidates"] = count_candidates(cls_logits, 0.0, ours.inference_settings.score_thresh)
            entry["cls_bias_shift"] = applied
            if mask_adjust:
                entry[f"mask_{mask_adjust[0]}"] = mask_adjust[1]
            entry["instances_ours"] = len(outs["ours"])
            if "mmdet" in outs:
                entry["check"] = compare_outputs(outs["ours"], outs["mmdet"])
                entry["ratio_time_mmdet_over_ours"] = {
                    p: res["mmdet"][p] / max(res["ours"][p], 1e-9)
                    for p in ("backbone_fpn", "head", "postprocess", "total")}
            if "alt" in outs:
                entry["check_alt"] = compare_outputs(outs["ours"], as_mmdet_like(outs["alt"]))
            report["inference"][regime] = entry
            text.append(format_table(
                f"inference, regime {regime}: {entry['candidates']} candidates pass score_thr "
                f"(median of {args.num_iters} after {args.warmup} warm-up)",
                res, ["backbone_fpn", "head", "postprocess"]))
            if "check" in entry:
                text.append(f"output check: {json.dumps(entry['check'])}\n")
            else:
                text.append(f"instances: {entry['instances_ours']}\n")
            if "check_alt" in entry:
                text.append(f"output check, alt vs ours: {json.dumps(entry['check_alt'])}\n")

    # -------- training
    if "train" not in skip:
        _log("training")
        gt = make_gt(h, w, num_classes=cfg.MODEL.SOLO.NUM_CLASSES, seed=args.seed)
        fns = {}
        losses: Dict[str, Any] = {}
        o_opt = make_sgd(ours)
        o_in = ours_train_inputs(img, gt, device)

        def run_ours():
            t, losses["ours"] = ours_train_step(ours, o_opt, o_in, device, args.amp)
            return t
        fns["ours"] = run_ours
        if "mmdet" in models:
            m_opt = make_sgd(mm)
            m_in = mmdet_train_inputs(img, gt, mm, device)

            def run_mm():
                t, losses["mmdet"] = mmdet_train_step(mm, m_opt, m_in, device, args.amp)
                return t
            fns["mmdet"] = run_mm
        if "alt" in models:
            a_opt = make_sgd(models["alt"])

            def run_alt():
                t, losses["alt"] = ours_train_step(models["alt"], a_opt, o_in, device, args.amp)
                return t
            fns["alt"] = run_alt
        # first step: same weights and gt on both sides -> same losses
        first: Dict[str, Any] = {}
        for k, fn in fns.items():
            fn()
            first[k] = dict(losses[k])
        res = run_alternating(fns, max(args.train_warmup - 1, 0), args.train_iters)
        entry = {"times": res, "first_step_losses": first}
        if "mmdet" in res:
            entry["ratio_time_mmdet_over_ours"] = {
                p: res["mmdet"][p] / max(res["ours"][p], 1e-9)
                for p in ("backbone_fpn", "head", "loss", "backward_step", "total")}
        report["training"] = entry
        text.append(format_table(
            f"training step (batch 1, {len(gt[1])} gt instances, SGD; median of "
            f"{args.train_iters} after {args.train_warmup} warm-up)", res,
            ["backbone_fpn", "head", "loss", "backward_step"]))
        text.append(f"first-step losses: {json.dumps(first)}\n")
        saved = {k: backbone_saved_mib(models[k], img) for k in fns}
        entry["backbone_saved_for_backward_mib"] = saved
        text.append("saved for backward by backbone+FPN (MiB, weights included): "
                    f"{json.dumps({k: round(v) for k, v in saved.items()})}\n")

    # -------- memory (fresh subprocesses)
    if "memory" not in skip:
        mem: Dict[str, Any] = {}
        phases = [p for p in args.memory_phases.split(",") if p]
        for phase in phases:
            for side in models:
                _log(f"peak memory {side}:{phase} (subprocess)")
                mem[f"{side}:{phase}"] = measure_memory(args, side, phase)
        report["memory"] = mem
        key = "cuda_peak_mib" if device == "cuda" else "rss_peak_mib"
        inc = "cuda_phase_increase_mib" if device == "cuda" else "rss_phase_increase_mib"
        lines = ["### peak memory (fresh process per model and phase)", "",
                 f"| model:phase | peak {key} | increase over built model (MiB) |",
                 "|---|---|---|"]
        for k, v in mem.items():
            lines.append(f"| {k} | {v[key]:.0f} | {v[inc]:.0f} |")
        for phase in phases:
            for other in ("mmdet", "alt"):
                if f"{other}:{phase}" in mem:
                    o, t = mem[f"ours:{phase}"], mem[f"{other}:{phase}"]
                    r = {"peak": o[key] / t[key], "increase": o[inc] / max(t[inc], 1e-9)}
                    report.setdefault(f"memory_ratio_ours_over_{other}", {})[phase] = r
                    lines.append(f"\n{phase}: ours/{other} peak {r['peak']:.2f}x, "
                                 f"increase {r['increase']:.2f}x")
        text.append("\n".join(lines) + "\n")

    report["machine"]["loadavg_end"] = list(os.getloadavg())
    print("\n".join(text))
    if args.json_out:
        os.makedirs(os.path.dirname(os.path.abspath(args.json_out)), exist_ok=True)
        with open(args.json_out, "w") as f:
            json.dump(report, f, indent=1, default=float)
    return report


if __name__ == "__main__":
    main()
