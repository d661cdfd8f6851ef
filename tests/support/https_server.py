"""A fake slice of the internet for URL-fetch tests, entirely on 127.0.0.1.

- `ImageHost`: an HTTPS server on 127.0.0.1 (free port) with a self-signed certificate made in the
  test for the host names it plays, answering scripted routes (status, headers, body).
- `LoopbackInternet`: the network backend handed to `fetch_image_url`. It knows a table of
  "public" (address, port) pairs, each standing for an `ImageHost`, and connects those to
  127.0.0.1; any other connect FAILS THE TEST (and raises) instead of connecting, so a broken
  SSRF guard shows up as a failure, never as a packet to a private or public address.
- `FakeDns`: a resolver from a name → addresses table (nothing reaches a real DNS server).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
import tempfile
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpcore
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def self_signed_certificate(hostnames: Sequence[str]) -> tuple[bytes, bytes]:
    """(certificate PEM, private key PEM) valid for `hostnames`, usable as its own trust anchor."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostnames[0])])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(h) for h in hostnames]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return certificate.public_bytes(serialization.Encoding.PEM), key_pem


@dataclass
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    chunks: int = 1
    """Send the body in this many writes (to exercise streaming caps)."""
    content_length: bool = True
    """False: no Content-Length, the body ends when the connection closes."""
    stall: float = 0.0
    """Seconds to hold the connection open after the body (to exercise timeouts)."""


class ImageHost:
    """HTTPS on 127.0.0.1 for the given host names; `routes[path] = Reply(...)`."""

    def __init__(self, hostnames: Sequence[str] = ("images.example.com",)) -> None:
        self.hostnames = tuple(hostnames)
        self.routes: dict[str, Reply] = {}
        self.requests: list[tuple[str, dict[str, str], str | None]] = []
        cert_pem, key_pem = self_signed_certificate(self.hostnames)
        self.certificate_pem = cert_pem
        host = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                sni = getattr(self.connection, "autotag_sni", None)
                host.requests.append((self.path, {k.lower(): v for k, v in self.headers.items()}, sni))
                reply = host.routes.get(self.path, Reply(404, {"Content-Type": "text/plain"}, b"nope"))
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                if reply.content_length and "Content-Length" not in reply.headers:
                    self.send_header("Content-Length", str(len(reply.body)))
                self.send_header("Connection", "close")
                self.end_headers()
                step = max(1, len(reply.body) // max(1, reply.chunks))
                try:
                    for start in range(0, len(reply.body), step):
                        self.wfile.write(reply.body[start : start + step])
                    self.wfile.flush()
                    time.sleep(reply.stall)
                except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
                    pass
                self.close_connection = True

            def log_message(self, format: str, *args: object) -> None:
                pass

        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        with tempfile.TemporaryDirectory() as folder:
            cert_file, key_file = Path(folder, "cert.pem"), Path(folder, "key.pem")
            cert_file.write_bytes(cert_pem)
            key_file.write_bytes(key_pem)
            context.load_cert_chain(cert_file, key_file)

        def remember_sni(sock: ssl.SSLObject, server_name: str | None, _ctx: ssl.SSLContext) -> None:
            sock.autotag_sni = server_name  # type: ignore[attr-defined]

        context.sni_callback = remember_sni
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def client_ssl_context(self) -> ssl.SSLContext:
        """A client context that trusts this host's certificate (and nothing else)."""
        return ssl.create_default_context(cadata=self.certificate_pem.decode())

    def __enter__(self) -> ImageHost:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


class FakeDns:
    """A resolver from a fixed table; unknown names fail like NXDOMAIN."""

    def __init__(self, table: dict[str, Sequence[str]] | None = None) -> None:
        self.table: dict[str, list[str]] = {k: list(v) for k, v in (table or {}).items()}
        self.queries: list[str] = []

    def __call__(self, host: str, port: int) -> list[str]:
        from autotag.errors import FetchError

        self.queries.append(host)
        if host not in self.table:
            raise FetchError(f"cannot resolve host {host!r}")
        return list(self.table[host])


class ConnectRefusedByTest(BaseException):
    """Raised (after failing the test) when code asks for a connection the test does not allow."""


class LoopbackInternet(httpcore.NetworkBackend):
    """Connects only the (address, port) pairs in `routes`, always to 127.0.0.1; fails anything else."""

    def __init__(
        self, routes: dict[tuple[str, int], int] | None = None, *, refuse_public: bool = False
    ) -> None:
        self.routes = dict(routes or {})
        self.refuse_public = refuse_public
        """True: a public address without a stand-in is refused (ConnectError) instead of failing the
        test (fuzzing draws arbitrary public URLs). A non-public address always fails the test."""
        self.connects: list[tuple[str, int]] = []
        self._real = httpcore.SyncBackend()

    @classmethod
    def serving(cls, host: ImageHost, *public_addresses: str) -> LoopbackInternet:
        """An internet where `host` stands in for HTTPS (port 443) at each of `public_addresses`."""
        internet = cls()
        for address in public_addresses:
            internet.add(address, 443, host)
        return internet

    def add(self, public_address: str, port: int, host: ImageHost) -> None:
        assert ipaddress.ip_address(public_address).is_global, "stand-ins must be public addresses"
        self.routes[(public_address, port)] = host.port

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        self.connects.append((host, port))
        local_port = self.routes.get((host, port))
        if local_port is None:
            if self.refuse_public and ipaddress.ip_address(host).is_global:
                raise httpcore.ConnectError(f"{host}:{port} is not reachable from this test")
            pytest.fail(f"the fetcher tried to connect to {host}:{port}; only stand-ins are allowed")
            raise ConnectRefusedByTest(host)  # pragma: no cover - pytest.fail raises
        return self._real.connect_tcp("127.0.0.1", local_port, timeout=timeout, socket_options=socket_options)

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        pytest.fail(f"the fetcher tried to open a unix socket {path}")
        raise ConnectRefusedByTest(path)  # pragma: no cover

    def sleep(self, seconds: float) -> None:
        self._real.sleep(seconds)
