"""The SSRF guard of the URL fetcher, without sockets: every refused URL is refused before any
connect (the backend fails the test if it is asked for one)."""

from __future__ import annotations

import ipaddress

import pytest
from autotag.errors import FetchError, UnsafeUrlError
from autotag.fetch import check_address, check_url, fetch_image_url

from tests.support.https_server import FakeDns, LoopbackInternet

REFUSED = [
    "127.0.0.1",
    "127.8.9.10",
    "10.0.0.1",
    "172.16.5.4",
    "192.168.1.1",
    "169.254.169.254",  # instance metadata
    "169.254.170.2",  # ECS task metadata
    "100.64.0.1",  # shared address space (carrier-grade NAT)
    "0.0.0.0",
    "224.0.0.1",
    "240.0.0.1",
    "255.255.255.255",
    "192.0.2.10",  # documentation ranges are not routable either
    "198.18.0.1",
    "::",
    "::1",
    "fc00::1",
    "fd12:3456::1",
    "fe80::1",
    "ff02::1",
    "::ffff:127.0.0.1",
    "::ffff:10.0.0.1",
    "::ffff:169.254.169.254",
    "2002:7f00:1::1",  # 6to4 of 127.0.0.1
    "2002:a9fe:a9fe::1",  # 6to4 of 169.254.169.254
    "2001:0:4136:e378:8000:63bf:f5ff:fffe",  # Teredo, client 10.0.0.1
    "64:ff9b::a00:1",  # NAT64 of 10.0.0.1
    "fec0::1",
]

ALLOWED = ["93.184.215.14", "8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "2a00:1450:4001:82a::200e"]


@pytest.mark.parametrize("address", REFUSED)
def test_non_public_addresses_are_refused(address):
    with pytest.raises(UnsafeUrlError) as caught:
        check_address(address)
    assert caught.value.code == "unsafe_url"


@pytest.mark.parametrize("address", ALLOWED)
def test_public_addresses_pass(address):
    assert check_address(address) == ipaddress.ip_address(address)


def _never_connects() -> LoopbackInternet:
    return LoopbackInternet()


@pytest.mark.parametrize(
    "url",
    [
        "http://images.example.com/cat.png",
        "ftp://images.example.com/cat.png",
        "file:///etc/passwd",
        "gopher://127.0.0.1/",
        "https://127.0.0.1/cat.png",
        "https://10.0.0.1/cat.png",
        "https://169.254.169.254/latest/meta-data/",
        "https://[::1]/cat.png",
        "https://[::ffff:127.0.0.1]/cat.png",
        "https://[fe80::1]/cat.png",
        "https://user:pw@images.example.com/cat.png",
        "https:///nohost",
        "https://images.example.com:99999/cat.png",
        "not a url",
        "",
        "https://x" + "a" * 3000 + ".com/",
    ],
)
def test_refused_urls_never_connect(url):
    backend = _never_connects()
    dns = FakeDns({"images.example.com": ["93.184.215.14"]})
    with pytest.raises(UnsafeUrlError):
        fetch_image_url(url, max_bytes=1000, timeout=2, resolver=dns, transport=backend)
    assert backend.connects == []


@pytest.mark.parametrize(
    "addresses",
    [
        ["10.1.2.3"],
        ["127.0.0.1"],
        ["169.254.169.254"],
        ["::1"],
        # One bad address among good ones is enough to refuse: the connect could pick any of them.
        ["93.184.215.14", "10.0.0.1"],
        ["2606:4700:4700::1111", "fd00::1"],
    ],
)
def test_every_resolved_address_is_checked(addresses):
    backend = _never_connects()
    dns = FakeDns({"internal.example.com": addresses})
    with pytest.raises(UnsafeUrlError):
        fetch_image_url(
            "https://internal.example.com/a.png", max_bytes=10, timeout=2, resolver=dns, transport=backend
        )
    assert dns.queries == ["internal.example.com"]
    assert backend.connects == []


def test_check_url_pins_the_checked_address_and_keeps_the_name():
    target = check_url(
        "https://Images.Example.com:8443/a/b.png?x=1", resolver=FakeDns({"images.example.com": ["8.8.8.8"]})
    )
    assert (target.host, target.port, str(target.address)) == ("images.example.com", 8443, "8.8.8.8")


def test_unresolvable_host_is_a_fetch_error():
    with pytest.raises(FetchError) as caught:
        check_url("https://nowhere.invalid/a.png", resolver=FakeDns())
    assert caught.value.code == "fetch_failed"


def test_literal_addresses_skip_the_resolver():
    dns = FakeDns()
    assert str(check_url("https://8.8.8.8/x.png", resolver=dns).address) == "8.8.8.8"
    assert dns.queries == []


# --- Non-ASCII URLs: normalized to ASCII before anything sees them ---------------------------------


def test_an_international_host_is_resolved_and_sent_idna_encoded():
    dns = FakeDns({"xn--bcher-kva.example": ["8.8.8.8"]})
    target = check_url("https://Bücher.example/x.png", resolver=dns)
    assert dns.queries == ["xn--bcher-kva.example"]
    assert target.host == "xn--bcher-kva.example"
    assert target.url == "https://xn--bcher-kva.example/x.png"


@pytest.mark.parametrize(
    ("url", "wire"),
    [
        ("https://images.example.com/phötos/çat.jpg", "https://images.example.com/ph%C3%B6tos/%C3%A7at.jpg"),
        (
            "https://images.example.com/a.jpg?q=ünïcode&x=1",
            "https://images.example.com/a.jpg?q=%C3%BCn%C3%AFcode&x=1",
        ),
        ("https://images.example.com/😀 x.jpg#frag", "https://images.example.com/%F0%9F%98%80%20x.jpg"),
        (
            "https://images.example.com/already%20encoded.jpg",
            "https://images.example.com/already%20encoded.jpg",
        ),
        ("https://images.example.com:8443", "https://images.example.com:8443/"),
    ],
)
def test_non_ascii_paths_and_queries_are_percent_encoded(url, wire):
    target = check_url(url, resolver=FakeDns({"images.example.com": ["8.8.8.8"]}))
    assert target.url == wire
    assert target.url.isascii()


@pytest.mark.parametrize(
    "url",
    [
        "https://exa\u200bmple..com/x.png",  # an empty label
        "https://" + "ü" * 70 + ".example/x.png",  # a label over 63 characters once encoded
        "https://\udcff.example/x.png",  # a lone surrogate
    ],
)
def test_host_names_idna_cannot_encode_are_refused_without_resolving(url):
    dns = FakeDns()
    with pytest.raises(UnsafeUrlError) as caught:
        fetch_image_url(url, max_bytes=10, timeout=2, resolver=dns, transport=_never_connects())
    assert caught.value.code == "unsafe_url"
    assert dns.queries == []
