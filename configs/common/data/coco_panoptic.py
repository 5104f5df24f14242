"""COCO 2017 panoptic for panoptic SOLO (configs/SOLOv2_Panoptic_R50_1x.yaml): Detectron2's
registered ``coco_2017_{train,val}_panoptic`` (images, id-coded PNGs and the panoptic json
under $DETECTRON2_DATASETS/coco; instance masks and stuff targets come from the PNGs), the
COCO instance pipeline of common/data/coco.py with solo_d2's panoptic mapper, and Detectron2's
panoptic evaluation (stuff mIoU, mask AP, PQ).

``dataloader.register_coco_panoptic`` registers one's own COCO panoptic data by name::

    dataloader.register_coco_panoptic="[[mine_train,/d/images,/d/panoptic,/d/panoptic.json]]"
    dataloader.train.dataset.names=mine_train
"""
import copy

from detectron2.config import LazyCall as L

from solo_d2.data import PanopticDatasetMapper, PanopticLabels
from solo_d2.evaluation.panoptic import build_panoptic_evaluator

from .coco import dataloader as _instances

dataloader = copy.deepcopy(_instances)
# [[name, image_root, panoptic_root, panoptic_json], ...]: things and stuff from isthing
dataloader.register_coco_panoptic = []
dataloader.train.dataset.names = "coco_2017_train_panoptic"
dataloader.train.dataset.filter_empty = False  # records have segments_info, not annotations
dataloader.train.mapper._target_ = PanopticDatasetMapper
# things and stuff of the training data, in the model's numbering
dataloader.train.mapper.labels = L(PanopticLabels.from_datasets)(names="${...dataset.names}")
dataloader.train.mapper.ignore_value = 255  # the stuff branch's ignore_value
dataloader.test.dataset.names = "coco_2017_val_panoptic"
# output_dir: <train.output_dir>/inference unless set here
dataloader.evaluator = L(build_panoptic_evaluator)(dataset_name="${..test.dataset.names}")
