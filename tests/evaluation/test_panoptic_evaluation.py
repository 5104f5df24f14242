"""Panoptic evaluation: PQ from panopticapi (Detectron2's COCOPanopticEvaluator) and from
torchmetrics give the same numbers on the same predictions; PQ by hand on a simple case; stuff
mIoU from the panoptic PNGs; a missing PQ package is a one-line warning."""
import os

import numpy as np
import pytest
import torch
from detectron2.data import DatasetCatalog

from conftest import capture_logs, write_toy_panoptic
from solo_d2.data.cfg_datasets import register_panoptic_datasets
from solo_d2.evaluation import panoptic as pe


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    info = write_toy_panoptic(str(tmp_path_factory.mktemp("pq_toy")), num_images=6)
    register_panoptic_datasets([["test_pq_toy", *info["entry"]]])
    return DatasetCatalog.get("test_pq_toy")


def _ids(rec):
    import cv2

    bgr = cv2.imread(rec["pan_seg_file_name"]).astype(np.int64)
    return bgr[..., 2] + 256 * bgr[..., 1] + 65536 * bgr[..., 0]


def _predictions(records, seed=0):
    """PanopticSOLO-like outputs (model numbering) made from the ground truth with errors:
    shifted and eroded things, a dropped thing, a false thing, stuff with the wrong class or
    partly unlabeled, the unlabeled horizon band predicted."""
    rng = np.random.default_rng(seed)
    outs = []
    for k, rec in enumerate(records):
        ids = _ids(rec)
        pred = np.zeros_like(ids)
        segments = []
        for s in rec["segments_info"]:
            m = ids == s["id"]
            roll = int(rng.integers(-6, 7))
            if s["isthing"]:
                if rng.random() < 0.2:
                    continue  # missed
                m = np.roll(m, roll, axis=int(rng.integers(0, 2)))
            elif k % 3 == 1:
                m = m & (rng.random(m.shape) < 0.7)  # partly unlabeled
            sid = len(segments) + 1
            pred[m] = sid
            cat = s["category_id"]
            if not s["isthing"] and k % 3 == 2:
                cat = 3 - cat  # sky <-> ground
            segments.append({"id": sid, "isthing": s["isthing"], "category_id": cat})
        pred[rng.integers(0, 100) : 120, 0:14] = len(segments) + 1  # a false thing
        segments.append({"id": len(segments) + 1, "isthing": True, "category_id": 1})
        outs.append({"panoptic_seg": (torch.from_numpy(pred).int(), segments)})
    return outs


def _evaluate(backend, records, outputs, tmp_path):
    ev = pe.PanopticQualityEvaluator("test_pq_toy", str(tmp_path / backend), backend=backend)
    ev.reset()
    ev.process(records, outputs)
    return ev.evaluate()["panoptic_seg"]


def test_panopticapi_and_torchmetrics_agree(toy, tmp_path):
    pytest.importorskip("panopticapi", reason="panopticapi (pip install <its repository>)")
    pytest.importorskip("torchmetrics")
    outputs = _predictions(toy)
    a = _evaluate("panopticapi", toy, outputs, tmp_path)
    b = _evaluate("torchmetrics", toy, outputs, tmp_path)
    assert a.keys() == b.keys() == {f"{m}{p}" for m in ("PQ", "SQ", "RQ")
                                    for p in ("", "_th", "_st")}
    assert 10 < a["PQ"] < 90  # the errors show, the matches too
    for key in a:
        # torchmetrics divides areas in float32, panopticapi in float64
        assert b[key] == pytest.approx(a[key], abs=1e-4), key


def test_pq_by_hand(toy, tmp_path):
    """One image predicted as its ground truth: PQ 100 everywhere. Its disc dropped (left
    unlabeled): disc 1 FN (PQ 0), box PQ 100, so things 50, stuff 100 and all 75."""
    pytest.importorskip("torchmetrics")
    rec = toy[1:2]
    ids = _ids(rec[0])
    segs = [{"id": s["id"], "isthing": s["isthing"], "category_id": s["category_id"]}
            for s in rec[0]["segments_info"]]
    out = [{"panoptic_seg": (torch.from_numpy(ids).int(), segs)}]
    res = _evaluate("torchmetrics", rec, out, tmp_path)
    assert res["PQ"] == pytest.approx(100.0) and res["RQ_th"] == pytest.approx(100.0)
    # drop the disc: disc has 1 FN -> PQ_disc 0; the box stays 1; things 50
    disc = next(s for s in segs if s["isthing"] and s["category_id"] == 1)
    ids2 = np.where(ids == disc["id"], 0, ids)
    out = [{"panoptic_seg": (torch.from_numpy(ids2).int(),
                             [s for s in segs if s is not disc])}]
    res = _evaluate("torchmetrics", rec, out, tmp_path)
    assert res["PQ_th"] == pytest.approx(50.0) and res["PQ_st"] == pytest.approx(100.0)
    assert res["PQ"] == pytest.approx(75.0)


