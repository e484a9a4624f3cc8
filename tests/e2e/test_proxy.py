"""Two app replicas on one Postgres behind a real nginx with the configuration of docs/deployment.md: chromium signs in
and chats through the proxy (WebSocket upgrade, streamed answers), the person's address reaches Azure OpenAI as
`source_ip` through the trusted proxy, and new sign-ins spread over both replicas while each stays on one."""
from __future__ import annotations

import json
import os
import re
import signal
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS, free_port, spki_pin
from tests.integration.signin import entra_answer
from tests.nginx import PROXY_ADDRESS, nginx_binary, running_nginx
from tests.postgres import running_postgres, server_binaries
from tests.processes import Child

pytestmark = [pytest.mark.e2e, pytest.mark.slow,
              pytest.mark.skipif(server_binaries() is None, reason="Debian's postgresql is not installed"),
              pytest.mark.skipif(nginx_binary() is None, reason="Debian's nginx is not installed")]


@dataclass
class Cluster:
    url: str  # the proxy: what people open
    replicas: dict[str, tuple[Child, int]]  # name → (process, port)
    emulators: object
    proxy_folder: Path
    database_url: str
    start: object  # (name, port) → Child: starts a replica (again)

    def served_by(self) -> list[str]:
        """Which replica served each request so far (nginx's access log), by name."""
        names = {f"127.0.0.1:{port}": name for name, (_, port) in self.replicas.items()}
        lines = (self.proxy_folder / "access.log").read_text().splitlines()
        return [names.get(line.rsplit(" ", 1)[-1], line.rsplit(" ", 1)[-1]) for line in lines]

    def get(self, client: httpx.Client, path: str) -> str:
        """GET through the proxy; the replica that served it (nginx logs a request just after answering it)."""
        before = len(self.served_by())
        assert client.get(path).status_code == 200
        deadline = time.monotonic() + 5
        while len(served := self.served_by()) == before and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(served) > before, "nginx logged no request"
        return served[-1]

    def page_replica(self) -> str:
        """The replica that served the last page load (GET /): the one a signed-in browser's WebSocket goes to."""
        lines = (self.proxy_folder / "access.log").read_text().splitlines()
        names = {f"127.0.0.1:{port}": name for name, (_, port) in self.replicas.items()}
        last = [line for line in lines if '"GET / HTTP/1.1" 200' in line][-1]
        return names[last.rsplit(" ", 1)[-1]]

    def kill(self, name: str) -> None:
        child, _ = self.replicas[name]
        os.kill(child.pid, signal.SIGKILL)  # no clean shutdown: a crashed machine, an OOM kill
        child.stop(None, timeout=20, check=False)

    def restart(self, name: str) -> None:
        from localdev.stack import wait_healthy

        _, port = self.replicas[name]
        child = self.start(name, port)
        self.replicas[name] = (child, port)
        assert wait_healthy(f"http://127.0.0.1:{port}", child.process), f"replica {name} did not start again"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    from localdev.stack import StackConfig, app_environment, start_emulators, streamlit_command, wait_healthy

    tmp = tmp_path_factory.mktemp("proxy")
    proxy_port = free_port()
    with running_postgres() as database_url:
        # The emulated Entra app registration knows the proxy's URL: people only ever see the proxy.
        config = StackConfig(app_port=proxy_port, entra_port=0, aoai_port=0, graph_port=0, data_dir=tmp / "emulators")
        emulators = start_emulators(config)
        env = {**os.environ, **app_environment(config, emulators), "APP_DATABASE_URL": database_url,
               "APP_TRUSTED_PROXIES": PROXY_ADDRESS,
               "APP_SIGNIN_REQUESTS_PER_MINUTE": "0"}  # every test sign-in comes from one address

        def start(name: str, port: int) -> Child:
            # Each replica has its own data directory: only Postgres is shared.
            return Child(streamlit_command(StackConfig(app_port=port)), capture=False, name=f"streamlit replica {name}",
                         env={**env, "APP_DATA_DIR": str(tmp / f"replica-{name}")})

        replicas: dict[str, tuple[Child, int]] = {}
        try:
            for name in ("a", "b"):
                port = free_port()
                replicas[name] = (start(name, port), port)
            for child, port in replicas.values():
                assert wait_healthy(f"http://127.0.0.1:{port}", child.process), "a replica did not start"
            with running_nginx([port for _, port in replicas.values()], port=proxy_port) as (url, folder):
                yield Cluster(url, replicas, emulators, folder, database_url, start)
        finally:
            for child, _ in replicas.values():
                child.send_signal(signal.SIGTERM)
            for child, _ in replicas.values():
                child.stop(None, timeout=20, check=False)
            emulators.stop()


