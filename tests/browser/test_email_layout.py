"""Every email kind, opened in headless Chromium at phone and desktop widths, fits the screen.

Screenshots go to test-artifacts/email-layout/ for a person to look at.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, sync_playwright

from cop_mail.rendering import EMAIL_KINDS, preview_email
from cop_mail.settings import Settings

pytestmark = pytest.mark.browser

CHROMIUM = os.environ.get("COP_MAIL_CHROMIUM", "/usr/bin/chromium")
WIDTHS = (375, 600)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: apt-get install -y chromium"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def settings() -> Settings:
    return Settings(
        instance_path=Path("/nonexistent/instance"),
        database_url="sqlite://",
        secret_key="browser-secret-" + "x" * 40,
        public_url="https://community.example.org",
        community_name="Riverside Practice",
        postal_address="4 Mill Lane, Riverside RV1 2AB",
    )


@pytest.fixture(scope="module")
def shots(artifacts_dir: Path) -> Path:
    folder = artifacts_dir / "email-layout"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("kind", sorted(EMAIL_KINDS))
def test_email_fits_the_screen(kind: str, width: int, browser: Browser, settings: Settings, shots: Path):
    recipient = {"name": "Maximiliana Papadopoulou-Wolfeschlegelsteinhausen", "first_name": "Maximiliana"}
    _, body_html, _ = preview_email(kind, settings, recipient=recipient)
    page = browser.new_page(viewport={"width": width, "height": 900})
    try:
        page.route("**/*", lambda route: route.abort())  # no network: images fail fast, nothing leaks out
        page.set_content(body_html, wait_until="load")
        metrics: dict[str, Any] = page.evaluate(
            "() => ({scroll: document.documentElement.scrollWidth, body: document.body.scrollWidth,"
            " view: window.innerWidth, text: document.body.innerText})"
        )
        page.screenshot(path=str(shots / f"{kind}-{width}.png"), full_page=True)
    finally:
        page.close()
    assert metrics["view"] == width
    assert metrics["scroll"] <= width, f"{kind} is {metrics['scroll']} px wide at {width} px"
    assert metrics["body"] <= width
    assert "Unsubscribe" in metrics["text"] and "4 Mill Lane" in metrics["text"]
