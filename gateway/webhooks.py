"""Webhooks: signed (HMAC-SHA256) event posts to admins' endpoints and requesters' callback URLs.

Delivery runs on the job queue (:mod:`gateway.jobs`), which retries with backoff until an endpoint
answers 2xx: at least once, so receivers deduplicate on the ``Mamori-Event-Id`` header.

The signature header is ``Mamori-Signature: t=<unix seconds>,v1=<hex>`` where ``<hex>`` is
HMAC-SHA256 over ``"<t>." + body`` with the shared secret; receivers recompute it and refuse old
timestamps (:func:`verify_signature`).

Callback URLs pointing at loopback, link-local, private or otherwise non-public addresses are
refused (server-side request forgery), at request time and again before each delivery (the name
may resolve differently later), unless ``allow_private_callbacks`` is set.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import os
import secrets
import socket
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from gateway.settings import Settings

SIGNATURE_HEADER = "Mamori-Signature"
EVENT_ID_HEADER = "Mamori-Event-Id"
EVENT_TYPES = ("escalation.created", "escalation.decided", "escalation.deadline_missed")


class CallbackRefused(ValueError):
    """The callback URL is malformed or points at an address we do not call."""


class DeliveryFailed(Exception):
    """The endpoint did not answer 2xx; the job queue tries again later."""


def webhook_secret(settings: Settings) -> bytes:
    """The HMAC key: ``webhook_secret`` if set, else a generated file in the data folder (mode 0600)."""
    if settings.webhook_secret is not None:
        return settings.webhook_secret.get_secret_value().encode()
    path = settings.data_dir / "webhook_secret"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(32))
    return Path(path).read_text().strip().encode()


def sign(secret: bytes, body: bytes, timestamp: int | None = None) -> str:
    t = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret, f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def verify_signature(secret: bytes, body: bytes, header: str, *, tolerance_s: int = 300) -> bool:
    """What a receiver does: recompute the MAC and refuse a stale timestamp."""
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        t = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs(time.time() - t) > tolerance_s:
        return False
    expected = hmac.new(secret, f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, parts.get("v1", ""))


def _address_refused(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return bool(
        ip.is_loopback
        or ip.is_link_local
        or ip.is_private
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or not ip.is_global
    )


def check_callback_url(url: str, *, allow_private: bool) -> str:
    """Refuse a malformed URL, or one whose host is or resolves to a non-public address."""
    if len(url) > 2000:
        raise CallbackRefused("callback_url is over 2000 characters")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise CallbackRefused("callback_url must be an absolute http(s) URL")
    if parts.username or parts.password:
        raise CallbackRefused("callback_url must not carry credentials")
    if allow_private:
        return url
    host = parts.hostname
    try:
        addresses = [host] if _is_ip(host) else _resolve(host, parts.port)
    except OSError as exc:
        raise CallbackRefused(f"callback_url host {host!r} does not resolve") from exc
    if not addresses or any(_address_refused(a) for a in addresses):
        raise CallbackRefused(
            "callback_url points at a loopback, link-local or private address; refused (allow_private_callbacks is off)"
        )
    return url


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _resolve(host: str, port: int | None) -> list[str]:
    return sorted({str(info[4][0]) for info in socket.getaddrinfo(host, port or 443, type=socket.SOCK_STREAM)})


def new_event(event_type: str, data: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": "evt_" + uuid.uuid4().hex,
        "type": event_type,
        "created_at": datetime.now(UTC).isoformat(),
        "data": data,
    }


def deliver(settings: Settings, url: str, event: dict[str, Any], *, check_url: bool) -> int:
    """POST one signed event; raise :class:`DeliveryFailed` unless the endpoint answers 2xx."""
    if check_url:
        check_callback_url(url, allow_private=settings.allow_private_callbacks)
    body = json.dumps(event, sort_keys=True, separators=(",", ":")).encode()
    headers = {
        "content-type": "application/json",
        "user-agent": "mamori-webhooks/1",
        EVENT_ID_HEADER: str(event["id"]),
        SIGNATURE_HEADER: sign(webhook_secret(settings), body),
    }
    try:
        response = httpx.post(url, content=body, headers=headers, timeout=settings.webhook_timeout_s)
    except httpx.HTTPError as exc:
        raise DeliveryFailed(f"{url}: {type(exc).__name__}") from exc
    if not 200 <= response.status_code < 300:
        raise DeliveryFailed(f"{url} answered {response.status_code}")
    return response.status_code


def callback_or_400(settings: Settings, url: str | None) -> str | None:
    """A request's ``callback_url`` checked at the door: a refused URL is a 400 before any work."""
    from gateway.errors import BadRequest

    if url is None or not url.strip():
        return None
    try:
        return check_callback_url(url.strip(), allow_private=settings.allow_private_callbacks)
    except CallbackRefused as exc:
        raise BadRequest(str(exc), code="invalid_callback_url", param="callback_url") from exc
