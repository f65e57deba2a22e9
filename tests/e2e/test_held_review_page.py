"""The review page (/ui/items/{id}) for held text and held 3D, in Debian's Chromium, on the session's live server.

A held chat answer is shown as text, escaped (an answer holding markup is not run as markup); a held
GLB is shown as its rendered views with a download link, and approving it from the page releases
the GLB with its sidecar manifest. Screenshots are saved under the test's tmp dir when a step fails.
"""

from __future__ import annotations

import time
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
BRAND = "Kettlewave"
HOSTILE = 'A <b id="injected">bold</b> & <script>window.injected=1</script><img src=x onerror="window.injected=2">'


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


@pytest.fixture
def brand_is_protected(live_server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The real protected-names detector in the prescreen: naming the brand escalates (prescreen.protected_name)."""
    from detectors.protected_names import ProtectedNames

    names = ProtectedNames(names=[{"name": BRAND, "kind": "brand"}])
    names.load()
    services = live_server.services
    monkeypatch.setattr(services, "prescreen_detectors", [*services.prescreen_detectors, names])


def _supervisor_page(browser: Any, live_server: Any) -> Any:
    context = browser.new_context(base_url=live_server.root, locale="en-US")
    page = context.new_page()
    page.goto("/ui/login")
    page.fill("#api_key", live_server.keys["supervisor"])
    page.click("#sign-in")
    page.wait_for_load_state()
    return page


def _requester(live_server: Any) -> httpx.Client:
    headers = {"Authorization": f"Bearer {live_server.keys['requester']}"}
    return httpx.Client(base_url=live_server.root, headers=headers, timeout=120)


def test_held_text_is_shown_escaped(
    browser: Any, live_server: Any, brand_is_protected: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from generators.transformers_text import TextCompletion

    # a model that answers with markup: the page must show it as text, never run it
    monkeypatch.setattr(
        live_server.services.text_generator, "complete", lambda *_a, **_k: TextCompletion(HOSTILE, "stop", 9, 30)
    )
    body = {"model": "mamori-text", "messages": [{"role": "user", "content": f"a {BRAND} line"}], "seed": 3}
    with _requester(live_server) as client:
        resp = client.post("/v1/chat/completions", json=body)
    assert resp.status_code == 202, resp.text
    escalation_id = resp.json()["mamori"]["escalation_id"]

    page = _supervisor_page(browser, live_server)
    with screenshot_on_failure(page, tmp_path, "held-text"):
        page.goto(f"/ui/items/{escalation_id}")
        assert page.inner_text("#held-text-0") == HOSTILE  # the exact text, as text
        assert page.locator("#injected").count() == 0  # no element was made from it
        assert page.evaluate("window.injected === undefined")
        assert "no C2PA manifest" in page.inner_text("#c2pa-text")
        download = page.request.get(page.get_attribute(".asset-text a.download", "href") or "")
        assert download.status == 200 and download.body().decode("utf-8") == HOSTILE
        assert download.headers["content-disposition"].startswith("attachment")
    page.context.close()


def test_held_glb_is_drawn_and_approved_from_the_page(
    browser: Any, live_server: Any, brand_is_protected: None, tmp_path: Path
) -> None:
    with _requester(live_server) as client:
        created = client.post("/v1/3d", json={"prompt": f"a {BRAND} kettle", "seed": 21})
        assert created.status_code == 200, created.text
        mesh = created.json()
        deadline = time.monotonic() + 120
        while mesh["mamori"].get("status") != "held" and mesh["status"] not in ("completed", "failed"):
            assert time.monotonic() < deadline, mesh
            time.sleep(0.1)
            mesh = client.get(f"/v1/3d/{mesh['id']}").json()
        assert mesh["mamori"]["status"] == "held", mesh
        escalation_id = mesh["mamori"]["escalation_id"]

        page = _supervisor_page(browser, live_server)
        with screenshot_on_failure(page, tmp_path, "held-glb"):
            page.goto(f"/ui/items/{escalation_id}")
            views = page.locator(".asset-3d img.asset-views")
            views.wait_for()
            page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=views.element_handle())
            assert views.evaluate("img => [img.naturalWidth, img.naturalHeight]") == [768, 192]  # four views
            assert "sidecar manifest" in page.inner_text("#c2pa-sidecar")
            download = page.request.get(page.get_attribute(".asset-3d a.download", "href") or "")
            assert download.status == 200
            held_glb = download.body()
            assert held_glb[:4] == b"glTF"
            page.fill("#approve-reason", "our own kettle")
            page.click("#approve")
            page.wait_for_load_state()
            assert page.inner_text("#status") == "approved"
        page.context.close()

        done = client.get(f"/v1/3d/{mesh['id']}").json()
        assert done["status"] == "completed", done
        content = client.get(done["content_url"])
        manifest = client.get(done["manifest_url"])
    assert content.content == held_glb  # released as held, unchanged
    from gateway.provenance_sidecar import read_sidecar

    report = read_sidecar(live_server.services.provenance, content.content, "model/gltf-binary", manifest.content)
    assert report.validation_state == "Trusted"
    assert report.assertions["mamori.decision"]["review"]["action"] == "approved"
