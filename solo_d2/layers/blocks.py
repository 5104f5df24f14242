"""Small building blocks shared by the SOLO-family heads."""
import functools
from typing import Callable, List, Optional

import torch
import torch.utils.checkpoint as torch_checkpoint
from detectron2.layers import Conv2d, get_norm
from torch import Tensor, nn
from torch.nn import functional as F
from torchvision.ops import deform_conv2d

from .precision import fp32_region, to_fp32

__all__ = [
    "coord_features",
    "DeformConv",
    "ConvNormAct",
    "conv_norm_relu",
    "conv_tower",
    "run_tower",
    "selective_checkpoint_available",
]


def coord_features(x: Tensor) -> Tensor:
    """CoordConv channels for a feature map.

    Args:
        x: (N, C, H, W) features; only its shape, dtype and device are used.
    Returns:
        (N, 2, H, W): channel 0 is x in [-1, 1] along W, channel 1 is y in [-1, 1] along H.
    """
    n, _, h, w = x.shape
    xs = torch.linspace(-1, 1, w, device=x.device, dtype=x.dtype)
    ys = torch.linspace(-1, 1, h, device=x.device, dtype=x.dtype)
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([xx, yy]).expand(n, 2, h, w)


class _NormAct:
    """The second step of a conv + norm + activation layer, apart from the first (``conv``),
    for layers that hold ``norm`` and ``activation`` (either may be None)."""

    def norm_act(self, x: Tensor) -> Tensor:
        """Norm then activation (each if set), applied to :meth:`conv`'s output."""
        if self.norm is not None:
            x = self.norm(x)
        if self.activation is not None:
            x = self.activation(x)
        return x


class DeformConv(_NormAct, nn.Module):
    """k x k deformable convolution with its own offset predictor (torchvision's op, CPU and
    GPU); k odd, padding k // 2.

    ``modulated=False`` is DCNv1 (mmcv ``DCN``), ``True`` is DCNv2 (mmcv ``DCNv2``): the offset
    conv then also predicts a sigmoid mask. Parameter names follow mmcv's ``*Pack`` modules
    (``weight``, ``bias``, ``conv_offset.*``) so converted checkpoints load as they are.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        *,
        modulated: bool,
        bias: bool,
        norm: Optional[nn.Module] = None,
        activation: Optional[Callable[[Tensor], Tensor]] = None,
    ) -> None:
        super().__init__()
        k = kernel_size
        self.modulated = modulated
        self.padding = k // 2
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, k, k))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.conv_offset = nn.Conv2d(
            in_channels, (3 if modulated else 2) * k * k, k, padding=self.padding
        )
        nn.init.zeros_(self.conv_offset.weight)
        nn.init.zeros_(self.conv_offset.bias)
        nn.init.normal_(self.weight, std=0.01)
        self.norm = norm
        self.activation = activation

    def conv(self, x: Tensor) -> Tensor:
        """The deformable convolution alone, offsets included:
        (N, C_in, H, W) -> (N, C_out, H, W)."""
        out = self.conv_offset(x)
        mask = None
        if self.modulated:
            o1, o2, m = torch.chunk(out, 3, dim=1)
            offset = torch.cat([o1, o2], dim=1)
            mask = m.sigmoid()
        else:
            offset = out
        p = self.padding
        if torch.is_autocast_enabled(x.device.type):
            # torchvision's CPU kernel has no bf16 / fp16 and the op no CPU autocast rule (on
            # CUDA its rule also runs it in fp32): the offsets' conv stays in low precision
            with fp32_region():
                x, offset, mask = to_fp32((x, offset, mask))
                return deform_conv2d(x, offset, self.weight, self.bias, padding=(p, p), mask=mask)
        return deform_conv2d(x, offset, self.weight, self.bias, padding=(p, p), mask=mask)

    def forward(self, x: Tensor) -> Tensor:
        return self.norm_act(self.conv(x))


class ConvNormAct(_NormAct, Conv2d):
    """Detectron2's :class:`~detectron2.layers.Conv2d` (same parameters and state-dict keys)
    with its two steps exposed, as :class:`DeformConv` has them: :meth:`conv` and
    :meth:`norm_act`. :func:`run_tower` needs them apart to recompute only the cheap one."""

    def conv(self, x: Tensor) -> Tensor:
        """The convolution alone: (N, C_in, H, W) -> (N, C_out, H', W')."""
        return self._conv_forward(x, self.weight, self.bias)


def _relu_inplace(x: Tensor) -> Tensor:
    # In place: no norm's or conv's backward reads the tensor it overwrites, so this saves
    # one allocation per layer (autograd would raise if that ever stopped holding).
    return F.relu_(x)


def conv_norm_relu(
    in_channels: int, out_channels: int, norm: str, kernel_size: int = 3, dcn_type: str = ""
) -> nn.Module:
    """The one conv + norm + ReLU factory of the heads: any odd kernel size, plain, ``DCN`` or
    ``DCNv2``; bias only without a norm, as mmcv's ConvModule."""
    if kernel_size % 2 != 1:
        raise ValueError(f"convs here have odd kernel sizes (padding k // 2), got {kernel_size}")
    if dcn_type:
        if dcn_type not in ("DCN", "DCNv2"):
            raise ValueError(f"Unknown DCN type {dcn_type!r}; expected '', 'DCN' or 'DCNv2'")
        return DeformConv(
            in_channels,
            out_channels,
            kernel_size,
            modulated=dcn_type == "DCNv2",
            bias=not norm,
            norm=get_norm(norm, out_channels),
            activation=_relu_inplace,
        )
    return ConvNormAct(
        in_channels,
        out_channels,
        kernel_size,
        padding=kernel_size // 2,
        bias=not norm,
        norm=get_norm(norm, out_channels),
        activation=_relu_inplace,
    )


