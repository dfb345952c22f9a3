"""Webhook URLs: what a subscription may name, and the SSRF guard on where it may reach.

A server that serves with tokens on a public interface is reachable by people who may add
webhooks but must not make it call inside its own network (a cloud metadata address, a
database's admin port). There the guard refuses targets whose address is loopback,
private, link-local or otherwise not global, when a subscription is added and again at
every attempt: the name is resolved, every address checked, and the request goes to a
checked address (with the name as Host and TLS server name), so a name that resolves
elsewhere between the check and the connection (DNS rebinding) gains nothing.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass

import httpx

from promptctl.registry.errors import InvalidWebhook, WebhookTargetRefused

MAX_URL = 2048
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class Target:
    """Where one attempt connects: the URL to request, and the Host header and TLS server
    name to send when it names a checked address instead of the host."""

    url: str
    host: str | None = None
    server_name: str | None = None


def check_url(url: str) -> str:
    """Return the URL if a webhook may use it (http or https, with a host), else raise
    InvalidWebhook naming what is wrong."""
    text = url.strip()
    if not text:
        raise InvalidWebhook("url", "give the URL to send events to")
    if len(text) > MAX_URL:
        raise InvalidWebhook("url", f"at most {MAX_URL} characters, got {len(text)}")
    try:
        parsed = httpx.URL(text)
    except (httpx.InvalidURL, ValueError) as exc:
        raise InvalidWebhook("url", f"'{text}' is not a URL ({exc})") from exc
    if parsed.scheme not in ("http", "https"):
        scheme = f"'{parsed.scheme}'" if parsed.scheme else "no scheme"
        raise InvalidWebhook("url", f"'{text}' has {scheme}: a webhook URL is http(s)://…")
    if not parsed.host:
        raise InvalidWebhook("url", f"'{text}' names no host")
    return text


def origin(url: str) -> str:
    """The scheme, host and port of a webhook URL: what logs may show of it (a Slack
    incoming-webhook URL's path, or a query's token, is the receiver's credential)."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError):
        return "(an invalid URL)"
    port = f":{parsed.port}" if parsed.port is not None else ""
    host = f"[{parsed.host}]" if ":" in parsed.host else parsed.host
    return f"{parsed.scheme}://{host}{port}"


def refusal(address: Address) -> str | None:
    """Say why the guard refuses an address (None: a global address, allowed)."""
    if isinstance(address, ipaddress.IPv6Address):
        # An IPv6 address that stands for an IPv4 one (mapped, 6to4, Teredo's client) is
        # judged by that IPv4 address: 2002:7f00:1:: reaches 127.0.0.1 through a relay.
        teredo = address.teredo[1] if address.teredo else None
        embedded = address.ipv4_mapped or address.sixtofour or teredo
        if embedded is not None:
            address = embedded
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address (cloud metadata lives there)"
    if address.is_private:
        return "a private address"
    if address.is_multicast or address.is_unspecified or address.is_reserved:
        return "not a unicast address"
    if not address.is_global:
        return "not a public address"
    return None


def resolve(host: str, port: int) -> list[Address]:
    """The addresses a host name (or literal address) stands for."""
    try:
        return [ipaddress.ip_address(host.strip("[]"))]
    except ValueError:
        pass
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise InvalidWebhook("url", f"cannot resolve '{host}': {exc}") from exc
    # The scope of an IPv6 address (fe80::1%eth0) is not part of the address.
    return list(dict.fromkeys(ipaddress.ip_address(info[4][0].split("%")[0]) for info in found))


def guarded_target(url: str, guarded: bool) -> Target:
    """Where to connect for `url`: itself when the guard is off; else a checked address of
    its host, or WebhookTargetRefused when any address it resolves to is not global."""
    if not guarded:
        return Target(url)
    parsed = httpx.URL(url)
    host = parsed.host
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    if host.lower().rstrip(".") == "localhost" or host.lower().endswith(".localhost"):
        raise WebhookTargetRefused(url, host, "a loopback name")
    addresses = resolve(host, port)
    if not addresses:
        raise InvalidWebhook("url", f"'{host}' resolves to no address")
    for address in addresses:
        why = refusal(address)
        if why:
            raise WebhookTargetRefused(url, str(address), why)
    chosen = addresses[0]
    if str(chosen) == host.strip("[]"):
        return Target(url)  # a literal address, checked: nothing to pin
    netloc = host if parsed.port is None else f"{host}:{parsed.port}"
    return Target(str(parsed.copy_with(host=str(chosen))), host=netloc, server_name=host)
