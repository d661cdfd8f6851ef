"""SSRF-safe fetching of images by URL (the API's ``url`` source and the CLI).

Every hop is checked the same way: https only, no credentials in the URL, the host resolved and
EVERY resolved address checked against the public-address policy, then the connection is made to
the address that passed the check (the TLS SNI and the Host header still carry the name), so a
DNS answer that changes between the check and the connect (rebinding) cannot redirect it.
Redirects are followed by hand, each hop re-checked. The body is streamed under a size cap and a
wall-clock budget, and must look like an image (content type and magic bytes).

The connection layer is httpcore, not httpx, on purpose: it has no environment proxy handling
that could route around the pinning, and its network backend is the one seam where a connection
to an address is made (tests inject a backend that refuses anything but loopback).
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import quote, urljoin, urlsplit, urlunsplit

from autotag.errors import (
    FetchError,
    FetchTimeoutError,
    ImageTooLargeError,
    UnsafeUrlError,
    UnsupportedFormatError,
)
from autotag.image import MAX_URL_LENGTH, SNIFF_BYTES, sniff_format

if TYPE_CHECKING:
    # Loaded with the first fetch (autotag.fetch_pinned): most requests name no URL, and the API's
    # error mapping imports this module at cold start.
    import httpcore

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Sequence[str]]
"""(host, port) -> every address the name resolves to, as strings."""

DEFAULT_MAX_REDIRECTS = 3
USER_AGENT = "autotag-fetch/0.1"
ACCEPTED_CONTENT_TYPES = ("image/", "application/octet-stream", "binary/octet-stream")

_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")


# --- Address policy --------------------------------------------------------------------------


def _embedded_ipv4(address: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """IPv4 addresses an IPv6 address carries (mapped, 6to4, Teredo, NAT64)."""
    embedded: list[ipaddress.IPv4Address] = []
    if address.ipv4_mapped is not None:
        embedded.append(address.ipv4_mapped)
    if address.sixtofour is not None:
        embedded.append(address.sixtofour)
    if address.teredo is not None:
        embedded.extend(address.teredo)
    if address in _NAT64 or address in _NAT64_LOCAL:
        embedded.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    return embedded


def refusal_reason(address: IPAddress) -> str | None:
    """Why `address` may not be fetched from, or None when it is a public unicast address."""
    if isinstance(address, ipaddress.IPv6Address):
        for inner in _embedded_ipv4(address):
            reason = refusal_reason(inner)
            if reason is not None:
                return f"{reason} (embedded in {address})"
    checks = (
        (address.is_unspecified, "unspecified"),
        (address.is_loopback, "loopback"),
        (address.is_link_local, "link-local (includes the instance metadata service)"),
        (address.is_multicast, "multicast"),
        (address.is_private, "private"),
        (address.is_reserved, "reserved"),
        (isinstance(address, ipaddress.IPv6Address) and address.is_site_local, "site-local"),
        (not address.is_global, "not globally routable"),
    )
    return next((reason for refused, reason in checks if refused), None)


def check_address(address: str) -> IPAddress:
    """Parse and check one resolved address; raise :class:`UnsafeUrlError` if it is not public."""
    try:
        parsed = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        raise UnsafeUrlError(f"resolver returned a non-address: {address!r}") from None
    reason = refusal_reason(parsed)
    if reason is not None:
        raise UnsafeUrlError(f"refusing to fetch from {parsed}: {reason} address")
    return parsed


def system_resolver(host: str, port: int) -> list[str]:
    """Every address the system resolver gives for `host` (A and AAAA)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise FetchError(f"cannot resolve host {host!r}") from exc
    return [str(info[4][0]) for info in infos]


# --- URL checks ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """One hop: the URL as given, its host name and port, and the checked address to connect to."""

    url: str
    host: str
    port: int
    address: IPAddress


