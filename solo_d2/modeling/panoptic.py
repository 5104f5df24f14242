"""Panoptic SOLO (SOLOv2 paper, section 3.2): SOLO's things plus a stuff branch, merged as
Detectron2's Panoptic FPN merges them.

The stuff branch is Detectron2's semantic-segmentation head (``SemSegFPNHead``,
``MODEL.SEM_SEG_HEAD.*``): by default it reads p2..p5 beside SOLOv2's mask-feature branch and
fuses them the same way into one 1/4-scale map (the paper's "semantic segmentation branch,
analogue to the mask feature branch"); with ``MODEL.SEM_SEG_HEAD.IN_FEATURES
["mask_features"]`` it reads SOLOv2's unified mask features instead, sharing their trunk (one
3x3 conv and the classifier of its own). docs/PANOPTIC.md compares the two.

Outputs are Panoptic FPN's, per image: ``{"sem_seg": (S+1, H, W) logits, "instances":
Instances, "panoptic_seg": (ids (H, W) int32, segments_info)}``, the last from Detectron2's
own ``combine_semantic_and_instance_outputs`` with ``MODEL.PANOPTIC_FPN.COMBINE.*``.
"""
import logging
from typing import Any, Dict, List, Sequence, Tuple

import torch
from detectron2.config import configurable
from detectron2.layers import ShapeSpec
from detectron2.modeling import META_ARCH_REGISTRY
from detectron2.modeling.meta_arch.panoptic_fpn import combine_semantic_and_instance_outputs
from detectron2.modeling.meta_arch.semantic_seg import build_sem_seg_head
from detectron2.modeling.postprocessing import sem_seg_postprocess
from detectron2.structures import ImageList, Instances
from torch import Tensor, nn
from torch.nn import functional as F

from ..layers.precision import autocast_for, fp32_ops, to_fp32
from ..heads.solov2 import SOLOV2Head
from .meta_arch import SOLO

__all__ = ["PanopticSOLO", "MASK_FEATURES", "panoptic_settings"]

logger = logging.getLogger(__name__)

#: the feature name under which the stuff branch can read SOLOv2's unified mask features
MASK_FEATURES = "mask_features"


