"""Point NMS, candidate selection, Matrix NMS decays and final instances, by hand."""
import math

import pytest
import torch
from detectron2.structures import BitMasks

from solo_d2.layers.postprocess import (
    InferenceSettings,
    candidates_to_predictions,
    mask_boxes,
    mask_matrix_nms,
    point_nms,
    select_candidates,
)


def _strip(x0, x1, width=12):
    m = torch.zeros(1, width, dtype=torch.bool)
    m[0, x0:x1] = True
    return m


def _nms_inputs():
    # A = cols 0..5, B = cols 2..7, D = cols 4..9 (6 px each):
    # IoU(A,B) = 4/8 = .5, IoU(B,D) = .5, IoU(A,D) = 2/10 = .2. C = A's pixels, other class.
    masks = torch.stack([_strip(0, 6), _strip(2, 8), _strip(0, 6), _strip(4, 10)])
    labels = torch.tensor([0, 0, 1, 0])
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6])
    return masks, labels, scores, masks.sum((1, 2)).float()


def test_matrix_nms_gaussian_by_hand():
    masks, labels, scores, area = _nms_inputs()
    s, lab, keep = mask_matrix_nms(masks, labels, scores, area, kernel="gaussian", sigma=2.0)
    # B: decayed by A (iou .5), A itself undecayed -> exp(-2 * .25).
    # C: other class, untouched. D: min(f(.2)/f(0) [by A], f(.5)/f(.5) [by B, compensated]).
    expected = {0: 0.9, 1: 0.8 * math.exp(-0.5), 2: 0.7, 3: 0.6 * math.exp(-2 * 0.04)}
    got = dict(zip(keep.tolist(), s.tolist()))
    assert got == pytest.approx(expected, rel=1e-6)
    assert s.tolist() == sorted(s.tolist(), reverse=True)
    assert lab.tolist() == [labels[k].item() for k in keep]


def test_matrix_nms_linear_by_hand():
    masks, labels, scores, area = _nms_inputs()
    s, _, keep = mask_matrix_nms(masks, labels, scores, area, kernel="linear")
    expected = {0: 0.9, 1: 0.8 * 0.5, 2: 0.7, 3: 0.6 * min(0.8 / 1.0, 0.5 / 0.5)}
    assert dict(zip(keep.tolist(), s.tolist())) == pytest.approx(expected, rel=1e-6)


def test_matrix_nms_filter_pre_and_max():
    masks, labels, scores, area = _nms_inputs()
    s, _, keep = mask_matrix_nms(masks, labels, scores, area, filter_thresh=0.5, max_per_img=2)
    assert keep.tolist() == [0, 2]  # B decays to .485 < .5; max 2 of A, C, D
    s, _, keep = mask_matrix_nms(masks, labels, scores, area, nms_pre=2)
    assert sorted(keep.tolist()) == [0, 1]


def test_matrix_nms_shared_masks_equal_copies():
    masks, labels, scores, area = _nms_inputs()
    ids = torch.tensor([0, 1, 0, 3])  # C uses A's mask through mask_ids
    a = mask_matrix_nms(masks, labels, scores, area)
    b = mask_matrix_nms(masks, labels, scores, area, mask_ids=ids)
    for x, y in zip(a, b):
        assert torch.equal(x, y)


def _matrix_nms_all_pairs(masks, labels, scores, sigma):
    """Matrix NMS written out with one Gram matrix over all candidates (the reference's form)."""
    scores, order = torch.sort(scores, descending=True)
    labels, flat = labels[order], masks[order].flatten(1).float()
    inter = flat @ flat.t()
    area = flat.sum(1)
    iou = (inter / (area[:, None] + area[None, :] - inter)).triu(1)
    iou = iou * (labels[:, None] == labels[None, :]).triu(1)
    comp = iou.max(0)[0][:, None]
    decay = (torch.exp(-sigma * iou**2) / torch.exp(-sigma * comp**2)).min(0)[0]
    return dict(zip(order.tolist(), (scores * decay).tolist()))


