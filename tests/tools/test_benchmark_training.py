"""tools/benchmark_training.py on a tiny model: per-phase step times of two variants built by
SOLOTrainer, alternating; the table agrees with the json; bad variants are one-line errors."""
import json
import os
import statistics
import subprocess
import sys

import pytest

from conftest import ROOT, TINY_OPTS, write_toy_coco

sys.path.insert(0, os.path.join(ROOT, "tools"))
import benchmark_training  # noqa: E402


def test_two_variants_side_by_side(tmp_path):
    root = str(tmp_path / "data")
    json_file = write_toy_coco(root, num_images=4)
    out_json = str(tmp_path / "bench.json")
    # as a command (its own process: the tool sets torch's thread count and leaves its
    # loaders' workers to the end of the process, as a command may)
    proc = subprocess.run([
        sys.executable, os.path.join(ROOT, "tools", "benchmark_training.py"),
        "--config-file", os.path.join(ROOT, "configs", "Base-SOLO.yaml"),
        "--variant", "fp32=SOLVER.AMP.ENABLED False",
        "--variant", "bf16 batch 4=SOLVER.AMP.ENABLED True SOLVER.IMS_PER_BATCH 4",
        "--steps", "3", "--warmup", "1", "--threads", "1", "--json-out", out_json,
        *TINY_OPTS, "SOLVER.IMS_PER_BATCH", "2",
        "DATASETS.REGISTER_COCO_INSTANCES", f"[['toy', '{json_file}', '{root}/images']]",
        "DATASETS.TRAIN", "('toy',)", "DATASETS.TEST", "()",
    ], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.load(open(out_json))
    assert out["results"].keys() == {"fp32", "bf16 batch 4"}
    report = proc.stdout
    fp32, bf16 = out["results"]["fp32"], out["results"]["bf16 batch 4"]
    for r, batch in ((fp32, 2), (bf16, 4)):
        assert len(r["all_totals"]) == 3  # one sum of the four phases per timed step
        assert r["total"] == pytest.approx(statistics.median(r["all_totals"]), abs=1e-3)
        assert sum(r[p] for p in benchmark_training.PHASES) > 0
        assert r["images_per_s"] == pytest.approx(batch / r["total"])
        assert 0 < r["cpu"]
    assert f"| images / s | {fp32['images_per_s']:.2f} | {bf16['images_per_s']:.2f} |" in report
    assert f"| step / fp32's | 1.00x | {bf16['total'] / fp32['total']:.2f}x |" in report
    assert "1 torch threads" in report and "avx512_bf16" in report
    assert "bf16 batch 4: SOLVER.AMP.ENABLED True SOLVER.IMS_PER_BATCH 4" in report


@pytest.mark.parametrize("bad", ["bf16", "=SOLVER.AMP.ENABLED True", "x=SOLVER.AMP.ENABLED"])
def test_a_bad_variant_is_a_one_line_error(bad, capsys):
    with pytest.raises(SystemExit) as e:
        benchmark_training.get_parser().parse_args(["--config-file", "x.yaml", "--variant", bad])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "expected NAME=KEY VALUE" in err and repr(bad) in err
