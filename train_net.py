#!/usr/bin/env python3
r"""Train and evaluate SOLO-family models with Detectron2, from a yaml config or a LazyConfig.

    python train_net.py --config-file configs/SOLO_R50_1x.yaml --num-gpus 8
    python train_net.py --config-file configs/SOLO_R50_1x.yaml --eval-only MODEL.WEIGHTS out/model_final.pth
    python train_net.py --config-file configs/SOLO_R50_1x.py --num-gpus 8
    python train_net.py --config-file configs/SOLO_R50_1x.py --eval-only train.init_checkpoint=out/model_final.pth

Both kinds of config are trained by solo_d2's SOLOTrainer. Options after the arguments are
KEY VALUE pairs for a yaml config and key=value overrides for a LazyConfig (.py;
docs/LAZYCONFIG.md).
MODEL.WEIGHTS (a LazyConfig's train.init_checkpoint) is a file, an http(s) URL or a name
(solo_d2://SOLOv2_R50_3x, torchvision://resnet50), downloaded once and converted on load
(docs/MODEL_ZOO.md).
--num-gpus is the number of processes per machine: GPUs with MODEL.DEVICE / train.device
cuda, CPU processes (GLOO) with cpu. --num-machines, --machine-rank and --dist-url work as in
Detectron2's tools/train_net.py. Under torchrun or srun every process is one rank and
--num-gpus spawns nothing (docs/CLUSTERS.md, also for exit statuses and preemption).
"""
import argparse
import os
import sys

import detectron2.utils.comm as comm
from detectron2.engine import default_argument_parser, default_setup
from detectron2.evaluation import verify_results
from detectron2.utils.logger import setup_logger

from solo_d2.checkpoint import WEIGHTS_ERRORS, SOLOCheckpointer
from solo_d2.utils.cli import HelpFormatter
from solo_d2.data.cfg_datasets import DatasetRegistrationError
from solo_d2.engine import SOLOTrainer, launch, launch_options, load_config
from solo_d2.engine.configs import config_output_dir, config_weights, is_lazy
from solo_d2.engine.run_summary import log_run_summary, mark_run_start


def setup(args):
    cfg = load_config(args.config_file, args.opts)
    default_setup(cfg, args)
    # solo_d2's own log lines (weights downloads and conversions), as Detectron2's projects do
    setup_logger(output=config_output_dir(cfg), distributed_rank=comm.get_rank(), name="solo_d2")
    return cfg


def main(args):
    cfg = setup(args)
    if args.eval_only:
        model = SOLOTrainer.build_model(cfg)
        SOLOCheckpointer(model, save_dir=config_output_dir(cfg)).resume_or_load(
            config_weights(cfg), resume=args.resume
        )
        res = SOLOTrainer.test(cfg, model)
        if comm.is_main_process() and not is_lazy(cfg):
            verify_results(cfg, res)
        trainer = None
    else:
        trainer = SOLOTrainer(cfg)
        trainer.resume_or_load(resume=args.resume)
        res = trainer.train()
    if comm.is_main_process():  # the last line: wall time since the start, speed
        log_run_summary(trainer)
    return res


def get_parser() -> argparse.ArgumentParser:
    """Detectron2's train_net arguments, with this script's description and the defaults shown."""
    parser = default_argument_parser()
    parser.description = __doc__
    parser.formatter_class = HelpFormatter
    return parser


def parse_args(argv=None) -> argparse.Namespace:
    """The arguments; a missing --config-file is one "error:" line (exit status 2)."""
    parser = get_parser()
    args = parser.parse_args(argv)
    if not os.path.isfile(args.config_file):
        parser.error(f"--config-file {args.config_file!r} does not exist (or is not a file)")
    return args


if __name__ == "__main__":
    mark_run_start()  # processes spawned by --num-gpus count the time from here
    args = parse_args()
    print("Command Line Args:", args)
    try:
        launch(
            main,
            args.num_gpus,
            num_machines=args.num_machines,
            machine_rank=args.machine_rank,
            dist_url=args.dist_url,
            args=(args,),
            **launch_options(load_config(args.config_file, args.opts)),
        )
    except WEIGHTS_ERRORS as e:  # weights not downloadable, unknown, unreadable
        sys.exit(f"error: {e}")
    except DatasetRegistrationError as e:  # DATASETS.REGISTER_COCO_* entries
        sys.exit(f"error: {e}")
