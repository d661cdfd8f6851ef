"""The URL fetcher over real TLS connections, all to 127.0.0.1.

The stand-in "public" addresses are routed to a local HTTPS server by `LoopbackInternet`; any
other connect fails the test. Names resolve through `FakeDns` only.
"""

from __future__ import annotations

import io

import pytest
from autotag.errors import (
    FetchError,
    FetchTimeoutError,
    ImageTooLargeError,
    UnsafeUrlError,
    UnsupportedFormatError,
)
from autotag.fetch import fetch_image_url
from PIL import Image

from tests.support.https_server import FakeDns, ImageHost, LoopbackInternet, Reply

pytestmark = pytest.mark.integration

PUBLIC = "93.184.215.14"
OTHER_PUBLIC = "93.184.215.15"


def png_bytes(size=(8, 8)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(out, "PNG")
    return out.getvalue()


@pytest.fixture
def web():
    with ImageHost(
        ("images.example.com", "cdn.example.net", "rebind.example.com", "xn--bcher-kva.example")
    ) as host:
        internet = LoopbackInternet.serving(host, PUBLIC, OTHER_PUBLIC)
        dns = FakeDns(
            {
                "images.example.com": [PUBLIC],
                "cdn.example.net": [OTHER_PUBLIC],
                "rebind.example.com": [PUBLIC],
                "internal.example.com": ["10.0.0.7"],
                "xn--bcher-kva.example": [OTHER_PUBLIC],
            }
        )
        yield host, internet, dns


def fetch(url, web, **kwargs):
    host, internet, dns = web
    kwargs.setdefault("max_bytes", 1_000_000)
    kwargs.setdefault("timeout", 5)
    return fetch_image_url(
        url, resolver=dns, transport=internet, ssl_context=host.client_ssl_context(), **kwargs
    )


def test_fetches_an_image_over_tls_with_the_name_as_sni_and_host(web):
    host, internet, _ = web
    body = png_bytes()
    host.routes["/cat.png"] = Reply(200, {"Content-Type": "image/png"}, body)
    assert fetch("https://images.example.com/cat.png", web) == body
    path, headers, sni = host.requests[-1]
    assert (path, headers["host"], sni) == ("/cat.png", "images.example.com", "images.example.com")
    assert internet.connects == [(PUBLIC, 443)]


def test_connects_to_the_checked_address_even_if_dns_changes_afterwards(web):
    """DNS rebinding: the name resolves to a public address for the check, then to 10.0.0.7.
    The connection goes to the address that was checked; the second answer is never used."""
    host, internet, dns = web
    host.routes["/cat.png"] = Reply(200, {"Content-Type": "image/png"}, png_bytes())
    answers = iter([[PUBLIC], ["10.0.0.7"]])

    def rebinding(name, port):
        dns.queries.append(name)
        return next(answers)

    fetch_image_url(
        "https://rebind.example.com/cat.png",
        max_bytes=100_000,
        timeout=5,
        resolver=rebinding,
        transport=internet,
        ssl_context=host.client_ssl_context(),
    )
    # The route exists only for the public stand-in; a connect to 10.0.0.7 would have failed the test.
    assert internet.connects == [(PUBLIC, 443)]
    assert dns.queries == ["rebind.example.com"]


def test_follows_redirects_and_rechecks_each_hop(web):
    host, internet, _ = web
    host.routes["/start"] = Reply(302, {"Location": "https://cdn.example.net/final.png"})
    host.routes["/final.png"] = Reply(200, {"Content-Type": "image/png"}, png_bytes())
    assert fetch("https://images.example.com/start", web).startswith(b"\x89PNG")
    assert internet.connects == [(PUBLIC, 443), (OTHER_PUBLIC, 443)]


@pytest.mark.parametrize(
    "location",
    [
        "https://internal.example.com/x.png",
        "https://169.254.169.254/latest/meta-data/",
        "https://[::1]/x.png",
        "http://cdn.example.net/final.png",
    ],
)
def test_redirect_to_a_private_or_plain_http_target_is_refused(web, location):
    host, internet, _ = web
    host.routes["/start"] = Reply(301, {"Location": location})
    with pytest.raises(UnsafeUrlError):
        fetch("https://images.example.com/start", web)
    assert internet.connects == [(PUBLIC, 443)]


def test_redirect_loops_are_bounded(web):
    host, _, _ = web
    host.routes["/loop"] = Reply(302, {"Location": "/loop"})
    with pytest.raises(FetchError, match="redirects"):
        fetch("https://images.example.com/loop", web)
    assert len(host.requests) == 4


def test_size_cap_applies_while_streaming_without_content_length(web):
    host, _, _ = web
    big = png_bytes((600, 600)) + b"\0" * 300_000
    host.routes["/big.png"] = Reply(200, {"Content-Type": "image/png"}, big, chunks=20, content_length=False)
    with pytest.raises(ImageTooLargeError):
        fetch("https://images.example.com/big.png", web, max_bytes=50_000)


def test_declared_length_over_the_cap_is_refused_before_reading(web):
    host, _, _ = web
    host.routes["/big.png"] = Reply(200, {"Content-Type": "image/png"}, b"\x89PNG\r\n\x1a\n" + b"\0" * 20_000)
    with pytest.raises(ImageTooLargeError):
        fetch("https://images.example.com/big.png", web, max_bytes=10_000)


@pytest.mark.parametrize(
    ("content_type", "body"),
    [("text/html", b"<html>hi</html>"), ("image/png", b"<html>not really a png</html>")],
)
def test_non_images_are_refused(web, content_type, body):
    host, _, _ = web
    host.routes["/x"] = Reply(200, {"Content-Type": content_type}, body)
    with pytest.raises(UnsupportedFormatError):
        fetch("https://images.example.com/x", web)


def test_http_errors_are_fetch_errors(web):
    with pytest.raises(FetchError, match="HTTP 404"):
        fetch("https://images.example.com/missing.png", web)


def test_untrusted_certificate_is_a_fetch_error(web):
    _, internet, dns = web
    with pytest.raises(FetchError):
        fetch_image_url(
            "https://images.example.com/cat.png", max_bytes=10, timeout=5, resolver=dns, transport=internet
        )


def test_slow_server_times_out(web):
    host, _, _ = web
    # A body shorter than its declared length, then silence: the client waits for the rest.
    host.routes["/slow.png"] = Reply(
        200, {"Content-Type": "image/png", "Content-Length": "5000"}, png_bytes(), stall=3
    )
    with pytest.raises(FetchTimeoutError):
        fetch("https://images.example.com/slow.png", web, timeout=0.5)


def test_non_ascii_urls_and_redirect_targets_go_out_as_ascii(web):
    """Path, query, an international host and a raw UTF-8 Location: each hop is sent IDNA- and
    percent-encoded (SNI and Host carry the encoded name), and the image arrives."""
    host, internet, dns = web
    utf8_location = "https://Bücher.example/phötos/çat.png?größe=1".encode().decode("latin-1")
    host.routes["/st%C3%A4rt?q=%F0%9F%98%80"] = Reply(302, {"Location": utf8_location})
    host.routes["/ph%C3%B6tos/%C3%A7at.png?gr%C3%B6%C3%9Fe=1"] = Reply(
        200, {"Content-Type": "image/png"}, png_bytes()
    )
    assert fetch("https://images.example.com/stärt?q=😀", web).startswith(b"\x89PNG")
    assert internet.connects == [(PUBLIC, 443), (OTHER_PUBLIC, 443)]
    assert dns.queries == ["images.example.com", "xn--bcher-kva.example"]
    (_, first, first_sni), (_, second, second_sni) = host.requests
    assert (first_sni, first["host"]) == ("images.example.com", "images.example.com")
    assert (second_sni, second["host"]) == ("xn--bcher-kva.example", "xn--bcher-kva.example")
