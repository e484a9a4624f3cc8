"""Accessibility in chromium: axe-core over every state of the page (sign-in, a streaming and a finished answer,
images, an error, the sidebar, the dialogs, /admin, the dark theme) finds no serious or critical violation; a
keyboard-only walk reaches and works the chat input, Stop and the sidebar with a visible focus; a finished answer is
announced once, not token by token.

axe-core's results are saved under test-results/accessibility/<state>.json, with the keyboard walk's stops. axe.min.js
comes from `make axe` (scripts/provision_axe.py), which this module runs itself if the file is missing.
"""
from __future__ import annotations

import importlib.util
import json
import re
import time
from pathlib import Path

import pytest

import tests.e2e.conftest as e2e

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "test-results" / "accessibility"
ADMIN_ROLE = "Chat.Experimenter"  # Ada has it: she sees /admin and the leaderboard
USAGE_LINE = re.compile(r"\d prompt \+ ≈?\d+ completion tokens")  # under every answer once it has ended
# The scripted engine echoes up to 200 characters at 15 tokens a second: about four seconds of streaming.
LONG_QUESTION = ("Please give me a long answer about passwords and how to keep them safe at work, with examples of "
                 "strong and weak ones, how often to change them and what to do when one has leaked somewhere")
# (rule id, part of a target selector) -> why it cannot be fixed from our code. Nothing needs it today.
KNOWN_IN_STREAMLIT: dict[tuple[str, str], str] = {}


