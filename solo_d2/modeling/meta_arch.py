"""SOLO meta-architecture: preprocess -> backbone -> head -> losses | inference.

One model, two front doors: the constructor takes explicit arguments (a LazyConfig's
``L(SOLO)(...)``); :meth:`SOLO.from_config` translates a yaml config into them. Targets and
losses live in ``targets.py`` and ``losses.py``, the inference path in ``inference.py``.
"""
import logging
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
from detectron2.config import configurable
from detectron2.modeling import META_ARCH_REGISTRY, Backbone, build_backbone
from detectron2.structures import ImageList, Instances
from torch import Tensor, nn
from torch.nn import functional as F

from ..config.checks import validate_solo_config
from ..layers.losses import LossWeights, solo_losses
from ..layers.postprocess import InferenceSettings
from ..layers.precision import amp_dtype, autocast_for, fp32_ops, to_fp32, uses_channels_last
from ..layers.targets import assign_targets
from ..heads import build_solo_head
from ..heads.base import SOLOHeadBase, describe_levels
from .inference import category_probs, predict_image, predict_instances
from .levels import check_per_level, read_levels, solo_level_strides

__all__ = ["SOLO", "solo_settings"]

logger = logging.getLogger(__name__)


@META_ARCH_REGISTRY.register()
class SOLO(nn.Module):
    """SOLO, Decoupled SOLO (and SOLOv2 through its head): instance segmentation by locations.

    Inputs and outputs follow Detectron2's conventions: a list of dataset dicts with "image"
    (C, H, W) and, in training, "instances" with gt_masks, gt_boxes and gt_classes; the output
    is ``[{"instances": Instances(pred_masks, pred_boxes, scores, pred_classes)}]`` at each
    image's "height" x "width".
    """

    @configurable
    def __init__(
        self,
        *,
        backbone: Backbone,
        head: SOLOHeadBase,
        head_in_features: Sequence[str],
        pixel_mean: Sequence[float],
        pixel_std: Sequence[float],
        num_classes: int,
        scale_ranges: Sequence[Sequence[float]],
        strides: Optional[Sequence[int]] = None,
        pos_scale: float = 0.2,
        drop_vanished_targets: bool = True,
        dice_weight: float = 3.0,
        focal_alpha: float = 0.25,
        focal_gamma: float = 2.0,
        focal_weight: float = 1.0,
        inference_settings: InferenceSettings = InferenceSettings(),
        inference_amp: Union[str, torch.dtype, None] = None,
        channels_last: bool = False,
        train_fixed_size: Optional[Sequence[int]] = None,
    ):
        """
        Args:
            backbone: any Detectron2 backbone; the head reads its outputs
                ``head_in_features`` (finest first, equal channels, at least two).
            head: a SOLO-family head. One made without ``input_shape`` (a LazyConfig's
                ``L(SOLOHead)(...)``) is built here for those outputs' channels and number;
                a built one must fit them.
            num_classes: foreground classes (the head's too).
            scale_ranges: per level [lo, hi] of sqrt(box area) it is responsible for.
            strides: per level stride after SOLO's level resizing (mmdet's ``strides``);
                None: from the backbone's strides (p2..p6: 8, 8, 16, 32, 32). Given ones that
                differ from the backbone's are a warning naming the levels.
            pos_scale, drop_vanished_targets: target assignment (``targets.py``).
            dice_weight, focal_alpha, focal_gamma, focal_weight: the losses (MODEL.SOLO.LOSS).
            inference_settings: MODEL.SOLO.TEST's thresholds and Matrix NMS settings.
            inference_amp: autocast dtype of the inference forward ("", "bfloat16",
                "float16" or a torch dtype; MODEL.SOLO.TEST.AMP); None or "": fp32. Training
                follows the trainer's autocast.
            channels_last: conv weights and the input batch in NHWC (MODEL.SOLO.MEMORY_FORMAT).
            train_fixed_size: (h, w) every training batch is padded to, as mmdet's
                ``BatchFixedSizePad`` (large-scale-jitter recipes); None: the backbone's size
                divisibility only.
        """
        super().__init__()
        level_shapes = read_levels(backbone.output_shape(), head_in_features)
        _fit_head(head, level_shapes, head_in_features)
        strides = _level_strides(strides, level_shapes, head_in_features)
        check_per_level(head_in_features, num_grids=head.num_grids, strides=strides,
                        scale_ranges=scale_ranges)
        if num_classes != head.num_classes:
            raise ValueError(f"num_classes {num_classes} differs from the head's "
                             f"{head.num_classes}")
        if isinstance(inference_amp, str):
            inference_amp = amp_dtype(inference_amp, "inference_amp (MODEL.SOLO.TEST.AMP)")
        self.backbone = backbone
        self.head = head
        self.head_in_features = list(head_in_features)
        self.num_classes = num_classes
        self.strides = strides
        self.scale_ranges = [tuple(r) for r in scale_ranges]
        self.pos_scale = pos_scale
        self.drop_vanished_targets = drop_vanished_targets
        self.loss_weights = LossWeights(dice_weight, focal_alpha, focal_gamma, focal_weight)
        self.inference_settings = inference_settings
        self.inference_amp = inference_amp
        self.channels_last = channels_last
        self.train_fixed_size = tuple(train_fixed_size) if train_fixed_size else None
        self.register_buffer("pixel_mean", torch.tensor(pixel_mean).view(-1, 1, 1), False)
        self.register_buffer("pixel_std", torch.tensor(pixel_std).view(-1, 1, 1), False)
        if channels_last:  # loading a checkpoint later copies into these, keeping the layout
            self.to(memory_format=torch.channels_last)

    @classmethod
    def from_config(cls, cfg):
        """The yaml front door: ``MODEL.*`` keys -> the constructor's arguments."""
        if not cfg.MODEL.MASK_ON:
            raise ValueError("SOLO predicts masks and trains on them: set MODEL.MASK_ON True")
        validate_solo_config(cfg)
        return {
            "backbone": build_backbone(cfg),
            # built by __init__ for the backbone's outputs MODEL.SOLO.IN_FEATURES
            "head": build_solo_head(cfg, None),
            **solo_settings(cfg),
        }

    @property
    def device(self) -> torch.device:
        return self.pixel_mean.device

    def preprocess_image(self, batched_inputs: List[Dict]) -> ImageList:
        """Normalise and pad the images into one (N, C, H, W) batch (in training to
        ``train_fixed_size`` when set)."""
        images = [(x["image"].to(self.device) - self.pixel_mean) / self.pixel_std for x in batched_inputs]
        batch = ImageList.from_tensors(
            images,
            self.backbone.size_divisibility,
            padding_constraints=self.backbone.padding_constraints,
        )
        if not (self.training and self.train_fixed_size):
            return batch
        (h, w), (fh, fw) = batch.tensor.shape[-2:], self.train_fixed_size
        if h > fh or w > fw:
            raise ValueError(
                f"a training batch of {h}x{w} (padded) exceeds train_fixed_size {fh}x{fw}: "
                "crop the images to it (FixedSizeCrop) or raise it"
            )
        return ImageList(F.pad(batch.tensor, (0, fw - w, 0, fh - h)), batch.image_sizes)

    def forward_backbone(self, batched_inputs: List[Dict]) -> Tuple[ImageList, Dict[str, Tensor]]:
        """Preprocess and backbone: ``(images, features)``."""
        images = self.preprocess_image(batched_inputs)
        x = images.tensor
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return images, self.backbone(x)

    def forward_head(self, batched_inputs: List[Dict]) -> Tuple[ImageList, List[Tensor], list]:
        """Preprocess, backbone, head: ``(images, cls_logits, mask_inputs)`` (see the head's
        contract in ``solo_d2/heads/base.py``). Training and inference both start here."""
        images, features = self.forward_backbone(batched_inputs)
        cls_logits, mask_inputs = self.head([features[f] for f in self.head_in_features])
        return images, cls_logits, mask_inputs

    def gt_instances(self, batched_inputs: List[Dict]) -> List[Instances]:
        """Every training input's ``instances`` on the model's device; a missing one is a
        ValueError naming the file."""
        for x in batched_inputs:
            if "instances" not in x:
                raise ValueError(
                    f"SOLO training needs 'instances' in every input; "
                    f"{x.get('file_name', 'an input')} has none. Detectron2's mapper makes "
                    "them from the dataset dict's 'annotations': give an image without "
                    "objects 'annotations': [] to train it as a negative image"
                )
        return [x["instances"].to(self.device) for x in batched_inputs]

    @staticmethod
    def output_sizes(batched_inputs: List[Dict], images: ImageList) -> List[Tuple[int, int]]:
        """Each input's requested output size ("height", "width"), else its size in the batch."""
        return [
            (x.get("height", hw[0]), x.get("width", hw[1]))
            for x, hw in zip(batched_inputs, images.image_sizes)
        ]

    def forward(self, batched_inputs: List[Dict]):
        amp = None if self.training else self.inference_amp
        with autocast_for(self.device.type, amp):
            images, cls_logits, mask_inputs = self.forward_head(batched_inputs)
        if self.training:
            gt = self.gt_instances(batched_inputs)
            return self.losses(cls_logits, mask_inputs, gt, images.tensor.shape[-2:])
        output_sizes = self.output_sizes(batched_inputs, images)
        results = self.inference(cls_logits, mask_inputs, images.image_sizes, output_sizes)
        return [{"instances": r} for r in results]

    # ------------------------------------------------------------------ training
    @fp32_ops
    def losses(
        self, cls_logits: List[Tensor], mask_inputs: list, gt: List[Instances], padded_hw
    ) -> Dict[str, Tensor]:
        """Focal loss over all cells + dice loss over positive cells (only those are projected).

        In fp32 whatever the autocast state: head outputs are cast, targets, projection and
        losses run with autocast off (precision.py)."""
        cls_logits, mask_inputs = to_fp32((cls_logits, mask_inputs))
        targets = assign_targets(
            gt,
            tuple(padded_hw),
            num_classes=self.num_classes,
            mask_sizes=[tuple(self.head.level_mask_size(mask_inputs, lvl))
                        for lvl in range(len(cls_logits))],
            num_grids=self.head.num_grids,
            strides=self.strides,
            scale_ranges=self.scale_ranges,
            pos_scale=self.pos_scale,
            drop_vanished=self.drop_vanished_targets,
            # heads may refine the assignment (SOLOv2: mask stride, overlaps)
            head_options=self.head.target_options(),
        )
        return solo_losses(self.head, cls_logits, mask_inputs, targets, self.num_classes,
                           self.loss_weights)

    # ----------------------------------------------------------------- inference
    @torch.no_grad()
    @fp32_ops
    def inference(
        self,
        cls_logits: List[Tensor],
        mask_inputs: list,
        image_sizes: List[Tuple[int, int]],
        output_sizes: List[Tuple[int, int]],
    ) -> List[Instances]:
        """Instances per image (:func:`~solo_d2.modeling.inference.predict_instances`): masks
        at ``output_sizes``, cropped from ``image_sizes``. In fp32 whatever the autocast state
        (as :meth:`losses`)."""
        cls_logits, mask_inputs = to_fp32((cls_logits, mask_inputs))
        return predict_instances(self.head, cls_logits, mask_inputs, image_sizes, output_sizes,
                                 strides=self.strides, settings=self.inference_settings)

    category_probs = staticmethod(category_probs)

    def predict_image(
        self,
        cls_probs: List[Tensor],
        mask_inputs: list,
        image: int,
        image_size: Tuple,
        output_size: Optional[Tuple[int, int]] = None,
    ) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        """One image's post-processing as tensors, shared by :meth:`inference` and the
        exported ONNX graph: :func:`~solo_d2.modeling.inference.predict_image`."""
        return predict_image(self.head, cls_probs, mask_inputs, image, image_size, output_size,
                             strides=self.strides, settings=self.inference_settings)


