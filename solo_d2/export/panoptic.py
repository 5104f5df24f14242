"""Export of PanopticSOLO: the graph adds the stuff branch's ``sem_seg`` logits; the merge
(Detectron2's ``combine_semantic_and_instance_outputs``, a loop over instances with
data-dependent Python) runs after the graph, in the runner, with the settings the graph's
metadata carries (:func:`merge_outputs`)."""
import json
from typing import Any, Dict, Optional, Tuple

from detectron2.modeling.meta_arch.panoptic_fpn import combine_semantic_and_instance_outputs
from detectron2.modeling.postprocessing import sem_seg_postprocess
from detectron2.structures import Instances
from torch import Tensor

from ..modeling.panoptic import PanopticSOLO
from .graph import OUTPUT_NAMES, SOLOExportModule

__all__ = [
    "PanopticExportModule", "PANOPTIC_OUTPUT_NAMES", "export_module", "merge_metadata",
    "merge_outputs",
]

#: the panoptic graph's outputs, in order
PANOPTIC_OUTPUT_NAMES = (*OUTPUT_NAMES, "sem_seg")
#: the graph metadata key of the merge settings
MERGE_KEY = "panoptic_combine"


class PanopticExportModule(SOLOExportModule):
    """``forward(image) -> (masks, scores, classes, boxes, sem_seg)`` for one image:
    SOLOExportModule's instances and the stuff branch's (S+1, H, W) logits at the image's
    size, computed as :class:`~solo_d2.modeling.PanopticSOLO` computes them."""

    def forward(self, image: Tensor) -> Tuple[Tensor, ...]:
        model = self.model
        images, cls_logits, mask_inputs, sem_logits = model.forward_panoptic(
            [{"image": image.float()}])
        probs = [p[0] for p in model.category_probs(cls_logits)]
        h, w = images.image_sizes[0]
        instances = model.predict_image(probs, mask_inputs, 0, (h, w), None)
        sem = model.upsample_sem_logits(sem_logits)[0, :, :h, :w]
        return (*instances, sem)


def merge_metadata(model: PanopticSOLO) -> Dict[str, str]:
    """The graph metadata that lets a runner merge as the model does."""
    settings = {
        "enabled": model.combine_enabled,
        "overlap_thresh": model.combine_overlap_thresh,
        "stuff_area_thresh": model.combine_stuff_area_thresh,
        "instances_score_thresh": model.combine_instances_score_thresh,
    }
    return {MERGE_KEY: json.dumps(settings)}


def merge_outputs(instances: Instances, sem_seg: Tensor, height: int, width: int,
                  metadata: Dict[str, str]) -> Optional[Dict[str, Any]]:
    """PanopticSOLO's ``{"sem_seg", "panoptic_seg"}`` from a graph's ``sem_seg`` (S+1, h, w)
    logits and its instances at (``height``, ``width``): the logits resized as
    ``sem_seg_postprocess`` does, then Detectron2's merge with the metadata's settings.
    None when the metadata has no merge settings (an instance model's graph)."""
    if MERGE_KEY not in metadata:
        return None
    settings = json.loads(metadata[MERGE_KEY])
    sem = sem_seg_postprocess(sem_seg, sem_seg.shape[-2:], height, width)
    out: Dict[str, Any] = {"sem_seg": sem}
    if settings["enabled"]:
        out["panoptic_seg"] = combine_semantic_and_instance_outputs(
            instances, sem.argmax(dim=0), settings["overlap_thresh"],
            settings["stuff_area_thresh"], settings["instances_score_thresh"])
    return out


def export_module(model) -> Tuple[SOLOExportModule, Tuple[str, ...], Dict[str, str]]:
    """The module to trace for ``model``, its output names and extra metadata."""
    if isinstance(model, PanopticSOLO):
        return PanopticExportModule(model), PANOPTIC_OUTPUT_NAMES, merge_metadata(model)
    return SOLOExportModule(model), OUTPUT_NAMES, {}

