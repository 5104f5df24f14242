"""The built-in panoptic shapes: COCO panoptic files whose PNGs, panoptic json and instance
json agree, generated once and reproducibly."""
import json
import os

import cv2
import numpy as np
from pycocotools.coco import COCO

from solo_d2.data import register_solo_shapes_panoptic
from solo_d2.data.builtin_panoptic import ensure_solo_shapes_panoptic
from solo_d2.data.panoptic import rgb_to_id
from solo_d2.shapes.panoptic import render_panoptic


def test_split_files_agree(tmp_path):
    names = register_solo_shapes_panoptic(root=str(tmp_path), prefix="test_pshapes",
                                          num_train=4, num_val=1)
    d = ensure_solo_shapes_panoptic(names[0], progress=False)
    with open(os.path.join(d, "panoptic.json")) as f:
        pan = json.load(f)
    cats = {c["id"]: c for c in pan["categories"]}
    assert [c["name"] for c in pan["categories"] if not c["isthing"]] == ["sky", "grass", "wall"]
    coco = COCO(os.path.join(d, "annotations.json"))
    for ann in pan["annotations"]:
        ids = rgb_to_id(cv2.imread(os.path.join(d, "panoptic", ann["file_name"]))[:, :, ::-1])
        segs = {s["id"]: s for s in ann["segments_info"]}
        assert set(np.unique(ids).tolist()) == set(segs)  # every pixel labeled, every id listed
        for s in segs.values():
            assert s["area"] == int((ids == s["id"]).sum())
        thing_masks = sorted(tuple(np.flatnonzero(ids == i)) for i, s in segs.items()
                             if cats[s["category_id"]]["isthing"])
        inst = sorted(tuple(np.flatnonzero(coco.annToMask(a)))
                      for a in coco.loadAnns(coco.getAnnIds(imgIds=ann["image_id"])))
        assert thing_masks == inst
        image = cv2.imread(os.path.join(d, "images", ann["file_name"]))
        again, _, _ = render_panoptic(ann["image_id"] - 1, ensure_cfg(names[0]))
        assert np.array_equal(image, again)  # a pure function of the settings


def ensure_cfg(name):
    from solo_d2.data import builtin_panoptic

    return builtin_panoptic._REGISTERED[name][1]
