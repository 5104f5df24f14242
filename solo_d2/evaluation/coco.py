"""COCO evaluation of SOLO predictions: Detectron2's COCOEvaluator on masks and their boxes,
tolerant of the degenerate polygons that Detectron2 already skips in training, and of images
the test loader had to skip."""
import itertools
import logging

from detectron2.evaluation import COCOEvaluator
from detectron2.utils import comm

__all__ = ["SOLOCOCOEvaluator"]

logger = logging.getLogger(__name__)


class SOLOCOCOEvaluator(COCOEvaluator):
    """COCOEvaluator for tasks ``("bbox", "segm")`` (SOLO predicts masks and their tight boxes).

    A ground-truth polygon of fewer than 3 points makes pycocotools fail deep inside
    ``COCOeval`` ("Argument 'bb' has incorrect type"); Detectron2's ``load_coco_json`` drops
    such polygons when loading for training. Here they are dropped from the evaluation's
    ground truth the same way (an object left with no polygon is left out), with a warning
    that counts them.

    Images of the dataset that no prediction record came for (the test loader skipped them:
    unreadable, :mod:`solo_d2.data.bad_files`) are left out of COCOeval, so that their
    objects do not count as misses; the log names them and the results hold their number
    under ``"skipped_images"`` (``{"count": n}``, also in ``metrics.json`` during training).
    """

    def __init__(self, dataset_name: str, output_dir=None, **kwargs):
        kwargs.setdefault("tasks", ("bbox", "segm"))
        super().__init__(dataset_name, output_dir=output_dir, **kwargs)
        self._drop_degenerate_polygons(dataset_name)

    def _drop_degenerate_polygons(self, dataset_name: str) -> None:
        dataset = self._coco_api.dataset
        kept, dropped, removed = [], 0, 0
        for ann in dataset.get("annotations", []):
            segm = ann.get("segmentation")
            if isinstance(segm, list):
                valid = [p for p in segm if len(p) >= 6 and len(p) % 2 == 0]
                dropped += len(segm) - len(valid)
                if not valid:
                    removed += 1
                    continue
                ann["segmentation"] = valid
            kept.append(ann)
        if dropped == 0:
            return
        logger.warning(
            f"{dataset_name}: {dropped} ground-truth polygons with fewer than 3 points are left "
            f"out of the evaluation ({removed} objects had no other polygon), as Detectron2 "
            "leaves them out of training"
        )
        dataset["annotations"] = kept
        self._coco_api.createIndex()

    def evaluate(self, img_ids=None):
        """Detectron2's evaluation; without ``img_ids``, images that have no prediction at
        all (the test loader skipped them: unreadable) are left out with a warning and
        counted under ``"skipped_images"``, instead of scoring as missed."""
        missing = []
        if img_ids is None:
            seen = set(itertools.chain(*comm.all_gather(
                [p["image_id"] for p in self._predictions])))
            missing = [i for i in self._coco_api.getImgIds() if i not in seen]
            if missing:
                img_ids = sorted(seen)
                if comm.is_main_process():
                    names = [self._coco_api.imgs[i].get("file_name", str(i)) for i in missing]
                    logger.warning(
                        f"{len(missing)} of {len(self._coco_api.getImgIds())} images were "
                        f"skipped (could not be read) and are left out of the evaluation: "
                        f"{', '.join(names[:20])}{' ...' if len(names) > 20 else ''}")
        results = super().evaluate(img_ids=img_ids)
        if missing and results:
            results["skipped_images"] = {"count": len(missing)}
        return results
