#!/usr/bin/env python
r"""COCO AP of saved predictions, per class (as COCOEvaluator) and class-agnostic.

    python tools/eval_class_agnostic.py \
        ~/.cache/solo_d2/datasets/solo_shapes/val/annotations.json \
        output/quick_schedules/SOLO_R18_shapes/inference/coco_instances_results.json

Reads the ``coco_instances_results.json`` that Detectron2's COCOEvaluator writes and evaluates
it twice with pycocotools: as COCOEvaluator does, and with ``params.useCats = 0``, which
matches every prediction to every ground-truth instance whatever the classes. The gap between
the two is the AP lost to wrong classes; what the agnostic AP still misses is lost to masks
(missed, badly localised or duplicated instances).
"""
import contextlib
import os
import sys
import copy
import io
import json
from typing import Dict, List

from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from solo_d2.utils.cli import readable_file, tool_parser  # noqa: E402

METRICS = ["AP", "AP50", "AP75", "APs", "APm", "APl"]


def evaluate(gt: COCO, results: List[dict], iou_type: str = "segm") -> Dict[str, Dict[str, float]]:
    """{"per_class": {metric: AP in %}, "class_agnostic": {...}} of ``results`` on ``gt``."""
    if iou_type not in ("segm", "bbox"):
        raise ValueError(f"iou_type must be 'segm' or 'bbox', got {iou_type!r}")
    results = copy.deepcopy(results)
    if iou_type == "segm":
        for r in results:  # as COCOEvaluator: the box of a mask result comes from its mask
            r.pop("bbox", None)
    unknown = {r["category_id"] for r in results} - set(gt.getCatIds())
    if unknown:
        raise ValueError(f"results use category ids {sorted(unknown)} that the ground truth "
                         f"does not define ({sorted(gt.getCatIds())})")
    out = {}
    for name, use_cats in (("per_class", 1), ("class_agnostic", 0)):
        if not results:
            out[name] = {m: 0.0 for m in METRICS}
            continue
        with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
            ev = COCOeval(gt, gt.loadRes(copy.deepcopy(results)), iou_type)  # loadRes edits
            ev.params.useCats = use_cats
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
        # pycocotools reports -1 where a size range has no ground truth
        out[name] = {m: 100.0 * max(float(v), 0.0) for m, v in zip(METRICS, ev.stats[:6])}
    return out


def main(argv=None) -> Dict[str, Dict[str, float]]:
    p = tool_parser(__doc__)
    p.add_argument("gt", type=readable_file, help="COCO annotations json of the evaluated split")
    p.add_argument("results", type=readable_file,
                   help="coco_instances_results.json written by COCOEvaluator")
    p.add_argument("--iou-type", default="segm", choices=["segm", "bbox"], help="what to score")
    args = p.parse_args(argv)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            gt = COCO(args.gt)
        with open(args.results) as f:
            results = json.load(f)
        res = evaluate(gt, results, args.iou_type)
    except (ValueError, KeyError, TypeError) as e:  # not COCO json (JSONDecodeError included)
        p.error(f"{args.gt} / {args.results}: {type(e).__name__}: {e}")
    print(f"| {args.iou_type} | " + " | ".join(METRICS) + " |")
    print("|---" * (len(METRICS) + 1) + "|")
    for name, vals in res.items():
        print(f"| {name} | " + " | ".join(f"{vals[m]:.2f}" for m in METRICS) + " |")
    return res


if __name__ == "__main__":
    main()
