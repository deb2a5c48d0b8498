"""One window per library: a second launch brings the first window forward and exits.

Qt's own single-application pattern (as QtSingleApplication and KDBusService do it, without D-Bus):
the first window listens on a `QLocalServer` named after the library's data folder, so two libraries
(two GLIMPSE_HOMEs) can still be open at once. A second `glimpse` connects, says "show", waits for
"ok" and exits. A local socket, not a lock file: a window that crashed leaves a name nobody answers on,
which the next launch removes and takes over. The catalog's writer lock (`app.library.lock`) still
keeps any other writer, such as `glimpse index`, from writing beside the window.
"""
from __future__ import annotations

import getpass
import hashlib
from pathlib import Path

from PySide6.QtCore import QObject, Signal
from PySide6.QtNetwork import QAbstractSocket, QLocalServer, QLocalSocket

TIMEOUT_MS = 1000


def server_name(data_folder: Path) -> str:
    """The socket's name for one library and user (short: Unix socket paths are limited to ~100 bytes)."""
    key = f"{getpass.getuser()}\0{Path(data_folder).expanduser().resolve()}"
    return "glimpse-" + hashlib.sha1(key.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def forward(name: str, timeout_ms: int = TIMEOUT_MS) -> bool:
    """Ask the window listening on `name` to come forward; True when it answered."""
    socket = QLocalSocket()
    socket.connectToServer(name)
    if not socket.waitForConnected(timeout_ms):
        return False
    socket.write(b"show\n")
    socket.flush()
    answered = False
    while socket.waitForReadyRead(timeout_ms):
        if b"ok" in bytes(socket.readAll().data()):
            answered = True
            break
    socket.disconnectFromServer()
    return answered


class Instance(QObject):
    """The first window's end: `activated` is emitted when another launch asks for the window."""

    activated = Signal()

    def __init__(self, name: str, parent: QObject | None = None):
        super().__init__(parent)
        self.name = name
        self.server = QLocalServer(self)
        self.server.setSocketOptions(QLocalServer.SocketOption.UserAccessOption)
        self.server.newConnection.connect(self._accept)

    def listen(self) -> bool:
        """Take the name; False when another window holds it (and answered). A stale name is removed."""
        if self.server.listen(self.name):
            return True
        if self.server.serverError() == QAbstractSocket.SocketError.AddressInUseError and forward(self.name):
            return False
        QLocalServer.removeServer(self.name)  # left by a window that crashed
        return self.server.listen(self.name)

    def _accept(self) -> None:
        while self.server.hasPendingConnections():
            socket = self.server.nextPendingConnection()  # a child of the server, deleted with it
            socket.readyRead.connect(self._read)
            socket.disconnected.connect(socket.deleteLater)
            if socket.bytesAvailable():
                self._answer(socket)

    def _read(self) -> None:
        socket = self.sender()
        if isinstance(socket, QLocalSocket):
            self._answer(socket)

    def _answer(self, socket: QLocalSocket) -> None:
        if b"show" in bytes(socket.readAll().data()):
            socket.write(b"ok\n")
            socket.flush()
            self.activated.emit()

    def close(self) -> None:
        self.server.close()
