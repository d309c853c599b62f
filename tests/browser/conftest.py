"""The admin in a real browser: the app served over HTTP by werkzeug in a thread, driven by
Debian's Chromium through Playwright.

- `live_server`: the app on a free loopback port, on the test database and the test Redis, with a
  local mail catcher as its SMTP server so whatever it sends shows in the Outbox.
- `live_server.wait_for_mail(to, subject)`: the message the app (or a job) sent there.
- `browser`: headless Chromium (one per test module); `page`: a fresh page with a phone-or-desktop
  viewport; `new_page(...)`: another person's browser (its own cookies), e.g. at phone width or with
  `java_script_enabled=False`; `logged_in(role)`: an account of that role, logged in through the real
  login form. Pages reach only the live server; `outside_requests` lists whatever they tried elsewhere.
- `shot(page, step)`: a full-page screenshot at test-artifacts/browser/<test name>-<step>.png
  (given a locator instead of a page, a screenshot of that element).
- `check_a11y(page)`: axe-core (installed from the npm registry into .cache/browser on first use),
  or, if that cannot be installed, a small in-page checker; fails on serious or critical problems.
  A page without JavaScript is checked on a copy of its document in a page that runs scripts.

Browser tests run on one database (PostgreSQL unless COP_MAIL_BROWSER_DB=sqlite): the
integration and web tests already cover both.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Locator, Page, Route, expect, sync_playwright
from werkzeug.serving import BaseWSGIServer, make_server

from tests.conftest import free_port

CHROMIUM = os.environ.get("COP_MAIL_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
AXE_VERSION = "4.10.3"
REPO = Path(__file__).resolve().parents[2]
CACHE = REPO / ".cache" / "browser"
PASSWORD = "correct horse battery"
BLOCKING_IMPACTS = ("serious", "critical")
TIMEOUT_MS = 15_000


@pytest.fixture
def db_url(request: pytest.FixtureRequest) -> str:
    # A module may still choose with @pytest.mark.parametrize("db_url", ["sqlite"], indirect=True).
    choice = getattr(request, "param", None) or os.environ.get("COP_MAIL_BROWSER_DB", "postgresql")
    return request.getfixturevalue("sqlite_url" if choice == "sqlite" else "pg_url")


# --- the app over HTTP ---------------------------------------------------------------------------


@dataclass
class LiveServer:
    url: str
    app: Any
    settings: Any
    smtp_port: int
    outbox: Path

    def path(self, path: str) -> str:
        return self.url + path

    def wait_for_mail(self, to: str, subject: str, timeout: float = 10) -> Any:
        """The newest message caught for this address whose subject contains `subject`."""
        from cop_mail import mailcatcher

        deadline = time.monotonic() + timeout
        while True:
            _, caught = mailcatcher.list_messages(self.outbox, limit=1000)
            found = [m for m in caught if to in m.to and subject in m.subject]
            if found:
                return found[0]
            assert time.monotonic() < deadline, (
                f"no message to {to} about {subject!r}; caught: {[(m.to, m.subject) for m in caught]}"
            )
            time.sleep(0.05)


@pytest.fixture
def live_ports() -> tuple[int, int]:
    """The web port and the SMTP port of the mail catcher, chosen before the settings are made."""
    return free_port(), free_port()


@pytest.fixture
def settings(make_settings: Callable[..., Any], redis_conn: Any, engine: Any, live_ports: tuple[int, int],
             tmp_path: Path) -> Any:  # fmt: skip
    """The test settings, pointed at the live server's address and mail catcher (jobs run by
    `run_jobs` read the same, so what a worker sends lands in the Outbox)."""
    port, smtp_port = live_ports
    outbox = tmp_path / "outbox"
    outbox.mkdir(exist_ok=True)
    return make_settings(public_url=f"http://127.0.0.1:{port}", smtp_port=smtp_port, outbox_dir=outbox)


@pytest.fixture
def live_server(settings: Any, make_app: Callable[..., Any], live_ports: tuple[int, int]) -> Iterator[LiveServer]:
    from cop_mail import mailcatcher

    port, smtp_port = live_ports
    catcher = mailcatcher.start(settings.outbox_dir, "127.0.0.1", smtp_port)
    app = make_app(settings)
    server: BaseWSGIServer = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="live-server", daemon=True)
    thread.start()
    try:
        yield LiveServer(f"http://127.0.0.1:{port}", app, settings, smtp_port, settings.outbox_dir)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
        catcher.stop()


# --- the browser ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        _install_chromium()
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: apt-get install -y chromium"
    expect.set_options(timeout=TIMEOUT_MS)  # the machine is shared: give slow moments room
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


def _install_chromium() -> None:
    if os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=False, env=env, capture_output=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", "chromium"], check=False, env=env, capture_output=True)


@pytest.fixture
def outside_requests() -> list[str]:
    """Every address a page of this test tried to reach beyond the live server (each was refused)."""
    return []


@pytest.fixture
def new_page(browser: Browser, live_server: LiveServer, outside_requests: list[str]) -> Iterator[Callable[..., Page]]:
    """Open a page in a browser context of its own: `new_page(width=375, java_script_enabled=False)`."""
    contexts = []
    errors: list[str] = []

    def refuse(route: Route) -> None:
        outside_requests.append(route.request.url)
        route.abort()

    def open_page(width: int = 1280, height: int = 900, **options: Any) -> Page:
        context = browser.new_context(viewport={"width": width, "height": height}, base_url=live_server.url,
                                      **options)  # fmt: skip
        contexts.append(context)
        context.set_default_timeout(TIMEOUT_MS)
        # Nothing leaves the machine: only the live server is reachable.
        context.route(re.compile(r"^(?!http://127\.0\.0\.1:\d+/).*"), refuse)
        opened = context.new_page()
        opened.on("pageerror", lambda exc: errors.append(str(exc)))
        return opened

    yield open_page
    for context in contexts:
        context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


@pytest.fixture
def page(new_page: Callable[..., Page]) -> Page:
    return new_page()


@pytest.fixture
def logged_in(page: Page, db: Any) -> Callable[..., Page]:
    """Create an account with this role (unless the address has one) and log in through the form, as
    a person would; on `page`, or on the page given as `on` (e.g. one without JavaScript)."""
    from cop_mail import accounts
    from cop_mail.models import Role

    def log_in(role: str = "owner", email: str | None = None, on: Page | None = None) -> Page:
        address = email or f"{role}@example.org"
        if accounts.find_admin_by_email(db, address) is None:
            accounts.create_admin(db, address, PASSWORD, Role(role), role.capitalize())
            db.commit()
        tab = on or page
        tab.goto("/login")
        tab.get_by_label("Email").fill(address)
        tab.get_by_label("Password").fill(PASSWORD)
        tab.get_by_role("button", name="Log in").click()
        tab.wait_for_url(re.compile(r"/admin/$"))
        return tab

    return log_in


# --- screenshots ----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def browser_artifacts(artifacts_dir: Path) -> Path:
    folder = artifacts_dir / "browser"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def shot(request: pytest.FixtureRequest, browser_artifacts: Path) -> Callable[[Page | Locator, str], Path]:
    """Save a full-page screenshot (or one element's, given a locator) named after the test and the
    step; returns its path."""
    test_name = re.sub(r"[^A-Za-z0-9_.-]+", "-", request.node.name).strip("-")

    def take(target: Page | Locator, step: str) -> Path:
        path = browser_artifacts / f"{test_name}-{re.sub(r'[^A-Za-z0-9_.-]+', '-', step)}.png"
        if isinstance(target, Locator):
            target.screenshot(path=str(path))
        else:
            target.screenshot(path=str(path), full_page=True)
        return path

    return take


# --- accessibility --------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def axe_source() -> str | None:
    """axe-core's script, installed into the project's cache on first use; None when npm cannot fetch it."""
    script = CACHE / "node_modules" / "axe-core" / "axe.min.js"
    if not script.exists() and shutil.which("npm"):
        CACHE.mkdir(parents=True, exist_ok=True)
        ignore = REPO / ".cache" / ".gitignore"
        if not ignore.exists():
            ignore.write_text("# Downloaded tools for the tests; never committed.\n*\n")
        subprocess.run(
            ["npm", "install", "--prefix", str(CACHE), "--no-audit", "--no-fund", "--no-save", "--silent",
             f"axe-core@{AXE_VERSION}"],
            check=False, capture_output=True, timeout=180,
        )  # fmt: skip
    return script.read_text() if script.exists() else None


# Used only when axe-core could not be installed: the checks that matter most on our pages.
FALLBACK_CHECKER = r"""
() => {
  const problems = [];
  const describe = (el) => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '');
  const add = (id, impact, el, help) => problems.push({id, impact, help, nodes: [{target: [describe(el)]}]});
  const visible = (el) => {
    const s = getComputedStyle(el);
    return s.display !== 'none' && s.visibility !== 'hidden';
  };
  const named = (el) => (el.getAttribute('aria-label') || '').trim() || el.getAttribute('aria-labelledby')
    || (el.id && document.querySelector(`label[for="${CSS.escape(el.id)}"]`)) || el.closest('label')
    || (el.getAttribute('title') || '').trim();
  const fields = 'input:not([type=hidden]):not([type=submit]):not([type=button]), select, textarea';
  for (const el of document.querySelectorAll(fields)) {
    if (!named(el)) add('label', 'critical', el, 'Form elements must have labels');
  }
  for (const el of document.querySelectorAll('img:not([alt])')) {
    if (el.getAttribute('role') !== 'presentation') add('image-alt', 'critical', el, 'Images need alternative text');
  }
  for (const el of document.querySelectorAll('a[href], button')) {
    const text = (el.innerText || '').trim() || named(el) || el.querySelector('img[alt]:not([alt=""])');
    if (visible(el) && !text) add(el.tagName === 'A' ? 'link-name' : 'button-name', 'serious', el, 'Needs a name');
  }
  const ids = new Set();
  for (const el of document.querySelectorAll('[id]')) {
    if (ids.has(el.id)) add('duplicate-id', 'serious', el, 'IDs must be unique');
    ids.add(el.id);
  }
  const root = document.documentElement;
  if (!root.lang) add('html-has-lang', 'serious', root, 'The page must say its language');
  if (!document.title.trim()) add('document-title', 'serious', root, 'The page must have a title');
  const rgb = (c) => (c.match(/[\d.]+/g) || ['0', '0', '0', '0']).map(Number);
  const channel = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
  const lum = ([r, g, b]) => 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b);
  const background = (el) => {
    for (let e = el; e; e = e.parentElement) {
      const c = rgb(getComputedStyle(e).backgroundColor);
      if (c.length < 4 || c[3] > 0) return c;
    }
    return [255, 255, 255];
  };
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  const seen = new Set();
  while (walker.nextNode()) {
    const el = walker.currentNode.parentElement;
    if (!el || seen.has(el) || !walker.currentNode.textContent.trim() || !visible(el) || el.closest('svg')) continue;
    seen.add(el);
    const style = getComputedStyle(el);
    if (el.getBoundingClientRect().width <= 1) continue;
    const [l1, l2] = [lum(rgb(style.color)), lum(background(el))].sort((a, b) => b - a);
    const ratio = (l1 + 0.05) / (l2 + 0.05);
    const size = parseFloat(style.fontSize);
    const large = size >= 24 || (size >= 18.66 && Number(style.fontWeight) >= 700);
    if (ratio < (large ? 3 : 4.5)) add('color-contrast', 'serious', el, `Contrast ${ratio.toFixed(2)}:1 is too low`);
  }
  let last = 0;
  for (const h of document.querySelectorAll('h1, h2, h3, h4, h5, h6')) {
    const level = Number(h.tagName[1]);
    if (last && level > last + 1) add('heading-order', 'moderate', h, 'Heading levels should rise one at a time');
    last = level;
  }
  return {violations: problems};
}
"""


def a11y_checker(axe_script: str | None) -> Callable[..., list[dict[str, Any]]]:
    """A checker using axe-core when its script is given, else the fallback above."""

    def check(page: Page, context: str = "") -> list[dict[str, Any]]:
        if axe_script is None:
            result = page.evaluate(FALLBACK_CHECKER)
        else:
            if not page.evaluate(AXE_LOADED):
                page.add_script_tag(content=axe_script)
            # A page that runs no scripts (java_script_enabled=False) cannot run axe itself.
            result = page.evaluate(AXE_RUN) if page.evaluate(AXE_LOADED) else _check_a_copy(page, axe_script)
        blocking = [v for v in result["violations"] if v["impact"] in BLOCKING_IMPACTS]
        assert not blocking, f"accessibility problems on {context or page.url}:\n" + json.dumps(blocking, indent=1)
        return list(result["violations"])

    return check


def _check_a_copy(page: Page, axe_script: str) -> Any:
    """Run axe on the page's document as it is now, served again at its own address (so its styles
    load) in a scratch page of the same size, with its scripts left out as they never ran."""
    html = page.evaluate(
        """() => { const copy = document.documentElement.cloneNode(true);
                   copy.querySelectorAll('script').forEach((s) => s.remove());
                   return '<!doctype html>' + copy.outerHTML; }"""
    )
    assert page.context.browser is not None
    scratch = page.context.browser.new_page(viewport=page.viewport_size)
    try:
        address = page.url.split("#", 1)[0]  # what the browser asks the server for
        scratch.route(lambda url: url == address, lambda route: route.fulfill(body=html, content_type="text/html"))
        scratch.route(re.compile(r"^(?!http://127\.0\.0\.1:\d+/).*"), lambda route: route.abort())
        scratch.goto(page.url)
        scratch.add_script_tag(content=axe_script)
        return scratch.evaluate(AXE_RUN)
    finally:
        scratch.close()


AXE_LOADED = "() => typeof window.axe !== 'undefined'"
AXE_RUN = """async () => {
    const r = await axe.run(document, {resultTypes: ['violations'],
        runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice']}});
    return {violations: r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
        nodes: v.nodes.slice(0, 5).map(n => ({target: n.target, summary: n.failureSummary}))}))};
}"""


@pytest.fixture
def check_a11y(axe_source: str | None) -> Callable[..., list[dict[str, Any]]]:
    """Check the page as it is now; fails on serious or critical violations."""
    return a11y_checker(axe_source)
