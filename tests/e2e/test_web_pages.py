"""The web pages in Debian's Chromium, driven by Playwright, against a live gateway on loopback.

A supervisor logs in, sees the held item, approves it and the requester's poll returns the asset;
a second-approver case; a requester cannot open the queue; legal searches and opens a record;
Japanese; forged and replayed form posts. A screenshot is saved (under the test's tmp dir) when a
browser step fails.
"""

from __future__ import annotations

import base64
import re
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import update

pytestmark = pytest.mark.e2e
CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


@dataclass
class Live:
    url: str
    services: Any
    keys: dict[str, str]
    ids: dict[str, str]

    def auth(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[who]}"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, tiny_models: Any) -> Iterator[Live]:
    import uvicorn

    from gateway.app import create_app
    from gateway.bootstrap import build_services
    from gateway.settings import Settings

    settings = Settings(
        data_dir=tmp_path_factory.mktemp("web-data"),
        extra_sizes=["64x64"],
        generator_options={
            "model": str(tiny_models.text2img),
            "edit_model": str(tiny_models.edit),
            "inpaint_model": str(tiny_models.inpaint),
        },
        log_level="WARNING",
    )
    services = build_services(settings)
    keys, ids = {}, {}
    for who, role, tenant in [
        ("requester", "requester", "acme"),
        ("requester2", "requester", "acme"),
        ("supervisor", "supervisor", "acme"),
        ("supervisor_b", "supervisor", "acme"),
        ("auditor", "auditor", "acme"),
        ("admin", "admin", "acme"),
    ]:
        info, keys[who] = services.keys.create(role=role, tenant=tenant, name=who.replace("_", " ").title())
        ids[who] = info.id
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings, services), host="127.0.0.1", port=port, log_config=None)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started
    yield Live(url=f"http://127.0.0.1:{port}", services=services, keys=keys, ids=ids)
    server.should_exit = True
    thread.join(timeout=15)
    services.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@contextmanager
def screenshot_on_failure(page: Any, tmp_path: Path, name: str) -> Iterator[None]:
    try:
        yield
    except BaseException:
        shot = tmp_path / f"{name}-failure.png"
        try:
            page.screenshot(path=str(shot), full_page=True)
            print(f"screenshot saved: {shot}")
        except Exception as exc:  # the page itself may be gone
            print(f"no screenshot: {exc}")
        raise


def held(live: Live, seed: int, prompt: str) -> dict[str, Any]:
    with httpx.Client(base_url=live.url, timeout=60) as c:
        first = c.post(
            "/v1/images/generations",
            json={"prompt": prompt, "size": "64x64", "seed": seed},
            headers=live.auth("requester2"),
        )
        png = base64.b64decode(first.json()["data"][0]["b64_json"])
        c.post("/v1/protected", files={"file": ("work.png", png, "image/png")}, headers=live.auth("admin"))
        resp = c.post(
            "/v1/images/generations",
            json={"prompt": prompt, "size": "64x64", "seed": seed},
            headers=live.auth("requester"),
        )
        assert resp.status_code == 202, resp.text
        return dict(resp.json()["mamori"])


def login(browser: Any, live: Live, who: str) -> Any:
    context = browser.new_context(base_url=live.url, locale="en-US")
    page = context.new_page()
    page.goto("/ui/login")
    page.fill("#api_key", live.keys[who])
    page.click("#sign-in")
    page.wait_for_load_state()
    return page


def test_supervisor_approves_and_the_requester_gets_the_asset(browser: Any, live: Live, tmp_path: Path) -> None:
    m = held(live, 8101, "a lighthouse in fog")
    page = login(browser, live, "supervisor")
    with screenshot_on_failure(page, tmp_path, "approve"):
        assert page.url.endswith("/ui/queue")
        row = page.locator(f"tr[data-id='{m['escalation_id']}']")
        assert row.count() == 1
        assert int(page.inner_text("#count-open")) >= 1
        row.locator("a.open-item").click()
        page.wait_for_url(re.compile(f"/ui/items/{m['escalation_id']}"))
        assert page.inner_text("#prompt") == "a lighthouse in fog"
        assert "protected_work" in page.inner_text("#findings")
        assert page.locator("img.asset").evaluate("img => img.naturalWidth") == 64
        assert page.locator("img.work").evaluate("img => img.naturalWidth") == 64  # the matched work beside it
        page.keyboard.press("c")  # keyboard shortcut: claim
        page.wait_for_selector("#msg")
        assert page.inner_text("#status") == "claimed"
        page.keyboard.press("a")  # focus the approval reason
        page.keyboard.type("licensed from the owner")
        page.keyboard.press("Control+Enter")
        page.wait_for_selector("#msg")
        assert page.inner_text("#status") == "approved"
    poll = httpx.get(f"{live.url}{m['poll_url']}", headers=live.auth("requester"), timeout=30).json()
    assert poll["mamori"]["status"] == "released" and len(poll["data"]) == 1
    page.context.close()