def solo_settings(cfg) -> Dict:
    """The constructor's arguments other than the backbone and the head, from a yaml config's
    ``MODEL.*`` keys (shared by :meth:`SOLO.from_config` and the yaml -> LazyConfig
    translation, ``solo_d2.lazy``)."""
    c = cfg.MODEL.SOLO
    return {
        "head_in_features": c.IN_FEATURES,
        "pixel_mean": cfg.MODEL.PIXEL_MEAN,
        "pixel_std": cfg.MODEL.PIXEL_STD,
        "num_classes": c.NUM_CLASSES,
        "strides": c.STRIDES,
        "scale_ranges": c.SCALE_RANGES,
        "pos_scale": c.POS_SCALE,
        "drop_vanished_targets": c.DROP_VANISHED_TARGETS,
        "dice_weight": c.LOSS.DICE_WEIGHT,
        "focal_alpha": c.LOSS.FOCAL_ALPHA,
        "focal_gamma": c.LOSS.FOCAL_GAMMA,
        "focal_weight": c.LOSS.FOCAL_WEIGHT,
        "inference_settings": InferenceSettings.from_config(cfg),
        "inference_amp": amp_dtype(c.TEST.AMP, "MODEL.SOLO.TEST.AMP"),
        "channels_last": uses_channels_last(cfg),
    }


