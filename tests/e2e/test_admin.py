"""The usage administration page in chromium, on a stack started as `make run` does with APP_ADMIN_ROLE set to a role
the test person Ada holds: she finds the page in the menu, sees its charts and downloads the CSV; Grace (no app roles)
gets no menu, and opening /admin by its URL shows her the access-denied screen and writes an audit record."""
from __future__ import annotations

import csv
import io
import json
import time
from decimal import Decimal

import pytest

import tests.e2e.conftest as e2e
from localdev.stack import OTHER_USER, TEST_USER
from store.usage_reports import EXPORT_COLUMNS

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
ADMIN_ROLE = "Chat.Experimenter"  # Ada has it, Grace has no app roles


@pytest.fixture(scope="module")
def admin_stack(tmp_path_factory):
    """`python -m localdev.stack` (as the `stack` fixture starts it) with APP_ADMIN_ROLE in its environment."""
    tmp = tmp_path_factory.mktemp("e2e-admin")
    real_child = e2e.Child

    def child(argv, *, env, **kwargs):
        return real_child(argv, env={**env, "APP_ADMIN_ROLE": ADMIN_ROLE}, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(e2e, "Child", child)
        running = e2e.start_stack(tmp)
    running.data_dir = tmp / "data"
    yield running
    running.stop()


@pytest.fixture(scope="module")
def admin_browser(admin_stack):
    from playwright.sync_api import sync_playwright

    args = [*e2e.CHROMIUM_ARGS, f"--ignore-certificate-errors-spki-list={e2e.spki_pin(admin_stack.server_cert)}"]
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=e2e.CHROMIUM, headless=True, args=args)
        yield chromium
        chromium.close()


def sign_in(browser, url: str, login_hint: str | None = None):
    page = browser.new_context(accept_downloads=True).new_page()
    page.set_default_timeout(30_000)
    page.goto(url)
    if login_hint:  # the sign-in route passes the account name on to Entra ID (the emulator signs that person in)
        page.goto(f"{url}/signin?login_hint={login_hint}")
    else:
        page.get_by_text("Sign in with Microsoft").click()
    page.get_by_text("Signed in as").wait_for()
    return page


def wait_idle(page) -> None:
    page.locator('[data-testid="stApp"][data-test-script-state="notRunning"]').wait_for()


def audit(stack, event: str) -> list[dict]:
    path = stack.data_dir / "audit" / "audit.jsonl"
    return [r for r in map(json.loads, path.read_text().splitlines()) if r["event"] == event]


def test_an_administrator_sees_charts_and_downloads_the_csv(admin_stack, admin_browser, secrets_audit):
    page = sign_in(admin_browser, admin_stack.url)
    box = page.get_by_test_id("stChatInputTextArea")
    box.fill("Something to count")
    box.press("Enter")
    page.locator('[data-testid="stChatMessage"]').nth(1).get_by_text("prompt +").wait_for()  # the answer has ended
    wait_idle(page)

    page.get_by_test_id("stSidebarNav").get_by_text("Usage administration").click()  # the menu, for administrators
    page.get_by_role("heading", name="Usage administration").wait_for()
    wait_idle(page)
    assert page.url.rstrip("/").endswith("/admin")
    page.get_by_test_id("stVegaLiteChart").first.wait_for()  # cost per day
    shown_calls = int(page.get_by_test_id("stMetric").filter(has_text="Model calls")
                      .get_by_test_id("stMetricValue").inner_text().replace(",", ""))
    assert shown_calls >= 1

    page.get_by_role("tab", name="By person").click()
    with page.expect_download(timeout=30_000) as started:  # a link to /exports/<token>, served by web/files.py
        page.locator(".st-key-admin_export").get_by_role("link", name="Download CSV").click()
    download = started.value
    assert download.suggested_filename.startswith("usage-") and download.suggested_filename.endswith(".csv")
    rows = list(csv.DictReader(io.StringIO(open(download.path(), encoding="utf-8").read())))
    assert rows and tuple(rows[0]) == EXPORT_COLUMNS
    assert sum(int(r["calls"]) for r in rows) == shown_calls
    assert {r["oid"] for r in rows} == {TEST_USER.oid} and {r["name"] for r in rows} == {TEST_USER.name}
    assert sum(Decimal(r["cost_usd"]) for r in rows) > 0
    deadline = time.monotonic() + 10
    while not audit(admin_stack, "usage_exported") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert audit(admin_stack, "usage_exported")[-1]["user_oid"] == TEST_USER.oid
    secrets_audit.texts.append(page.content())
    secrets_audit.secrets |= {c["value"] for c in page.context.cookies()}
    page.context.close()


def test_someone_without_the_role_gets_no_menu_and_is_refused_at_admin(admin_stack, admin_browser):
    page = sign_in(admin_browser, admin_stack.url, login_hint=OTHER_USER.preferred_username)
    wait_idle(page)
    assert OTHER_USER.name in page.get_by_test_id("stSidebar").inner_text()
    assert page.get_by_test_id("stSidebarNav").count() == 0  # no menu

    page.goto(f"{admin_stack.url}/admin")
    page.get_by_text(f"requires the '{ADMIN_ROLE}' app role").wait_for()
    wait_idle(page)
    assert page.get_by_role("heading", name="Usage administration").count() == 0
    assert page.get_by_test_id("stVegaLiteChart").count() == 0 and page.locator(".st-key-admin_export").count() == 0
    deadline = time.monotonic() + 10
    while not audit(admin_stack, "admin_access_denied") and time.monotonic() < deadline:
        time.sleep(0.1)
    refused = audit(admin_stack, "admin_access_denied")
    assert refused and {r["user_oid"] for r in refused} == {OTHER_USER.oid}
    assert refused[-1]["required_role"] == ADMIN_ROLE
    page.context.close()


def test_admin_asks_a_signed_out_visitor_to_sign_in(admin_stack, admin_browser):
    page = admin_browser.new_context().new_page()
    page.goto(f"{admin_stack.url}/admin")
    page.get_by_text("Sign in with Microsoft").wait_for(timeout=30_000)
    assert page.get_by_role("heading", name="Usage administration").count() == 0
    page.context.close()
