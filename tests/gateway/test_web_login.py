"""The login form: a refused login is audited (never the key presented), and a broken form gets a page."""

from __future__ import annotations

import re
from typing import Any

from gateway.keys import KeyStore


def _login_form(gateway: Any) -> str:
    """Open the login page; its CSRF token (also set as the login cookie on the test client)."""
    page = gateway.client.get("/ui/login")
    assert page.status_code == 200
    match = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert match, "the login page carries a CSRF token"
    return match.group(1)


def _failed_logins(gateway: Any) -> list[Any]:
    return gateway.services.audit.search(event_type="web.login_failed", limit=1000)


def test_a_wrong_key_is_refused_and_audited_with_the_key_id_only(gateway: Any) -> None:
    real = gateway.keys["supervisor"]
    key_id = KeyStore.claimed_key_id(real)
    assert key_id is not None
    wrong = real[:-4] + ("AAAA" if not real.endswith("AAAA") else "BBBB")  # right id, wrong secret
    before = len(_failed_logins(gateway))
    token = _login_form(gateway)
    answer = gateway.client.post("/ui/login", data={"csrf": token, "api_key": wrong}, follow_redirects=False)
    assert answer.status_code == 401
    assert answer.headers["content-type"].startswith("text/html")
    records = _failed_logins(gateway)
    assert len(records) == before + 1
    newest = max(records, key=lambda r: r.seq)
    assert newest.payload["reason"] == "invalid_api_key"
    assert newest.payload["key_id"] == key_id
    assert wrong[-20:] not in str(newest.payload) and real[-20:] not in str(newest.payload)


def test_a_forged_login_form_is_audited_as_such(gateway: Any) -> None:
    _login_form(gateway)
    before = len(_failed_logins(gateway))
    answer = gateway.client.post("/ui/login", data={"csrf": "forged", "api_key": "x"}, follow_redirects=False)
    assert answer.status_code == 403
    assert 'data-code="csrf_failed"' in answer.text
    newest = max(_failed_logins(gateway), key=lambda r: r.seq)
    assert len(_failed_logins(gateway)) == before + 1
    assert newest.payload == {"reason": "csrf_failed", "key_id": None, "client": "testclient"}


def test_a_malformed_login_form_gets_an_error_page_not_json(gateway: Any) -> None:
    _login_form(gateway)
    answer = gateway.client.post(
        "/ui/login",
        content=b"csrf=x&api_key=%FF%FE",  # not UTF-8
        headers={"content-type": "application/x-www-form-urlencoded"},
        follow_redirects=False,
    )
    assert answer.status_code == 400
    assert answer.headers["content-type"].startswith("text/html")
    assert 'data-code="invalid_text"' in answer.text
    assert 'href="/ui/login" id="back"' in answer.text  # no javascript: link, which the page's CSP blocks
    newest = max(_failed_logins(gateway), key=lambda r: r.seq)
    assert newest.payload["reason"] == "invalid_text"


def test_an_unwritable_trail_does_not_turn_a_refused_login_into_a_500(gateway: Any, monkeypatch: Any) -> None:
    def broken(*_args: Any, **_kwargs: Any) -> Any:
        raise OSError("disk full")

    _login_form(gateway)
    monkeypatch.setattr(gateway.services.audit, "append", broken)
    answer = gateway.client.post("/ui/login", data={"csrf": "forged", "api_key": "x"}, follow_redirects=False)
    assert answer.status_code == 403
