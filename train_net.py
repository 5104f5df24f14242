#!/usr/bin/env python3
"""Train and evaluate SOLO-family models with Detectron2's DefaultTrainer.

    python train_net.py --config-file configs/SOLO_R50_1x.yaml --num-gpus 8
    python train_net.py --config-file configs/SOLO_R50_1x.yaml --eval-only MODEL.WEIGHTS out/model_final.pth
"""
import os

import detectron2.utils.comm as comm
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.config import get_cfg
from detectron2.data import DatasetMapper, build_detection_test_loader, build_detection_train_loader
from detectron2.engine import DefaultTrainer, default_argument_parser, default_setup, launch
from detectron2.evaluation import COCOEvaluator, verify_results

import solo_d2  # noqa: F401  registers the SOLO meta-architecture, heads and datasets
from solo_d2 import add_solo_config
from solo_d2.data.transforms import build_solo_augmentation
from solo_d2.solver import build_solo_optimizer


class Trainer(DefaultTrainer):
    """DefaultTrainer with COCO evaluation, the SOLO resize backend and full-model clipping."""

    @classmethod
    def build_evaluator(cls, cfg, dataset_name, output_folder=None):
        if output_folder is None:
            output_folder = os.path.join(cfg.OUTPUT_DIR, "inference")
        # SOLO predicts masks and their tight boxes: always report both.
        return COCOEvaluator(dataset_name, tasks=("bbox", "segm"), output_dir=output_folder)

    @classmethod
    def build_optimizer(cls, cfg, model):
        return build_solo_optimizer(cfg, model)

    @classmethod
    def build_train_loader(cls, cfg):
        mapper = DatasetMapper(cfg, True, augmentations=build_solo_augmentation(cfg, True))
        return build_detection_train_loader(cfg, mapper=mapper)

    @classmethod
    def build_test_loader(cls, cfg, dataset_name):
        mapper = DatasetMapper(cfg, False, augmentations=build_solo_augmentation(cfg, False))
        return build_detection_test_loader(cfg, dataset_name, mapper=mapper)


def setup(args):
    cfg = get_cfg()
    add_solo_config(cfg)
    cfg.merge_from_file(args.config_file)
    cfg.merge_from_list(args.opts)
    cfg.freeze()
    default_setup(cfg, args)
    return cfg


def main(args):
    cfg = setup(args)
    if args.eval_only:
        model = Trainer.build_model(cfg)
        DetectionCheckpointer(model, save_dir=cfg.OUTPUT_DIR).resume_or_load(
            cfg.MODEL.WEIGHTS, resume=args.resume
        )
        res = Trainer.test(cfg, model)
        if comm.is_main_process():
            verify_results(cfg, res)
        return res
    trainer = Trainer(cfg)
    trainer.resume_or_load(resume=args.resume)
    return trainer.train()


if __name__ == "__main__":
    args = default_argument_parser().parse_args()
    print("Command Line Args:", args)
    launch(
        main,
        args.num_gpus,
        num_machines=args.num_machines,
        machine_rank=args.machine_rank,
        dist_url=args.dist_url,
        args=(args,),
    )
