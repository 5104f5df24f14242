"""Comparison of two models' outputs on the benchmark image (same instances, scores, masks)."""
import types
from typing import Any, Dict

import torch
from detectron2.structures import Instances

__all__ = ["as_mmdet_like", "compare_outputs"]


def as_mmdet_like(instances: Instances) -> types.SimpleNamespace:
    """Our Instances viewed with mmdet's field names, for :func:`compare_outputs`."""
    return types.SimpleNamespace(scores=instances.scores, labels=instances.pred_classes,
                                 masks=instances.pred_masks)


def compare_outputs(ours: Instances, theirs: Any) -> Dict[str, Any]:
    """Ours against mmdet's InstanceData (or :func:`as_mmdet_like` of ours): counts, and
    where they agree, labels, the largest score difference and the mask pixel agreement.
    ``identical``: same count, same labels, scores within 1e-3, masks > 99.9% equal."""
    n_o, n_t = len(ours), len(theirs.scores)
    res: Dict[str, Any] = {"instances_ours": n_o, "instances_mmdet": n_t, "same_count": n_o == n_t}
    if n_o == n_t and n_o > 0:
        res["labels_equal"] = bool(torch.equal(ours.pred_classes.cpu(), theirs.labels.cpu()))
        res["max_score_diff"] = float((ours.scores.cpu() - theirs.scores.cpu()).abs().max())
        res["mask_pixel_agreement"] = float(
            (ours.pred_masks.bool().cpu() == theirs.masks.bool().cpu()).float().mean())
    res["identical"] = bool(res["same_count"] and (n_o == 0 or (
        res["labels_equal"] and res["max_score_diff"] < 1e-3
        and res["mask_pixel_agreement"] > 0.999)))
    return res
