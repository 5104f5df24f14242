"""Evaluation of panoptic models, as Detectron2's tools/train_net.py evaluates Panoptic FPN on a
dataset whose ``evaluator_type`` is "coco_panoptic_seg": stuff mIoU (SemSegEvaluator), mask
AP of the things (COCOEvaluator) and PQ / SQ / RQ for all, things and stuff
(COCOPanopticEvaluator).

* PQ: Detectron2's ``COCOPanopticEvaluator`` computes it with ``panopticapi`` (installed from
  its repository, not a registry). Where that is missing, the same evaluator computes it
  with torchmetrics' ``PanopticQuality`` (PyPI), fed so that it counts as panopticapi does:
  unlabeled prediction pixels are a category of their own (torchmetrics would otherwise
  forgive a ground-truth segment the prediction left unlabeled), averages over the
  categories that occur. Crowd regions count as unlabeled ground truth there (panopticapi
  forgives a prediction only the crowd pixels of its own category): datasets with crowd
  annotations can differ slightly. Without either package PQ is left out, with a one-line
  hint.
* mask AP on a panoptic-only dataset (no instance json): the things' instance annotations
  are derived from the PNGs once (:func:`~solo_d2.data.panoptic_datasets.write_instances_json`).
* stuff mIoU on a panoptic-only dataset (no semantic PNGs): the semantic ground truth is
  derived from the panoptic PNGs as the mapper derives it for training.

Predictions are in the model's numbering (:class:`~solo_d2.data.PanopticLabels`); each
evaluator maps them to the dataset's.
"""
import contextlib
import importlib.util
import io
import itertools
import json
import logging
import os
from collections import OrderedDict
from typing import Any, Dict, List, Optional

import numpy as np
import torch
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.evaluation import COCOPanopticEvaluator, DatasetEvaluators, SemSegEvaluator
from detectron2.evaluation.panoptic_evaluation import _print_panoptic_results
from detectron2.utils import comm
from detectron2.utils.file_io import PathManager
from PIL import Image

from ..data.image_io import read_image
from ..data.panoptic import PanopticLabels, id_to_rgb, panoptic_to_semantic, rgb_to_id
from ..data.panoptic_datasets import write_instances_json
from .coco import SOLOCOCOEvaluator

__all__ = [
    "PQ_BACKENDS",
    "PanopticQualityEvaluator",
    "PanopticStuffEvaluator",
    "PanopticCOCOEvaluator",
    "build_panoptic_evaluator",
    "pq_backend",
]

logger = logging.getLogger(__name__)

#: the packages that compute PQ, in the order of preference
PQ_BACKENDS = ("panopticapi", "torchmetrics")


def pq_backend(wanted: str = "auto") -> Optional[str]:
    """The PQ package to use: ``wanted`` ("panopticapi" or "torchmetrics") if importable,
    or with "auto" the first importable of :data:`PQ_BACKENDS`; None when none is."""
    choices = PQ_BACKENDS if wanted == "auto" else (wanted,)
    if wanted not in ("auto", *PQ_BACKENDS):
        raise ValueError(f"PQ backend {wanted!r}; expected 'auto' or one of {PQ_BACKENDS}")
    for name in choices:
        if importlib.util.find_spec(name) is not None:
            return name
    return None


class PanopticQualityEvaluator(COCOPanopticEvaluator):
    """Detectron2's COCOPanopticEvaluator (same results ``{"panoptic_seg": {"PQ", "SQ",
    "RQ", "PQ_th", ... "RQ_st"}}``, same printed table, same ``predictions.json``) for
    predictions in the model's numbering, computed by panopticapi or torchmetrics (see the
    module)."""

    def __init__(self, dataset_name: str, output_dir: Optional[str] = None,
                 labels: Optional[PanopticLabels] = None, backend: str = "auto"):
        super().__init__(dataset_name, output_dir)
        labels = labels or PanopticLabels.from_metadata(self._metadata, dataset_name)
        self._thing_contiguous_id_to_dataset_id = dict(enumerate(labels.thing_ids))
        self._stuff_contiguous_id_to_dataset_id = {i + 1: k for i, k in enumerate(labels.stuff_ids)}
        self.backend = pq_backend(backend)
        if self.backend is None:
            raise ModuleNotFoundError(
                "PQ needs panopticapi or torchmetrics: pip install torchmetrics")

    def process(self, inputs, outputs):
        """As Detectron2's for outputs with ``segments_info`` (PanopticSOLO's), without
        importing panopticapi (the PNG encoding is the format's: :func:`id_to_rgb`)."""
        for input, output in zip(inputs, outputs):
            panoptic_img, segments_info = output["panoptic_seg"]
            if segments_info is None:
                raise ValueError("panoptic_seg without segments_info (label_divisor ids) is "
                                 "not a PanopticSOLO output")
            file_name = os.path.splitext(os.path.basename(input["file_name"]))[0] + ".png"
            with io.BytesIO() as out:
                Image.fromarray(id_to_rgb(panoptic_img.cpu().numpy())).save(out, format="PNG")
                self._predictions.append({
                    "image_id": input["image_id"],
                    "file_name": file_name,
                    "png_string": out.getvalue(),
                    "segments_info": [self._convert_category_id(dict(x)) for x in segments_info],
                })

    def evaluate(self):
        if self.backend == "panopticapi":
            return super().evaluate()
        comm.synchronize()
        predictions = list(itertools.chain(*comm.gather(self._predictions)))
        if not comm.is_main_process():
            return
        with PathManager.open(self._metadata.panoptic_json) as f:
            gt_json = json.load(f)
        if self._output_dir:
            out = dict(gt_json, annotations=[{k: v for k, v in p.items() if k != "png_string"}
                                             for p in predictions])
            with PathManager.open(os.path.join(self._output_dir, "predictions.json"), "w") as f:
                f.write(json.dumps(out))
        pq_res = torchmetrics_pq(gt_json, self._metadata.panoptic_root, predictions)
        res = {}
        for key, part in (("", "All"), ("_th", "Things"), ("_st", "Stuff")):
            for metric in ("pq", "sq", "rq"):
                res[metric.upper() + key] = 100 * pq_res[part][metric]
        _print_panoptic_results(pq_res)
        return OrderedDict({"panoptic_seg": res})


