"""A TCP proxy for the stream tests: forwards to a server's port, can cut connections that
stay idle (as load balancers and NAT gateways do), cut every open connection at once,
and be pointed at another server (a replica taking over from one that died)."""

from __future__ import annotations

import contextlib
import select
import socket
import threading
import time


class CuttingProxy:
    """Listens on a port of its own; `url` is what clients use instead of the server's."""

    def __init__(self, upstream_port: int, *, idle_cut: float | None = None) -> None:
        self.upstream_port = upstream_port
        self.idle_cut = idle_cut
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(256)
        self.port: int = self.listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.accepted = 0  # connections taken in
        self.cut = 0  # connections this proxy closed for idleness
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def point_to(self, port: int) -> None:
        """Send new connections to another port (open ones stay where they are)."""
        self.upstream_port = port

    def cut_all(self) -> None:
        """Close every open connection, both ways, at once."""
        with self._lock:
            for sock in list(self._open):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._closed = True
        self.cut_all()
        self.listener.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            self.accepted += 1
            threading.Thread(target=self._pipe, args=(client,), daemon=True).start()

    def _pipe(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=5)
        except OSError:
            client.close()
            return
        with self._lock:
            self._open.update((client, upstream))
        last = time.monotonic()
        try:
            while not self._closed:
                ready, _, _ = select.select([client, upstream], [], [], 0.05)
                if not ready:
                    if self.idle_cut is not None and time.monotonic() - last > self.idle_cut:
                        self.cut += 1
                        return
                    continue
                for sock in ready:
                    data = sock.recv(65536)
                    if not data:
                        return
                    (upstream if sock is client else client).sendall(data)
                last = time.monotonic()
        except OSError:
            return
        finally:
            with self._lock:
                self._open.difference_update((client, upstream))
            for sock in (client, upstream):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
