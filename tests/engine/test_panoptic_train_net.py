"""train_net.py on a tiny COCO panoptic dataset written by the test: a few iterations of the
panoptic quick start (made tiny), then Detectron2's panoptic evaluation prints PQ / SQ / RQ
for all, things and stuff, mask AP and stuff mIoU, with predictions in the dataset's ids."""
import json
import os
import re
import subprocess
import sys

from conftest import ROOT, write_toy_panoptic

CONFIG = os.path.join(ROOT, "configs", "quick_schedules", "SOLOv2_Panoptic_R18_shapes.yaml")
TINY = [
    "MODEL.FPN.OUT_CHANNELS", "32", "MODEL.SOLO.FEAT_CHANNELS", "32",
    "MODEL.SOLO.STACKED_CONVS", "2", "MODEL.SOLO.MASK_FEAT.FEAT_CHANNELS", "32",
    "MODEL.SOLO.MASK_FEAT.OUT_CHANNELS", "32", "MODEL.SEM_SEG_HEAD.CONVS_DIM", "32",
    "MODEL.SOLO.NUM_GRIDS", "[12, 10, 8, 6, 4]", "INPUT.MIN_SIZE_TRAIN", "(128,)",
    "INPUT.MAX_SIZE_TRAIN", "128", "INPUT.MIN_SIZE_TEST", "128", "INPUT.MAX_SIZE_TEST", "128",
    "DATALOADER.NUM_WORKERS", "0", "SOLVER.IMS_PER_BATCH", "2", "SOLVER.MAX_ITER", "3",
    "SOLVER.STEPS", "()", "SOLVER.WARMUP_ITERS", "1", "SOLVER.LOG_PERIOD", "1",
]


def test_train_and_evaluate_prints_pq(tmp_path):
    info = write_toy_panoptic(str(tmp_path / "data"), num_images=4)
    out = tmp_path / "out"
    cmd = [sys.executable, os.path.join(ROOT, "train_net.py"), "--config-file", CONFIG, *TINY,
           "DATASETS.REGISTER_COCO_PANOPTIC", f"[['toy', {', '.join(map(repr, info['entry']))}]]",
           "DATASETS.TRAIN", "('toy',)", "DATASETS.TEST", "('toy',)",
           "MODEL.SOLO.NUM_CLASSES", "2", "MODEL.SEM_SEG_HEAD.NUM_CLASSES", "3",
           "OUTPUT_DIR", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=str(tmp_path), timeout=900,
                          env={**os.environ, "PYTHONPATH": ROOT})
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-3000:]
    assert re.search(r"iter: 2 .*loss_sem_seg", log)
    # Detectron2's PQ table: every category of the toy data occurs (2 things, 2 stuff)
    rows = {m[0]: int(m[1]) for m in
            re.findall(r"\|\s*(All|Things|Stuff)\s*\|[^|]*\|[^|]*\|[^|]*\|\s*(\d+)\s*\|", log)}
    assert rows == {"All": 4, "Things": 2, "Stuff": 2}
    for task, header in (("panoptic_seg", "PQ,SQ,RQ,PQ_th,SQ_th,RQ_th,PQ_st,SQ_st,RQ_st"),
                         ("segm", "AP,AP50,AP75,APs,APm,APl"), ("sem_seg", "mIoU,fwIoU,mACC,pACC")):
        assert f"copypaste: Task: {task}\n" in log and f"copypaste: {header}\n" in log
    pq = re.search(r"copypaste: PQ,SQ.*\n.*copypaste: ([\d.,]+)", log).group(1).split(",")
    assert all(0 <= float(v) <= 100 for v in pq)
    with open(out / "inference" / "predictions.json") as f:
        pred = json.load(f)
    assert len(pred["annotations"]) == 4
    cats = {s["category_id"] for a in pred["annotations"] for s in a["segments_info"]}
    assert cats and cats <= {1, 2, 7, 9}  # the dataset's category ids, not the model's labels


LAZY_CONFIG = CONFIG[: -len(".yaml")] + ".py"
LAZY_TINY = [
    "model.backbone.out_channels=32", "model.head.feat_channels=32", "model.head.stacked_convs=2",
    "model.head.mask_feat_channels=32", "model.head.mask_out_channels=32",
    "model.sem_seg_head.conv_dims=32", "model.head.num_grids=[12,10,8,6,4]",
    "dataloader.train.num_workers=0", "dataloader.test.num_workers=0",
    "dataloader.train.total_batch_size=2", "train.max_iter=2", "train.log_period=1",
]


def test_lazy_config_trains_and_evaluates(tmp_path):
    """The LazyConfig twin through train_net.py: dataloader.register_coco_panoptic, the
    model's class counts checked against the data, PQ printed."""
    info = write_toy_panoptic(str(tmp_path / "data"), num_images=2)
    entry = "[[toy," + ",".join(info["entry"]) + "]]"
    base = [sys.executable, os.path.join(ROOT, "train_net.py"), "--config-file", LAZY_CONFIG,
            *LAZY_TINY, f"dataloader.register_coco_panoptic={entry}",
            "dataloader.train.dataset.names=toy", "dataloader.test.dataset.names=toy",
            "model.num_classes=2", f"train.output_dir={tmp_path / 'out'}"]
    env = {**os.environ, "PYTHONPATH": ROOT}
    bad = subprocess.run([*base, "model.sem_seg_head.num_classes=5"], capture_output=True,
                         text=True, cwd=str(tmp_path), timeout=900, env=env)
    assert bad.returncode != 0
    assert "'toy' has 2 stuff classes, 3 with \"things\", but model.sem_seg_head.num_classes " \
           "is 5" in bad.stdout + bad.stderr
    proc = subprocess.run([*base, "model.sem_seg_head.num_classes=3"], capture_output=True,
                          text=True, cwd=str(tmp_path), timeout=900, env=env)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-3000:]
    assert "copypaste: Task: panoptic_seg" in log and "copypaste: Task: sem_seg" in log
    rows = dict(re.findall(r"\|\s*(Things|Stuff)\s*\|[^|]*\|[^|]*\|[^|]*\|\s*(\d+)\s*\|", log))
    assert rows == {"Things": "2", "Stuff": "2"}
