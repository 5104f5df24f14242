"""``tools/export_model.py --precision bf16|int8`` as a function: export, convert, check that
it pays on this CPU, and only then put ``model.onnx`` in place.

Everything is written under temporary names in the output folder and renamed at the end, so
a failure (no calibration image, a CPU without the arithmetic, too little gain, an interrupt)
leaves no ``model.onnx`` behind, and no folder that was not there before.
"""
import logging
import os
import statistics
import tempfile
import time
from typing import Dict, Optional, Sequence, Tuple

import numpy as np

from .backends import (
    INSTALL_HINTS,
    default_backend,
    default_threads,
    installed_backends,
    open_backend,
)
from .calibration_data import DEFAULT_CALIBRATION_COUNT, load_calibration_images
from .onnx_export import DEFAULT_OPSET, export_from_config
from .precision import PRECISION_KEY, PrecisionError, check_cpu_supports, inspect_file

__all__ = ["MIN_GAIN", "measure_gain", "check_gain", "write_bf16", "export_precision"]

logger = logging.getLogger(__name__)

#: a low-precision file must run at least this many times faster than the fp32 one in the
#: same runtime on this CPU, else the export refuses (docs/DEPLOYMENT.md)
MIN_GAIN = 1.2


def measure_gain(
    fp32_path: str, low_path: str, image: np.ndarray, backend: str, threads: int,
    iters: int = 3,
) -> Tuple[float, float]:
    """Median seconds per run of the fp32 and the low-precision file in ``backend`` on
    ``image`` (C, H, W), one warm-up each, then ``iters`` runs alternating."""
    runners = [open_backend(p, backend, threads) for p in (fp32_path, low_path)]
    times: Tuple[list, list] = ([], [])
    for runner in runners:
        runner.run(image)
    for _ in range(iters):
        for runner, t in zip(runners, times):
            start = time.perf_counter()
            runner.run(image)
            t.append(time.perf_counter() - start)
    return statistics.median(times[0]), statistics.median(times[1])


def check_gain(precision: str, backend: str, threads: int, t_fp32: float, t_low: float) -> str:
    """The line that reports the gain; a PrecisionError when it is below :data:`MIN_GAIN`."""
    gain = t_fp32 / max(t_low, 1e-9)
    line = (f"{precision} in {backend} on this CPU ({threads} threads): {t_low:.3f} s per image "
            f"vs fp32 {t_fp32:.3f} s ({gain:.2f}x)")
    if gain < MIN_GAIN:
        hint = "" if backend == "openvino" else (
            " (OpenVINO cannot run this head's graph)" if "openvino" in installed_backends()
            else f" ({INSTALL_HINTS['openvino']})")
        raise PrecisionError(f"{precision} is not worth it here: {line}, below {MIN_GAIN}x; "
                             f"export fp32{hint}, or pass --force to write it anyway")
    return line


def write_bf16(fp32_path: str, out_path: str) -> None:
    """The fp32 graph with ``solo_d2_precision = bf16`` in its metadata (module docstring of
    :mod:`.precision`: bf16 is how OpenVINO runs it)."""
    import onnx

    model = onnx.load(fp32_path)
    model.metadata_props.add(key=PRECISION_KEY, value="bf16")
    onnx.save(model, out_path)


def _blank_image(cfg, dtype) -> np.ndarray:
    """A black square image at the test size, (C, H, W), for timing."""
    from ..data.transforms import augment_image
    from ..engine.configs import inference_augmentation

    image = augment_image(inference_augmentation(cfg), np.zeros((640, 640, 3), np.uint8))
    return np.ascontiguousarray(image.transpose(2, 0, 1), dtype=dtype)


def export_precision(
    cfg,
    output_dir: str,
    precision: str,
    sample_image: Optional[str] = None,
    *,
    opset: int = DEFAULT_OPSET,
    calibration_images: Sequence[str] = (),
    calibration_count: int = DEFAULT_CALIBRATION_COUNT,
    force: bool = False,
    progress: bool = True,
) -> Dict[str, object]:
    """Write ``output_dir/model.onnx`` at ``precision`` ("bf16" or "int8"; fp32 is
    :func:`~solo_d2.export.export_from_config`) and return ``{"path", "gain"}`` (gain: the
    report line of :func:`check_gain`, None with ``force``).

    int8 reads its calibration images first (:func:`load_calibration_images`). Unless
    ``force``: a CPU without the precision's units, bf16 without OpenVINO installed, or a
    measured gain below :data:`MIN_GAIN` is a PrecisionError, and nothing is written.
    """
    if precision not in ("bf16", "int8"):
        raise PrecisionError(f"export_precision takes bf16 or int8, got {precision!r}")
    if not force:
        check_cpu_supports(precision)
        if precision == "bf16" and "openvino" not in installed_backends():
            raise PrecisionError("bf16 runs in OpenVINO only (ONNX Runtime has no bf16 CPU "
                                 f"kernels): {INSTALL_HINTS['openvino']}; or pass --force")
    images = None
    if precision == "int8":
        images = load_calibration_images(cfg, calibration_images, calibration_count,
                                         progress=progress)
    created = not os.path.isdir(output_dir)
    os.makedirs(output_dir, exist_ok=True)
    temps = [tempfile.mkstemp(dir=output_dir, prefix=f".model.{kind}.", suffix=".onnx.tmp")
             for kind in ("fp32", precision)]
    for fd, _ in temps:
        os.close(fd)
    fp32_tmp, low_tmp = (p for _, p in temps)
    final = os.path.join(output_dir, "model.onnx")
    try:
        export_from_config(cfg, output_dir, sample_image, opset=opset, path=fp32_tmp)
        if precision == "int8":
            from .quantize import quantize_int8

            quantize_int8(fp32_tmp, low_tmp, images, progress=progress)
        else:
            write_bf16(fp32_tmp, low_tmp)
        line = None
        if not force:
            backend = default_backend(precision, inspect_file(fp32_tmp)[1])
            threads = default_threads()
            # export_from_config traces with a uint8 image: the graph takes uint8
            image = images[0] if images else _blank_image(cfg, np.uint8)
            logger.info(f"timing {precision} against fp32 in {backend} ...")
            line = check_gain(precision, backend, threads,
                              *measure_gain(fp32_tmp, low_tmp, image, backend, threads))
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(low_tmp, 0o666 & ~umask)  # mkstemp made it private
        os.replace(low_tmp, final)
        return {"path": final, "gain": line}
    finally:
        for _, path in temps:
            if os.path.exists(path):
                os.remove(path)
        if created and not os.listdir(output_dir):
            os.rmdir(output_dir)