def sign_in_over_http(cluster: Cluster) -> httpx.Client:
    """A sign-in through the proxy without a browser (Entra's form posted back as a browser would); returns the
    client holding the session cookie."""
    client = httpx.Client(base_url=cluster.url, follow_redirects=False, timeout=30)
    start = client.get("/signin")
    assert start.status_code == 302, start.text
    _, path, fields = entra_answer(start, cluster.emulators.tls.ca_file)
    # The flow cookie is Secure (SameSite=None): a browser sends it to http://127.0.0.1, httpx's jar does not.
    flow = start.cookies.get("chat_signin")
    callback = client.post(path, data=fields, headers={"cookie": f"chat_signin={flow}"})
    assert callback.status_code == 303 and client.cookies.get("chat_session"), callback.text
    return client


def test_new_sign_ins_spread_over_both_replicas_and_each_person_stays_on_one(cluster):
    placed = []
    for _ in range(12):
        person = sign_in_over_http(cluster)
        served = [cluster.get(person, "/") for _ in range(3)]
        person.close()
        assert len(set(served)) == 1, f"one person's requests went to {served}"
        placed.append(served[0])
    counts = Counter(placed)
    assert set(counts) == {"a", "b"}, f"12 sign-ins all landed on {counts}"  # 2 × 0.5^12: not by chance


def test_chat_through_the_proxy_and_the_persons_address_reaches_azure_openai(cluster):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            *CHROMIUM_ARGS, f"--ignore-certificate-errors-spki-list={spki_pin(cluster.emulators.tls.cert_file)}"])
        try:
            page = browser.new_page()
            page.goto(cluster.url)
            page.get_by_text("Sign in with Microsoft").click()
            page.get_by_text("Signed in as").wait_for(timeout=30_000)
            box = page.get_by_test_id("stChatInputTextArea")
            box.fill("asked through the proxy")
            box.press("Enter")
            page.locator('[data-testid="stChatMessage"]').nth(1).get_by_text("prompt +").wait_for(timeout=30_000)
            answer = page.locator('[data-testid="stChatMessage"]').nth(1).inner_text()
            assert "asked through the proxy" in answer  # streamed over the proxied WebSocket
        finally:
            browser.close()
    (call,) = [r for r in cluster.emulators.aoai.requests
               if "asked through the proxy" in str(r["body"].get("messages", ""))]
    context = call["body"]["user_security_context"]
    # The replicas saw the proxy (127.0.0.2, trusted) as their peer; the person's address is chromium's, as the
    # proxy saw it — not the proxy's.
    assert context["source_ip"] == "127.0.0.1" and context["source_ip"] != PROXY_ADDRESS
    assert re.fullmatch(r"[0-9a-f-]{36}", context["end_user_id"])


RESULTS = Path(__file__).resolve().parents[2] / "test-results"


def _signed_in_page(browser, cluster: Cluster):
    page = browser.new_context().new_page()
    page.goto(cluster.url)
    page.get_by_text("Sign in with Microsoft").click()
    page.get_by_text("Signed in as").wait_for(timeout=30_000)
    return page


def _ask(page, text: str, answers: int) -> None:
    """Sends `text` and waits for the page to show `answers` finished answers."""
    box = page.get_by_test_id("stChatInputTextArea")
    box.fill(text, timeout=60_000)  # waits while the page reconnects (the input is disabled meanwhile)
    box.press("Enter")
    page.locator('[data-testid="stChatMessage"]').nth(2 * answers - 1).get_by_text("prompt +").wait_for(timeout=60_000)


