"""SOLO meta-architecture: preprocess -> backbone -> head -> losses | inference."""
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.distributed as dist
from detectron2.config import configurable
from detectron2.modeling import META_ARCH_REGISTRY, Backbone, build_backbone
from detectron2.structures import BitMasks, Boxes, ImageList, Instances, PolygonMasks
from detectron2.utils import comm
from torch import Tensor, nn

from ..config_checks import check_trainer_honours_config, validate_solo_config
from ..data.class_checks import check_dataset_classes
from .heads import build_solo_head
from .losses import category_focal_loss, dice_loss
from .postprocess import (
    InferenceSettings,
    candidates_to_predictions,
    point_nms,
    select_candidates,
)
from .precision import amp_dtype, autocast_for, fp32_ops, to_fp32, uses_channels_last
from .targets import LevelTargets, assign_targets_single

__all__ = ["SOLO"]


def _mean_over_processes(count: int, device: torch.device) -> float:
    """``count`` averaged over all processes (itself in a single process)."""
    world = comm.get_world_size()
    if world == 1:
        return float(count)
    total = torch.tensor([float(count)], device=device)
    dist.all_reduce(total)
    return total.item() / world


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
        head: nn.Module,
        head_in_features: List[str],
        pixel_mean: Sequence[float],
        pixel_std: Sequence[float],
        num_classes: int,
        strides: Sequence[int],
        scale_ranges: Sequence[Sequence[float]],
        pos_scale: float = 0.2,
        drop_vanished_targets: bool = True,
        dice_weight: float = 3.0,
        focal_alpha: float = 0.25,
        focal_gamma: float = 2.0,
        focal_weight: float = 1.0,
        inference_settings: InferenceSettings = InferenceSettings(),
        inference_amp: Optional[torch.dtype] = None,
        channels_last: bool = False,
    ):
        """``inference_amp``: autocast dtype of the inference forward (MODEL.SOLO.TEST.AMP);
        None: fp32. Training follows the trainer's autocast (SOLVER.AMP). ``channels_last``:
        the conv weights and the input batch in NHWC (MODEL.SOLO.MEMORY_FORMAT)."""
        super().__init__()
        if not (len(strides) == len(scale_ranges) == head.num_levels == len(head_in_features)):
            raise ValueError(
                "MODEL.SOLO.STRIDES, SCALE_RANGES, NUM_GRIDS and IN_FEATURES need one entry per "
                f"level; got {len(strides)}, {len(scale_ranges)}, {head.num_levels}, "
                f"{len(head_in_features)}"
            )
        if inference_settings.kernel not in ("gaussian", "linear"):
            raise ValueError(
                "MODEL.SOLO.TEST.KERNEL must be gaussian or linear, got "
                f"{inference_settings.kernel!r}"
            )
        self.backbone = backbone
        self.head = head
        self.head_in_features = list(head_in_features)
        self.num_classes = num_classes
        self.strides = list(strides)
        self.scale_ranges = [tuple(r) for r in scale_ranges]
        self.pos_scale = pos_scale
        self.drop_vanished_targets = drop_vanished_targets
        self.dice_weight = dice_weight
        self.focal_alpha = focal_alpha
        self.focal_gamma = focal_gamma
        self.focal_weight = focal_weight
        self.inference_settings = inference_settings
        self.inference_amp = inference_amp
        self.channels_last = channels_last
        self.register_buffer("pixel_mean", torch.tensor(pixel_mean).view(-1, 1, 1), False)
        self.register_buffer("pixel_std", torch.tensor(pixel_std).view(-1, 1, 1), False)
        if channels_last:  # loading a checkpoint later copies into these, keeping the layout
            self.to(memory_format=torch.channels_last)

    @classmethod
    def from_config(cls, cfg):
        if not cfg.MODEL.MASK_ON:
            raise ValueError("SOLO predicts masks and trains on them: set MODEL.MASK_ON True")
        validate_solo_config(cfg)
        check_trainer_honours_config(cfg)
        # Datasets whose class names are known before loading; SOLOTrainer checks the rest.
        check_dataset_classes([*cfg.DATASETS.TRAIN, *cfg.DATASETS.TEST], cfg.MODEL.SOLO.NUM_CLASSES)
        backbone = build_backbone(cfg)
        shapes = backbone.output_shape()
        missing = [f for f in cfg.MODEL.SOLO.IN_FEATURES if f not in shapes]
        if missing:
            raise ValueError(
                f"MODEL.SOLO.IN_FEATURES {missing} are not backbone outputs {sorted(shapes)}"
            )
        c = cfg.MODEL.SOLO
        return {
            "backbone": backbone,
            "head": build_solo_head(cfg, [shapes[f] for f in c.IN_FEATURES]),
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

    @property
    def device(self) -> torch.device:
        return self.pixel_mean.device

    def preprocess_image(self, batched_inputs: List[Dict]) -> ImageList:
        """Normalise and pad the images into one (N, C, H, W) batch."""
        images = [(x["image"].to(self.device) - self.pixel_mean) / self.pixel_std for x in batched_inputs]
        return ImageList.from_tensors(
            images,
            self.backbone.size_divisibility,
            padding_constraints=self.backbone.padding_constraints,
        )

    def forward_head(self, batched_inputs: List[Dict]) -> Tuple[ImageList, List[Tensor], list]:
        """Preprocess, backbone, head: ``(images, cls_logits, mask_inputs)`` (see the head's
        contract in ``heads/base.py``). Training and inference both start here."""
        images = self.preprocess_image(batched_inputs)
        x = images.tensor
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        features = self.backbone(x)
        cls_logits, mask_inputs = self.head([features[f] for f in self.head_in_features])
        return images, cls_logits, mask_inputs

    def forward(self, batched_inputs: List[Dict]):
        amp = None if self.training else self.inference_amp
        with autocast_for(self.device.type, amp):
            images, cls_logits, mask_inputs = self.forward_head(batched_inputs)
        if self.training:
            for x in batched_inputs:
                if "instances" not in x:
                    raise ValueError(
                        f"SOLO training needs 'instances' in every input; "
                        f"{x.get('file_name', 'an input')} has none. Detectron2's mapper makes "
                        "them from the dataset dict's 'annotations': give an image without "
                        "objects 'annotations': [] to train it as a negative image"
                    )
            gt = [x["instances"].to(self.device) for x in batched_inputs]
            return self.losses(cls_logits, mask_inputs, gt, images.tensor.shape[-2:])
        output_sizes = [
            (x.get("height", hw[0]), x.get("width", hw[1]))
            for x, hw in zip(batched_inputs, images.image_sizes)
        ]
        results = self.inference(cls_logits, mask_inputs, images.image_sizes, output_sizes)
        return [{"instances": r} for r in results]

    # ------------------------------------------------------------------ training
    def _padded_masks(self, inst: Instances, padded_hw: Tuple[int, int]) -> Tensor:
        """gt masks of one image as (M, H, W) bool at the padded batch size.

        An image without objects has no ``gt_masks`` (Detectron2 makes them only from
        annotations): it gets (0, H, W) and trains as a negative.
        """
        if not inst.has("gt_masks") and len(inst) == 0:
            return torch.zeros((0, *padded_hw), dtype=torch.bool, device=self.device)
        if not inst.has("gt_masks"):
            raise ValueError(
                "SOLO trains on instance masks but the inputs have no gt_masks: use annotations "
                "with 'segmentation' and set MODEL.MASK_ON True (INPUT.MASK_FORMAT polygon or bitmask)"
            )
        m = inst.gt_masks
        h, w = inst.image_size
        if isinstance(m, PolygonMasks):
            m = BitMasks.from_polygon_masks(m, h, w)
        t = m.tensor if isinstance(m, BitMasks) else torch.as_tensor(m)
        t = t.to(device=self.device, dtype=torch.bool)
        out = torch.zeros((len(t), *padded_hw), dtype=torch.bool, device=self.device)
        out[:, : t.shape[1], : t.shape[2]] = t
        return out

    def get_targets(self, gt: List[Instances], mask_sizes, padded_hw) -> List[List[LevelTargets]]:
        """Per image, per level targets (see targets.assign_targets_single)."""
        targets = []
        for inst in gt:
            classes = inst.gt_classes
            if len(classes) and (classes.min() < 0 or classes.max() >= self.num_classes):
                raise ValueError(
                    f"gt_classes {classes.unique().tolist()} outside [0, {self.num_classes}); "
                    "check MODEL.SOLO.NUM_CLASSES against the dataset"
                )
            targets.append(
                assign_targets_single(
                    inst.gt_boxes.tensor,
                    classes,
                    self._padded_masks(inst, padded_hw),
                    mask_sizes=mask_sizes,
                    num_grids=self.head.num_grids,
                    strides=self.strides,
                    scale_ranges=self.scale_ranges,
                    pos_scale=self.pos_scale,
                    num_classes=self.num_classes,
                    drop_vanished=self.drop_vanished_targets,
                    # heads may refine the assignment (SOLOv2: mask stride, overlaps)
                    **self.head.target_options(),
                )
            )
        return targets

    @fp32_ops
    def losses(
        self, cls_logits: List[Tensor], mask_inputs: list, gt: List[Instances], padded_hw
    ) -> Dict[str, Tensor]:
        """Focal loss over all cells + dice loss over positive cells (only those are projected).

        In fp32 whatever the autocast state: head outputs are cast, targets, projection and
        losses run with autocast off (precision.py)."""
        cls_logits, mask_inputs = to_fp32((cls_logits, mask_inputs))
        mask_sizes = [tuple(self.head.level_mask_size(mask_inputs, lvl)) for lvl in range(len(cls_logits))]
        targets = self.get_targets(gt, mask_sizes, tuple(padded_hw))

        dice_terms, labels_all = [], []
        num_pos = 0
        for lvl, logits in enumerate(cls_logits):
            per_img = [t[lvl] for t in targets]
            labels_all.append(torch.stack([t.labels for t in per_img]).flatten())
            cells = torch.cat([t.pos_cells for t in per_img])
            if len(cells) == 0:
                continue
            batch_idx = torch.cat(
                [torch.full_like(t.pos_cells, i) for i, t in enumerate(per_img)]
            )
            probs = self.head.mask_probs(mask_inputs, lvl, batch_idx, cells)
            dice_terms.append(dice_loss(probs, torch.cat([t.mask_targets for t in per_img])))
            # unique positive cells (a cell may carry several targets, see target_options)
            num_pos += sum(len(torch.unique(t.pos_cells)) for t in per_img)

        # Lazy projection leaves the mask branch of levels (or batches) without positives
        # out of the graph; a zero-weight touch keeps every parameter in it, as
        # DistributedDataParallel requires.
        touch = sum(p.sum() for p in self.head.mask_branch_parameters()) * 0.0
        # Normalised by the mean positive count over processes, so that N processes of B
        # images give the losses and gradients of one process of N * B images.
        mean_pos = _mean_over_processes(num_pos, cls_logits[0].device)
        if num_pos > 0:
            loss_mask = torch.cat(dice_terms).sum() / mean_pos
        else:
            loss_mask = cls_logits[0].sum() * 0.0
        flat_logits = torch.cat(
            [x.permute(0, 2, 3, 1).reshape(-1, self.num_classes) for x in cls_logits]
        )
        loss_cls = category_focal_loss(
            flat_logits,
            torch.cat(labels_all),
            self.num_classes,
            self.focal_alpha,
            self.focal_gamma,
            # mmdet's num_pos + 1, the + 1 shared out over the processes
            normalizer=mean_pos + 1 / comm.get_world_size(),
        )
        return {
            "loss_mask": loss_mask * self.dice_weight + touch,
            "loss_cls": loss_cls * self.focal_weight,
        }

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
        """Instances per image: masks at ``output_sizes``, cropped from ``image_sizes``.

        Only the cells whose score passes MODEL.SOLO.TEST.SCORE_THRESH get a mask. In fp32
        whatever the autocast state (as :meth:`losses`).
        """
        cls_logits, mask_inputs = to_fp32((cls_logits, mask_inputs))
        probs = self.category_probs(cls_logits)
        results = []
        for i, (image_size, output_size) in enumerate(zip(image_sizes, output_sizes)):
            image_size, output_size = tuple(image_size), tuple(output_size)
            masks, scores, classes, boxes = self.predict_image(
                [p[i] for p in probs], mask_inputs, i, image_size,
                # a same-size bilinear resize is the identity: skip it
                None if image_size == output_size else output_size,
            )
            result = Instances(output_size)
            result.pred_masks = masks
            result.pred_boxes = Boxes(boxes)
            result.scores = scores
            result.pred_classes = classes
            results.append(result)
        return results

    @staticmethod
    def category_probs(cls_logits: List[Tensor]) -> List[Tensor]:
        """Per level (N, C, S, S) logits -> probabilities with non-maxima zeroed (point NMS)."""
        return [point_nms(x.sigmoid()) for x in cls_logits]

    def predict_image(
        self,
        cls_probs: List[Tensor],
        mask_inputs: list,
        image: int,
        image_size: Tuple,
        output_size: Optional[Tuple[int, int]] = None,
    ) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        """The predictions of image ``image`` of the batch, as tensors: the whole
        post-processing, shared by :meth:`inference` and the exported ONNX graph.

        Args:
            cls_probs: per level (C, S_l, S_l) category probabilities after point NMS.
            image_size: (h, w) of the image inside the padded batch.
            output_size: size to resize the masks to; None keeps ``image_size``.
        Returns:
            masks (n, H, W) bool, scores (n,), classes (n,), boxes (n, 4): see
            :func:`~solo_d2.modeling.postprocess.candidates_to_predictions`.
        """
        settings = self.inference_settings
        cand = select_candidates(cls_probs, settings.score_thresh)
        mask_size = tuple(self.head.level_mask_size(mask_inputs, 0))
        # cand.cells are sorted by level: the levels' masks concatenate in order
        parts = []
        for lvl in range(len(cls_probs)):
            cells = cand.cells[(cand.cells[:, 0] == lvl).nonzero()[:, 0], 1]
            parts.append(self._cell_mask_probs(mask_inputs, lvl, image, cells, mask_size))
        return candidates_to_predictions(
            cand,
            torch.cat(parts),
            level_strides=self.strides,
            image_size=image_size,
            output_size=output_size,
            settings=settings,
            mask_stride=self.head.mask_stride,
        )

    def _cell_mask_probs(
        self, mask_inputs: list, level: int, image: int, cells: Tensor, mask_size: Tuple
    ) -> Tensor:
        """The head's (K, *mask_size) mask probabilities of ``cells`` (K >= 0) of one level.

        Eager code skips a level without candidates. A traced graph (ONNX export) cannot
        branch on K, so it computes one extra throw-away cell and drops it.
        """
        if torch.jit.is_tracing():
            padded = torch.cat([cells, cells.new_zeros(1)])
            return self.head.image_mask_probs(mask_inputs, level, image, padded, mask_size)[:-1]
        if cells.numel() == 0:
            return self.pixel_mean.new_zeros((0, *mask_size))
        return self.head.image_mask_probs(mask_inputs, level, image, cells, mask_size)