def torchmetrics_pq(gt_json: Dict[str, Any], gt_folder: str,
                    predictions: List[Dict[str, Any]]) -> Dict[str, Dict[str, float]]:
    """panopticapi's ``pq_compute`` result (``{"All"|"Things"|"Stuff": {"pq", "sq", "rq",
    "n"}}``, fractions) of ``predictions`` (COCOPanopticEvaluator's records: ``image_id``,
    ``png_string``, ``segments_info`` with dataset category ids) against a COCO panoptic
    ground truth, counted by torchmetrics' PanopticQuality (see the module)."""
    from torchmetrics.detection import PanopticQuality

    categories = {c["id"]: c for c in gt_json["categories"]}
    things = {k for k, c in categories.items() if c["isthing"]}
    stuff = set(categories) - things
    unlabeled = max(categories) + 1  # the prediction's unlabeled pixels: a category of their own
    metric = PanopticQuality(things, stuff | {unlabeled}, allow_unknown_preds_category=True)
    gt_by_image = {a["image_id"]: a for a in gt_json["annotations"]}
    for p in predictions:
        gt = gt_by_image[p["image_id"]]
        gt_ids = rgb_to_id(read_image(os.path.join(gt_folder, gt["file_name"]), format="RGB"))
        pred_ids = rgb_to_id(np.asarray(Image.open(io.BytesIO(p["png_string"])).convert("RGB")))
        gt_cat = np.full(gt_ids.shape, -1, dtype=np.int64)  # unlabeled and crowd: void
        for s in gt["segments_info"]:
            if not s.get("iscrowd", 0):
                gt_cat[gt_ids == s["id"]] = s["category_id"]
        pred_cat = np.full(pred_ids.shape, unlabeled, dtype=np.int64)
        for s in p["segments_info"]:
            pred_cat[pred_ids == s["id"]] = s["category_id"]
        metric.update(torch.from_numpy(np.stack([pred_cat, pred_ids], -1))[None],
                      torch.from_numpy(np.stack([gt_cat, gt_ids], -1))[None])
    order = sorted(things) + sorted(stuff | {unlabeled})  # torchmetrics' per-category order
    tp, fp, fn = metric.true_positives, metric.false_positives, metric.false_negatives
    iou = metric.iou_sum
    out = {}
    for part, cats in (("All", things | stuff), ("Things", things), ("Stuff", stuff)):
        pq = sq = rq = 0.0
        n = 0
        for k in cats:
            i = order.index(k)
            t, f_p, f_n = int(tp[i]), int(fp[i]), int(fn[i])
            if t + f_p + f_n == 0:
                continue
            n += 1
            sq_k = float(iou[i]) / t if t else 0.0
            rq_k = t / (t + 0.5 * f_p + 0.5 * f_n)
            pq, sq, rq = pq + sq_k * rq_k, sq + sq_k, rq + rq_k
        out[part] = {"pq": pq / n, "sq": sq / n, "rq": rq / n, "n": n} if n else \
            {"pq": 0.0, "sq": 0.0, "rq": 0.0, "n": 0}
    return out


