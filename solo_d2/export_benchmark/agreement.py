"""How far a deployed model's instances are from the PyTorch model's, image after image:
matched instances, their mask IoU and score difference, identical instances."""
from typing import Any, Dict

import torch
from detectron2.structures import Instances

__all__ = ["MaskAgreement"]


class MaskAgreement:
    """Accumulates, over images, the agreement of ``other``'s instances with ``reference``'s,
    both filtered to scores >= ``score_thresh`` (what a user sees, demo.py's default 0.3).

    Each reference instance, by decreasing score, is matched to the unmatched same-class
    instance of ``other`` with the highest mask IoU, when that IoU is >= ``match_iou``.
    ``identical``: matched with mask IoU >= ``identical_iou`` and scores within
    ``identical_score``.
    """

    def __init__(self, score_thresh: float = 0.3, match_iou: float = 0.5,
                 identical_iou: float = 0.99, identical_score: float = 0.01):
        self.score_thresh = score_thresh
        self.match_iou = match_iou
        self.identical_iou = identical_iou
        self.identical_score = identical_score
        self.reference = self.other = self.identical = 0
        self.ious: list = []
        self.score_diffs: list = []

    def add(self, reference: Instances, other: Instances) -> None:
        """One image's instances (masks at the same size)."""
        ref = reference[reference.scores >= self.score_thresh].to("cpu")
        oth = other[other.scores >= self.score_thresh].to("cpu")
        self.reference += len(ref)
        self.other += len(oth)
        if len(ref) == 0 or len(oth) == 0:
            return
        a = ref.pred_masks.flatten(1).float()
        b = oth.pred_masks.flatten(1).float()
        inter = a @ b.t()
        union = a.sum(1)[:, None] + b.sum(1)[None, :] - inter
        iou = inter / union.clamp(min=1)
        iou[ref.pred_classes[:, None] != oth.pred_classes[None, :]] = -1
        used = torch.zeros(len(oth), dtype=torch.bool)
        for i in ref.scores.argsort(descending=True).tolist():
            row = iou[i].masked_fill(used, -1)
            j = int(row.argmax())
            if row[j] < self.match_iou:
                continue
            used[j] = True
            diff = float((ref.scores[i] - oth.scores[j]).abs())
            self.ious.append(float(row[j]))
            self.score_diffs.append(diff)
            if row[j] >= self.identical_iou and diff <= self.identical_score:
                self.identical += 1

    def result(self) -> Dict[str, Any]:
        """``matched`` and ``identical``: fractions of the reference's instances;
        ``extra``: fraction of the other's instances left unmatched; ``mean_iou``: of the
        matched; score differences of the matched (mean, max); the counts."""
        n = max(self.reference, 1)
        matched = len(self.ious)
        return {
            "reference_instances": self.reference,
            "other_instances": self.other,
            "matched": matched / n,
            "identical": self.identical / n,
            "extra": (self.other - matched) / max(self.other, 1),
            "mean_iou": sum(self.ious) / matched if matched else float("nan"),
            "mean_score_diff": sum(self.score_diffs) / matched if matched else float("nan"),
            "max_score_diff": max(self.score_diffs, default=float("nan")),
            "score_thresh": self.score_thresh,
        }