def test_stuff_miou_from_the_panoptic_pngs(toy, tmp_path):
    ev = pe.PanopticStuffEvaluator("test_pq_toy", str(tmp_path), distributed=False)
    ev.reset()
    outputs = []
    for rec in toy:
        ids = _ids(rec)
        logits = torch.zeros(3, *ids.shape)
        logits[1][torch.from_numpy(ids == 1000)] = 1  # sky right
        logits[0][torch.from_numpy((ids > 0) & (ids < 1000))] = 1  # things right
        logits[2][torch.from_numpy(ids == 0)] = 1  # unlabeled: ignored
        outputs.append({"sem_seg": logits})  # ground: argmax 0 = "things": wrong
    ev.process(toy, outputs)
    res = ev.evaluate()["sem_seg"]
    # by hand: sky IoU 1, ground IoU 0, things IoU = things / (things + ground)
    things = sum(int(((_ids(r) > 0) & (_ids(r) < 1000)).sum()) for r in toy)
    ground = sum(int((_ids(r) == 2000).sum()) for r in toy)
    assert res["IoU-sky"] == pytest.approx(100.0)
    assert res["IoU-ground"] == pytest.approx(0.0)
    assert res["IoU-things"] == pytest.approx(100.0 * things / (things + ground))


def test_missing_pq_package_is_one_line(toy, tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(pe, "pq_backend", lambda wanted="auto": None)
    with capture_logs(caplog, pe.__name__):  # also after a command line set up solo_d2's log
        evaluators = pe.build_panoptic_evaluator("test_pq_toy", str(tmp_path))
    kinds = [type(e).__name__ for e in evaluators._evaluators]
    assert kinds == ["PanopticStuffEvaluator", "PanopticCOCOEvaluator"]
    lines = [r.getMessage() for r in caplog.records if "PQ is not computed" in r.getMessage()]
    assert lines == ["PQ is not computed: it needs panopticapi or torchmetrics "
                     "(pip install torchmetrics)"]


def test_standard_and_separated_numbering_evaluate_alike(tmp_path):
    """The same data registered in Detectron2's standard numbering (register_coco_panoptic:
    things and stuff numbered together, no instance json) and in solo_d2's: the same
    predictions (model numbering) get the same PQ, mask AP and stuff mIoU."""
    import cv2
    from detectron2.data.datasets import register_coco_panoptic
    from detectron2.structures import BitMasks, Boxes, Instances

    info = write_toy_panoptic(str(tmp_path / "d"), num_images=4)
    jpg = tmp_path / "jpg"
    jpg.mkdir()
    for name in os.listdir(info["image_root"]):  # Detectron2's loader wants .jpg images
        cv2.imwrite(str(jpg / name.replace(".png", ".jpg")),
                    cv2.imread(os.path.join(info["image_root"], name)))
    register_panoptic_datasets([["test_num_sep", *info["entry"]]])
    names = ["box", "disc", "sky", "ground"]
    register_coco_panoptic("test_num_std", {
        "thing_classes": names, "stuff_classes": names,
        "thing_dataset_id_to_contiguous_id": {1: 0, 2: 1},
        "stuff_dataset_id_to_contiguous_id": {7: 2, 9: 3}},
        str(jpg), info["panoptic_root"], info["panoptic_json"])
    # the predictions, in the model's numbering (= the separated one: things 0.., stuff 1..)
    sep = sorted(DatasetCatalog.get("test_num_sep"), key=lambda r: r["image_id"])
    outputs = []
    for rec, pan in zip(sep, _predictions(sep, seed=1)):
        ids = _ids(rec)
        things = [s for s in rec["segments_info"] if s["isthing"]]
        inst = Instances(ids.shape)
        inst.pred_masks = torch.from_numpy(np.stack([ids == s["id"] for s in things]))
        inst.pred_boxes = Boxes(BitMasks(inst.pred_masks).get_bounding_boxes().tensor)
        inst.scores = torch.linspace(0.9, 0.5, len(things))
        inst.pred_classes = torch.tensor([s["category_id"] for s in things])
        sem = torch.zeros(3, *ids.shape)
        sem[1][torch.from_numpy(ids == 1000)] = 1
        sem[2][torch.from_numpy(ids == 2000)] = 1
        outputs.append({"instances": inst, "sem_seg": sem, **pan})
    results = {}
    for name in ("test_num_sep", "test_num_std"):
        records = sorted(DatasetCatalog.get(name), key=lambda r: r["image_id"])
        evaluators = pe.build_panoptic_evaluator(name, str(tmp_path / name))
        evaluators.reset()
        evaluators.process(records, outputs)
        results[name] = evaluators.evaluate()
    a, b = results["test_num_sep"], results["test_num_std"]
    assert a["panoptic_seg"] == pytest.approx(b["panoptic_seg"])
    assert a["segm"]["AP"] == pytest.approx(b["segm"]["AP"]) and a["segm"]["AP"] > 50
    assert a["sem_seg"]["mIoU"] == pytest.approx(b["sem_seg"]["mIoU"])