def _literal_address(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


_URL_SAFE = "/%:@!$&'()*+,;=?~"
"""Characters a path or query keeps as they are; anything else (non-ASCII, spaces, controls) is
percent-encoded as UTF-8, as browsers send it. Existing %XX escapes are kept."""


def ascii_host(host: str) -> str:
    """The host as it goes on the wire: an international name IDNA-encoded (``bücher.example`` →
    ``xn--bcher-kva.example``); :class:`UnsafeUrlError` when it cannot be."""
    if host.isascii():
        return host.lower()
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError:
        raise UnsafeUrlError("the URL's host name is not a valid international domain name") from None


def check_url(url: str, *, resolver: Resolver = system_resolver) -> Target:
    """Parse `url`, resolve its host and check every address; the first checked address is pinned.

    The URL is normalized to ASCII first (IDNA host, percent-encoded path and query, no fragment):
    the resolver, the TLS SNI, the Host header and the request line only ever see ASCII.
    """
    if len(url) > MAX_URL_LENGTH:
        raise UnsafeUrlError(f"URL is longer than {MAX_URL_LENGTH} characters")
    try:
        parts = urlsplit(url.strip())
        port = parts.port or 443
    except ValueError:
        raise UnsafeUrlError("not a valid URL") from None
    if parts.scheme.lower() != "https":
        raise UnsafeUrlError(f"only https URLs are fetched (got {parts.scheme or 'no'} scheme)")
    if parts.username is not None or parts.password is not None:
        raise UnsafeUrlError("URLs with credentials are not fetched")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise UnsafeUrlError("URL has no host")
    literal = _literal_address(host)
    if literal is not None:
        addresses: Iterable[str] = [str(literal)]
    else:
        host = ascii_host(host)
        addresses = resolver(host, port)
    checked = [check_address(a) for a in addresses]
    if not checked:
        raise FetchError(f"host {host!r} has no address")
    netloc = f"[{host}]" if ":" in host else host
    if parts.port is not None:
        netloc += f":{parts.port}"
    path = quote(parts.path, safe=_URL_SAFE) or "/"
    wire_url = urlunsplit(("https", netloc, path, quote(parts.query, safe=_URL_SAFE), ""))
    if len(wire_url) > MAX_URL_LENGTH:
        raise UnsafeUrlError(f"URL is longer than {MAX_URL_LENGTH} characters once encoded")
    return Target(url=wire_url, host=host, port=port, address=checked[0])


# --- Content checks --------------------------------------------------------------------------


def _check_content_type(value: str | None) -> None:
    media = (value or "").split(";", 1)[0].strip().lower()
    if media and not media.startswith(ACCEPTED_CONTENT_TYPES):
        raise UnsupportedFormatError(f"URL did not return an image (content type {media})")


def _header(headers: Sequence[tuple[bytes, bytes]], name: bytes) -> str | None:
    for key, value in headers:
        if key.lower() == name:
            try:
                return value.decode("utf-8")  # servers send non-ASCII Locations as raw UTF-8
            except UnicodeDecodeError:
                return value.decode("latin-1")
    return None


# --- Fetching --------------------------------------------------------------------------------


def fetch_image_url(
    url: str,
    *,
    max_bytes: int,
    timeout: float,
    resolver: Resolver = system_resolver,
    transport: httpcore.NetworkBackend | None = None,
    ssl_context: ssl.SSLContext | None = None,
    max_redirects: int = DEFAULT_MAX_REDIRECTS,
) -> bytes:
    """Fetch an image over https without ever connecting to a non-public address.

    `timeout` bounds the whole fetch (all hops, headers and body). `transport` is the network
    backend connections are made through (default: httpcore's socket backend); it is only ever
    asked for the checked address. Raises :class:`UnsafeUrlError` for a refused URL or address,
    :class:`ImageTooLargeError` past `max_bytes`, :class:`UnsupportedFormatError` for a non-image,
    :class:`FetchError` / :class:`FetchTimeoutError` when the server cannot be read.
    """
    import httpcore

    backend = transport or httpcore.SyncBackend()
    if ssl_context is None:
        import httpx  # only its CA bundle and TLS defaults: not loaded at cold start

        ssl_context = httpx.create_ssl_context()
    context = ssl_context
    deadline = time.monotonic() + timeout
    current = url
    for _hop in range(max_redirects + 1):
        target = check_url(current, resolver=resolver)
        location = _fetch_once(target, backend, context, max_bytes=max_bytes, deadline=deadline)
        if isinstance(location, bytes):
            return location
        current = urljoin(target.url, location)
    raise FetchError(f"more than {max_redirects} redirects")


def _remaining(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise FetchTimeoutError("fetching the URL took too long")
    return left


def _fetch_once(
    target: Target,
    backend: httpcore.NetworkBackend,
    context: ssl.SSLContext,
    *,
    max_bytes: int,
    deadline: float,
) -> bytes | str:
    """One hop: the body, or the Location to follow next."""
    import httpcore

    from autotag.fetch_pinned import PinnedBackend

    left = _remaining(deadline)
    timeouts = {"connect": left, "read": left, "write": left, "pool": left}
    pool = httpcore.ConnectionPool(
        ssl_context=context,
        network_backend=PinnedBackend(target.address, backend),
        max_connections=1,
        retries=0,
        http2=False,
    )
    headers = [(b"User-Agent", USER_AGENT.encode()), (b"Accept", b"image/*")]
    try:
        with pool, pool.stream("GET", target.url, headers=headers, extensions={"timeout": timeouts}) as resp:
            if resp.status in (301, 302, 303, 307, 308):
                location = _header(resp.headers, b"location")
                if not location:
                    raise FetchError(f"redirect {resp.status} without a Location")
                return location
            if resp.status != 200:
                raise FetchError(f"URL answered HTTP {resp.status}")
            _check_content_type(_header(resp.headers, b"content-type"))
            declared = _header(resp.headers, b"content-length")
            if declared and declared.isdigit() and int(declared) > max_bytes:
                raise ImageTooLargeError(f"image at URL is {declared} bytes; the limit is {max_bytes}")
            return _read_capped(resp.iter_stream(), max_bytes=max_bytes, deadline=deadline)
    except httpcore.TimeoutException as exc:
        raise FetchTimeoutError("fetching the URL took too long") from exc
    except (httpcore.NetworkError, httpcore.ProtocolError) as exc:
        raise FetchError(f"cannot fetch URL from {target.host}: {type(exc).__name__}") from exc
    except ssl.SSLError as exc:
        raise FetchError(f"TLS with {target.host} failed: {exc.reason or 'handshake error'}") from exc
    except httpcore.UnsupportedProtocol as exc:
        raise UnsafeUrlError("unsupported URL") from exc


def _read_capped(chunks: Iterable[bytes], *, max_bytes: int, deadline: float) -> bytes:
    body = bytearray()
    for chunk in chunks:
        body.extend(chunk)
        if len(body) > max_bytes:
            raise ImageTooLargeError(f"image at URL is larger than {max_bytes} bytes")
        _remaining(deadline)
    if not body:
        raise FetchError("URL returned an empty body")
    if sniff_format(bytes(body[:SNIFF_BYTES])) is None:
        raise UnsupportedFormatError("URL did not return an image (unrecognised file signature)")
    return bytes(body)
