"""One timed step of either model, split into the same phases on both sides.

Inference: ``backbone_fpn`` (normalise, pad, backbone, FPN), ``head``, ``postprocess``.
Training (batch 1, SGD): ``backbone_fpn``, ``head``, ``loss``, ``backward_step``.
Ours runs through ``model.forward_head`` (the phase boundary after the backbone is a forward
hook); mmdet's through its own ``extract_feat``, ``mask_head`` and ``predict_by_feat`` /
``loss_by_feat``.
"""
import math
from typing import Any, Dict, List, Tuple

import numpy as np
import torch
from detectron2.structures import BitMasks, Boxes, Instances
from torch import nn

from .timing import PhaseClock, PhaseTimes, autocast, saved_for_backward_mib

__all__ = [
    "GroundTruth",
    "pad_hw",
    "make_sgd",
    "ours_infer",
    "ours_train_inputs",
    "ours_train_step",
    "mm_image_meta",
    "mm_mean_std",
    "mm_preprocess",
    "mmdet_infer",
    "mmdet_train_inputs",
    "mmdet_train_step",
    "backbone_saved_mib",
]

# boxes (N, 4) XYXY, labels (N,), masks (N, H, W) uint8: see inputs.make_gt
GroundTruth = Tuple[torch.Tensor, torch.Tensor, np.ndarray]


def pad_hw(h: int, w: int, div: int = 32) -> Tuple[int, int]:
    """(h, w) rounded up to multiples of ``div``: the padded batch shape."""
    return (math.ceil(h / div) * div, math.ceil(w / div) * div)


def make_sgd(model: nn.Module) -> torch.optim.Optimizer:
    """The training step's optimizer (both sides alike)."""
    return torch.optim.SGD([p for p in model.parameters() if p.requires_grad],
                           lr=0.01, momentum=0.9, weight_decay=1e-4)


def _backward_step(
    model: nn.Module, opt: torch.optim.Optimizer, clock: PhaseClock,
    losses: Dict[str, torch.Tensor],
) -> Tuple[PhaseTimes, Dict[str, float]]:
    """The timed tail both sides share: backward of the summed losses + optimizer step,
    then back to eval mode; (phase seconds, float losses)."""
    opt.zero_grad(set_to_none=True)
    sum(losses.values()).backward()
    opt.step()
    clock.lap("backward_step")
    model.eval()
    return clock.times, {k: float(v.detach()) for k, v in losses.items()}


# ------------------------------------------------------------------ ours
def ours_infer(
    model: nn.Module, img: torch.Tensor, device: str, amp: str = ""
) -> Tuple[PhaseTimes, Instances]:
    """One inference of solo_d2's model on ``img`` (3, H, W); (phase seconds, Instances at
    the image's size). Its forward runs under autocast to ``amp`` or, for "", to the model's
    MODEL.SOLO.TEST.AMP, as ``model.forward`` does."""
    amp = amp or {torch.bfloat16: "bfloat16", torch.float16: "float16"}.get(
        model.inference_amp, "")
    clock = PhaseClock(device)
    h, w = img.shape[-2:]
    inputs = [{"image": img, "height": h, "width": w}]
    with torch.no_grad(), autocast(device, amp), clock.lap_after(model.backbone, "backbone_fpn"):
        clock.start()
        images, cls_logits, mask_inputs = model.forward_head(inputs)
        clock.lap("head")
        out = model.inference(cls_logits, mask_inputs, images.image_sizes, [(h, w)])[0]
        clock.lap("postprocess")
    return clock.times, out


def ours_train_inputs(img: torch.Tensor, gt: GroundTruth, device: str) -> List[Dict[str, Any]]:
    """Detectron2's batched inputs of one image with its gt instances (bit masks)."""
    boxes, labels, masks = gt
    inst = Instances(tuple(img.shape[-2:]))
    inst.gt_boxes = Boxes(boxes)
    inst.gt_classes = labels
    inst.gt_masks = BitMasks(torch.from_numpy(masks).bool())
    return [{"image": img, "instances": inst.to(device)}]


def ours_train_step(
    model: nn.Module, opt: torch.optim.Optimizer, inputs: List[Dict[str, Any]], device: str,
    amp: str = "",
) -> Tuple[PhaseTimes, Dict[str, float]]:
    """forward (backbone, head, losses) + backward + SGD step; phase seconds and losses.
    ``amp``: the forward's autocast dtype name ("" fp32); no grad scaling (timing only)."""
    model.train()
    clock = PhaseClock(device)
    clock.start()
    with autocast(device, amp), clock.lap_after(model.backbone, "backbone_fpn"):
        images, cls_logits, mask_inputs = model.forward_head(inputs)
        clock.lap("head")
        gt = [x["instances"] for x in inputs]
        losses = model.losses(cls_logits, mask_inputs, gt, images.tensor.shape[-2:])
        clock.lap("loss")
    return _backward_step(model, opt, clock, losses)


