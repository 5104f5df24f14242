"""COCO with large-scale jitter (LSJ), as mmdet 3.3.0's lsj-*_coco-instance.py and Detectron2's
new_baselines train: each image scaled to fit a 1024 x (0.1..2.0) square, a random 1024 x 1024
(at most) crop whose boxes are recomputed from the cropped masks (crops without objects train
as negatives, mmdet's allow_negative_crop), horizontal flips; 64 images per batch. The model
pads training batches to 1024 x 1024 (``model.train_fixed_size``, mmdet's BatchFixedSizePad).
Test: shortest edge 800, longest <= 1333 (mmdet's LSJ test pipeline; coco.py's).
"""
import detectron2.data.transforms as T
from detectron2.config import LazyCall as L

from .coco import dataloader

image_size = 1024
dataloader.train.mapper.augmentations = [
    L(T.ResizeScale)(
        min_scale=0.1, max_scale=2.0, target_height=image_size, target_width=image_size
    ),
    L(T.FixedSizeCrop)(crop_size=(image_size, image_size), pad=False),
    L(T.RandomFlip)(horizontal=True),
]
dataloader.train.mapper.recompute_boxes = True  # boxes of the cropped masks
dataloader.train.total_batch_size = 64
dataloader.train.num_workers = 4
del image_size
