"""The staff workspace (/ui/staff) in Debian's Chromium: a requester picks an approved template, fills the form
generated from its slots and sees the released image; a bad slot value and a refused fill are explained in
plain language, in English and in Japanese. Uses the session's live server.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.e2e
CHROMIUM = "/usr/bin/chromium"  # the same browser setup as test_web_pages.py
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


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


SPEC: dict[str, Any] = {
    "name": "Staff catalog photo",
    "modality": "image",
    "pattern": "catalog photo of {product} on {background}, {count} items",
    "slots": [
        {"name": "product", "type": "text", "max_length": 30, "label": "Product", "label_ja": "製品"},
        {"name": "background", "type": "choice", "choices": ["white", "oak table"], "label": "Background"},
        {"name": "count", "type": "integer", "minimum": 1, "maximum": 3, "default": 1, "label": "Count"},
    ],
    "params": {"size": "64x64", "steps": 2, "seed_policy": "per-request"},
}


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    import shutil

    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def template_id(live_server: Any) -> str:
    services = live_server.services
    _, officer = services.keys.create(role="compliance", tenant="acme", name="staff-page officer")
    admin = {"Authorization": f"Bearer {live_server.keys['admin']}"}
    with httpx.Client(base_url=live_server.root, timeout=60) as c:
        created = c.post("/v1/templates", json=SPEC, headers=admin)
        assert created.status_code == 201, created.text
        tid = str(created.json()["id"])
        assert c.post(f"/v1/templates/{tid}/submit", headers=admin).status_code == 200
        approved = c.post(f"/v1/templates/{tid}/approve", headers={"Authorization": f"Bearer {officer}"})
        assert approved.status_code == 200, approved.text
    return tid


def _login(browser: Any, live_server: Any, locale: str) -> Any:
    context = browser.new_context(base_url=live_server.root, locale=locale)
    page = context.new_page()
    page.goto("/ui/login")
    page.fill("#api_key", live_server.keys["requester"])
    page.click("#sign-in")
    page.wait_for_load_state()
    return page


def test_requester_fills_a_template_and_sees_the_result(
    browser: Any, live_server: Any, template_id: str, tmp_path: Path
) -> None:
    page = _login(browser, live_server, "en-US")
    with screenshot_on_failure(page, tmp_path, "staff"):
        assert page.url.endswith("/ui/staff")  # a requester lands on the staff workspace
        page.click(f"tr[data-id='{template_id}'] a.pick-template")
        page.wait_for_load_state()
        assert page.inner_text("#template-name") == "Staff catalog photo"
        # the form comes from the slots: text with its limit, a select of the choices, a number with bounds
        assert page.get_attribute("#slot-product", "maxlength") == "30"
        assert page.locator("#slot-background option").all_inner_texts() == ["white", "oak table"]
        assert page.get_attribute("#slot-count", "type") == "number"
        assert page.get_attribute("#slot-count", "max") == "3.0"

        page.fill("#slot-product", "blue kettle")
        page.select_option("#slot-background", "oak table")
        page.fill("#seed", "7")
        page.click("#generate")
        page.wait_for_selector("#result-status")
        assert page.get_attribute("#result-status", "data-status") == "released"
        assert page.locator("img.result-image").evaluate("img => img.naturalWidth") == 64
        request_id = page.inner_text("#request-id")

        # a slot value the template does not allow: the form again, naming the field
        page.goto(f"/ui/staff/templates/{template_id}")
        page.evaluate("document.getElementById('slot-product').removeAttribute('maxlength')")
        page.fill("#slot-product", "k" * 31)
        page.click("#generate")
        page.wait_for_selector("#slot-error")
        assert "Product" in page.inner_text("#slot-error") and "too long" in page.inner_text("#slot-error")

        # a refused fill, explained in Japanese
        page.click("#lang-ja")
        page.wait_for_load_state()
        page.fill("#slot-product", "forbidden-zebra")
        page.click("#generate")
        page.wait_for_selector("#result-status")
        assert page.get_attribute("#result-status", "data-status") == "refused"
        assert page.locator("html").get_attribute("lang") == "ja"
        assert "拒否されました" in page.inner_text("#result-status")
        assert "禁止されている語句" in page.inner_text("#reasons")
    page.context.close()

    record = [r for r in live_server.services.audit.for_request(request_id) if r.event_type == "request"]
    assert len(record) == 1 and record[0].payload["request"]["template"]["id"] == template_id


def test_other_tenants_and_anonymous_users_cannot_fill(live_server: Any, template_id: str) -> None:
    with httpx.Client(base_url=live_server.root, timeout=30, follow_redirects=False) as c:
        anonymous = c.get(f"/ui/staff/templates/{template_id}")
        assert anonymous.status_code == 303 and "/ui/login" in anonymous.headers["location"]
        posted = c.post(f"/ui/staff/templates/{template_id}/generate", data={"slot_product": "x"})
        assert posted.status_code == 403
        refused = [r for r in live_server.services.audit.for_request(posted.headers["x-request-id"])]
        assert len(refused) == 1 and refused[0].payload["http_status"] == 403


SOUND_SPEC: dict[str, Any] = {
    "name": "Staff jingle",
    "modality": "audio",
    "pattern": "a short {mood} jingle for the {product}",
    "slots": [
        {"name": "mood", "type": "choice", "choices": ["calm", "cheerful"], "label": "Mood"},
        {"name": "product", "type": "text", "max_length": 30, "label": "Product"},
    ],
    "params": {"seconds": 1, "seed_policy": "per-request"},
}
MESH_SPEC: dict[str, Any] = {
    "name": "Staff mock-up",
    "modality": "3d",
    "pattern": "a 3D mock-up of {product}",
    "slots": [{"name": "product", "type": "text", "max_length": 30, "label": "Product"}],
    "params": {"seed_policy": "per-request"},
}


def test_sound_and_3d_templates_show_their_governed_results(browser: Any, live_server: Any, tmp_path: Path) -> None:
    services = live_server.services
    _, officer = services.keys.create(role="compliance", tenant="acme", name="staff-media officer")
    admin = {"Authorization": f"Bearer {live_server.keys['admin']}"}
    ids = {}
    with httpx.Client(base_url=live_server.root, timeout=60) as c:
        for spec in (SOUND_SPEC, MESH_SPEC):
            tid = str(c.post("/v1/templates", json=spec, headers=admin).json()["id"])
            assert c.post(f"/v1/templates/{tid}/submit", headers=admin).status_code == 200
            assert c.post(f"/v1/templates/{tid}/approve", headers={"Authorization": f"Bearer {officer}"}).is_success
            ids[spec["modality"]] = tid

    page = _login(browser, live_server, "en-US")
    with screenshot_on_failure(page, tmp_path, "staff-media"):
        # a sound: released, signed, played from the page
        page.goto(f"/ui/staff/templates/{ids['audio']}")
        page.select_option("#slot-mood", "calm")
        page.fill("#slot-product", "blue kettle")
        page.click("#generate")
        page.wait_for_selector("#result-status")
        assert page.get_attribute("#result-status", "data-status") == "released"
        src = page.locator("audio.result-audio").evaluate("a => a.src")
        wav = page.request.get(src)
        assert wav.ok and wav.headers["content-type"] == "audio/wav"
        report = services.provenance.read(wav.body(), "audio/wav")
        assert report.validation_state == "Trusted"

        # a 3D mock-up: queued on the job queue; the page names the 3D job, not a video
        page.goto(f"/ui/staff/templates/{ids['3d']}")
        page.fill("#slot-product", "blue kettle")
        page.click("#generate")
        page.wait_for_selector("#result-status")
        assert page.get_attribute("#result-status", "data-status") == "queued"
        assert "video" not in page.inner_text("#result-status").lower()
        assert page.inner_text("#mesh-id code").startswith("mesh_")
        assert page.locator("#video-id").count() == 0
    page.context.close()
