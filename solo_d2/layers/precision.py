"""Mixed precision: which dtype autocast runs in, and the fp32 regions inside it.

Under autocast the convolutions (backbone, FPN, head towers) run in bf16 or fp16; target
assignment, losses, mask projection of the cells a loss or the post-processing reads, mask
areas, maskness and Matrix NMS run in fp32 whatever the autocast state: pixel counts
overflow fp16 above 65,504 and bf16 holds integers exactly only up to 256, and a dice or focal
loss summed in half precision loses the small terms.
"""
import contextlib
import functools
import logging
from typing import Any, Callable, Iterator, Optional, TypeVar

import torch
from torch.utils._pytree import tree_map

__all__ = [
    "AMP_DTYPES",
    "amp_dtype",
    "train_amp_dtype",
    "resolve_train_amp",
    "cpu_has_bf16",
    "fp32_region",
    "fp32_ops",
    "to_fp32",
    "autocast_for",
    "uses_channels_last",
]

#: the names the config takes (torch's dtype names, as Detectron2's AMPTrainer ``precision``)
AMP_DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16}

#: /proc/cpuinfo flags of bf16 arithmetic: AVX-512 bf16 dot products and AMX tiles (x86),
#: "bf16" in the Features of an Arm CPU (Armv8.6 BFDOT / BFMMLA)
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16", "bf16")

logger = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])


def amp_dtype(name: str, key: str) -> Optional[torch.dtype]:
    """The autocast dtype a config value names: None for "" (autocast off).

    Raises ValueError naming ``key`` and the value otherwise.
    """
    if name == "":
        return None
    if name not in AMP_DTYPES:
        raise ValueError(f"{key} is {name!r}; expected '' (fp32) or one of {sorted(AMP_DTYPES)}")
    return AMP_DTYPES[name]


def train_amp_dtype(cfg, device_type: str) -> Optional[torch.dtype]:
    """Training's autocast dtype of a yaml config: SOLVER.AMP.ENABLED and
    SOLVER.AMP.PRECISION through :func:`resolve_train_amp`."""
    return resolve_train_amp(cfg.SOLVER.AMP.ENABLED, cfg.SOLVER.AMP.PRECISION, device_type,
                             "SOLVER.AMP.PRECISION")


def cpu_has_bf16(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """Whether the CPU reports bf16 arithmetic (any of :data:`BF16_CPU_FLAGS` in the first
    ``flags`` or ``Features`` line of ``cpuinfo``); False where the file cannot be read.

    Without these units torch still runs bf16 (oneDNN converts to fp32 around each op), but
    slower than fp32."""
    try:
        with open(cpuinfo) as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    return any(flag in BF16_CPU_FLAGS for flag in line.split(":", 1)[1].split())
    except OSError:
        pass
    return False


def resolve_train_amp(enabled: bool, name: str, device_type: str, key: str) -> Optional[torch.dtype]:
    """Training's autocast dtype: None unless ``enabled``; ``name`` "auto" is float16 on CUDA
    (Detectron2's AMPTrainer default) and bfloat16 elsewhere (CPUs have bf16 arithmetic, fp16
    only as a storage type), except on a CPU without bf16 units (:func:`cpu_has_bf16`): None
    there, with a warning, as bf16 would be slower than fp32. "bfloat16" and "float16" are
    taken as asked; other names are a ValueError naming ``key``."""
    if not enabled:
        return None
    if name == "auto":
        if device_type == "cuda":
            return torch.float16
        if device_type == "cpu" and not cpu_has_bf16():
            logger.warning(
                f"{key} 'auto': this CPU reports no bf16 arithmetic (none of "
                f"{', '.join(BF16_CPU_FLAGS)} in /proc/cpuinfo), where bf16 autocast is slower "
                f"than fp32: training in fp32. Set {key} bfloat16 to train under bf16 anyway.")
            return None
        return torch.bfloat16
    if name not in AMP_DTYPES:
        raise ValueError(f"{key} is {name!r}; expected 'auto' or one of {sorted(AMP_DTYPES)}")
    return AMP_DTYPES[name]


def _device_types() -> list:
    return ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]


@contextlib.contextmanager
def fp32_region() -> Iterator[None]:
    """Autocast off (CPU and, where present, CUDA) inside: ops run in their inputs' dtype.
    Pair it with :func:`to_fp32` on the inputs."""
    with contextlib.ExitStack() as stack:
        for device_type in _device_types():
            stack.enter_context(torch.autocast(device_type=device_type, enabled=False))
        yield


def _autocast_on() -> bool:
    return any(torch.is_autocast_enabled(d) for d in _device_types())


def fp32_ops(fn: F) -> F:
    """Decorator: ``fn`` runs in :func:`fp32_region` (its tensor arguments are cast by ``fn``
    itself where they may be half precision). Without autocast it is ``fn`` as is, so that
    fp32 tracing and export see no autocast context."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        if not _autocast_on():
            return fn(*args, **kwargs)
        with fp32_region():
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def to_fp32(tree: Any) -> Any:
    """Every bf16 / fp16 tensor in a (nested list / tuple / dict) structure cast to fp32;
    other tensors and leaves unchanged (the cast is differentiable). A tensor found several
    times is cast once (SOLOv2's mask features appear on every level)."""
    done: dict = {}

    def cast(x: Any) -> Any:
        if isinstance(x, torch.Tensor) and x.dtype in (torch.float16, torch.bfloat16):
            if id(x) not in done:
                done[id(x)] = x.float()
            return done[id(x)]
        return x

    return tree_map(cast, tree)


def autocast_for(device_type: str, dtype: Optional[torch.dtype]) -> contextlib.AbstractContextManager:
    """``torch.autocast(device_type, dtype)``, or a no-op for ``dtype`` None (it leaves an
    enclosing autocast as it is)."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device_type, dtype=dtype)


def uses_channels_last(cfg) -> bool:
    """MODEL.SOLO.MEMORY_FORMAT: "channels_last", or "auto" with an AMP switch on
    (MODEL.SOLO.TEST.AMP or SOLVER.AMP.ENABLED)."""
    fmt = cfg.MODEL.SOLO.MEMORY_FORMAT
    if fmt == "auto":
        return bool(cfg.MODEL.SOLO.TEST.AMP) or bool(cfg.SOLVER.AMP.ENABLED)
    return fmt == "channels_last"
