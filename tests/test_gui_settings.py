"""Settings and the first-run card as the user sees them: labels, tabs, model columns, where the model
runs and why, folder dialogs' start folder, the dark theme's contrast, and a card that does not jump."""
from __future__ import annotations

import json
import os

from PySide6.QtWidgets import QLabel

from gui import WAIT, close_window, open_window


def test_settings_labels_tabs_model_columns_and_the_gpu_choice(qtbot, library):
    from model.runtime import cuda_missing

    library.close()
    w = open_window(qtbot)
    dialog = w.open_settings()
    assert [dialog.tabs.tabText(i) for i in range(dialog.tabs.count())] == ["Library", "Model", "Personalize",
                                                                              "Appearance"]
    # Exclusions: the row's label and its button say the same thing.
    labels = [lb.text() for lb in dialog.tabs.widget(0).findChildren(QLabel)]
    assert "Exclusions" in labels and "Skip" not in labels
    assert dialog.apply_exclusions.text() == "Apply exclusions"
    # The theme has a tab of its own.
    assert dialog.tabs.widget(3).isAncestorOf(dialog.theme) and not dialog.tabs.widget(0).isAncestorOf(dialog.theme)
    # Every model column has a header; the architecture is the model's, not its source folder's name.
    header = dialog.models.headerItem()
    assert [header.text(i) for i in range(dialog.models.columnCount())] == ["Model", "Architecture", "Size", "Status"]
    qtbot.waitUntil(lambda: dialog.models.topLevelItemCount() == 1, timeout=WAIT)
    row = dialog.models.topLevelItem(0)
    assert row.text(1) == "glimpse-tiny" and row.text(3) == "active"
    # GPU (CUDA) can be chosen only where ONNX Runtime can run on it; else its tooltip says why.
    missing = cuda_missing()
    cuda = dialog.provider.model().item(dialog.provider.findData("cuda"))
    qtbot.waitUntil(lambda: dialog.cuda_problem != "not checked yet", timeout=WAIT)
    qtbot.waitUntil(lambda: "CPU" in dialog.in_use.text(), timeout=WAIT)
    assert cuda.isEnabled() == (missing is None)
    if missing is not None:  # this machine: onnxruntime-gpu lists CUDA, but there is no driver
        assert cuda.toolTip() == f"Not available: {missing}" and missing in dialog.provider.toolTip()
        # Chosen anyway (a setting from another computer): "In use" says why the CPU runs it.
        dialog.provider.setCurrentIndex(dialog.provider.findData("cuda"))
        assert dialog.in_use.text() == f"CPU — {missing}"
        dialog.provider.setCurrentIndex(dialog.provider.findData("cpu"))
        assert dialog.in_use.text() == "CPU"
    # A refresh without providers (Personalize asks for one) keeps what "In use" says.
    w.backend.refresh_models()
    qtbot.wait(300)
    assert dialog.in_use.text().startswith("CPU")
    dialog.close()
    close_window(qtbot, w)


def test_a_model_imported_under_its_folder_name_shows_its_architecture(store_copy, tiny_stored):
    """Imports made before the architecture was read from the config kept the folder's name."""
    from model.store import describe_architecture

    folder = store_copy.root / tiny_stored.id
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["architecture"] == "glimpse-tiny"  # new imports find it among open_clip's configs
    manifest["architecture"] = os.path.basename(manifest["lineage"]["path"])
    (folder / "manifest.json").write_text(json.dumps(manifest))
    assert store_copy.get(tiny_stored.id).architecture == "ViT (64 wide, 2 layers, patch 16)"
    assert describe_architecture({"vision_cfg": {"width": 768, "layers": 12, "patch_size": 32}}) == "ViT-B-32"
    assert describe_architecture({"vision_cfg": {"timm_model_name": "convnext_base"},
                                  "text_cfg": {"hf_model_name": "xlm-roberta-base"}}) == "xlm-roberta-base-convnext_base"


def test_folder_dialogs_open_in_the_pictures_folder(qapp, tmp_path, monkeypatch):
    from app.gui.library_panel import start_folder

    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    assert start_folder() == str(tmp_path)  # no Pictures folder: home
    (tmp_path / "Pictures").mkdir()
    assert start_folder() == str(tmp_path / "Pictures")


def test_dark_theme_check_boxes_and_close_icon_stand_out(qtbot):
    from PySide6.QtWidgets import QApplication, QCheckBox, QStyle, QStyleOptionButton

    from app.gui.theme import apply_theme

    def lightness_range(box: QCheckBox) -> int:
        """The most the empty indicator's pixels differ from the window behind it (0-255)."""
        img = box.grab().toImage()
        opt = QStyleOptionButton()
        box.initStyleOption(opt)
        r = box.style().subElementRect(QStyle.SubElement.SE_CheckBoxIndicator, opt, box)
        window = box.palette().window().color().lightness()
        return max(abs(img.pixelColor(x, y).lightness() - window)
                   for x in range(r.left(), r.right() + 1) for y in range(r.top(), r.bottom() + 1))

    apply_theme("dark")
    try:
        box = QCheckBox("Watch the folders")
        qtbot.addWidget(box)
        box.resize(200, 30)
        box.show()
        assert lightness_range(box) >= 80  # Fusion's own outline differs by 15
        style = QApplication.style()
        icon = style.standardIcon(QStyle.StandardPixmap.SP_DialogCloseButton).pixmap(16).toImage()
        ink = [icon.pixelColor(x, y).lightness() for x in range(icon.width()) for y in range(icon.height())
               if icon.pixelColor(x, y).alpha() > 128]
        button = QApplication.palette().button().color().lightness()
        assert ink and sum(ink) / len(ink) - button >= 120  # a light cross on a dark button (it was darker)
    finally:
        apply_theme("system")


def test_the_welcome_card_keeps_its_size(qtbot, tmp_path):
    from app.gui.backend import Backend
    from app.gui.welcome import Welcome
    from app.library.status import FolderStatus, LibraryStatus

    backend = Backend()
    welcome = Welcome(backend)
    qtbot.addWidget(welcome)
    welcome.resize(1200, 800)
    welcome.show()
    qtbot.waitExposed(welcome)

    def shown() -> tuple:
        qtbot.wait(50)
        return welcome.card.geometry().getRect()

    first = shown()
    long = "/home/someone/Pictures/" + "a very long album name " * 6
    welcome.getter._set_busy(True)
    welcome.getter.note.setText("Downloading vit-b-32-datacomp: 120 MB of 605 MB…")
    assert shown() == first
    welcome.getter._set_busy(False)
    welcome.getter.note.setText("⚠ Glimpse cannot reach the Hugging Face Hub (127.0.0.1:9: Connection refused). "
                                "To use a model without internet, download its open_clip folder "
                                "(open_clip_config.json + open_clip_model.safetensors) on another machine, copy "
                                "it here and run `glimpse models import PATH`.")
    assert shown() == first
    welcome.set_status(LibraryStatus(folders={str(tmp_path / "Holiday"): FolderStatus(0, 0)}))
    assert shown() == first
    folders = {f"{long}{i}": FolderStatus(0, 0) for i in range(5)}
    welcome.set_status(LibraryStatus(folders=folders, has_model=True, active_model="vit-b-32-datacomp"))
    assert shown() == first
    assert welcome.folders_note.text().endswith("and 3 more") and welcome.start.isEnabled()
    backend.close()
