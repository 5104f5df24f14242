"""tools/benchmark_export.py --deploy: the deployment table (every runtime and precision of
two tiny models side by side) from the command, at a small size."""
import json
import os
import sys

import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("openvino")

from conftest import ROOT, tiny_cfg  # noqa: E402
from solo_d2.export_benchmark.deploy_profile import part_of  # noqa: E402
from solo_d2.export_benchmark.deploy_table import DEPLOY_SIDES  # noqa: E402

sys.path.insert(0, os.path.join(ROOT, "tools"))
import benchmark_export  # noqa: E402


def _config(tmp, name, head, base):
    path = str(tmp / f"{name}.yaml")
    with open(path, "w") as f:
        f.write(tiny_cfg(head, 3, base).dump())
    return path


def test_deploy_table_from_one_command(tmp_path, capsys):
    solov2 = _config(tmp_path, "tiny_solov2", "SOLOV2Head", "SOLOv2_R50_1x.yaml")
    solo = _config(tmp_path, "tiny_solo", "SOLOHead", "SOLO_R50_1x.yaml")
    # mask AP deltas of a trained SOLOv2, as tools/evaluate_export.py writes them
    accuracy = {"_meta": {"head": "SOLOV2Head", "dataset": "d", "images": 1},
                "pytorch fp32": {"segm": {"AP": 50.0}},
                "openvino int8": {"segm": {"AP": 49.75}, "delta_mask_ap": -0.25},
                "pytorch bf16": {"segm": {"AP": 50.125}, "delta_mask_ap": 0.125}}
    acc_path = tmp_path / "acc.json"
    acc_path.write_text(json.dumps(accuracy))
    out = tmp_path / "deploy.json"
    # a 160 x 240 photo, resized by the tiny configs' test resize (128 short side) to 128 x 192
    rc = benchmark_export.main([
        "--deploy", "--config-file", solov2, "--config-file", solo, "--image-size", "160", "240",
        "--threads", "1", "--warmup", "0", "--num-iters", "1", "--candidates", "10",
        "--accuracy", str(acc_path), "--profile", "--json-out", str(out)])
    printed = capsys.readouterr().out
    assert rc == 0
    saved = json.loads(out.read_text())
    assert set(saved["rows"]) == {"tiny_solov2", "tiny_solo"}
    header = next(ln for ln in printed.splitlines() if ln.startswith("| model (input) |"))
    assert [c.strip() for c in header.strip("|").split("|")][1:] == list(DEPLOY_SIDES)
    for label, row in saved["rows"].items():
        assert row["input_hw"] == [128, 192] and row["threads"] == 1
        times = {s: t["total"] for s, t in row["times"].items()}
        assert set(times) == set(DEPLOY_SIDES) and min(times.values()) > 0
        line = next(ln for ln in printed.splitlines() if ln.startswith(f"| {label} (128x192) |"))
        cells = dict(zip(DEPLOY_SIDES, [c.strip() for c in line.strip("|").split("|")][1:]))
        for side in DEPLOY_SIDES[1:]:  # seconds and the ratio against PyTorch fp32, recomputed
            assert cells[side].startswith(f"{times[side]:.3f} s "), cells[side]
            assert f"({times['pytorch fp32'] / times[side]:.2f}x)" in cells[side]
        # the fp32 graph gives PyTorch's instances in both runtimes (random weights calibrated
        # to 10 candidates)
        n = row["instances"]
        assert n["pytorch fp32"] == n["onnxruntime fp32"] == n["openvino fp32"] > 0, n
    # AP deltas: the SOLOv2 row's from the JSON of its head; none for the SOLO row
    v2 = next(ln for ln in printed.splitlines() if ln.startswith("| tiny_solov2"))
    assert "AP -0.25" in v2 and "AP +0.12" in v2 and v2.count("AP ") == 2
    assert "AP " not in next(ln for ln in printed.splitlines() if ln.startswith("| tiny_solo "))
    assert "no AP delta for tiny_solo" in printed
    # the machine, its load and the date
    assert "avx512_vnni" in printed and "load average before" in printed
    # the profile: where OpenVINO's int8 time goes, the network's GMACs against the limit
    prof = saved["rows"]["tiny_solov2"]["profile"]
    parts = prof["openvino_int8"]["parts"]
    assert {"backbone res2", "FPN", "head kernel_convs", "pre/post-processing"} <= set(parts)
    assert sum(parts.values()) == pytest.approx(prof["openvino_int8"]["total"])
    assert 0 < prof["gmacs"]["backbone"] and 0 < prof["gmacs"]["head"]
    # ... against the int8 ceiling measured in the same run on 4 dense 3x3 convolutions
    ceiling = saved["machine"]["int8_conv_ceiling"]
    assert ceiling["gmacs"] == pytest.approx(4 * 256 * 256 * 9 * 100 * 168 / 1e9)
    assert ceiling["gmac_per_s"] == pytest.approx(ceiling["gmacs"] / ceiling["seconds"])
    assert prof["int8_ceiling"] == ceiling
    achieved = prof["gmacs"]["total"] / prof["openvino_int8"]["convolutions"]
    assert (f"{achieved:.0f} GMAC/s = {100 * achieved / ceiling['gmac_per_s']:.0f} % of the "
            f"1-thread int8 ceiling measured in this run ({ceiling['gmac_per_s']:.0f} GMAC/s on 4 "
            "dense 3x3 convolutions") in printed


def test_profile_parts_follow_the_module_scopes():
    assert part_of("/backbone/bottom_up/res4/res4.0/conv1/Conv/WithoutBiases") == "backbone res4"
    assert part_of("/backbone/fpn_output2/Conv") == "FPN"
    assert part_of("/head/kernel_convs.2_1/Conv") == "head kernel_convs"
    assert (part_of("/head/mask_feature_head/convs_all_levels.0/conv0/Conv")
            == "head mask_feature_head")
    assert part_of("/head/Resize_3") == "head other"
    assert part_of("/MatMul_5") == "pre/post-processing"
    assert part_of("MVN_8432") == "runtime-made"
