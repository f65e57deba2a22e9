"""Web sessions: an API key, presented once at login, becomes a signed session cookie.

The cookie (HttpOnly, SameSite=Strict, Secure when served over https) holds the key id, a random
session id and an expiry, signed with HMAC-SHA256 under a key kept in the data folder. It never
holds the API key. Each request re-reads the key, so revoking it ends every session at once.

CSRF: each form carries ``csrf`` = HMAC(session key, "csrf|" + session id); the login form, before
any session exists, uses a double-submit cookie. Forms that change a queue item also carry a
one-time ``nonce``, so a replayed post is refused (``duplicate_submission``) and changes nothing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from gateway.keys import KeyStore, Principal
from gateway.settings import Settings

COOKIE = "mamori_session"
LOGIN_COOKIE = "mamori_login"
LANG_COOKIE = "mamori_lang"


@dataclass(frozen=True)
class WebSession:
    key_id: str
    sid: str
    expires: int


def session_key(settings: Settings) -> bytes:
    path = settings.session_secret_path or settings.data_dir / "web_session.key"
    path = Path(path)
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it first
            pass
        else:
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_urlsafe(48))
    return path.read_text().strip().encode()


def _mac(key: bytes, message: str) -> str:
    return base64.urlsafe_b64encode(hmac.new(key, message.encode(), hashlib.sha256).digest()).decode().rstrip("=")


def issue(key: bytes, key_id: str, ttl_s: int) -> tuple[str, WebSession]:
    session = WebSession(key_id=key_id, sid=secrets.token_urlsafe(18), expires=int(time.time()) + ttl_s)
    body = base64.urlsafe_b64encode(
        json.dumps({"k": session.key_id, "s": session.sid, "e": session.expires}, separators=(",", ":")).encode()
    ).decode()
    return f"{body}.{_mac(key, 'session|' + body)}", session


def read(key: bytes, cookie: str | None) -> WebSession | None:
    if not cookie or cookie.count(".") != 1:
        return None
    body, mac = cookie.split(".")
    if not hmac.compare_digest(mac, _mac(key, "session|" + body)):
        return None
    try:
        data = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        session = WebSession(key_id=str(data["k"]), sid=str(data["s"]), expires=int(data["e"]))
    except (ValueError, KeyError, TypeError):
        return None
    if session.expires < time.time():
        return None
    return session


def principal_for(keys: KeyStore, session: WebSession) -> Principal | None:
    info = keys.get(session.key_id)
    if info is None or not info.active:
        return None
    return Principal(key_id=info.id, tenant=info.tenant, role=info.role, name=info.name)


def csrf_token(key: bytes, sid: str) -> str:
    return _mac(key, "csrf|" + sid)


def csrf_ok(key: bytes, sid: str, presented: str | None) -> bool:
    return bool(presented) and hmac.compare_digest(csrf_token(key, sid), str(presented))


def new_nonce() -> str:
    return secrets.token_urlsafe(16)