def _provisioner():
    spec = importlib.util.spec_from_file_location("provision_axe", ROOT / "scripts" / "provision_axe.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def axe_script() -> Path:
    provisioner = _provisioner()
    path = provisioner.axe_path()
    if not path.is_file():
        try:
            provisioner.provision(path)
        except SystemExit as problem:
            pytest.fail(f"axe-core is missing and could not be provisioned (make axe): {problem}")
    return path


@pytest.fixture(scope="module")
def a11y_stack(tmp_path_factory):
    """The stack as `make run` starts it, with APP_ADMIN_ROLE set so that /admin opens for the test person."""
    tmp = tmp_path_factory.mktemp("e2e-a11y")
    real_child = e2e.Child

    def child(argv, *, env, **kwargs):
        return real_child(argv, env={**env, "APP_ADMIN_ROLE": ADMIN_ROLE}, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(e2e, "Child", child)
        running = e2e.start_stack(tmp)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def a11y_browser(a11y_stack):
    from playwright.sync_api import sync_playwright

    args = [*e2e.CHROMIUM_ARGS, f"--ignore-certificate-errors-spki-list={e2e.spki_pin(a11y_stack.server_cert)}"]
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=e2e.CHROMIUM, headless=True, args=args)
        yield chromium
        chromium.close()


# -- helpers -----------------------------------------------------------------------------------------------------------
def new_page(browser, color_scheme: str = "light"):
    page = browser.new_context(viewport={"width": 1280, "height": 900}, color_scheme=color_scheme).new_page()
    page.set_default_timeout(60_000)  # generous: other test runs may share the two cores
    return page


def idle(page) -> None:
    page.locator('[data-testid="stApp"][data-test-script-state="notRunning"]').wait_for(timeout=60_000)


def chat_ready(page) -> None:
    """The chat page's run has ended, its chat input is drawn and its own styles are in (style-only st.html arrives a
    moment after the run, once Streamlit has loaded its HTML element): the hidden announcer takes no room then."""
    page.get_by_test_id("stChatInputTextArea").wait_for(timeout=60_000)
    page.wait_for_function("() => { const hidden = [...document.querySelectorAll('[class*=st-key-answer_announcer]')];"
                           "return hidden.length > 0 && hidden.every(e => getComputedStyle(e).display === 'none'); }",
                           timeout=60_000)
    idle(page)


def sign_in(browser, url: str, color_scheme: str = "light"):
    page = new_page(browser, color_scheme)
    page.goto(url)
    page.get_by_text("Sign in with Microsoft").click()
    page.get_by_text("Signed in as").wait_for()
    chat_ready(page)
    return page


def send(page, text: str) -> None:
    box = page.get_by_test_id("stChatInputTextArea")
    box.fill(text)
    box.press("Enter")


def messages(page):
    return page.locator('[data-testid="stChatMessage"]')


def wait_for_text(locator, minimum: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while len(locator.inner_text()) < minimum:
        assert time.monotonic() < deadline, f"no {minimum} characters within {timeout} s"
        time.sleep(0.05)


def answer_ended(page, n: int) -> None:
    """The n-th message (an answer) has its usage caption: the turn is over; then the run is."""
    messages(page).nth(n).get_by_text(USAGE_LINE).wait_for(timeout=60_000)
    idle(page)


def open_expander(page, container, title: str) -> None:
    expander = container.get_by_test_id("stExpander").filter(has_text=title)
    if not expander.locator("details").evaluate("details => details.open"):
        expander.locator("summary").click()
        idle(page)


def check_axe(page, state: str, axe_script: Path) -> list[str]:
    """Runs axe-core over the page (frames included), saves the result and returns its serious and critical
    violations, one line each."""
    # axe checks a frame's content only where it runs too. Evaluated rather than added as a <script> tag (the way
    # @axe-core/playwright does it): the app's Content-Security-Policy blocks inline scripts, and stays in force here.
    source = axe_script.read_text(encoding="utf-8")
    for frame in page.frames:
        if not frame.is_detached() and not frame.evaluate("() => Boolean(window.axe)"):
            frame.evaluate(source)
    result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{state}.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    problems = []
    for violation in result["violations"]:
        if violation["impact"] not in ("serious", "critical"):
            continue
        targets = [" ".join(map(str, node["target"])) for node in violation["nodes"]
                   if not any(rule == violation["id"] and part in " ".join(map(str, node["target"]))
                              for rule, part in KNOWN_IN_STREAMLIT)]
        if targets:
            problems.append(f"[{state}] {violation['id']} ({violation['impact']}): {violation['help']} — "
                            f"{len(targets)} nodes, e.g. {targets[:3]}")
    return problems


# -- axe-core over every state -----------------------------------------------------------------------------------------
def test_sign_in_page_has_no_serious_violations(a11y_stack, a11y_browser, axe_script):
    page = new_page(a11y_browser)
    page.goto(a11y_stack.url)
    page.get_by_text("Sign in with Microsoft").wait_for()
    idle(page)
    problems = check_axe(page, "sign-in", axe_script)
    page.context.close()
    assert not problems, "\n".join(problems)


def test_chat_states_have_no_serious_violations(a11y_stack, a11y_browser, axe_script, tmp_path):
    from PIL import Image

    page = sign_in(a11y_browser, a11y_stack.url)
    problems = check_axe(page, "chat-empty", axe_script)

    send(page, LONG_QUESTION)
    answer = messages(page).nth(1)
    answer.wait_for()
    wait_for_text(answer, 30)
    problems += check_axe(page, "chat-streaming", axe_script)
    answer_ended(page, 1)
    problems += check_axe(page, "chat-answer", axe_script)

    picture = tmp_path / "whiteboard.png"
    Image.new("RGB", (800, 600), "seagreen").save(picture)
    page.locator('[data-testid="stChatInput"] input[type="file"]').set_input_files(str(picture))
    page.get_by_test_id("stFileChip").wait_for()
    deadline = time.monotonic() + 60
    while page.get_by_test_id("stFileChipIconSpinner").count():
        assert time.monotonic() < deadline, "the upload did not finish"
        time.sleep(0.1)
    problems += check_axe(page, "chat-image-attached", axe_script)
    send(page, "What is on this whiteboard?")
    answer_ended(page, 3)
    messages(page).nth(2).locator("img").first.wait_for()
    problems += check_axe(page, "chat-image", axe_script)

    send(page, "This one fails [[fault:context_length]]")  # the emulator answers with Azure's context-length error
    answer_ended(page, 5)
    send(page, "This one is filtered [[fault:prompt_filter]]")  # the content filter refuses the question
    page.get_by_text("Your message, to copy and rephrase:").wait_for(timeout=60_000)
    idle(page)
    problems += check_axe(page, "chat-error", axe_script)
    page.context.close()
    assert not problems, "\n".join(problems)


def test_the_dark_theme_has_no_serious_violations(a11y_stack, a11y_browser, axe_script):
    """People whose system is set to dark get Streamlit's dark theme (config.toml customises the light one only)."""
    page = sign_in(a11y_browser, a11y_stack.url, color_scheme="dark")
    send(page, "How does the dark theme read?")
    answer_ended(page, 1)
    problems = check_axe(page, "chat-answer-dark", axe_script)
    page.context.close()
    assert not problems, "\n".join(problems)


def test_sidebar_dialogs_and_admin_have_no_serious_violations(a11y_stack, a11y_browser, axe_script):
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    page = sign_in(a11y_browser, a11y_stack.url)
    send(page, "Something for the sidebar to list")
    answer_ended(page, 1)
    sidebar = page.get_by_test_id("stSidebar")
    for title in ("Rename or delete this conversation", "Compare chains", "Your data"):
        open_expander(page, sidebar, title)
    # The typed confirmation (then Cancel). A rerun may swallow the click or draw the expander closed while the click
    # waits for the button to be visible, so each try is short and reopens the expander first.
    confirm = sidebar.get_by_label("Type DELETE to confirm")
    deadline = time.monotonic() + 90
    while not confirm.count():
        assert time.monotonic() < deadline, "the delete confirmation never showed"
        open_expander(page, sidebar, "Your data")
        button = sidebar.get_by_role("button", name="Delete all my data…")
        if button.count():
            try:
                button.click(timeout=5_000)
            except PlaywrightTimeout:
                continue
        idle(page)
    confirm.wait_for()
    idle(page)
    problems = check_axe(page, "sidebar", axe_script)
    sidebar.get_by_role("button", name="Cancel").click()
    idle(page)

    sidebar.get_by_role("button", name="My usage").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_test_id("stVegaLiteChart").wait_for()
    idle(page)
    problems += check_axe(page, "my-usage", axe_script)
    page.keyboard.press("Escape")
    dialog.wait_for(state="detached")
    idle(page)

    sidebar.get_by_role("button", name="Leaderboard").click()
    dialog.get_by_text("No votes yet").wait_for()
    idle(page)
    problems += check_axe(page, "leaderboard", axe_script)
    page.keyboard.press("Escape")
    dialog.wait_for(state="detached")
    idle(page)

    page.get_by_test_id("stSidebarNav").get_by_text("Usage administration").click()
    page.get_by_role("heading", name="Usage administration").wait_for()
    page.get_by_test_id("stVegaLiteChart").first.wait_for()
    idle(page)
    problems += check_axe(page, "admin", axe_script)
    page.get_by_role("tab", name="By person").click()
    page.locator(".st-key-admin_export").get_by_role("link", name="Download CSV").wait_for()
    idle(page)
    problems += check_axe(page, "admin-by-person", axe_script)
    page.context.close()
    assert not problems, "\n".join(problems)


# -- keyboard only -----------------------------------------------------------------------------------------------------
FOCUSED = """() => { let e = document.activeElement;
  while (e && e.shadowRoot && e.shadowRoot.activeElement) e = e.shadowRoot.activeElement;
  return e; }"""
# What shows focus on an element: its outline, box-shadow and border colour, and those of its ancestors up to its
# Streamlit element (text fields show focus on their frame).
LOOKS = """(e) => { const looks = []; let p = e;
  document.getAnimations().filter(a => a instanceof CSSTransition).forEach(a => a.finish());  // the end state
  for (let i = 0; i < 6 && p && p.nodeType === 1; i++) {
    const s = getComputedStyle(p);
    const outlined = s.outlineStyle !== 'none' && s.outlineWidth !== '0px';
    const outline = outlined ? `${s.outlineStyle} ${s.outlineColor}` : 'none';
    looks.push({outline, shadow: s.boxShadow, border: s.borderTopWidth === '0px' ? 'none' : s.borderTopColor});
    if (p.dataset && p.dataset.testid === 'stElementContainer') break;
    p = p.parentElement || (p.getRootNode() instanceof ShadowRoot ? p.getRootNode().host : null);
  }
  return looks; }"""
SNAPSHOT = """(looks) => { window.__unfocused = new Map();
  const visit = (root) => root.querySelectorAll('*').forEach(e => {
    if (e.tabIndex >= 0) window.__unfocused.set(e, looks(e));
    if (e.shadowRoot) visit(e.shadowRoot);
  });
  visit(document); }"""
DESCRIBE = """(e) => { const marked = e.closest && e.closest('[data-testid]');
  const testid = marked ? marked.dataset.testid : '';
  return {tag: e.tagName, testid, label: e.getAttribute('aria-label') || '', role: e.getAttribute('role') || '',
          text: (e.innerText || e.value || '').replace(/\\s+/g, ' ').trim().slice(0, 40)}; }"""


def focused(page):
    return page.evaluate_handle(FOCUSED)


def describe(page, handle) -> dict:
    return page.evaluate(DESCRIBE, handle)


def focus_shows(now: list[dict], before: list[dict] | None) -> bool:
    """Focus is visible: compared with the element unfocused, an outline or box-shadow appears, or a border changes
    colour, on the element or its frame (without the unfocused looks: an outline or box-shadow on the element)."""
    if before is None:
        return now[0]["outline"] != "none" or now[0]["shadow"] != "none"
    for was, is_ in zip(before, now):
        if (is_["outline"] != "none" and is_["outline"] != was["outline"]) or \
           (is_["shadow"] != "none" and is_["shadow"] != was["shadow"]) or \
           (is_["border"] != "none" and is_["border"] != was["border"]):
            return True
    return False


UNFOCUSED_LOOKS = f"""(e) => {{ const focused = ({FOCUSED})();
  if (window.__unfocused && window.__unfocused.has(e)) return window.__unfocused.get(e);
  return e.isConnected && e !== focused && !e.contains(focused) ? ({LOOKS})(e) : null; }}"""


def tab_until(page, wanted, limit: int, key: str = "Tab") -> tuple[int, list[dict]]:
    """Presses `key` until the focused element matches `wanted` (a description predicate); returns the presses and
    what was focused on the way, each with whether its focus showed. Fails after `limit` presses."""
    seen = []
    for presses in range(1, limit + 1):
        page.keyboard.press(key)
        handle = focused(page)
        description = describe(page, handle)
        description["looks"] = page.evaluate(f"(e) => ({LOOKS})(e)", handle)
        seen.append((description, handle))
        if wanted(description):
            break
    else:
        pytest.fail(f"not reached with {limit} presses of {key}; focused on the way: {[d for d, _ in seen]}")
    # Unfocused looks from the snapshot taken before the walk, else (an element drawn since) from now, unfocused.
    for description, handle in seen:
        description["looks_unfocused"] = page.evaluate(UNFOCUSED_LOOKS, handle)
        description["focus_visible"] = focus_shows(description["looks"], description["looks_unfocused"])
    return presses, [description for description, _ in seen]


def assert_focus_visible(stops: list[dict]) -> None:
    hidden = [s for s in stops if not s["focus_visible"] and s["tag"] != "BODY"]  # BODY: Tab wrapping round the page
    assert not hidden, f"focus not visible on {hidden}"


def test_keyboard_only_sign_in_chat_stop_and_sidebar(a11y_stack, a11y_browser):
    page = new_page(a11y_browser)
    page.goto(a11y_stack.url)
    page.get_by_text("Sign in with Microsoft").wait_for()
    idle(page)
    tab_until(page, lambda d: d["text"] == "Sign in with Microsoft", 10)
    page.keyboard.press("Enter")
    page.get_by_text("Signed in as").wait_for()
    chat_ready(page)

    # From the top of the page to the chat input: every stop shows focus, the sidebar is on the way.
    page.evaluate(f"() => ({SNAPSHOT})({LOOKS})")
    presses, stops = tab_until(page, lambda d: d["testid"] == "stChatInputTextArea", 60)
    assert_focus_visible(stops)
    labels = {s["label"] or s["text"] for s in stops}
    for control in ("Collapse sidebar", "Deployment", "Chain", "Maximum answer length (tokens)", "New conversation",
                    "Your data", "My usage"):
        assert any(control in label for label in labels), f"{control} not reached by Tab: {labels}"
    assert presses <= 40, f"{presses} presses of Tab to reach the chat input: {stops}"
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "keyboard-walk.json").write_text(json.dumps({"presses_to_chat_input": presses, "stops": stops},
                                                           indent=2, ensure_ascii=False), encoding="utf-8")

    # Typing and Enter send; while the answer streams, Stop is reached by Tab and Enter on it stops the answer.
    page.keyboard.type(LONG_QUESTION)
    page.keyboard.press("Enter")
    answer = messages(page).nth(1)
    answer.wait_for()
    wait_for_text(answer, 20)
    for _ in range(5):  # the input is disabled while the answer streams: the next stop is Stop
        page.keyboard.press("Tab")
        if page.evaluate(f"() => ({FOCUSED})().dataset.testid") == "stChatInputStopButton":
            break
    else:
        pytest.fail("Stop not reached by Tab while the answer streams")
    page.keyboard.press("Enter")
    idle(page)
    partial = answer.inner_text()
    time.sleep(1)
    assert answer.inner_text() == partial and not USAGE_LINE.search(partial), "the answer went on after Stop"
    # The person goes on by keyboard: the stopped answer is marked as stopped on the next run.
    if describe(page, focused(page))["testid"] != "stChatInputTextArea":
        tab_until(page, lambda d: d["testid"] == "stChatInputTextArea", 60)
    page.keyboard.type("thanks")
    page.keyboard.press("Enter")
    answer_ended(page, 3)
    chat_ready(page)
    assert "Stopped: the answer above is partial." in messages(page).nth(1).inner_text()

    # Back up through the answers' controls and the sidebar (focus shows on each) to the sidebar toggle; it and a
    # sidebar control work by keyboard; Escape closes a dialog.
    sidebar = page.get_by_test_id("stSidebar")
    page.evaluate(f"() => ({SNAPSHOT})({LOOKS})")
    _, stops = tab_until(page, lambda d: d["label"] == "Collapse sidebar", 80, key="Shift+Tab")
    assert_focus_visible(stops)
    assert any(s["text"] == "Copy answer" for s in stops) and any(s["label"] == "Thumbs up" for s in stops)
    page.keyboard.press("Enter")
    page.locator('[data-testid="stSidebar"][data-collapsed="true"]').wait_for(timeout=10_000)
    tab_until(page, lambda d: d["label"] == "Expand sidebar", 80)
    page.keyboard.press("Enter")
    page.locator('[data-testid="stSidebar"][data-collapsed="false"]').wait_for(timeout=10_000)
    tab_until(page, lambda d: d["tag"] == "SUMMARY" and "Your data" in d["text"], 80)
    page.keyboard.press("Enter")
    sidebar.get_by_role("checkbox", name="Include images in JSON").wait_for()
    tab_until(page, lambda d: "My usage" in d["text"], 80)
    page.keyboard.press("Enter")
    page.get_by_role("dialog").wait_for()
    page.keyboard.press("Escape")
    page.get_by_role("dialog").wait_for(state="detached")
    page.context.close()


# -- announced when finished -------------------------------------------------------------------------------------------
LIVE_ANCESTORS = """(e) => { const found = [];
  for (let p = e; p; p = p.parentElement || (p.getRootNode() instanceof ShadowRoot ? p.getRootNode().host : null)) {
    if (p.nodeType !== 1) continue;
    if (p.hasAttribute('aria-live') || ['status', 'log', 'alert', 'marquee', 'timer'].includes(p.getAttribute('role')))
      found.push(p.tagName + ' ' + (p.dataset.testid || ''));
  }
  return found; }"""


def test_a_finished_answer_is_announced_once_and_never_token_by_token(a11y_stack, a11y_browser):
    page = sign_in(a11y_browser, a11y_stack.url)
    region = page.locator("#answer-announcer")
    region.wait_for(state="attached")  # in the page before any answer, and empty
    assert region.get_attribute("role") == "status" and region.get_attribute("aria-live") == "polite"
    assert region.text_content() == ""
    page.evaluate("""() => { const region = document.getElementById('answer-announcer');
      window.__announced = [];
      new MutationObserver(() => window.__announced.push(region.textContent))
        .observe(region, {childList: true, subtree: true, characterData: true}); }""")

    send(page, LONG_QUESTION)
    answer = messages(page).nth(1)
    answer.wait_for()
    wait_for_text(answer, 30)
    streaming = answer.get_by_test_id("stMarkdownContainer").first
    assert page.evaluate(LIVE_ANCESTORS, streaming.element_handle()) == [], "the streaming text is in a live region"
    assert page.evaluate("() => window.__announced") == [], "announced while streaming"
    answer_ended(page, 1)
    page.wait_for_function("() => window.__announced.length > 0", timeout=10_000)
    time.sleep(0.5)  # anything announced after the end would show here

    announced = page.evaluate("() => window.__announced")
    assert [text for text in announced if text] == announced[-1:], f"announced more than once: {announced}"
    said = re.sub(r"\s+", " ", answer.get_by_test_id("stMarkdownContainer").first.inner_text()).strip()
    assert announced[-1].startswith("Answer finished: ") and announced[-1].endswith(said), (announced, said)
    assert page.evaluate(LIVE_ANCESTORS, page.locator("#answer-announcer").element_handle())  # itself a live region
    page.context.close()
