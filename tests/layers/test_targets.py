"""Target assignment on hand-built masks (solo_d2/layers/targets.py)."""
import cv2
import numpy as np
import pytest
import torch

from solo_d2.layers.targets import assign_targets_single, center_of_mass, downscale_masks

NUM_CLASSES = 3


def _assign(masks, classes, *, grids=(10,), strides=(8,), ranges=((1, 1000),), pos_scale=0.2,
            drop_vanished=True, size=160):
    masks = torch.stack(masks)
    ys_any, xs_any = masks.any(2), masks.any(1)
    boxes = []
    for ya, xa in zip(ys_any, xs_any):
        ys, xs = ya.nonzero().flatten(), xa.nonzero().flatten()
        boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1] if len(xs) else [0, 0, 0, 0])
    mask_sizes = [(size * 2 // s, size * 2 // s) for s in strides]
    return assign_targets_single(
        torch.tensor(boxes, dtype=torch.float32),
        torch.tensor(classes),
        masks,
        mask_sizes=mask_sizes,
        num_grids=grids,
        strides=strides,
        scale_ranges=ranges,
        pos_scale=pos_scale,
        num_classes=NUM_CLASSES,
        drop_vanished=drop_vanished,
    )


def _rect(y0, y1, x0, x1, size=160):
    m = torch.zeros(size, size, dtype=torch.bool)
    m[y0:y1, x0:x1] = True
    return m


def _cells(rows, cols, s=10):
    return sorted(r * s + c for r in rows for c in cols)


def test_center_region_small_pos_scale():
    # rows 40..119, cols 20..139: centre (79.5, 79.5), cell size 16 -> centre cell (4, 4).
    # pos_scale 0.2: half extents 8 (h) and 12 (w) -> rows trunc(71.5/16)..trunc(87.5/16) = 4..5,
    # cols trunc(67.5/16)..trunc(91.5/16) = 4..5.
    (t,) = _assign([_rect(40, 120, 20, 140)], [2])
    assert t.pos_cells.tolist() == _cells([4, 5], [4, 5])
    assert (t.labels.flatten()[t.pos_cells] == 2).all()
    untouched = torch.ones(100, dtype=torch.bool)
    untouched[t.pos_cells] = False
    assert (t.labels.flatten()[untouched] == NUM_CLASSES).all()


def test_center_region_clamped_to_3x3():
    # pos_scale 1.0 would cover cols 0..8 and rows 1..7; the clamp keeps centre +- 1.
    (t,) = _assign([_rect(40, 120, 20, 140)], [1], pos_scale=1.0)
    assert t.pos_cells.tolist() == _cells([3, 4, 5], [3, 4, 5])


def test_mask_targets_are_downscaled_masks():
    (t,) = _assign([_rect(40, 120, 20, 140)], [0])
    assert t.mask_targets.shape == (4, 40, 40)
    expected = torch.zeros(40, 40)
    expected[10:30, 5:35] = 1  # the rectangle at 1/4 scale
    for m in t.mask_targets:
        assert torch.equal(m, expected)


def test_instance_in_two_overlapping_ranges_lands_on_both_levels():
    # sqrt(60*60) = 60 lies in [1, 96] and in [48, 192], not in [96, 384].
    targets = _assign(
        [_rect(50, 110, 50, 110)], [1], grids=(10, 8, 6), strides=(8, 8, 16),
        ranges=((1, 96), (48, 192), (96, 384)),
    )
    assert [len(t.pos_cells) > 0 for t in targets] == [True, True, False]
    assert targets[1].mask_targets.shape[1:] == (40, 40)
    assert (targets[2].labels == NUM_CLASSES).all()


def test_mask_vanishing_at_quarter_scale_is_skipped():
    # A 1-pixel column at x=48: bilinear 4x downscaling samples columns 4j+1 and 4j+2 only.
    line = torch.zeros(160, 160, dtype=torch.bool)
    line[20:140, 48] = True
    (t,) = _assign([line], [0])
    assert len(t.pos_cells) == 0 and (t.labels == NUM_CLASSES).all()
    # The reference semantics keep it with an all-zero target.
    (t,) = _assign([line], [0], drop_vanished=False)
    assert len(t.pos_cells) > 0 and t.mask_targets.sum() == 0


def test_empty_mask_is_ignored_and_later_instance_wins_overlaps():
    empty = torch.zeros(160, 160, dtype=torch.bool)
    a = _rect(40, 120, 20, 140)
    b = _rect(44, 116, 30, 130)  # same centre cell region, later -> owns the shared cells
    (t,) = _assign([a, empty, b], [0, 1, 2])
    assert (t.labels.flatten()[t.pos_cells] == 2).all()
    (only_empty,) = _assign([empty], [1])
    assert len(only_empty.pos_cells) == 0


def test_center_of_mass_matches_numpy():
    m = torch.zeros(2, 30, 40, dtype=torch.bool)
    m[0, 3:9, 5:20] = True
    m[1, 10:11, 0:40] = True
    h, w = center_of_mass(m)
    for k in range(2):
        ys, xs = np.nonzero(m[k].numpy())
        assert h[k].item() == pytest.approx(ys.mean())
        assert w[k].item() == pytest.approx(xs.mean())


@pytest.mark.parametrize("factor", [4, 8, 16])
def test_downscale_masks_equals_opencv_bilinear(factor):
    rng = np.random.default_rng(factor)
    masks = rng.random((6, 64, 96)) < rng.random((6, 1, 1))
    ours = downscale_masks(torch.from_numpy(masks), factor).numpy()
    for m, o in zip(masks, ours):
        ref = cv2.resize(m.astype(np.uint8), (96 // factor, 64 // factor),
                         interpolation=cv2.INTER_LINEAR)
        assert np.array_equal(ref, o.astype(np.uint8))


def test_mask_size_mismatch_is_reported():
    with pytest.raises(ValueError, match="padded image"):
        assign_targets_single(
            torch.zeros(1, 4), torch.zeros(1, dtype=torch.int64),
            torch.zeros(1, 100, 100, dtype=torch.bool), mask_sizes=[(40, 40)], num_grids=[10],
            strides=[8], scale_ranges=[(1, 100)], pos_scale=0.2, num_classes=3,
        )