class PanopticStuffEvaluator(SemSegEvaluator):
    """Detectron2's SemSegEvaluator (mIoU, fwIoU, mACC, pACC over "things" + the stuff) of a
    COCO panoptic dataset without semantic PNGs: the ground truth of each image is its
    panoptic PNG made semantic (:func:`~solo_d2.data.panoptic.panoptic_to_semantic`)."""

    def __init__(self, dataset_name: str, output_dir: Optional[str] = None,
                 labels: Optional[PanopticLabels] = None, distributed: bool = True):
        labels = labels or PanopticLabels.from_metadata(MetadataCatalog.get(dataset_name),
                                                        dataset_name)
        self._panoptic_labels = labels
        records = DatasetCatalog.get(dataset_name)
        self._segments = {r["pan_seg_file_name"]: r["segments_info"] for r in records}
        view = f"{dataset_name}__stuff_from_panoptic"
        if view not in DatasetCatalog.list():
            DatasetCatalog.register(view, lambda: [
                {"file_name": r["file_name"], "sem_seg_file_name": r["pan_seg_file_name"]}
                for r in DatasetCatalog.get(dataset_name)])
            MetadataCatalog.get(view).set(
                stuff_classes=labels.sem_seg_classes, ignore_label=255,
                stuff_dataset_id_to_contiguous_id=labels.stuff_dataset_id_to_label())
        super().__init__(view, distributed=distributed, output_dir=output_dir,
                         sem_seg_loading_fn=self._semantic_gt)
        self._dataset_name = dataset_name

    def _semantic_gt(self, file_name: str, dtype=int) -> np.ndarray:
        ids = rgb_to_id(read_image(file_name, format="RGB"))
        return panoptic_to_semantic(ids, self._segments[file_name], self._panoptic_labels,
                                    self._ignore_label, file_name).astype(dtype)


class PanopticCOCOEvaluator(SOLOCOCOEvaluator):
    """SOLOCOCOEvaluator (mask and box AP) of a panoptic dataset's things, whose predicted
    classes are in the model's numbering: they are mapped to the dataset's contiguous ids
    first (Detectron2's standard COCO panoptic metadata numbers things and stuff together)."""

    def __init__(self, dataset_name: str, output_dir: Optional[str] = None,
                 labels: Optional[PanopticLabels] = None, **kwargs):
        meta = MetadataCatalog.get(dataset_name)
        labels = labels or PanopticLabels.from_metadata(meta, dataset_name)
        table = meta.thing_dataset_id_to_contiguous_id
        self._to_dataset = torch.tensor([table[k] for k in labels.thing_ids])
        self._thing_names = list(labels.thing_classes)
        super().__init__(dataset_name, output_dir=output_dir, **kwargs)

    def _derive_coco_results(self, coco_eval, iou_type, class_names=None):
        # per-category AP under the things' names (standard metadata lists stuff there too)
        return super()._derive_coco_results(coco_eval, iou_type, class_names=self._thing_names)

    def process(self, inputs, outputs):
        if torch.equal(self._to_dataset, torch.arange(len(self._to_dataset))):
            return super().process(inputs, outputs)
        mapped = []
        for output in outputs:
            inst = output["instances"]
            new = inst[torch.arange(len(inst))]
            new.pred_classes = self._to_dataset.to(inst.pred_classes.device)[inst.pred_classes]
            mapped.append({**output, "instances": new})
        return super().process(inputs, mapped)


def build_panoptic_evaluator(dataset_name: str, output_dir: str,
                             backend: str = "auto") -> DatasetEvaluators:
    """What Detectron2's tools/train_net.py builds for Panoptic FPN on a "coco_panoptic_seg"
    dataset: stuff mIoU, mask AP and PQ, for PanopticSOLO's outputs (see the module). PQ is
    left out with a one-line warning when neither panopticapi nor torchmetrics is installed."""
    meta = MetadataCatalog.get(dataset_name)
    if meta.get("thing_dataset_id_to_contiguous_id") is None:
        DatasetCatalog.get(dataset_name)  # solo_d2's panoptic loader sets the metadata
    labels = PanopticLabels.from_metadata(meta, dataset_name)
    records = DatasetCatalog.get(dataset_name)
    evaluators: List[Any] = []
    if all("sem_seg_file_name" in r for r in records):  # Detectron2's separated format
        evaluators.append(SemSegEvaluator(dataset_name, distributed=True, output_dir=output_dir))
    else:
        evaluators.append(PanopticStuffEvaluator(dataset_name, output_dir, labels))
    if not meta.get("json_file"):
        if "json_file" in meta.as_dict():  # register_coco_panoptic(instances_json=None)
            delattr(meta, "json_file")
        path = os.path.join(output_dir, f"{dataset_name}_instances_from_panoptic.json")
        if comm.is_main_process() and not os.path.isfile(path):
            write_instances_json(dataset_name, path)
        comm.synchronize()
        meta.set(json_file=path)
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools' loading chatter
        evaluators.append(PanopticCOCOEvaluator(dataset_name, output_dir, labels))
    if pq_backend() is None:
        logger.warning("PQ is not computed: it needs panopticapi or torchmetrics "
                       "(pip install torchmetrics)")
    else:
        evaluators.append(PanopticQualityEvaluator(dataset_name, output_dir, labels))
    return DatasetEvaluators(evaluators)
