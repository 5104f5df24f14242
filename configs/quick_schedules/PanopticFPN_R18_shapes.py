"""Baseline for the panoptic quick start: Detectron2's own Panoptic FPN (its
configs/common/models/panoptic_fpn.py) with the Mask R-CNN quick start's detector and the
panoptic quick start's stuff branch, data and merge settings (the LazyConfig twin of
PanopticFPN_R18_shapes.yaml; docs/PANOPTIC.md).

    python train_net.py --config-file configs/quick_schedules/PanopticFPN_R18_shapes.py
"""
from detectron2 import model_zoo
from detectron2.config import LazyCall as L
from detectron2.layers import ShapeSpec

from .MaskRCNN_R18_shapes import lr_multiplier, optimizer, train
from .MaskRCNN_R18_shapes import model as mask_rcnn
from .SOLOv2_Panoptic_R18_shapes import dataloader
from .SOLOv2_Panoptic_R18_shapes import model as solo

model = model_zoo.get_config("common/models/panoptic_fpn.py").model
for key in ("backbone", "pixel_mean", "pixel_std", "input_format", "proposal_generator",
            "roi_heads"):
    model[key] = mask_rcnn[key]
model.sem_seg_head = solo.sem_seg_head
model.sem_seg_head.input_shape = {
    f: L(ShapeSpec)(stride=s, channels=128)
    for f, s in zip(["p2", "p3", "p4", "p5"], [4, 8, 16, 32])
}
model.combine_overlap_thresh = solo.combine_overlap_thresh
model.combine_stuff_area_thresh = solo.combine_stuff_area_thresh
model.combine_instances_score_thresh = solo.combine_instances_score_thresh
del mask_rcnn, solo
# MaskRCNN_R18_shapes' batches of 4 (the panoptic SOLOv2 recipe's are 8)
dataloader.train.total_batch_size = 4
train.output_dir = "output/quick_schedules/PanopticFPN_R18_shapes"
