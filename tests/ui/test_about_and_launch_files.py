"""Help → About (version, licences, patent note), the window icon, and the list of files
offered when the desktop hands the program several at once."""

from __future__ import annotations

from pathlib import Path

import shiboken6
from PySide6 import QtWidgets

import viewer
from tests.ui.conftest import settle
from viewer.notices import PATENT_NOTE
from viewer.ui.app import make_app
from viewer.ui.pending_files import offer_files

DEMO = Path(viewer.__file__).resolve().parents[1] / "resources" / "demo"


def test_window_icon_has_every_rendered_size(qapp):
    make_app()
    icon = QtWidgets.QApplication.windowIcon()
    assert not icon.isNull()
    sizes = sorted({(s.width(), s.height()) for s in icon.availableSizes()})
    assert sizes == [(n, n) for n in (16, 22, 24, 32, 48, 64, 128, 256, 512)]
    assert QtWidgets.QApplication.desktopFileName() == "lrp-viewer"


def test_about_shows_version_licences_and_patent_note(make_main_window, qtbot):
    window = make_main_window()
    dialog = window.show_about()
    text = dialog.text.text()
    assert f"lrp-viewer {viewer.__version__}" in text
    assert PATENT_NOTE in text
    assert "LGPL" in text and "BSD 3-Clause" in text
    notices = dialog.show_notices()
    body = dialog.notices_view.toPlainText()
    assert body.startswith(f"Third-party software in lrp-viewer {viewer.__version__}")
    assert "PySide6" in body and "pydicom" in body
    notices.close()
    dialog.close()
    settle(qtbot)


def test_other_files_are_offered_and_open_one_by_one(make_main_window, qtbot):
    window = make_main_window()
    assert window.files.open_scan(str(DEMO / "case_left_dark.nii.gz"))
    others = [str(DEMO / "case_none.nii.gz"), str(DEMO / "case_right_small.nii.gz")]
    dialog = offer_files(window, others)
    assert dialog.isVisible() and dialog.paths() == others
    assert dialog.open_current()
    settle(qtbot)
    assert Path(window.session.scan_path).name == "case_none.nii.gz"
    assert dialog.paths() == others[1:]
    dialog.list.setCurrentRow(0)
    assert dialog.open_current()
    settle(qtbot)
    assert Path(window.session.scan_path).name == "case_right_small.nii.gz"
    settle(qtbot)  # the list closes (and deletes itself) once every file was opened
    assert not shiboken6.isValid(dialog)


def test_an_offered_file_that_fails_shows_the_error_dialog(make_main_window, qtbot, tmp_path):
    window = make_main_window()
    missing = tmp_path / "gone.nii.gz"
    dialog = offer_files(window, [str(missing)])
    assert not dialog.open_current()
    settle(qtbot)
    errors = [w for w in QtWidgets.QApplication.topLevelWidgets() if w.objectName() == "errorDialog" and w.isVisible()]
    assert len(errors) == 1 and "gone.nii.gz" in errors[0].informativeText()
    for w in errors:
        w.close()
    settle(qtbot)


def test_nothing_to_offer_shows_nothing(make_main_window):
    assert offer_files(make_main_window(), []) is None
