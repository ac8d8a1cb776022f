"""Tiny real models and scans for the model-loading tests (imported by test modules)."""

from __future__ import annotations

import json
import textwrap

import numpy as np
import torch

from viewer.io.scan import Scan
from viewer.models.architectures import LesionSideNet

TINY_ARGS = {"spatial_dims": 3, "in_channels": 1, "num_classes": 3, "channels": [2, 4, 4, 4], "side_bins": 2}


def tiny_net(dims: int = 3, seed: int = 0) -> LesionSideNet:
    torch.manual_seed(seed)
    net = LesionSideNet(**{**TINY_ARGS, "spatial_dims": dims})
    with torch.no_grad():  # non-trivial BN statistics, so a wrong load would show
        for m in net.modules():
            if isinstance(m, (torch.nn.BatchNorm2d, torch.nn.BatchNorm3d)):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    return net.eval()


def card_toml(weights: str, dims: int = 3, extra: str = "", size: list[int] | None = None, args: dict | None = None) -> str:
    args = {**TINY_ARGS, "spatial_dims": dims, **(args or {})}
    arg_lines = "\n".join(f"{k} = {json.dumps(v)}" for k, v in args.items())
    size = size or ([16, 16, 16] if dims == 3 else [16, 16])
    return textwrap.dedent(
        f"""\
        name = "tiny"
        task = "classification"
        architecture = "viewer.models.architectures.LesionSideNet"
        weights = "{weights}"
        labels = ["none", "left", "right"]
        gradcam_layer = "features.3.conv"
        preset = "epsilon-plus"
        {extra}
        [architecture_args]
        """
    ) + arg_lines + textwrap.dedent(
        f"""

        [input]
        spatial_dims = {dims}
        channels = 1
        size = {json.dumps(size)}
        input_range = [0.0, 1.0]

        [input.normalize]
        method = "minmax"
        percentiles = [0.0, 100.0]
        """
    )


def make_scan(shape: tuple[int, int, int] = (20, 24, 18), spacing=(2.0, 2.0, 2.0), seed: int = 0) -> Scan:
    rng = np.random.default_rng(seed)
    data = rng.normal(100.0, 20.0, size=shape).astype(np.float32)
    affine = np.diag([*spacing, 1.0])
    return Scan(data, affine, spacing, modality="MR")
