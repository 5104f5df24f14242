"""Training steps under autocast: Detectron2's AMPTrainer on CUDA, :class:`AutocastTrainer`
on the CPU, chosen from ``SOLVER.AMP`` by :func:`build_step_trainer`.

Detectron2's AMPTrainer asserts CUDA and enters ``torch.cuda.amp.autocast``; the CPU needs
``torch.autocast("cpu", ...)``. The model keeps its losses in fp32 under either
(:mod:`solo_d2.layers.precision`).
"""
import logging
import time
from typing import Optional

import torch
from detectron2.config import CfgNode
from detectron2.engine import AMPTrainer, SimpleTrainer
from detectron2.utils.events import get_event_storage
from torch import nn

from ..layers.precision import train_amp_dtype

__all__ = ["AutocastTrainer", "build_step_trainer", "step_trainer"]

logger = logging.getLogger("detectron2")


class AutocastTrainer(AMPTrainer):
    """AMPTrainer's step (autocast forward, scaled backward, scaler step) under
    ``torch.autocast(device_type, precision)`` on any device type, the CPU included.

    Grad scaling is on for float16 only: bfloat16 has fp32's exponent range, its small
    gradients do not underflow.
    """

    def __init__(self, model: nn.Module, data_loader, optimizer, *, device_type: str,
                 precision: torch.dtype, **kwargs):
        scaler = torch.amp.GradScaler(device_type, enabled=precision == torch.float16)
        super().__init__(model, data_loader, optimizer, grad_scaler=scaler, precision=precision,
                         **kwargs)
        self.device_type = device_type

    def run_step(self) -> None:
        """AMPTrainer.run_step with ``torch.autocast(self.device_type, self.precision)``."""
        assert self.model.training, "[AutocastTrainer] model was changed to eval mode!"
        start = time.perf_counter()
        data = next(self._data_loader_iter)
        data_time = time.perf_counter() - start

        if self.zero_grad_before_forward:
            self.optimizer.zero_grad()
        with torch.autocast(device_type=self.device_type, dtype=self.precision):
            loss_dict = self.model(data)
            if isinstance(loss_dict, torch.Tensor):
                losses = loss_dict
                loss_dict = {"total_loss": loss_dict}
            else:
                losses = sum(loss_dict.values())
        if not self.zero_grad_before_forward:
            self.optimizer.zero_grad()
        self.grad_scaler.scale(losses).backward()
        if self.log_grad_scaler:
            get_event_storage().put_scalar("[metric]grad_scaler", self.grad_scaler.get_scale())
        self.after_backward()
        if self.async_write_metrics:
            self.concurrent_executor.submit(self._write_metrics, loss_dict, data_time,
                                            iter=self.iter)
        else:
            self._write_metrics(loss_dict, data_time)
        self.grad_scaler.step(self.optimizer)
        self.grad_scaler.update()


def build_step_trainer(cfg: CfgNode, model: nn.Module, data_loader, optimizer) -> SimpleTrainer:
    """The step trainer ``SOLVER.AMP`` asks for on ``MODEL.DEVICE``: SimpleTrainer without AMP,
    Detectron2's AMPTrainer for float16 on CUDA, :class:`AutocastTrainer` otherwise (bfloat16
    on CUDA, any precision on the CPU)."""
    device_type = torch.device(cfg.MODEL.DEVICE).type
    dtype = train_amp_dtype(cfg, device_type)
    if dtype is not None:
        logger.info(f"Training under {dtype} autocast on {device_type} (SOLVER.AMP)")
    return step_trainer(model, data_loader, optimizer, device_type, dtype)


def step_trainer(
    model: nn.Module, data_loader, optimizer, device_type: str, dtype: Optional[torch.dtype]
) -> SimpleTrainer:
    """The step trainer for autocast to ``dtype`` (None: off) on ``device_type``: see
    :func:`build_step_trainer`."""
    if dtype is None:
        return SimpleTrainer(model, data_loader, optimizer)
    if device_type == "cuda" and dtype == torch.float16:
        return AMPTrainer(model, data_loader, optimizer, precision=dtype)
    return AutocastTrainer(model, data_loader, optimizer, device_type=device_type,
                           precision=dtype)
