"""COCO 2017 instance segmentation for SOLO, as configs/Base-SOLO.yaml reads it: solo_d2's
mapper (Detectron2's DatasetMapper with OpenCV's resize, as mmdet resizes), RGB images,
shortest edge 800 (longest <= 1333) and horizontal flips in training, COCO evaluation of
masks and their boxes.

``dataloader.register_coco_instances`` registers one's own COCO json files by name before the
loaders are built (a yaml config's DATASETS.REGISTER_COCO_INSTANCES), so that they can be
named from the command line::

    dataloader.register_coco_instances="[[mine_train,/d/train.json,/d/images]]"
    dataloader.train.dataset.names=mine_train
"""
import detectron2.data.transforms as T
from detectron2.config import LazyCall as L
from detectron2.data import (
    build_detection_test_loader,
    build_detection_train_loader,
    get_detection_dataset_dicts,
)
from omegaconf import OmegaConf

from solo_d2.data import SOLODatasetMapper
from solo_d2.data.transforms import CV2ResizeShortestEdge
from solo_d2.engine import SOLOCOCOEvaluator

dataloader = OmegaConf.create()

# [[name, json_file, image_root], ...], registered with Detectron2's register_coco_instances
dataloader.register_coco_instances = []
# Bad files (unreadable image, annotation that cannot become a mask) a training run skips
# before it stops with their list (exit status 65): a count >= 1, a fraction (0, 1) of the
# training images, 0 none, negative no limit (yaml DATALOADER.MAX_BAD_FILES; docs/CLUSTERS.md)
dataloader.max_bad_files = 0.001

dataloader.train = L(build_detection_train_loader)(
    dataset=L(get_detection_dataset_dicts)(names="coco_2017_train"),
    mapper=L(SOLODatasetMapper)(
        is_train=True,
        augmentations=[
            L(CV2ResizeShortestEdge)(
                short_edge_length=(800,), max_size=1333, sample_style="choice"
            ),
            L(T.RandomFlip)(horizontal=True),
        ],
        image_format="RGB",
        use_instance_mask=True,
        instance_mask_format="polygon",
        recompute_boxes=False,
    ),
    total_batch_size=16,
    num_workers=2,
)

dataloader.test = L(build_detection_test_loader)(
    dataset=L(get_detection_dataset_dicts)(names="coco_2017_val", filter_empty=False),
    mapper=L(SOLODatasetMapper)(
        is_train=False,
        augmentations=[
            L(CV2ResizeShortestEdge)(short_edge_length=800, max_size=1333, sample_style="choice")
        ],
        image_format="${...train.mapper.image_format}",
        use_instance_mask=True,  # unused at test time (no annotations), as the yaml mapper
        instance_mask_format="${...train.mapper.instance_mask_format}",
    ),
    num_workers=2,
)

# output_dir: <train.output_dir>/inference unless set here
dataloader.evaluator = L(SOLOCOCOEvaluator)(dataset_name="${..test.dataset.names}")