def _fit_head(head: SOLOHeadBase, level_shapes: List, names: Sequence[str]) -> None:
    """Build an unbuilt ``head`` for the levels; check a built one was built for them."""
    if not head.is_built:
        head.build(level_shapes, names)
        return
    ours = [s.channels for s in head.input_shape]
    theirs = [s.channels for s in level_shapes]
    if ours != theirs:
        raise ValueError(
            f"the head was built for {len(ours)} levels of {sorted(set(ours))} channels but "
            f"reads the backbone's {describe_levels(level_shapes, names)}; make the head "
            "without input_shape to have it built for the backbone"
        )


def _level_strides(strides: Optional[Sequence[int]], level_shapes, names) -> List[int]:
    """``strides``, or the backbone's (after SOLO's level resizing). Given ones that disagree
    with the backbone's are kept with a warning naming the levels: mmdet takes them as set
    (a config without them gets its defaults 4..64, which only its small-mask filter reads at
    inference), and converted checkpoints must predict as there; training SOLO or Decoupled
    SOLO then fails at the targets' size check."""
    derived = solo_level_strides(level_shapes)
    if strides is None:
        if derived is None:
            raise ValueError(f"strides is None and the backbone does not say its levels' "
                             f"strides ({describe_levels(level_shapes, names)}): give them")
        return derived
    strides = [int(s) for s in strides]
    if derived is not None and strides != derived:
        logger.warning(
            f"strides (MODEL.SOLO.STRIDES) {strides} do not fit the levels read, "
            f"{describe_levels(level_shapes, names)}: SOLO halves the finest level and "
            f"resizes the coarsest to the one above, which gives {derived}"
        )
    return strides
