"""Comparison of two models' outputs on the benchmark image (same instances, scores, masks)."""
import types
from typing import Any, Dict

import torch
from detectron2.structures import Instances

__all__ = ["as_mmdet_like", "compare_outputs", "match_instances"]


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


def match_instances(ours: Instances, other: Instances, iou: float = 0.9) -> Dict[str, Any]:
    """Order-free agreement of two models' instances (e.g. fp32 and autocast): each of ours is
    matched to the unmatched same-class instance of ``other`` with the highest mask IoU;
    ``matched``: pairs with IoU >= ``iou``, with their largest and median score difference
    and lowest IoU. Near-tied scores may swap order under rounding; this counts them as the same."""
    used = torch.zeros(len(other), dtype=torch.bool)
    a_all, b_all = ours.pred_masks.bool().cpu(), other.pred_masks.bool().cpu()
    ious, diffs = [], []
    for i in range(len(ours)):
        cand = ((other.pred_classes.cpu() == ours.pred_classes[i].cpu()) & ~used).nonzero().flatten()
        if len(cand) == 0:
            continue
        a, b = a_all[i], b_all[cand]
        v = (a & b).sum((1, 2)).float() / (a | b).sum((1, 2)).clamp(min=1)
        j = int(v.argmax())
        if v[j] >= iou:
            used[cand[j]] = True
            ious.append(float(v[j]))
            diffs.append(float((ours.scores[i] - other.scores[cand[j]]).abs()))
    return {"instances_ours": len(ours), "instances_other": len(other), "matched": len(ious),
            "max_score_diff": max(diffs, default=0.0),
            "median_score_diff": float(torch.tensor(diffs).median()) if diffs else 0.0,
            "min_iou": min(ious, default=1.0)}