def _stored_questions(cluster: Cluster, conversation_id: str) -> list[str]:
    from sqlalchemy import create_engine, text

    engine = create_engine(cluster.database_url)
    try:
        with engine.connect() as db:
            return list(db.execute(text("SELECT content FROM messages WHERE conversation_id = :c AND role = 'user' "
                                        "ORDER BY seq"), {"c": conversation_id}).scalars())
    finally:
        engine.dispose()


def _conversation_id(page) -> str:
    found = re.search(r"[?&]c=([0-9a-f-]{36})", page.url)
    assert found, f"the open conversation is not in the address: {page.url}"
    return found.group(1)


def test_failover_idle_and_mid_stream_then_the_replica_comes_back(cluster):
    from playwright.sync_api import sync_playwright

    figures = {}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            *CHROMIUM_ARGS, f"--ignore-certificate-errors-spki-list={spki_pin(cluster.emulators.tls.cert_file)}"])
        try:
            # (a) Idle: the replica serving a signed-in person is killed between two messages.
            page = _signed_in_page(browser, cluster)
            _ask(page, "first question before the failover", 1)
            page.wait_for_url(re.compile(r"[?&]c="), timeout=30_000)
            conversation = _conversation_id(page)
            serving = cluster.page_replica()
            killed_at = time.monotonic()
            cluster.kill(serving)
            _ask(page, "second question after the failover", 2)
            figures["idle_failover_seconds"] = round(time.monotonic() - killed_at, 2)
            shown = page.locator('[data-testid="stChatMessage"]').all_inner_texts()
            assert "first question before the failover" in shown[0] and len(shown) == 4
            assert "Signed in as" in page.get_by_test_id("stSidebar").inner_text()
            assert _stored_questions(cluster, conversation) == ["first question before the failover",
                                                                "second question after the failover"]
            cluster.restart(serving)

            # (b) Mid-stream: the replica is killed while an answer streams.
            page = _signed_in_page(browser, cluster)
            _ask(page, "a committed question", 1)
            page.wait_for_url(re.compile(r"[?&]c="), timeout=30_000)
            conversation = _conversation_id(page)
            serving = cluster.page_replica()
            long_question = "interrupted question " + " ".join(f"word{n}" for n in range(300))
            box = page.get_by_test_id("stChatInputTextArea")
            box.fill(long_question)
            box.press("Enter")
            streaming = page.locator('[data-testid="stChatMessage"]').nth(3)
            streaming.get_by_text("You said").wait_for(timeout=30_000)  # the answer has begun
            killed_at = time.monotonic()
            cluster.kill(serving)
            page.get_by_text("stopped before the answer was finished").wait_for(timeout=60_000)
            figures["mid_stream_notice_seconds"] = round(time.monotonic() - killed_at, 2)
            page.get_by_text("Your unsent message:").wait_for(timeout=10_000)
            assert page.get_by_test_id("stText").filter(has_text="word299").inner_text() == long_question
            shown = page.locator('[data-testid="stChatMessage"]').all_inner_texts()
            assert len(shown) == 2 and "a committed question" in shown[0]  # committed there; interrupted absent
            assert _stored_questions(cluster, conversation) == ["a committed question"]
            page.get_by_role("button", name="Send it").click()
            page.locator('[data-testid="stChatMessage"]').nth(3).get_by_text("prompt +").wait_for(timeout=60_000)
            figures["mid_stream_failover_seconds"] = round(time.monotonic() - killed_at, 2)
            questions = _stored_questions(cluster, conversation)
            assert questions == ["a committed question", long_question]  # sent again once, nothing duplicated
            figures["turns_lost"] = 0
            cluster.restart(serving)
        finally:
            browser.close()

    # The replica is back: once nginx retries it (fail_timeout), new sign-ins spread over both again.
    time.sleep(11)
    placed = Counter()
    for _ in range(12):
        person = sign_in_over_http(cluster)
        placed[cluster.get(person, "/")] += 1
        person.close()
    assert set(placed) == {"a", "b"}, f"after the restart every sign-in landed on {placed}"
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "failover.json").write_text(json.dumps(figures, indent=2) + "\n")
