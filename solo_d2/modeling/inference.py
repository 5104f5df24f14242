"""SOLO's inference path: head outputs -> Detectron2 ``Instances`` per image.

Per image: point NMS on the category probabilities, the candidate cells above the score
threshold, the head's mask probabilities of only those cells (projected lazily: only the
cells read), then :func:`~solo_d2.layers.postprocess.candidates_to_predictions` (mask
scoring, Matrix NMS, resizing, boxes). :func:`predict_image` is the whole post-processing of
one image as tensors: :class:`~solo_d2.modeling.SOLO` runs it eagerly and the exported ONNX
graph traces it (``solo_d2.export``).
"""
from typing import List, Optional, Sequence, Tuple

import torch
from detectron2.structures import Boxes, Instances
from torch import Tensor

from ..layers.postprocess import (
    InferenceSettings,
    candidates_to_predictions,
    point_nms,
    select_candidates,
)

__all__ = ["category_probs", "predict_image", "predict_instances"]


def category_probs(cls_logits: List[Tensor]) -> List[Tensor]:
    """Per level (N, C, S, S) logits -> probabilities with non-maxima zeroed (point NMS)."""
    return [point_nms(x.sigmoid()) for x in cls_logits]


def _cell_mask_probs(
    head, mask_inputs: list, level: int, image: int, cells: Tensor, mask_size: Tuple
) -> Tensor:
    """The head's (K, *mask_size) mask probabilities of ``cells`` (K >= 0) of one level.

    Eager code skips a level without candidates. A traced graph (ONNX export) cannot
    branch on K, so it computes one extra throw-away cell and drops it.
    """
    if torch.jit.is_tracing():
        padded = torch.cat([cells, cells.new_zeros(1)])
        return head.image_mask_probs(mask_inputs, level, image, padded, mask_size)[:-1]
    if cells.numel() == 0:
        return cells.new_zeros((0, *mask_size), dtype=torch.float32)
    return head.image_mask_probs(mask_inputs, level, image, cells, mask_size)


def predict_image(
    head,
    cls_probs: List[Tensor],
    mask_inputs: list,
    image: int,
    image_size: Tuple[int, int],
    output_size: Optional[Tuple[int, int]],
    *,
    strides: Sequence[int],
    settings: InferenceSettings,
) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    """The predictions of image ``image`` of the batch, as tensors.

    Args:
        head: the SOLO-family head that produced ``mask_inputs`` (``solo_d2/heads/base.py``).
        cls_probs: per level (C, S_l, S_l) category probabilities after point NMS.
        image_size: (h, w) of the image inside the padded batch.
        output_size: size to resize the masks to; None keeps ``image_size``.
        strides: each level's stride (the small-mask filter).
    Returns:
        masks (n, H, W) bool, scores (n,), classes (n,), boxes (n, 4): see
        :func:`~solo_d2.layers.postprocess.candidates_to_predictions`.
    """
    cand = select_candidates(cls_probs, settings.score_thresh)
    mask_size = tuple(head.level_mask_size(mask_inputs, 0))
    # cand.cells are sorted by level: the levels' masks concatenate in order
    parts = []
    for lvl in range(len(cls_probs)):
        cells = cand.cells[(cand.cells[:, 0] == lvl).nonzero()[:, 0], 1]
        parts.append(_cell_mask_probs(head, mask_inputs, lvl, image, cells, mask_size))
    return candidates_to_predictions(
        cand,
        torch.cat(parts),
        level_strides=strides,
        image_size=image_size,
        output_size=output_size,
        settings=settings,
        mask_stride=head.mask_stride,
    )


def predict_instances(
    head,
    cls_logits: List[Tensor],
    mask_inputs: list,
    image_sizes: Sequence[Tuple[int, int]],
    output_sizes: Sequence[Tuple[int, int]],
    *,
    strides: Sequence[int],
    settings: InferenceSettings,
) -> List[Instances]:
    """``Instances(pred_masks, pred_boxes, scores, pred_classes)`` per image, masks at
    ``output_sizes``, cropped from ``image_sizes`` inside the padded batch. Only the cells
    whose score passes ``settings.score_thresh`` get a mask."""
    probs = category_probs(cls_logits)
    results = []
    for i, (image_size, output_size) in enumerate(zip(image_sizes, output_sizes)):
        image_size, output_size = tuple(image_size), tuple(output_size)
        masks, scores, classes, boxes = predict_image(
            head, [p[i] for p in probs], mask_inputs, i, image_size,
            # a same-size bilinear resize is the identity: skip it
            None if image_size == output_size else output_size,
            strides=strides, settings=settings,
        )
        result = Instances(output_size)
        result.pred_masks = masks
        result.pred_boxes = Boxes(boxes)
        result.scores = scores
        result.pred_classes = classes
        results.append(result)
    return results
