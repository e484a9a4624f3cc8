"""The session boundary attacked as an attacker did (issue 30): two people signed in through the real sign-in, the real
app (`streamlit run app.py`), Streamlit's own WebSocket protocol. Each test reproduces a finding and checks it now
fails to get in."""
from __future__ import annotations

import asyncio
import json
import os
import stat

import httpx
import pytest
from sqlalchemy import create_engine, text
from streamlit.proto.BackMsg_pb2 import BackMsg

from bench.streamlit_client import StreamlitPerson, sign_in
from tests.integration.real_app import running_app

pytestmark = pytest.mark.slow
ADA, GRACE = "ada@contoso.example", "grace@contoso.example"
SECRET = "Ada's question about her salary review"


def run(coroutine, timeout: float = 120):
    return asyncio.run(asyncio.wait_for(coroutine, timeout))


@pytest.fixture(scope="module")
def app(emulators, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("boundary")
    with running_app(emulators, tmp, APP_SIGNIN_REQUESTS_PER_MINUTE="0") as url:  # tests sign in often
        yield url, tmp / "data"


def people(app_url: str, entra_ca) -> tuple[str, str]:
    return run(sign_in(app_url, ADA, entra_ca)), run(sign_in(app_url, GRACE, entra_ca))


def drawn(person: StreamlitPerson) -> str:
    return "\n".join(person.texts)


def test_another_persons_session_id_never_resumes_their_page(app, emulators):
    """Finding 1 (high): Grace opened /_stcore/stream with her own cookie and Ada's Streamlit session id, sent a
    rerun, and got Ada's messages (Ada connected or not)."""
    url, _ = app
    ada_cookie, grace_cookie = people(url, emulators.tls.ca_file)

    async def attack(ada_still_connected: bool) -> tuple[StreamlitPerson, StreamlitPerson]:
        ada = StreamlitPerson(url, ada_cookie, timeout=60)
        await ada.open()
        await ada.ask(SECRET)
        assert SECRET in drawn(ada) and ada.session_id
        if not ada_still_connected:
            await ada.close()
        grace = StreamlitPerson(url, grace_cookie, timeout=60)
        await grace.open(resume_session=ada.session_id)
        await grace.rerun()
        anonymous = StreamlitPerson(url, None, timeout=60)
        await anonymous.open(resume_session=ada.session_id, require_chat=False)
        try:
            assert grace.session_id != ada.session_id and anonymous.session_id != ada.session_id
            assert SECRET not in drawn(grace) and SECRET not in drawn(anonymous)
            assert "Grace Hopper" in drawn(grace) and anonymous.chat_input_id is None  # a fresh page each
        finally:
            await grace.close()
            await anonymous.close()
        if ada_still_connected:  # Ada's own page is untouched and still hers
            await ada.rerun()
            assert SECRET in drawn(ada)
            await ada.close()
        return ada, grace

    run(attack(ada_still_connected=True))
    run(attack(ada_still_connected=False))

    async def ada_reconnects() -> None:  # the legitimate case still works: Ada's own dropped socket resumes her page
        ada = StreamlitPerson(url, ada_cookie, timeout=60)
        await ada.open()
        await ada.ask("a question Ada keeps")
        await ada.close()
        again = StreamlitPerson(url, ada_cookie, timeout=60)
        await again.open(resume_session=ada.session_id)
        assert again.session_id == ada.session_id
        await again.close()

    run(ada_reconnects())


def test_messages_the_page_never_sends_are_dropped(app, emulators):
    """Findings 2 and 3: a cookie-less WebSocket cleared every person's caches (resources rebuilt, heartbeat threads
    and replica rows piling up); Grace's socket asked for Ada's deferred download."""
    url, data = app
    database = create_engine(f"sqlite:///{data / 'conversations.db'}")

    def replicas() -> int:
        with database.connect() as db:
            return db.execute(text("SELECT count(*) FROM replicas")).scalar_one()

    ada_cookie, grace_cookie = people(url, emulators.tls.ca_file)

    async def attack() -> list[str]:
        ada = StreamlitPerson(url, ada_cookie, timeout=60)
        await ada.open()
        await ada.ask("a question so the replica's services exist")
        before = replicas()
        stranger = StreamlitPerson(url, None, timeout=60)
        await stranger.open(require_chat=False)
        for _ in range(10):
            await stranger.send_raw(BackMsg(clear_cache=True))
        grace = StreamlitPerson(url, grace_cookie, timeout=60)
        await grace.open()
        operation = BackMsg()
        operation.backend_operation_request.request_id = "r1"
        operation.backend_operation_request.deferred_file.file_id = "a-guessed-download-id"
        await grace.send_raw(operation)
        await asyncio.sleep(2)
        timing = await ada.ask("still answered after the attempts")
        for person in (ada, stranger, grace):
            await person.close()
        assert timing.outcome == "completed"
        assert replicas() == before == 1  # nothing was rebuilt: one heartbeat, one row
        return grace.kinds

    kinds = run(attack())
    assert "backend_operation_response" not in kinds  # dropped: Streamlit never saw the request


def test_uploads_need_a_signed_in_page_of_ones_own_and_the_products_limits(app, emulators):
    """Finding 4: the upload route took 200 MB per file, any number of files, from a page with no sign-in."""
    url, _ = app
    ada_cookie, grace_cookie = people(url, emulators.tls.ca_file)

    async def pages() -> tuple[str, str]:
        ada, anonymous = StreamlitPerson(url, ada_cookie, timeout=60), StreamlitPerson(url, None, timeout=60)
        await ada.open()
        await anonymous.open(require_chat=False)
        ids = ada.session_id, anonymous.session_id
        await ada.close()
        await anonymous.close()
        return ids

    ada_page, anonymous_page = run(pages())
    body = b"x" * 1024
    with httpx.Client(base_url=url, timeout=30) as http:
        def put(page: str, cookie: str | None, size: int | None = None, content: bytes = body) -> int:
            headers = {"content-type": "application/octet-stream"}
            if size is not None:
                headers["content-length"] = str(size)
            if cookie:
                headers["cookie"] = f"chat_session={cookie}"
            return http.put(f"/_stcore/upload_file/{page}/f1", content=content, headers=headers).status_code

        assert put(anonymous_page, None) == 401  # the sign-in screen cannot upload
        assert put(ada_page, None) == 401
        assert put(ada_page, grace_cookie) == 403  # Grace cannot upload into Ada's page
        # Over the upload ceiling: twice the product's 20 MB, so that a file somewhat over its limit still reaches
        # the app, which names it and holds the message (the browser would drop it without a word).
        assert put(ada_page, ada_cookie, content=b"x" * (41 * 1024 * 1024)) == 413

    async def too_many_files() -> bool:
        ada = StreamlitPerson(url, ada_cookie, timeout=60)
        await ada.open()
        request = BackMsg()
        request.file_urls_request.request_id = "many"
        request.file_urls_request.session_id = ada.session_id
        request.file_urls_request.file_names.extend(f"f{n}.png" for n in range(11))
        await ada.send_raw(request)
        await asyncio.sleep(2)
        await ada.close()
        return "file_urls_response" in ada.kinds

    assert not run(too_many_files())  # more files than a message may carry: no upload URLs handed out


def test_forwarded_addresses_are_not_trusted_without_trusted_proxies(emulators, tmp_path):
    """Finding 5: uvicorn rewrote the client address from X-Forwarded-For for loopback peers: the sign-in limit was
    bypassed by rotating it, /metrics read by claiming a metrics network, and any source_ip written into the audit."""
    with running_app(emulators, tmp_path, APP_METRICS_NETWORKS="10.0.0.0/8",
                     APP_SIGNIN_REQUESTS_PER_MINUTE="6") as url:
        ada_cookie = run(sign_in(url, ADA, emulators.tls.ca_file))  # two of the six
        with httpx.Client(base_url=url, timeout=30, follow_redirects=False) as http:
            statuses = [http.get("/signin", headers={"x-forwarded-for": f"198.51.100.{n}"}).status_code
                        for n in range(8)]
            assert statuses.count(429) == 4, statuses  # one address, however many it claims: six a minute
            assert http.get("/metrics", headers={"x-forwarded-for": "10.1.2.3"}).status_code == 403

        async def forged_source() -> None:
            ada = StreamlitPerson(url, ada_cookie, timeout=60, headers={"X-Forwarded-For": "203.0.113.66"})
            await ada.open()
            await ada.ask("where am I asking from")
            await ada.close()

        run(forged_source())
    records = [json.loads(line) for line in (tmp_path / "data" / "audit" / "audit.jsonl").read_text().splitlines()]
    calls = [r for r in records if r["event"] == "model_call"]
    assert calls and calls[-1]["source_ip"] == "127.0.0.1"
    chat = [r for r in emulators.aoai.requests if r.get("kind") == "chat"][-1]
    assert chat["body"]["user_security_context"]["source_ip"] == "127.0.0.1"


def test_low_findings_origin_streamlit_metrics_and_file_modes(app, emulators):
    """Finding 6: a page on another port of the same host opened the stream with the Lax cookie; /_stcore/metrics was
    open; conversations.db, sessions.db and audit.jsonl were created 0644."""
    url, data = app
    port = int(url.rsplit(":", 1)[1])

    async def from_origin(origin: str) -> str:
        from websockets.asyncio.client import connect
        from websockets.exceptions import InvalidStatus

        try:
            async with connect(url.replace("http://", "ws://") + "/_stcore/stream", subprotocols=["streamlit"],
                               additional_headers={"Origin": origin}, open_timeout=15):
                return "open"
        except InvalidStatus as refused:
            return str(refused.response.status_code)

    assert run(from_origin(f"http://127.0.0.1:{port + 1}")) == "403"
    assert run(from_origin(f"http://localhost:{port}")) == "403"
    assert run(from_origin("null")) == "403"
    assert run(from_origin(url)) == "open"
    with httpx.Client(base_url=url, timeout=30) as http:
        assert http.get("/_stcore/metrics").status_code == 404
    for path in (data, data / "audit"):
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o700, path
    for path in (data / "conversations.db", data / "sessions.db", data / "audit" / "audit.jsonl"):
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600, path
