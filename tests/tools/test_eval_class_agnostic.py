"""tools/eval_class_agnostic.py: per-class vs class-agnostic AP on hand-made cases."""
import json
import os
import sys

import numpy as np
import pycocotools.mask as mask_util
import pytest
from pycocotools.coco import COCO

from conftest import ROOT

sys.path.insert(0, os.path.join(ROOT, "tools"))
import eval_class_agnostic as E  # noqa: E402

# two 64x64 images; squares (x, y, side) with class ids 1 and 2
SQUARES = {1: [(4, 4, 20, 1), (36, 30, 24, 2)], 2: [(10, 12, 30, 2)]}


def _gt() -> COCO:
    images, anns = [], []
    for img_id, squares in SQUARES.items():
        images.append({"id": img_id, "width": 64, "height": 64, "file_name": f"{img_id}.png"})
        for x, y, s, c in squares:
            poly = [x, y, x + s, y, x + s, y + s, x, y + s]
            anns.append({"id": len(anns) + 1, "image_id": img_id, "category_id": c,
                         "segmentation": [poly], "area": float(s * s), "bbox": [x, y, s, s],
                         "iscrowd": 0})
    coco = COCO()
    coco.dataset = {"images": images, "annotations": anns,
                    "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]}
    coco.createIndex()
    return coco


def _result(img_id, x, y, s, c, score=0.9):
    """A mask prediction as COCOEvaluator writes it (RLE with a str counts, plus a bbox)."""
    m = np.zeros((64, 64), np.uint8, order="F")
    m[y : y + s, x : x + s] = 1
    rle = mask_util.encode(m)
    rle["counts"] = rle["counts"].decode()
    return {"image_id": img_id, "category_id": c, "segmentation": rle,
            "bbox": [x, y, s, s], "score": score}


def test_exact_masks_and_classes_score_100_both_ways():
    res = E.evaluate(_gt(), [_result(i, *sq) for i, sqs in SQUARES.items() for sq in sqs])
    assert res["per_class"]["AP"] == pytest.approx(100.0)
    assert res["class_agnostic"]["AP"] == pytest.approx(100.0)


def test_swapped_classes_lose_all_per_class_ap_but_none_agnostic():
    swapped = [_result(i, x, y, s, 3 - c) for i, sqs in SQUARES.items() for x, y, s, c in sqs]
    res = E.evaluate(_gt(), swapped)
    assert res["per_class"]["AP"] == pytest.approx(0.0)
    assert res["class_agnostic"]["AP"] == pytest.approx(100.0)
    assert res["class_agnostic"]["AP50"] == pytest.approx(100.0)


def test_shifted_mask_is_a_hit_up_to_iou_065_only():
    # image 2's square predicted 6 px to the right: IoU = 24*30 / (2*900 - 720) = 0.667, a hit
    # at IoU thresholds 0.50..0.65 (4 of 10). Class 1 is always right (AP 1). Class 2 then has
    # precision 1 up to recall 1/2 at the other 6 thresholds: 51 of COCO's 101 recall points.
    res = E.evaluate(_gt(), [_result(1, 4, 4, 20, 1, 0.97), _result(1, 36, 30, 24, 2, 0.95),
                             _result(2, 16, 12, 30, 2, 0.9)])
    half = 51 / 101
    assert res["per_class"]["AP50"] == pytest.approx(100.0)
    assert res["per_class"]["AP75"] == pytest.approx(100 * (1 + half) / 2)
    assert res["per_class"]["AP"] == pytest.approx(100 * (10 + 4 + 6 * half) / 20)


def test_empty_results_and_unknown_classes():
    assert E.evaluate(_gt(), [])["class_agnostic"]["AP"] == 0.0
    with pytest.raises(ValueError, match=r"category ids \[7\]"):
        E.evaluate(_gt(), [_result(1, 4, 4, 20, 7)])


def test_cli_prints_both_rows(tmp_path, capsys):
    gt = _gt()
    gt_path, res_path = tmp_path / "gt.json", tmp_path / "res.json"
    gt_path.write_text(json.dumps(gt.dataset))
    res_path.write_text(json.dumps([_result(1, 4, 4, 20, 2)]))
    out = E.main([str(gt_path), str(res_path)])
    printed = capsys.readouterr().out
    assert "| per_class |" in printed and "| class_agnostic |" in printed
    assert out["class_agnostic"]["AP"] > out["per_class"]["AP"] == 0.0
