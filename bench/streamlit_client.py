"""A simulated person that speaks Streamlit's own WebSocket protocol, so one process can drive 100+ sessions where a
chromium page each would need a core of their own.

Sign-in is the real one: /signin, the Entra ID emulator's authorize page (its form_post answer parsed and posted back
as the browser's auto-submitting form would) and the app's session cookie. Then `/_stcore/stream` is opened with that
cookie, exactly as the page's JavaScript opens it, and the conversation is `BackMsg` protobufs out (`rerun_script`
with the chat input's value) and `ForwardMsg` protobufs in (the deltas a browser would draw). The time to the first
answer text is taken when the delta that carries it arrives: the moment a browser could draw it.

Loopback only, and every wait is bounded."""
from __future__ import annotations

import asyncio
import ssl
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

from tests.integration.signin import posted_form

LOOPBACK = {"127.0.0.1", "localhost", "::1"}
SESSION_COOKIE = "chat_session"
FLOW_COOKIE = "chat_signin"
FINISHED = {ForwardMsg.FINISHED_SUCCESSFULLY, ForwardMsg.FINISHED_FRAGMENT_RUN_SUCCESSFULLY}


class ProtocolError(RuntimeError):
    """The app did not answer as a browser would expect (no chat input, closed socket, sign-in refused)."""


@dataclass
class TurnTiming:
    """One question: when it was sent, when the first answer text and the end of the run arrived (monotonic
    seconds), and how it ended: "completed" (the usage line under the answer), "failed" (an error shown in the page),
    "lost" (neither within the time limit, or the connection dropped)."""
    sent: float
    first_text: float | None = None
    ended: float | None = None
    outcome: str = "lost"
    detail: str = ""

    @property
    def ttft(self) -> float | None:
        return None if self.first_text is None else self.first_text - self.sent


@dataclass
class _Run:
    """What the current question's script runs have drawn so far."""
    answer_start: str
    timing: TurnTiming
    usage_seen: bool = False
    errors: list[str] = field(default_factory=list)


def _loopback(url: str) -> str:
    host = urlsplit(url).hostname
    if host not in LOOPBACK:
        raise ValueError(f"{url}: the load generator only talks to loopback addresses")
    return url


async def sign_in(base_url: str, login_hint: str, entra_ca: Path, timeout: float = 60.0) -> str:
    """The app's session cookie value for this account, through the real sign-in: /signin → the emulator's
    authorize page → its form posted back to the callback with the flow cookie."""
    base_url = _loopback(base_url).rstrip("/")
    entra_tls = ssl.create_default_context(cafile=str(entra_ca))
    async with httpx.AsyncClient(timeout=timeout, follow_redirects=False) as app, \
            httpx.AsyncClient(timeout=timeout, follow_redirects=False, verify=entra_tls) as entra:
        start = await app.get(f"{base_url}/signin", params={"login_hint": login_hint})
        if start.status_code != 302:
            raise ProtocolError(f"/signin answered {start.status_code}")
        authorize = await entra.get(_loopback(start.headers["location"]))
        if authorize.status_code != 200:
            raise ProtocolError(f"the Entra ID emulator answered {authorize.status_code}")
        action, fields = posted_form(authorize.text)  # what the browser's auto-submitting form posts
        # The flow cookie is Secure: a browser sends it to http://127.0.0.1 (a secure context), httpx's jar does not.
        flow = start.cookies.get(FLOW_COOKIE)
        callback = await app.post(f"{base_url}{urlsplit(action).path}", data=fields,
                                  headers={"cookie": f"{FLOW_COOKIE}={flow}"})
        session = callback.cookies.get(SESSION_COOKIE)
        if callback.status_code != 303 or not session:
            raise ProtocolError(f"the sign-in callback answered {callback.status_code} without a session")
        return session


