"""``tools/benchmark_export.py --deploy``: the deployment table of several configs in one run,
with the machine, its load and the date, AP deltas from trained models, and the profile."""
import json
import os
import platform
import sys
import tempfile
import time
from typing import Any, Dict, List, Optional

from ..benchmark.errors import BenchmarkError
from ..benchmark.report import log
from .deploy_table import DEPLOY_SIDES, accuracy_deltas, format_deploy_table, measure_deploy

__all__ = ["deploy_machine", "deploy_main", "row_label"]

#: CPU flags that decide int8 / bf16 speed
DEPLOY_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8", "avx512_bf16", "amx_bf16")


def deploy_machine(threads: int) -> Dict[str, Any]:
    """CPU model, cores, the flags of :data:`DEPLOY_FLAGS`, load, date and versions."""
    import torch

    from solo_d2.export.backends import installed_backends
    from solo_d2.export.precision import cpu_flags

    from ..benchmark.report import machine_info

    info = machine_info("cpu")
    flags = cpu_flags()
    versions = {"torch": torch.__version__, "python": platform.python_version()}
    for name in installed_backends():
        versions[name] = __import__(name).__version__
    return {"cpu": info["cpu"], "cpu_count": info["cpu_count"], "threads": threads,
            "flags": {f: f in flags for f in DEPLOY_FLAGS}, "loadavg": info["loadavg"],
            "date": time.strftime("%Y-%m-%d %H:%M %Z"), "versions": versions}


def row_label(config_file: str) -> str:
    """The table's name of a config: its file name without extension."""
    return os.path.splitext(os.path.basename(config_file))[0]


def _head_name(cfg) -> str:
    from solo_d2.engine.configs import build_solo_model

    return type(build_solo_model(cfg, device="cpu").head).__name__


def _load_accuracy(paths: List[str]) -> Dict[str, Dict[str, float]]:
    """head class name -> side -> mask AP delta, from tools/evaluate_export.py's JSON files."""
    out: Dict[str, Dict[str, float]] = {}
    for path in paths:
        try:
            with open(path) as f:
                res = json.load(f)
            head = res["_meta"]["head"]
        except (OSError, ValueError, KeyError) as e:
            raise BenchmarkError(f"--accuracy {path!r}: not a tools/evaluate_export.py JSON "
                                 f"({type(e).__name__}: {e})") from None
        out[head] = accuracy_deltas(res)
        out[head]["_source"] = path  # type: ignore[assignment]
    return out


def deploy_main(args) -> int:
    """Run the table for ``args.config_file`` (list) and print it; returns the exit status."""
    from solo_d2.engine import load_config

    sides = args.sides or list(DEPLOY_SIDES)
    try:
        accuracy = _load_accuracy(args.accuracy)
    except BenchmarkError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    machine = deploy_machine(args.threads)
    entries: Dict[str, Dict[str, Any]] = {}
    deltas: Dict[str, Optional[Dict[str, float]]] = {}
    profiles: List[str] = []
    ceiling: Optional[Dict[str, float]] = None  # measured before the first profile
    for config_file in args.config_file:
        label = row_label(config_file)
        cfg = load_config(config_file, [*args.opts])
        head = _head_name(cfg)
        log(f"{label}: building, exporting, quantizing")
        with tempfile.TemporaryDirectory() as tmp:
            try:
                entry = measure_deploy(cfg, tuple(args.image_size), tmp, sides, args.threads,
                                       args.warmup, args.num_iters, args.candidates)
            except BenchmarkError as e:
                print(f"error: {e}", file=sys.stderr)
                return 1
            entry.update(config=config_file, head=head, image_hw=list(args.image_size))
            if args.profile and "int8" in entry["files"]:
                if ceiling is None:
                    from .deploy_profile import conv_ceiling

                    ceiling = machine["int8_conv_ceiling"] = conv_ceiling(args.threads, tmp)
                profiles.append(_profile(cfg, label, entry, args.threads, ceiling))
        entries[label] = entry
        deltas[label] = accuracy.get(head)
        log(f"{label}: " + ", ".join(f"{s} {t['total']:.3f} s" for s, t in entry["times"].items()))
    machine["loadavg_after"] = list(os.getloadavg())
    text = _report(machine, entries, deltas, accuracy, args, sides) + "\n".join(profiles)
    print(text)
    if args.json_out:
        os.makedirs(os.path.dirname(os.path.abspath(args.json_out)), exist_ok=True)
        with open(args.json_out, "w") as f:
            json.dump({"machine": machine, "rows": entries, "ap_deltas": deltas,
                       "profile": profiles}, f, indent=1, default=str)
    return 0


def _profile(cfg, label: str, entry: Dict[str, Any], threads: int,
             ceiling: Dict[str, float]) -> str:
    """The int8 file's OpenVINO profile and the network's GMACs (model rebuilt: same shapes)."""
    import torch

    from .deploy_profile import format_profile, network_gmacs, openvino_profile
    from .deploy_table import deploy_input
    from ..benchmark.models import build_ours

    image = deploy_input(cfg, tuple(entry["image_hw"]))
    gmacs = network_gmacs(build_ours(cfg, load_weights=False), torch.from_numpy(image))
    prof = openvino_profile(entry["files"]["int8"], image, threads)
    entry["profile"] = {"openvino_int8": prof, "gmacs": gmacs, "int8_ceiling": ceiling}
    return format_profile(label, prof, gmacs, threads, ceiling)


def _report(machine, entries, deltas, accuracy, args, sides) -> str:
    flags = ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in machine["flags"].items())
    vers = ", ".join(f"{k} {v}" for k, v in machine["versions"].items())
    head = [
        f"machine: {machine['cpu']}, {machine['cpu_count']} cores, {machine['threads']} threads "
        f"per side; {flags}",
        f"load average before {machine['loadavg'][0]:.2f}, after "
        f"{machine['loadavg_after'][0]:.2f} (1 min); {machine['date']}; {vers}",
        f"median of {args.num_iters} after {args.warmup} warm-up, sides alternating; random "
        f"weights calibrated to {args.candidates} candidates; seconds per image end to end "
        "(normalisation to the final masks at the input size), (speed-up against PyTorch fp32 "
        "in the same run), mask AP delta against PyTorch fp32 on a trained model of the head:",
        "",
    ]
    notes = [f"AP deltas of {h}: {a['_source']}" for h, a in accuracy.items()]
    missing = [label for label, d in deltas.items() if d is None]
    if missing:
        notes.append(f"no AP delta for {', '.join(missing)} (no --accuracy JSON of its head)")
    return "\n".join(head) + format_deploy_table(entries, deltas) + "\n" + "\n".join(notes) + "\n"
