"""Quick start, panoptic: SOLOv2 plus a stuff branch, ResNet-18-FPN from scratch on the built-in
solo_shapes_panoptic dataset (the LazyConfig twin of SOLOv2_Panoptic_R18_shapes.yaml;
docs/PANOPTIC.md).

    python train_net.py --config-file configs/quick_schedules/SOLOv2_Panoptic_R18_shapes.py
"""
from detectron2.config import LazyCall as L

from solo_d2.data import PanopticDatasetMapper, PanopticLabels
from solo_d2.evaluation.panoptic import build_panoptic_evaluator

from ..common.models.panoptic_solov2 import model as panoptic
from .SOLOv2_R18_shapes import dataloader, lr_multiplier, model, optimizer, train

model._target_ = panoptic._target_
model.sem_seg_head = panoptic.sem_seg_head
model.sem_seg_head.num_classes = 4  # sky, grass, wall + "things"
model.sem_seg_head.conv_dims = 64
model.combine_enabled = True
model.combine_overlap_thresh = 0.5
model.combine_stuff_area_thresh = 512  # 192 px images: COCO's 4096 px would be 11 % of one
model.combine_instances_score_thresh = 0.5
del panoptic

dataloader.register_coco_panoptic = []
dataloader.train.dataset.names = "solo_shapes_panoptic_train"
dataloader.train.dataset.filter_empty = False  # records have segments_info, not annotations
dataloader.train.mapper._target_ = PanopticDatasetMapper
dataloader.train.mapper.labels = L(PanopticLabels.from_datasets)(names="${...dataset.names}")
dataloader.train.mapper.ignore_value = 255
dataloader.test.dataset.names = "solo_shapes_panoptic_val"
dataloader.evaluator = L(build_panoptic_evaluator)(dataset_name="${..test.dataset.names}")
train.output_dir = "output/quick_schedules/SOLOv2_Panoptic_R18_shapes"
