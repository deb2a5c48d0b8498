"""Light, dark, or the system's look. Qt follows the system by itself; a forced choice asks the platform
(`setColorScheme`) and also sets an explicit Fusion palette, because not every platform theme (X11
without a desktop theme, the offscreen platform) can switch schemes. Fusion draws check box outlines and
its built-in close icons dark whatever the palette: `DarkStyle` lightens them on the dark one."""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QGuiApplication, QIcon, QPainter, QPalette, QPixmap
from PySide6.QtWidgets import QApplication, QProxyStyle, QStyle, QStyleFactory

_system: tuple[str, QPalette] | None = None

DARK = {
    QPalette.ColorRole.Window: "#2b2d30", QPalette.ColorRole.WindowText: "#e8e8e8",
    QPalette.ColorRole.Base: "#1f2023", QPalette.ColorRole.AlternateBase: "#33363a",
    QPalette.ColorRole.ToolTipBase: "#3c3f43", QPalette.ColorRole.ToolTipText: "#f0f0f0",
    QPalette.ColorRole.PlaceholderText: "#9a9da3", QPalette.ColorRole.Text: "#e8e8e8",
    QPalette.ColorRole.Button: "#35383c", QPalette.ColorRole.ButtonText: "#e8e8e8",
    QPalette.ColorRole.BrightText: "#ff6b6b", QPalette.ColorRole.Highlight: "#3d7bd9",
    QPalette.ColorRole.HighlightedText: "#ffffff", QPalette.ColorRole.Link: "#7aa7ff",
    QPalette.ColorRole.Light: "#4a4d52", QPalette.ColorRole.Midlight: "#3e4145", QPalette.ColorRole.Mid: "#5a5d62",
    QPalette.ColorRole.Dark: "#1a1b1d", QPalette.ColorRole.Shadow: "#000000",
}


# Fusion's outline is the Window colour darker(140): this one gives a #8b8e95 outline.
OUTLINE_WINDOW = "#c3c7d0"
LIGHT_ICONS = {QStyle.StandardPixmap.SP_DialogCloseButton, QStyle.StandardPixmap.SP_DialogCancelButton,
               QStyle.StandardPixmap.SP_DialogDiscardButton, QStyle.StandardPixmap.SP_TitleBarCloseButton,
               QStyle.StandardPixmap.SP_DockWidgetCloseButton, QStyle.StandardPixmap.SP_LineEditClearButton}


def _tinted(icon: QIcon, colour: QColor) -> QIcon:
    out = QIcon()
    for size in icon.availableSizes() or []:
        pm = QPixmap(icon.pixmap(size))
        painter = QPainter(pm)
        painter.setCompositionMode(QPainter.CompositionMode.CompositionMode_SourceIn)
        painter.fillRect(pm.rect(), colour)
        painter.end()
        out.addPixmap(pm)
    return out if not out.isNull() else icon


class DarkStyle(QProxyStyle):
    """Fusion with check box and radio button outlines, and close icons, that show on a dark palette."""

    def drawPrimitive(self, element, option, painter, widget=None):
        if element in (QStyle.PrimitiveElement.PE_IndicatorCheckBox, QStyle.PrimitiveElement.PE_IndicatorRadioButton):
            option = type(option)(option)
            pal = QPalette(option.palette)
            pal.setColor(QPalette.ColorRole.Window, QColor(OUTLINE_WINDOW))
            option.palette = pal
        super().drawPrimitive(element, option, painter, widget)

    def standardIcon(self, which, option=None, widget=None):
        icon = super().standardIcon(which, option, widget)
        if which in LIGHT_ICONS:
            return _tinted(icon, QColor(DARK[QPalette.ColorRole.ButtonText]))
        return icon


def _dark_palette() -> QPalette:
    pal = QPalette()
    for role, colour in DARK.items():
        pal.setColor(role, QColor(colour))
    for role in (QPalette.ColorRole.WindowText, QPalette.ColorRole.Text, QPalette.ColorRole.ButtonText):
        pal.setColor(QPalette.ColorGroup.Disabled, role, QColor("#7d8085"))
    return pal


def apply_theme(theme: str) -> None:
    """theme: "system", "light" or "dark"."""
    global _system
    app = QApplication.instance()
    if _system is None:
        _system = (app.style().name(), QPalette(app.palette()))
    hints = QGuiApplication.styleHints()
    if theme == "system":
        hints.unsetColorScheme()
        app.setStyle(QStyleFactory.create(_system[0]))
        app.setPalette(_system[1])
        return
    hints.setColorScheme(Qt.ColorScheme.Dark if theme == "dark" else Qt.ColorScheme.Light)
    fusion = QStyleFactory.create("Fusion")
    app.setStyle(DarkStyle(fusion) if theme == "dark" else fusion)
    app.setPalette(_dark_palette() if theme == "dark" else fusion.standardPalette())
