"""Every cell's mask logits of a level, computed as mmdet 3.3.0 computes them: the path the
lazy projection of the heads is held against (tests) and calibrated with (tools/benchmark.py).
Never used by the model itself."""
from typing import Tuple, Union

import torch
from torch import Tensor
from torch.nn import functional as F

from ..heads import DecoupledSOLOHead, SOLOHead, SOLOV2Head

__all__ = ["full_mask_logits", "solov2_kernel_preds"]


def solov2_kernel_preds(head: SOLOV2Head, mask_inputs: list, level: int) -> Tensor:
    """All dynamic kernels of a level, (N, kernel_out_channels, S, S), as mmdet's forward
    returns them (``conv_kernel`` over the whole grid)."""
    return head.conv_kernel(mask_inputs[level][0])


def full_mask_logits(
    head: Union[SOLOHead, DecoupledSOLOHead, SOLOV2Head], mask_inputs: list, level: int
) -> Union[Tensor, Tuple[Tensor, Tensor]]:
    """All mask logits of a level, in mmdet's order of operations.

    Returns:
        SOLOHead: (N, S^2, h, w) (upsample x2, then the 1x1 projection).
        Decoupled heads: the X and Y maps, each (N, S, h, w).
        SOLOV2Head: (N, S^2, h, w) (every cell's dynamic kernel on the mask features).
    """
    if isinstance(head, SOLOV2Head):
        kernels = solov2_kernel_preds(head, mask_inputs, level).flatten(2).transpose(1, 2)
        mask_feats = mask_inputs[level][1]
        k = head.dynamic_conv_size
        return torch.stack([
            F.conv2d(mask_feats[b : b + 1], kernels[b].reshape(len(kernels[b]), -1, k, k))[0]
            for b in range(len(kernels))
        ])
    if isinstance(head, DecoupledSOLOHead):
        fx, fy = mask_inputs[level]
        return head.conv_mask_list_x[level](fx), head.conv_mask_list_y[level](fy)
    if isinstance(head, SOLOHead):
        x = F.interpolate(mask_inputs[level], scale_factor=2, mode="bilinear")
        return head.conv_mask_list[level](x)
    raise TypeError(f"no full projection for {type(head).__name__}")