def conv_tower(
    in_channels: int,
    feat_channels: int,
    num_convs: int,
    norm: str,
    dcn_type: str = "",
    dcn_layers: Optional[List[int]] = None,
) -> nn.Sequential:
    """``num_convs`` stacked 3x3 conv + norm + ReLU; ``dcn_layers`` are deformable."""
    dcn_layers = dcn_layers or []
    return nn.Sequential(
        *[
            conv_norm_relu(
                in_channels if i == 0 else feat_channels,
                feat_channels,
                norm,
                dcn_type=dcn_type if i in dcn_layers else "",
            )
            for i in range(num_convs)
        ]
    )


# Convolution outputs are kept for backward as usual; everything else in a recomputed
# segment (norm, ReLU, DCNv2's mask sigmoid) is recomputed from them.
_TOWER_SAVED_OPS = {torch.ops.aten.convolution.default, torch.ops.torchvision.deform_conv2d.default}


def selective_checkpoint_available() -> bool:
    """Whether this torch has selective activation checkpointing (torch >= 2.4), which
    :func:`run_tower`'s recomputation needs."""
    return hasattr(torch_checkpoint, "create_selective_checkpoint_contexts")


def _save_conv_outputs_only(ctx, op, *args, **kwargs) -> "torch_checkpoint.CheckpointPolicy":
    if op in _TOWER_SAVED_OPS:
        return torch_checkpoint.CheckpointPolicy.MUST_SAVE
    return torch_checkpoint.CheckpointPolicy.PREFER_RECOMPUTE


def _recompute_is_exact(tower: nn.Sequential) -> bool:
    """Recomputing a norm must have no side effect: a BatchNorm that updates its running
    statistics (training mode) would update them twice."""
    return not any(
        isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training and m.track_running_stats
        for m in tower.modules()
    )


def _norm_act_then_conv(layer: nn.Module, next_layer: nn.Module, x: Tensor) -> Tensor:
    return next_layer.conv(layer.norm_act(x))


def run_tower(tower: nn.Sequential, x: Tensor, recompute_norm_act: bool = False) -> Tensor:
    """Apply a :func:`conv_tower` to ``x``: (N, C_in, H, W) -> (N, C, H, W).

    By default autograd keeps two full-size tensors per layer for backward: the conv output
    (the norm's input) and the norm + ReLU output (the next conv's input). With
    ``recompute_norm_act`` (and autograd recording) it keeps only the conv outputs: the
    tower runs as segments [norm + ReLU of layer k, conv of layer k+1], each checkpointed on
    its input (layer k's conv output) with the conv's own output cached, so backward
    recomputes one norm + ReLU per layer, one segment at a time, and never a convolution.
    Same outputs and gradients.

    A tower whose BatchNorms update running statistics (training mode) runs without
    recomputation, as recomputing would update them twice; so does one under autocast, where
    the selective recomputation fails on the autocast weight casts (torch 2.14: "_to_copy
    encountered during backward but not found in storage"), and whose activations are half
    the size anyway.
    """
    if not (recompute_norm_act and torch.is_grad_enabled() and _recompute_is_exact(tower)
            and not torch.is_autocast_enabled(x.device.type)):
        return tower(x)
    layers = list(tower)
    x = layers[0].conv(x)
    for layer, next_layer in zip(layers[:-1], layers[1:]):
        x = torch_checkpoint.checkpoint(
            _norm_act_then_conv,
            layer,
            next_layer,
            x,
            use_reentrant=False,
            context_fn=functools.partial(
                torch_checkpoint.create_selective_checkpoint_contexts, _save_conv_outputs_only
            ),
        )
    # The last norm + ReLU output is the tower's output, which its consumers keep anyway.
    return layers[-1].norm_act(x)