def test_second_approver_is_needed(browser: Any, live: Live, tmp_path: Path) -> None:
    from audit.models import EscalationRow

    m = held(live, 8202, "a red tractor")
    with live.services.sessions.begin() as session:
        session.execute(
            update(EscalationRow).where(EscalationRow.id == m["escalation_id"]).values(approvals_required=2)
        )
    first = login(browser, live, "supervisor")
    with screenshot_on_failure(first, tmp_path, "first-approver"):
        first.goto(f"/ui/items/{m['escalation_id']}")
        first.fill("#approve-reason", "fine")
        first.click("#approve")
        first.wait_for_selector("#msg")
        assert first.inner_text("#status") == "pending"
        assert first.inner_text("#approvals") == "1/2"
        first.fill("#approve-reason", "again")  # the same reviewer cannot give the second approval
        first.click("#approve")
        assert first.inner_text("#error") and first.get_attribute("#error", "data-code") == "already_approved"
    held_poll = httpx.get(f"{live.url}{m['poll_url']}", headers=live.auth("requester"), timeout=30).json()
    assert held_poll["mamori"]["status"] == "held"
    second = login(browser, live, "supervisor_b")
    with screenshot_on_failure(second, tmp_path, "second-approver"):
        second.goto(f"/ui/items/{m['escalation_id']}")
        second.fill("#approve-reason", "agreed")
        second.click("#approve")
        second.wait_for_selector("#msg")
        assert second.inner_text("#status") == "approved"
    done = httpx.get(f"{live.url}{m['poll_url']}", headers=live.auth("requester"), timeout=30).json()
    assert done["mamori"]["status"] == "released"
    first.context.close()
    second.context.close()


def test_requester_cannot_open_the_queue(browser: Any, live: Live, tmp_path: Path) -> None:
    page = login(browser, live, "requester")
    with screenshot_on_failure(page, tmp_path, "requester"):
        response = page.goto("/ui/queue")
        assert response is not None and response.status == 403
        assert page.get_attribute("#error", "data-code") == "forbidden"
        assert page.locator("#queue").count() == 0
    page.context.close()


def test_legal_searches_and_opens_a_record_in_japanese(browser: Any, live: Live, tmp_path: Path) -> None:
    held(live, 8303, "a silver train")
    page = login(browser, live, "auditor")
    with screenshot_on_failure(page, tmp_path, "legal"):
        assert page.url.endswith("/ui/audit")
        page.click("#lang-ja")
        page.wait_for_load_state()
        assert page.locator("html").get_attribute("lang") == "ja"
        assert "監査ログ検索" in page.inner_text("h1")
        page.fill("#q-event", "request")
        page.fill("#q-category", "protected_work")
        page.click("#search")
        page.wait_for_load_state()
        links = page.locator("a.record-link")
        assert links.count() >= 1
        assert page.get_attribute("#export", "href").startswith("/v1/audit/export")
        links.first.click()
        page.wait_for_load_state()
        assert page.get_attribute("#chain-status", "data-ok") == "true"
        assert page.inner_text("#event-type") == "request"
        assert "protected_work" in page.inner_text("#payload")
        response = page.goto("/ui/queue")  # legal reviewers do not decide
        assert response is not None and response.status == 403
    page.context.close()


def test_forged_and_replayed_posts_change_nothing(browser: Any, live: Live, tmp_path: Path) -> None:
    m = held(live, 8404, "a green bus")
    page = login(browser, live, "supervisor")
    with screenshot_on_failure(page, tmp_path, "forged"):
        page.goto(f"/ui/items/{m['escalation_id']}")
        csrf = page.get_attribute("#claim-form input[name=csrf]", "value")
        nonce = page.get_attribute("#claim-form input[name=nonce]", "value")
        forged = page.request.post(
            f"/ui/items/{m['escalation_id']}/reject", form={"csrf": "forged", "nonce": "n" * 16, "reason": "x"}
        )
        assert forged.status == 403 and "csrf_failed" in forged.text()
        # a cross-site form post carries no cookie (SameSite=Strict): a fresh context has no session
        outsider = browser.new_context(base_url=live.url).request.post(
            f"/ui/items/{m['escalation_id']}/reject", form={"csrf": csrf, "nonce": nonce, "reason": "x"}
        )
        assert outsider.status == 403
        first = page.request.post(
            f"/ui/items/{m['escalation_id']}/comment", form={"csrf": csrf, "nonce": nonce, "text": "hi"}
        )
        assert first.ok
        replay = page.request.post(
            f"/ui/items/{m['escalation_id']}/comment", form={"csrf": csrf, "nonce": nonce, "text": "hi"}
        )
        assert replay.status == 409 and "duplicate_submission" in replay.text()
        unknown = page.request.post("/ui/items/nope/claim", form={"csrf": csrf, "nonce": "m" * 16})
        assert unknown.status == 404
    e = live.services.escalations.get(m["escalation_id"])
    assert e.status == "pending"
    assert [ev.kind for ev in live.services.escalations.events(e.id)] == ["comment"]
    cookies = page.context.cookies()
    session = next(c for c in cookies if c["name"] == "mamori_session")
    assert session["httpOnly"] and session["sameSite"] == "Strict"
    assert live.keys["supervisor"] not in session["value"]
    page.context.close()


def test_summary_page_and_report_api(browser: Any, live: Live, tmp_path: Path) -> None:
    report = httpx.get(f"{live.url}/v1/reports/summary", headers=live.auth("admin"), timeout=30).json()
    assert report["total"]["requests"] >= 1
    assert httpx.get(f"{live.url}/v1/reports/summary", headers=live.auth("requester"), timeout=30).status_code == 403
    page = login(browser, live, "admin")
    with screenshot_on_failure(page, tmp_path, "summary"):
        page.goto("/ui/summary")
        assert int(page.inner_text("#total .n-requests")) >= 1
    page.context.close()