@META_ARCH_REGISTRY.register()
class PanopticSOLO(SOLO):
    """SOLO (any head; SOLOv2 for the shared trunk) with a stuff branch: Detectron2's
    ``PanopticFPN`` contract (inputs with ``"instances"`` and ``"sem_seg"`` in training,
    outputs ``{"sem_seg", "instances", "panoptic_seg"}``) on a SOLO model."""

    @configurable
    def __init__(
        self,
        *,
        sem_seg_head: nn.Module,
        combine_enabled: bool = True,
        combine_overlap_thresh: float = 0.5,
        combine_stuff_area_thresh: float = 4096,
        combine_instances_score_thresh: float = 0.5,
        **kwargs: Any,
    ):
        """
        Args:
            sem_seg_head: the stuff branch, Detectron2's ``SemSegFPNHead`` (or any head with
                its ``in_features``, ``common_stride``, ``ignore_value``, ``layers`` and
                ``losses``), S + 1 classes. It reads backbone features, or with
                ``in_features == ["mask_features"]`` SOLOv2's unified mask features.
            combine_enabled: merge things and stuff into ``"panoptic_seg"``
                (MODEL.PANOPTIC_FPN.COMBINE.ENABLED); False: the other two outputs only.
            combine_overlap_thresh, combine_stuff_area_thresh, combine_instances_score_thresh:
                Detectron2's ``combine_semantic_and_instance_outputs`` settings
                (MODEL.PANOPTIC_FPN.COMBINE.OVERLAP_THRESH, STUFF_AREA_LIMIT,
                INSTANCES_CONFIDENCE_THRESH).
            kwargs: :class:`~solo_d2.modeling.SOLO`'s arguments.
        """
        super().__init__(**kwargs)
        in_features = list(sem_seg_head.in_features)
        self.stuff_from_mask_features = MASK_FEATURES in in_features
        if self.stuff_from_mask_features:
            if in_features != [MASK_FEATURES]:
                raise ValueError(f"the stuff branch reads {in_features}: {MASK_FEATURES!r} "
                                 "(SOLOv2's unified mask features) can only be read alone")
            if not isinstance(self.head, SOLOV2Head):
                raise ValueError(
                    f"the stuff branch reads {MASK_FEATURES!r}, which only SOLOv2's head has "
                    f"(this model's is {type(self.head).__name__}); give it backbone features, "
                    "e.g. MODEL.SEM_SEG_HEAD.IN_FEATURES ['p2', 'p3', 'p4', 'p5']")
        else:
            have = self.backbone.output_shape()
            missing = [f for f in in_features if f not in have]
            if missing:
                raise ValueError(f"the stuff branch reads {missing}, which the backbone does not "
                                 f"give (it gives {sorted(have)})")
        self.sem_seg_head = sem_seg_head
        self.combine_enabled = combine_enabled
        self.combine_overlap_thresh = combine_overlap_thresh
        self.combine_stuff_area_thresh = combine_stuff_area_thresh
        self.combine_instances_score_thresh = combine_instances_score_thresh
        if self.channels_last:
            self.sem_seg_head.to(memory_format=torch.channels_last)

    @classmethod
    def from_config(cls, cfg) -> Dict[str, Any]:
        ret = super().from_config(cfg)
        shapes = dict(ret["backbone"].output_shape())
        if cfg.MODEL.SOLO.HEAD_NAME == "SOLOV2Head":
            m = cfg.MODEL.SOLO.MASK_FEAT
            shapes[MASK_FEATURES] = ShapeSpec(channels=m.OUT_CHANNELS, stride=m.MASK_STRIDE)
        wanted = list(cfg.MODEL.SEM_SEG_HEAD.IN_FEATURES)
        missing = [f for f in wanted if f not in shapes]
        if missing:
            raise ValueError(f"MODEL.SEM_SEG_HEAD.IN_FEATURES {wanted}: {missing} not among "
                             f"the features available to it, {sorted(shapes)}")
        ret["sem_seg_head"] = build_sem_seg_head(cfg, shapes)
        ret.update(panoptic_settings(cfg))
        return ret

    @property
    def num_sem_seg_classes(self) -> int:
        """The stuff branch's classes: stuff + 1 ("things")."""
        return self.sem_seg_head.predictor.out_channels

    # ------------------------------------------------------------------ forward
    def forward_panoptic(
        self, batched_inputs: List[Dict]
    ) -> Tuple[ImageList, List[Tensor], list, Tensor]:
        """Preprocess, backbone, head and stuff branch: ``(images, cls_logits, mask_inputs,
        sem_logits)``, ``sem_logits`` (N, S+1, H/4, W/4) of the padded batch."""
        images, features = self.forward_backbone(batched_inputs)
        cls_logits, mask_inputs = self.head([features[f] for f in self.head_in_features])
        if self.stuff_from_mask_features:
            features = {MASK_FEATURES: mask_inputs[0][1]}  # SOLOv2: (kernel feats, mask feats)
        return images, cls_logits, mask_inputs, self.sem_seg_head.layers(features)

    def forward(self, batched_inputs: List[Dict]):
        amp = None if self.training else self.inference_amp
        with autocast_for(self.device.type, amp):
            images, cls_logits, mask_inputs, sem_logits = self.forward_panoptic(batched_inputs)
        if self.training:
            gt = self.gt_instances(batched_inputs)
            padded_hw = images.tensor.shape[-2:]
            losses = self.losses(cls_logits, mask_inputs, gt, padded_hw)
            losses.update(self.sem_seg_losses(sem_logits, batched_inputs, padded_hw))
            return losses
        output_sizes = self.output_sizes(batched_inputs, images)
        instances = self.inference(cls_logits, mask_inputs, images.image_sizes, output_sizes)
        return self.panoptic_inference(instances, sem_logits, images.image_sizes, output_sizes)

    # ------------------------------------------------------------------ training
    @fp32_ops
    def sem_seg_losses(
        self, sem_logits: Tensor, batched_inputs: List[Dict], padded_hw: Sequence[int]
    ) -> Dict[str, Tensor]:
        """The stuff branch's loss (``loss_sem_seg``: Detectron2's SemSegFPNHead cross
        entropy, its ``loss_weight`` MODEL.SEM_SEG_HEAD.LOSS_WEIGHT) against every input's
        ``"sem_seg"`` (H, W), padded with the ignore value to the batch. In fp32."""
        for x in batched_inputs:
            if "sem_seg" not in x:
                raise ValueError(
                    f"PanopticSOLO training needs 'sem_seg' in every input; "
                    f"{x.get('file_name', 'an input')} has none: train with "
                    "solo_d2.data.PanopticDatasetMapper on a panoptic dataset"
                )
        ignore = self.sem_seg_head.ignore_value
        targets = torch.full((len(batched_inputs), *padded_hw), ignore, dtype=torch.long,
                             device=self.device)
        for i, x in enumerate(batched_inputs):
            h, w = x["sem_seg"].shape[-2:]
            targets[i, :h, :w] = x["sem_seg"].to(self.device)
        return self.sem_seg_head.losses(to_fp32(sem_logits), targets)

    # ----------------------------------------------------------------- inference
    @torch.no_grad()
    @fp32_ops
    def upsample_sem_logits(self, sem_logits: Tensor) -> Tensor:
        """(N, C, H/4, W/4) branch logits -> (N, C, H, W) logits of the padded batch in fp32,
        upsampled as SemSegFPNHead does at inference."""
        return F.interpolate(to_fp32(sem_logits), scale_factor=self.sem_seg_head.common_stride,
                             mode="bilinear", align_corners=False)

    @torch.no_grad()
    @fp32_ops
    def panoptic_inference(
        self,
        instances: List[Instances],
        sem_logits: Tensor,
        image_sizes: Sequence[Tuple[int, int]],
        output_sizes: Sequence[Tuple[int, int]],
    ) -> List[Dict[str, Any]]:
        """Panoptic FPN's per-image outputs: ``sem_seg`` logits cropped and resized to the
        output size (``sem_seg_postprocess``), the instances, and the merge of both
        (:meth:`combine`) unless ``combine_enabled`` is False. In fp32."""
        sem = self.upsample_sem_logits(sem_logits)
        results = []
        for i, (inst, image_size, (h, w)) in enumerate(zip(instances, image_sizes, output_sizes)):
            sem_r = sem_seg_postprocess(sem[i], image_size, h, w)
            out: Dict[str, Any] = {"sem_seg": sem_r, "instances": inst}
            if self.combine_enabled:
                out["panoptic_seg"] = self.combine(inst, sem_r.argmax(dim=0))
            results.append(out)
        return results

    def combine(self, instances: Instances, semantic: Tensor) -> Tuple[Tensor, List[Dict]]:
        """Detectron2's ``combine_semantic_and_instance_outputs`` with this model's settings:
        ``(panoptic ids (H, W) int32, segments_info)``."""
        return combine_semantic_and_instance_outputs(
            instances, semantic, self.combine_overlap_thresh, self.combine_stuff_area_thresh,
            self.combine_instances_score_thresh,
        )


def panoptic_settings(cfg) -> Dict[str, Any]:
    """PanopticSOLO's merge arguments from ``MODEL.PANOPTIC_FPN.COMBINE.*`` (shared with the
    yaml -> LazyConfig translation)."""
    c = cfg.MODEL.PANOPTIC_FPN.COMBINE
    return {
        "combine_enabled": c.ENABLED,
        "combine_overlap_thresh": c.OVERLAP_THRESH,
        "combine_stuff_area_thresh": c.STUFF_AREA_LIMIT,
        "combine_instances_score_thresh": c.INSTANCES_CONFIDENCE_THRESH,
    }