class StreamlitPerson:
    """One signed-in browser tab, without the browser: `open()`, then `ask()` questions one after another."""

    def __init__(self, base_url: str, session_cookie: str | None, *, timeout: float = 120.0,
                 origin: str | None = None, headers: dict[str, str] | None = None) -> None:
        """`session_cookie` None: a page with no sign-in. `origin` and `headers`: what the handshake carries (the
        security tests forge them; a browser sends the page's own origin)."""
        self.base_url = _loopback(base_url).rstrip("/")
        self.cookie = session_cookie
        self.origin = origin or self.base_url
        self.headers = dict(headers or {})
        self.session_id: str | None = None  # Streamlit's id for this page session (from new_session)
        self.elements: list = []  # every new element drawn (images, links, alerts), for the security tests
        self.kinds: list[str] = []  # the type of every ForwardMsg received
        self.timeout = timeout
        self.chat_input_id: str | None = None
        self.page_script_hash = ""
        self.query_string = ""
        self.messages = 0
        self.texts: list[str] = []  # every markdown body drawn, for cross-person leak checks
        self._socket = None
        self._reader: asyncio.Task | None = None
        self._idle = asyncio.Event()
        self._run: _Run | None = None
        self._closed: str | None = None

    async def open(self, *, resume_session: str | None = None, require_chat: bool = True) -> None:
        """Connects as the page does and waits for the first script run to draw the chat input. `resume_session`: the
        Streamlit session id a reconnecting page names (the third WebSocket subprotocol entry)."""
        from websockets.asyncio.client import connect

        split = urlsplit(self.base_url)
        protocols = ["streamlit", "xsrf-unused", resume_session] if resume_session else ["streamlit"]
        headers = {"Origin": self.origin, **self.headers}
        if self.cookie:
            headers["Cookie"] = f"{SESSION_COOKIE}={self.cookie}"
        self._socket = await asyncio.wait_for(connect(
            f"ws://{split.netloc}/_stcore/stream", subprotocols=protocols, max_size=None,
            additional_headers=headers, open_timeout=self.timeout, ping_interval=None), self.timeout)
        self._reader = asyncio.create_task(self._read(), name="streamlit-person-reader")
        await self._rerun(None)
        await self._wait_idle()
        if require_chat and self.chat_input_id is None:
            raise ProtocolError("the page drew no chat input (not signed in?)")

    async def send_raw(self, message: BackMsg) -> None:
        """Sends any BackMsg (the security tests send ones a page never would)."""
        await asyncio.wait_for(self._socket.send(message.SerializeToString()), self.timeout)

    async def rerun(self) -> None:
        """A plain rerun (as after a click elsewhere), waiting for it to end."""
        await self._rerun(None)
        await self._wait_idle()

    async def ask(self, text: str, answer_start: str | None = None) -> TurnTiming:
        """Sends `text` through the chat input and waits (bounded) until the run it starts has ended. The first answer
        text is the first markdown delta that begins the expected answer (`answer_start`, by default the scripted
        emulator's "You said: <text>")."""
        if self.chat_input_id is None:
            raise ProtocolError("open() first")
        timing = TurnTiming(sent=time.monotonic())
        self._run = _Run(answer_start or f"You said: {text}"[:40], timing)
        try:
            await self._rerun(text)
            await self._wait_idle()
        except (asyncio.TimeoutError, ProtocolError) as exc:
            timing.detail = self._closed or type(exc).__name__
            return timing
        finally:
            run, self._run = self._run, None
        timing.ended = time.monotonic()
        if run.usage_seen and timing.first_text is not None:
            timing.outcome = "completed"
        elif run.errors:
            timing.outcome, timing.detail = "failed", run.errors[0][:200]
        return timing

    async def close(self) -> None:
        if self._socket is not None:
            await self._socket.close()
        if self._reader is not None:
            self._reader.cancel()
            try:
                await self._reader
            except (asyncio.CancelledError, Exception):  # noqa: BLE001 - closing anyway
                pass

    # -- the protocol ---------------------------------------------------------------------------------------------
    async def _rerun(self, chat_text: str | None) -> None:
        message = BackMsg()
        state = message.rerun_script
        state.query_string = self.query_string
        state.page_script_hash = self.page_script_hash
        state.context_info.timezone = "UTC"
        state.context_info.locale = "en-GB"
        state.context_info.url = f"{self.base_url}/" + (f"?{self.query_string}" if self.query_string else "")
        if chat_text is not None:
            widget = state.widget_states.widgets.add()
            widget.id = self.chat_input_id
            widget.chat_input_value.data = chat_text
        self._idle.clear()
        await asyncio.wait_for(self._socket.send(message.SerializeToString()), self.timeout)

    async def _wait_idle(self) -> None:
        await asyncio.wait_for(self._idle.wait(), self.timeout)
        if self._closed:
            raise ProtocolError(self._closed)

    async def _read(self) -> None:
        try:
            async for frame in self._socket:
                self._handle(frame)
        except Exception as exc:  # noqa: BLE001 - recorded; the waiting question ends as lost
            self._closed = f"connection lost: {type(exc).__name__}"
        else:
            self._closed = "connection closed by the server"
        self._idle.set()

    def _handle(self, frame: bytes) -> None:
        message = ForwardMsg()
        message.ParseFromString(frame)
        self.messages += 1
        kind = message.WhichOneof("type")
        self.kinds.append(kind)
        if kind == "new_session":
            self._idle.clear()
            self.page_script_hash = message.new_session.page_script_hash or self.page_script_hash
            self.session_id = message.new_session.initialize.session_id or self.session_id
        elif kind == "session_status_changed" and message.session_status_changed.script_is_running:
            self._idle.clear()
        elif kind == "page_info_changed":
            self.query_string = message.page_info_changed.query_string
        elif kind == "script_finished" and message.script_finished in FINISHED:
            self._idle.set()
        elif kind == "delta" and message.delta.WhichOneof("type") == "new_element":
            self._element(message.delta.new_element)

    def _element(self, element) -> None:
        self.elements.append(element)
        which = element.WhichOneof("type")
        if which == "chat_input":
            self.chat_input_id = element.chat_input.id
        elif which == "markdown":
            body = element.markdown.body
            self.texts.append(body)
            run = self._run
            if run is None or not body:
                return
            if run.timing.first_text is None and (body.startswith(run.answer_start[:len(body)])
                                                  and body[:1] == run.answer_start[:1]):
                run.timing.first_text = time.monotonic()
            if "prompt +" in body and "completion tokens" in body:
                run.usage_seen = True
        elif which == "alert" and self._run is not None and element.alert.format in (element.alert.ERROR,
                                                                                   element.alert.WARNING):
            self._run.errors.append(element.alert.body)