def test_matrix_nms_shared_mask_overlaps_equal_all_pairs():
    # Many overlapping random blobs over 4 classes, some candidates sharing a mask: the
    # overlaps of the distinct masks must give exactly what one Gram matrix over all
    # candidates gives.
    g = torch.Generator().manual_seed(0)
    masks = torch.rand(30, 16, 16, generator=g) > 0.6
    ids = torch.randint(0, 30, (60,), generator=g)
    labels = torch.randint(0, 4, (60,), generator=g)
    scores = torch.rand(60, generator=g)
    s, lab, keep = mask_matrix_nms(masks, labels, scores, masks.sum((1, 2)).float(), mask_ids=ids)
    expected = _matrix_nms_all_pairs(masks[ids], labels, scores, sigma=2.0)
    assert dict(zip(keep.tolist(), s.tolist())) == pytest.approx(expected, rel=1e-6, abs=1e-7)
    assert torch.equal(lab, labels[keep])


def test_matrix_nms_rejects_unknown_kernel_and_handles_empty():
    masks, labels, scores, area = _nms_inputs()
    with pytest.raises(ValueError, match="kernel"):
        mask_matrix_nms(masks, labels, scores, area, kernel="box")
    s, lab, keep = mask_matrix_nms(masks[:0], labels[:0], scores[:0], area[:0])
    assert len(s) == len(lab) == len(keep) == 0


def test_point_nms_keeps_local_maxima():
    p = torch.tensor([[[[0.1, 0.5, 0.2], [0.3, 0.4, 0.9], [0.8, 0.0, 0.1]]]])
    # the 2x2 window ending at each cell (top-left neighbours) decides
    expected = torch.tensor([[[[0.1, 0.5, 0.0], [0.3, 0.0, 0.9], [0.8, 0.0, 0.0]]]])
    assert torch.equal(point_nms(p), expected)


def test_select_candidates_levels_and_dedup():
    lvl0 = torch.zeros(2, 2, 2)
    lvl1 = torch.zeros(2, 3, 3)
    lvl0[0, 1, 0] = 0.5  # cell 2 of level 0, class 0
    lvl1[0, 0, 1] = 0.4  # cell 1 of level 1, classes 0 and 1
    lvl1[1, 0, 1] = 0.3
    cand = select_candidates([lvl0, lvl1], 0.1)
    assert cand.cells.tolist() == [[0, 2], [1, 1]]
    assert cand.labels.tolist() == [0, 0, 1]
    assert cand.mask_ids.tolist() == [0, 1, 1]
    assert cand.scores.tolist() == pytest.approx([0.5, 0.4, 0.3])


def test_candidates_to_predictions_area_filter_maskness_and_boxes():
    lvl0 = torch.zeros(1, 2, 2)
    lvl0[0, 0, 0] = 0.9
    lvl0[0, 1, 1] = 0.8
    cand = select_candidates([lvl0], 0.1)
    probs = torch.zeros(2, 8, 8)
    probs[0, 2:6, 1:5] = 0.8  # 16 px > stride 8, maskness 0.8
    probs[1, 0:2, 0:2] = 0.9  # 4 px <= stride 8: dropped
    masks, scores, classes, boxes = candidates_to_predictions(
        cand, probs, level_strides=[8], image_size=(32, 32), output_size=None,
        settings=InferenceSettings(mask_thresh=0.5, nms_pre=500, max_per_img=100,
                                   kernel="gaussian", sigma=2.0, filter_thresh=0.05),
    )
    assert len(scores) == len(classes) == len(boxes) == 1
    assert scores.item() == pytest.approx(0.9 * 0.8)
    assert classes.tolist() == [0]
    assert masks.dtype == torch.bool and masks.shape == (1, 32, 32)
    ys, xs = masks[0].nonzero(as_tuple=True)
    assert boxes[0].tolist() == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]


def test_candidates_to_predictions_without_candidates_is_empty():
    cand = select_candidates([torch.zeros(2, 3, 3)], 0.1)
    masks, scores, classes, boxes = candidates_to_predictions(
        cand, torch.zeros(0, 6, 6), level_strides=[8], image_size=(20, 22), output_size=(40, 44),
        settings=InferenceSettings(),
    )
    assert masks.shape == (0, 40, 44) and masks.dtype == torch.bool
    assert scores.shape == classes.shape == (0,) and boxes.shape == (0, 4)


def test_mask_boxes_equal_detectron2_bitmasks():
    g = torch.Generator().manual_seed(0)
    masks = torch.rand(6, 9, 13, generator=g) > 0.9
    masks[2] = False  # an empty mask: Detectron2 gives (0, 0, 0, 0)
    masks[3] = False
    masks[3, 8, 12] = True  # the last pixel only
    expected = BitMasks(masks).get_bounding_boxes().tensor
    assert torch.equal(mask_boxes(masks), expected)
    assert mask_boxes(masks[:0]).shape == (0, 4)
