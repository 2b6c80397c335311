"""A TCP proxy on 127.0.0.1 that a test can cut and restore: the WAN between a store's broker
and the centre.  `cut()` drops every connection at once and refuses new ones (they are
accepted and closed), as a line that went down; `restore()` lets them through again."""

from __future__ import annotations

import contextlib
import socket
import threading

from tests.broker import free_port


class TcpProxy:
    """127.0.0.1:`port` → 127.0.0.1:`target`."""

    host = "127.0.0.1"

    def __init__(self, target: int) -> None:
        self.target = target
        self.port = free_port()
        self._server = socket.create_server((self.host, self.port))
        self._lock = threading.Lock()
        self._open: list[socket.socket] = []
        self._up = True
        self._closed = False
        threading.Thread(target=self._accept, name="proxy-accept", daemon=True).start()

    def cut(self) -> None:
        with self._lock:
            self._up = False
            doomed, self._open = self._open, []
        for sock in doomed:
            _close(sock)

    def restore(self) -> None:
        with self._lock:
            self._up = True

    def close(self) -> None:
        with self._lock:
            self._closed = True
        self.cut()
        _close(self._server)

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            with self._lock:
                up = self._up
            if not up:
                _close(client)
                continue
            try:
                upstream = socket.create_connection((self.host, self.target), timeout=5)
            except OSError:
                _close(client)
                continue
            upstream.settimeout(None)
            with self._lock:
                keep = self._up and not self._closed  # cut or closed while connecting
                if keep:
                    self._open += [client, upstream]
            if not keep:
                _close(client)
                _close(upstream)
                continue
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pipe, args=(a, b), daemon=True).start()


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := src.recv(65536):
            dst.sendall(data)
    _close(src)
    _close(dst)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()
