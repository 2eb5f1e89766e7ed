"""CenterNet's output heads, built from a config's head spec (torch).

Each head of ``config.head_spec()`` becomes CenterNet's head: a 3x3 convolution
to ``head_conv`` channels, a ReLU and a 1x1 convolution to the head's channels
(``head_conv=0``: the 1x1 convolution alone), with CenterNet's initialisation:
the last bias of a heatmap head at ``HeadSpec.init_bias`` (-2.19, so every pixel
starts at p = 0.1 under the focal loss), every other bias 0 and the other
heads' weights ``normal(0, 0.001)``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["CenterNetHeads", "build_heads"]


class CenterNetHeads(nn.ModuleDict):
    """The heads of a config as an ``nn.ModuleDict``; ``forward(features)`` returns the dict of
    raw outputs (logits for heatmaps) the config's loss and decoder take."""

    def forward(self, features: Tensor) -> dict[str, Tensor]:  # type: ignore[override]
        return {name: head(features) for name, head in self.items()}


def build_heads(config: Any, in_channels: int, head_conv: int = 256) -> CenterNetHeads:
    """CenterNet's heads for ``config`` (any task's config) on ``in_channels`` feature maps
    at the output resolution.  ``head_conv``: the hidden width (CenterNet: 256 for DLA and
    ResNet backbones, 64 for tiny ones; 0: a single 1x1 convolution per head)."""
    if isinstance(in_channels, bool) or not isinstance(in_channels, int) or in_channels < 1:
        raise ValueError(f"in_channels={in_channels!r}: expected an int >= 1")
    if isinstance(head_conv, bool) or not isinstance(head_conv, int) or head_conv < 0:
        raise ValueError(f"head_conv={head_conv!r}: expected an int >= 0 (0: no hidden layer)")
    heads = CenterNetHeads()
    for name, spec in config.head_spec().items():
        if head_conv:
            layers: list[nn.Module] = [nn.Conv2d(in_channels, head_conv, 3, padding=1),
                                       nn.ReLU(inplace=True),
                                       nn.Conv2d(head_conv, spec.channels, 1)]
        else:
            layers = [nn.Conv2d(in_channels, spec.channels, 1)]
        head = nn.Sequential(*layers)
        with torch.no_grad():
            for m in head:
                if isinstance(m, nn.Conv2d):
                    if spec.kind != "heatmap":
                        nn.init.normal_(m.weight, std=0.001)
                    nn.init.zeros_(m.bias)
            head[-1].bias.fill_(spec.init_bias)
        heads[name] = head
    return heads
