"""A model with attention starts with the transformer LRP preset (AttnLRP)."""

from __future__ import annotations

import pytest
from torch import nn

from tests.session.conftest import FakeModel
from viewer.session import Session


class TinyAttentionNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(4, 2, batch_first=True)
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        h = x.flatten(2).transpose(1, 2).expand(-1, -1, 4)
        return self.fc(self.attn(h, h, h, need_weights=False)[0].mean(1))


@pytest.mark.parametrize("stated,attention,want", [
    ("epsilon-plus", False, "epsilon-plus"),
    ("epsilon-plus", True, "attn-lrp"),  # the card default (or epsilon-plus) on a transformer
    ("epsilon-gamma-box", True, "epsilon-gamma-box"),  # any other choice of the card wins
])
def test_default_lrp_preset_follows_the_architecture(stated, attention, want):
    model = FakeModel()
    model.preset = stated
    if attention:
        model.module = TinyAttentionNet().eval()
    s = Session()
    try:
        s.set_model(model)
        assert s.default_params("lrp")["preset"] == want
        assert s.panel(0).params["preset"] == want
    finally:
        s.close()