# ------------------------------------------------------------------ mmdet
def mm_image_meta(h: int, w: int, pad: Tuple[int, int]) -> Dict[str, Any]:
    """mmdet's image meta of an (h, w) image, unscaled, in a batch padded to ``pad``."""
    return dict(img_shape=(h, w), ori_shape=(h, w), pad_shape=pad,
                batch_input_shape=pad, scale_factor=(1.0, 1.0))


def mm_mean_std(mm: nn.Module, device: Any) -> Tuple[torch.Tensor, torch.Tensor]:
    """mmdet's normalisation, (3, 1, 1) mean and std."""
    pre = mm.data_preprocessor
    return tuple(torch.as_tensor(v, dtype=torch.float32).view(3, 1, 1).to(device)
                 for v in (pre.mean, pre.std))


def mm_preprocess(
    img: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, pad: Tuple[int, int]
) -> torch.Tensor:
    """(3, h, w) -> normalised (1, 3, *pad), zero-padded bottom and right."""
    x = img.new_zeros((1, 3, *pad))
    x[0, :, : img.shape[-2], : img.shape[-1]] = (img - mean) / std
    return x


def mmdet_infer(
    mm: nn.Module, img: torch.Tensor, device: str, amp: str = ""
) -> Tuple[PhaseTimes, Any]:
    """One inference of mmdet's SOLO, split like ours: (phase seconds, InstanceData)."""
    h, w = img.shape[-2:]
    pad = pad_hw(h, w)
    mean, std = mm_mean_std(mm, img.device)
    clock = PhaseClock(device)
    with torch.no_grad(), autocast(device, amp):
        clock.start()
        feats = mm.extract_feat(mm_preprocess(img, mean, std, pad))
        clock.lap("backbone_fpn")
        outs = mm.mask_head(feats)
        clock.lap("head")
        res = mm.mask_head.predict_by_feat(*outs, batch_img_metas=[mm_image_meta(h, w, pad)])[0]
        clock.lap("postprocess")
    return clock.times, res


def mmdet_train_inputs(
    img: torch.Tensor, gt: GroundTruth, mm: nn.Module, device: str
) -> Dict[str, Any]:
    """What :func:`mmdet_train_step` needs: the image, normalisation, padding, gt
    InstanceData (masks padded to the batch) and image metas."""
    from solo_d2.testing.mmdet_reference import gt_instance_data

    h, w = img.shape[-2:]
    pad = pad_hw(h, w)
    boxes, labels, masks = gt
    gti = gt_instance_data(boxes, labels, masks, pad).to(device)
    mean, std = mm_mean_std(mm, img.device)
    return dict(img=img, mean=mean, std=std, pad=pad, gt=[gti], metas=[mm_image_meta(h, w, pad)])


def mmdet_train_step(
    mm: nn.Module, opt: torch.optim.Optimizer, inputs: Dict[str, Any], device: str,
    amp: str = "",
) -> Tuple[PhaseTimes, Dict[str, float]]:
    """mmdet's forward (backbone, head, losses) + backward + SGD step; like ours."""
    mm.train()  # ResNet keeps BN in eval (norm_eval) and stage 1 frozen, like ours
    clock = PhaseClock(device)
    clock.start()
    with autocast(device, amp):
        x = mm_preprocess(inputs["img"], inputs["mean"], inputs["std"], inputs["pad"])
        feats = mm.extract_feat(x)
        clock.lap("backbone_fpn")
        outs = mm.mask_head(feats)
        clock.lap("head")
        losses = mm.mask_head.loss_by_feat(*outs, batch_gt_instances=inputs["gt"],
                                           batch_img_metas=inputs["metas"])
        clock.lap("loss")
    return _backward_step(mm, opt, clock, losses)


# ------------------------------------------------------------------ either
def backbone_saved_mib(model: nn.Module, img: torch.Tensor) -> float:
    """:func:`~.timing.saved_for_backward_mib` of one training-mode backbone+FPN forward
    (ours or mmdet's, the preprocessed image as input)."""
    model.train()
    with torch.no_grad():
        if hasattr(model, "extract_feat"):
            x = mm_preprocess(img, *mm_mean_std(model, img.device), pad_hw(*img.shape[-2:]))
            forward = model.extract_feat
        else:
            x = model.preprocess_image([{"image": img}]).tensor
            forward = model.backbone
    try:
        return saved_for_backward_mib(lambda: forward(x))
    finally:
        model.eval()
