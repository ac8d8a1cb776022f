"""Fixtures for model-loading tests: tiny real models written to disk as cards, files, bundles."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest
from safetensors.torch import save_file

from tiny_models import card_toml, tiny_net


@pytest.fixture
def tiny_card(tmp_path: Path) -> Path:
    """A TOML card + safetensors weights for a tiny 3D LesionSideNet."""
    net = tiny_net()
    save_file(net.state_dict(), str(tmp_path / "tiny.safetensors"))
    (tmp_path / "tiny.toml").write_text(card_toml("tiny.safetensors"))
    return tmp_path / "tiny.toml"


@pytest.fixture
def user_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """An importable package outside the allow-list, like a user's own model code."""
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "usernets.py").write_text(
        textwrap.dedent(
            """\
            import torch
            from torch import nn

            class UserNet(nn.Module):
                def __init__(self, width=4):
                    super().__init__()
                    self.conv = nn.Conv3d(1, width, 3, padding=1)
                    self.head = nn.Linear(width, 2)

                def forward(self, x):
                    return self.head(self.conv(x).mean(dim=(2, 3, 4)))
            """
        )
    )
    monkeypatch.syspath_prepend(str(pkg))
    yield "usernets"
    sys.modules.pop("usernets", None)


