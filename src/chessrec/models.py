"""Square classifiers in plain torch (no torchvision): strided CNN, tiny CNN, ResNet-18-like, MobileNet-like.

Every architecture maps a batch of square crops (B, 3, H, W) plus optional per-square inputs
(square colour, rank, file) to class logits.  The head is either one 13-way layer or the
two-stage factorisation p(piece) = p(occupied) * p(piece | occupied), trained jointly.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from chessrec import registry
from chessrec.labels import EMPTY, NUM_CLASSES

SQUARE_INPUTS = 3  # square colour (light=1), rank/7, file/7
assert EMPTY == NUM_CLASSES - 1, "two-stage head assumes the empty class comes last"


def square_inputs(squares: torch.Tensor) -> torch.Tensor:
    """Per-square extra inputs from python-chess square indices (a1 = 0)."""
    rank = torch.div(squares, 8, rounding_mode="floor")
    file = squares % 8
    light = ((rank + file) % 2).float()
    return torch.stack([light, rank.float() / 7.0, file.float() / 7.0], dim=1)


def _conv_bn(c_in: int, c_out: int, stride: int = 1, act: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, 3, stride, padding=1, bias=False), nn.BatchNorm2d(c_out)]
    if act:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def tiny_cnn(width: int) -> tuple[nn.Module, int]:
    """Three conv blocks with pooling: the cheapest baseline.

    It pools to a 4 x 2 grid rather than to one value per channel: where in the crop a feature
    sits (a crown on top, a wide base below) is what tells a queen from a bishop, and keeping it
    raised piece accuracy from 43% to 56% at equal cost in a 4-epoch probe on the default data.
    """
    w = width
    body = nn.Sequential(
        _conv_bn(3, w), nn.MaxPool2d(2),
        _conv_bn(w, 2 * w), nn.MaxPool2d(2),
        _conv_bn(2 * w, 4 * w), _conv_bn(4 * w, 4 * w),
        nn.AdaptiveAvgPool2d((4, 2)), nn.Flatten(),
    )
    return body, 4 * w * 8


def strided_cnn(width: int) -> tuple[nn.Module, int]:
    """Three stages of a stride-2 3x3 conv and a 3x3 conv, then the same 4 x 2 pooling as ``tiny_cnn``.

    Made for CPUs: striding instead of max-pooling halves the resolution where it costs least
    (max-pool forward and backward took a third of ``tiny_cnn``'s training time here), so the
    same budget trains on crops with 2.8x the pixels (80 x 40 against 48 x 24) at about
    ``tiny_cnn``'s speed on the small ones (docs/correctness.md; a whole training step is timed by
    ``benchmarks/bench_training.py``).
    """
    w = width
    body = nn.Sequential(
        _conv_bn(3, w, stride=2), _conv_bn(w, w),
        _conv_bn(w, 2 * w, stride=2), _conv_bn(2 * w, 2 * w),
        _conv_bn(2 * w, 4 * w, stride=2), _conv_bn(4 * w, 4 * w),
        nn.AdaptiveAvgPool2d((4, 2)), nn.Flatten(),
    )
    return body, 4 * w * 8


class _BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.conv1 = _conv_bn(c_in, c_out, stride)
        self.conv2 = _conv_bn(c_out, c_out, act=False)
        # The projection subsamples, then runs a stride-1 1x1 conv: the same function and weights as a
        # stride-2 1x1 conv, whose channels-last backward on CPU corrupts the heap for some batch sizes
        # (torch 2.13: 8 -> 16 channels, batch 65; tests/test_models.py keeps a probe of it).
        self.stride = stride
        self.shortcut = (
            nn.Identity() if stride == 1 and c_in == c_out
            else nn.Sequential(nn.Conv2d(c_in, c_out, 1, bias=False), nn.BatchNorm2d(c_out))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = x[:, :, ::self.stride, ::self.stride] if self.stride > 1 else x
        return F.relu(self.conv2(self.conv1(x)) + self.shortcut(skip))


def resnet18(width: int) -> tuple[nn.Module, int]:
    """ResNet-18 layout (4 stages of 2 basic blocks); a strided 3x3 stem suits 24-64 px crops."""
    chans = [width, 2 * width, 4 * width, 8 * width]
    layers: list[nn.Module] = [_conv_bn(3, chans[0], stride=2)]
    c_in = chans[0]
    for i, c in enumerate(chans):
        stride = 1 if i == 0 else 2
        layers += [_BasicBlock(c_in, c, stride), _BasicBlock(c, c, 1)]
        c_in = c
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    return nn.Sequential(*layers), c_in


class _InvertedResidual(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int, expand: int):
        super().__init__()
        hidden = c_in * expand
        self.block = nn.Sequential(
            nn.Conv2d(c_in, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6(inplace=True),
            nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False), nn.BatchNorm2d(hidden),
            nn.ReLU6(inplace=True),
            nn.Conv2d(hidden, c_out, 1, bias=False), nn.BatchNorm2d(c_out),
        )
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block(x)
        return x + out if self.residual else out


def mobilenet(width: int) -> tuple[nn.Module, int]:
    """MobileNetV2-style inverted residuals with depthwise convolutions (few FLOPs per crop)."""
    w = width
    # (expand, c_out, repeats, stride)
    settings = [(1, w, 1, 1), (4, int(1.5 * w), 2, 2), (4, 2 * w, 2, 2), (4, 4 * w, 2, 1)]
    layers: list[nn.Module] = [_conv_bn(3, w, stride=2)]
    c_in = w
    for expand, c_out, repeats, stride in settings:
        for i in range(repeats):
            layers.append(_InvertedResidual(c_in, c_out, stride if i == 0 else 1, expand))
            c_in = c_out
    layers += [nn.Conv2d(c_in, 8 * w, 1, bias=False), nn.BatchNorm2d(8 * w), nn.ReLU6(inplace=True),
               nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    return nn.Sequential(*layers), 8 * w


ARCHITECTURES = dict(zip(registry.ARCHITECTURES, (tiny_cnn, strided_cnn, resnet18, mobilenet), strict=True))


class SquareClassifier(nn.Module):
    """Backbone + head returning per-class log-probabilities (B, 13)."""

    def __init__(self, name: str, width: int, dropout: float, head: str, extra_inputs: bool,
                 num_classes: int = NUM_CLASSES):
        super().__init__()
        self.backbone, features = ARCHITECTURES[name](width)
        self.extra_inputs = extra_inputs
        in_head = features + (SQUARE_INPUTS if extra_inputs else 0)
        self.two_stage = head == "two_stage"
        if self.two_stage and num_classes != NUM_CLASSES:
            raise ValueError(f"the two-stage head factorises the {NUM_CLASSES} board classes, not {num_classes}")
        outputs = 2 + (NUM_CLASSES - 1) if self.two_stage else num_classes
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(in_head, outputs))

    def forward(self, crops: torch.Tensor, squares: torch.Tensor) -> torch.Tensor:
        x = self.backbone(crops)
        if self.extra_inputs:
            x = torch.cat([x, square_inputs(squares)], dim=1)
        logits = self.head(x)
        if not self.two_stage:
            return F.log_softmax(logits, dim=1)
        occupancy = F.log_softmax(logits[:, :2], dim=1)  # [empty, occupied]
        piece = F.log_softmax(logits[:, 2:], dim=1) + occupancy[:, 1:2]
        # class order: the 12 pieces, then empty last
        return torch.cat([piece, occupancy[:, :1]], dim=1)
