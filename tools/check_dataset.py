#!/usr/bin/env python
r"""Check every image and annotation of a config's datasets before training.

    python tools/check_dataset.py --config-file configs/SOLO_R50_1x.yaml
    python tools/check_dataset.py --config-file my.yaml --split train DATALOADER.NUM_WORKERS 8
    python tools/check_dataset.py --config-file configs/SOLOv2_R50_1x.py \
        dataloader.train.num_workers=8

Reads every record of DATASETS.TRAIN (and DATASETS.TEST; a LazyConfig's
dataloader.{train,test}.dataset.names) with the mapper the trainer uses: training records with
their annotations, test records as images. Lists each file that cannot be read or whose
annotation cannot become a mask - the files a training run would skip and count against
DATALOADER.MAX_BAD_FILES (dataloader.max_bad_files; docs/CLUSTERS.md). Exit status 0 when
every file is good, 65 when some are not (the list is printed).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from solo_d2.utils.cli import readable_file, tool_parser  # noqa: E402
from solo_d2.utils.exit_status import EXIT_BAD_FILES  # noqa: E402


def main(argv=None) -> int:
    p = tool_parser(__doc__)
    p.add_argument("--config-file", required=True, type=readable_file, metavar="FILE")
    p.add_argument("--split", choices=("train", "test", "both"), default="both",
                   help="which of DATASETS.TRAIN / DATASETS.TEST to check")
    p.add_argument("opts", nargs="*", default=[],
                   help="config overrides: KEY VALUE pairs (yaml), key=value (LazyConfig)")
    args = p.parse_args(argv)

    from detectron2.config import instantiate
    from detectron2.data import get_detection_dataset_dicts

    from solo_d2.data import SOLODatasetMapper
    from solo_d2.data.dataset_check import find_bad_samples
    from solo_d2.engine import load_config
    from solo_d2.engine.configs import dataset_names, is_lazy

    cfg = load_config(args.config_file, args.opts)
    total_bad = 0
    for split in ("train", "test"):
        if args.split not in (split, "both"):
            continue
        if is_lazy(cfg):
            loader = cfg.dataloader[split]
            mapper, workers = instantiate(loader.mapper), loader.get("num_workers", 0)
        else:
            mapper, workers = SOLODatasetMapper(cfg, split == "train"), cfg.DATALOADER.NUM_WORKERS
        for name in dataset_names(cfg, split):
            records = get_detection_dataset_dicts([name], filter_empty=False)
            print(f"{name} ({split}): checking {len(records)} images", flush=True)
            bad = find_bad_samples(
                records, mapper, num_workers=workers,
                progress=lambda done, n: print(f"  {done}/{n}", file=sys.stderr, flush=True))
            for file_name, reason in bad:
                print(f"  bad: {file_name}: {reason}")
            print(f"{name}: {len(bad)} of {len(records)} images bad", flush=True)
            total_bad += len(bad)
    return EXIT_BAD_FILES if total_bad else 0


if __name__ == "__main__":
    sys.exit(main())
