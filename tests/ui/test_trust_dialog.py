"""The app asks before a model runs code: File → Open model and sessions alike, No by default."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
import torch
from PySide6 import QtCore, QtWidgets
from safetensors.torch import save_file

from viewer.io.session_file import SessionState, save_session
from viewer.ui.trust_dialog import OPEN_ANYWAY


@pytest.fixture
def user_card(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A card whose architecture lives in the user's own package: it needs trust."""
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "trustnets.py").write_text(textwrap.dedent("""\
        import torch

        class Net(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.conv = torch.nn.Conv3d(1, 2, 3, padding=1)
                self.head = torch.nn.Linear(2, 2)

            def forward(self, x):
                return self.head(self.conv(x).mean(dim=(2, 3, 4)))
        """))
    monkeypatch.syspath_prepend(str(pkg))
    import trustnets

    save_file(trustnets.Net().state_dict(), str(tmp_path / "w.safetensors"))
    (tmp_path / "user.toml").write_text(textwrap.dedent("""\
        task = "classification"
        architecture = "trustnets.Net"
        weights = "w.safetensors"
        labels = ["a", "b"]
        [input]
        spatial_dims = 3
        """))
    return tmp_path / "user.toml"


def _answer_later(qtbot: Any, button_text: str, seen: list[str]) -> None:
    def answer() -> None:
        box = next((w for w in QtWidgets.QApplication.topLevelWidgets()
                    if w.objectName() == "trustDialog" and w.isVisible()), None)
        if box is None:
            QtCore.QTimer.singleShot(20, answer)
            return
        seen.append(box.text() + "\n" + box.informativeText())
        button = next(b for b in box.buttons() if b.text() == button_text)
        button.click()

    QtCore.QTimer.singleShot(20, answer)


def _close_errors() -> None:
    for w in QtWidgets.QApplication.topLevelWidgets():
        if w.objectName() == "errorDialog" and w.isVisible():
            w.close()


def test_open_model_asks_and_refuses_by_default(qtbot: Any, make_main_window: Any, user_card: Path) -> None:
    window = make_main_window()
    seen: list[str] = []
    _answer_later(qtbot, "Don't open", seen)
    assert window.files.open_model(str(user_card)) is False
    assert window.session.model is None
    assert str(user_card.absolute()) in seen[0] and "trustnets" in seen[0]
    _close_errors()
    _answer_later(qtbot, OPEN_ANYWAY, seen)
    assert window.files.open_model(str(user_card)) is True
    assert window.session.model is not None and window.session.model.kind == "card"


def test_session_naming_a_model_asks_the_same_question(qtbot: Any, make_main_window: Any, user_card: Path,
                                                       tmp_path: Path) -> None:
    window = make_main_window()
    save_session(SessionState(model_path=str(user_card)), tmp_path / "s.lrpv")
    seen: list[str] = []
    _answer_later(qtbot, OPEN_ANYWAY, seen)
    window.files.open_session(str(tmp_path / "s.lrpv"))
    assert len(seen) == 1 and str(user_card.absolute()) in seen[0]
    assert window.session.model is not None
    _close_errors()
