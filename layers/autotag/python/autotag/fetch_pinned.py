"""The network backend :mod:`autotag.fetch` connects through: every connection goes to the address
the URL check passed, whatever host httpcore asks for (so DNS rebinding cannot redirect it)."""

from __future__ import annotations

from collections.abc import Iterable

import httpcore

from autotag.errors import UnsafeUrlError
from autotag.fetch import IPAddress


class PinnedBackend(httpcore.NetworkBackend):
    """Connects to the checked address whatever host httpcore asks for (rebinding-proof)."""

    def __init__(self, address: IPAddress, inner: httpcore.NetworkBackend) -> None:
        self._address = str(address)
        self._inner = inner

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        return self._inner.connect_tcp(
            self._address, port, timeout=timeout, local_address=local_address, socket_options=socket_options
        )

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        raise UnsafeUrlError("unix sockets are never used for URL fetching")

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)
