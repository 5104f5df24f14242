"""Panoptic SOLOv2 R50, the paper's setting: multi-scale training, 36 epochs (the LazyConfig
twin of SOLOv2_Panoptic_R50_3x.yaml; docs/PANOPTIC.md)."""
from .common.data.coco_panoptic import dataloader
from .common.models.panoptic_solov2 import model
from .SOLOv2_R50_3x import lr_multiplier, optimizer, train

dataloader.train.mapper.augmentations[0].short_edge_length = (800, 768, 736, 704, 672, 640)
train.output_dir = "output/SOLOv2_Panoptic_R50_3x"
