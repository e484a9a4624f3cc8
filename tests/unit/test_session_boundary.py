"""web/session_boundary.py on its own (a fake Streamlit behind it): what reaches Streamlit from the page's WebSocket, and
the upload route's limits (the real app's attacks are in tests/integration/test_session_boundary.py)."""
from __future__ import annotations

import asyncio

from starlette.datastructures import Headers
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

from web.session_boundary import OWNER_HEADER, SessionBoundary

URL = "https://chat.contoso.com"
LIVE = {"ada-cookie", "grace-cookie"}


def boundary(app, **changes) -> SessionBoundary:
    options = dict(public_url=URL, owner_secret="s" * 40, signed_in=lambda cookie: cookie in LIVE,
                   upload_limit_bytes=1000, files_per_message=3, in_flight_bytes=1500,
                   metrics_allowed=lambda request: False, back_message=BackMsg, forward_message=ForwardMsg)
    options.update(changes)
    return SessionBoundary(app, **options)


def websocket_scope(origin: str | None, cookie: str | None = None, owner: str | None = None) -> dict:
    headers = [(b"host", b"chat.contoso.com")]
    if origin:
        headers.append((b"origin", origin.encode()))
    if cookie:
        headers.append((b"cookie", f"chat_session={cookie}".encode()))
    if owner:
        headers.append((OWNER_HEADER.encode(), owner.encode()))  # a forged identity from the client
    return {"type": "websocket", "path": "/_stcore/stream", "headers": headers, "query_string": b""}


def drive(middleware, scope, incoming: list[dict]) -> list[dict]:
    """Runs one connection through the boundary; returns what the boundary sent back itself (a refusal)."""
    queue, sent = list(incoming), []

    async def receive():
        return queue.pop(0) if queue else {"type": "websocket.disconnect"}

    async def send(message):
        sent.append(message)

    asyncio.run(middleware(scope, receive, send))
    return sent


def back(**kind) -> dict:
    message = BackMsg(**kind)
    return {"type": "websocket.receive", "bytes": message.SerializeToString()}


def test_only_the_apps_own_origin_may_open_the_stream():
    for origin in ("https://chat.contoso.com:8443", "http://chat.contoso.com", "https://evil.example", None, "null"):
        sent = drive(boundary(_never_called), websocket_scope(origin), [{"type": "websocket.connect"}])
        assert sent == [{"type": "websocket.close", "code": 1008}], origin  # the handshake is refused (403)
    for origin in (URL, "https://chat.contoso.com:443", "HTTPS://CHAT.CONTOSO.COM"):
        app = _echo_app()
        drive(boundary(app), websocket_scope(origin), [{"type": "websocket.connect"}])
        assert app.received[0] == {"type": "websocket.connect"}, origin


async def _never_called(scope, receive, send):  # pragma: no cover - reaching it fails the test
    raise AssertionError("Streamlit must not see this connection")


def _echo_app():
    async def app(scope, receive, send):
        app.headers = dict((k.decode(), v.decode()) for k, v in scope["headers"])
        app.received = []
        while True:
            message = await receive()
            app.received.append(message)
            if message["type"] == "websocket.disconnect":
                return
    return app


def run_connection(cookie=None, owner=None, messages=()):
    app = _echo_app()
    middleware = boundary(app)
    drive(middleware, websocket_scope(URL, cookie, owner), [{"type": "websocket.connect"}, *messages])
    return app, middleware


def test_the_owner_header_is_written_by_the_boundary_alone():
    ada, _ = run_connection("ada-cookie", owner="grace's-owner-value")
    ada_again, _ = run_connection("ada-cookie")
    grace, _ = run_connection("grace-cookie")
    nobody, _ = run_connection(None, owner="whatever")
    nobody_again, _ = run_connection("expired-cookie")
    assert ada.headers[OWNER_HEADER] == ada_again.headers[OWNER_HEADER] != grace.headers[OWNER_HEADER]
    assert ada.headers[OWNER_HEADER] != "grace's-owner-value"  # the client's own value is replaced
    assert nobody.headers[OWNER_HEADER] != nobody_again.headers[OWNER_HEADER]  # no sign-in: never the same twice
    assert nobody.headers[OWNER_HEADER].startswith("anonymous-")


def test_backmsgs_the_page_never_sends_do_not_reach_streamlit():
    rerun = back(rerun_script={"query_string": ""})
    files = BackMsg()
    files.file_urls_request.file_names.extend(["a.png", "b.png"])
    too_many = BackMsg()
    too_many.file_urls_request.file_names.extend(["a", "b", "c", "d"])
    operation = BackMsg()
    operation.backend_operation_request.request_id = "r"
    messages = [back(clear_cache=True), rerun, {"type": "websocket.receive", "bytes": files.SerializeToString()},
                {"type": "websocket.receive", "bytes": too_many.SerializeToString()},
                {"type": "websocket.receive", "bytes": operation.SerializeToString()},
                back(set_run_on_save=True), back(debug_shutdown_runtime=True), back(app_heartbeat=True),
                back(stop_script=True)]
    app, _ = run_connection("ada-cookie", messages=messages)
    kinds = []
    for message in app.received:
        if message["type"] == "websocket.receive":
            parsed = BackMsg()
            parsed.ParseFromString(message["bytes"])
            kinds.append(parsed.WhichOneof("type"))
    assert kinds == ["rerun_script", "file_urls_request", "app_heartbeat", "stop_script"]


def test_the_streamlit_session_id_is_bound_to_the_owner_that_opened_it():
    new_session = ForwardMsg()
    new_session.new_session.initialize.session_id = "st-session-1"

    async def streamlit(scope, receive, send):
        await receive()
        await send({"type": "websocket.send", "bytes": new_session.SerializeToString()})

    middleware = boundary(streamlit)
    drive(middleware, websocket_scope(URL, "ada-cookie"), [{"type": "websocket.connect"}])
    owner = asyncio.run(middleware.owner(_headers("ada-cookie")))
    assert middleware.session_owner("st-session-1") == owner
    assert middleware.session_owner("st-session-2") is None


def test_uploads_are_bounded_per_file_and_in_flight_per_person():
    async def streamlit(scope, receive, send):
        while (await receive()).get("more_body"):
            pass
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    middleware = boundary(streamlit)
    middleware._remember("ada-page", asyncio.run(middleware.owner(_headers("ada-cookie"))))

    def put(cookie, length: int, page: str = "ada-page", hold: asyncio.Event | None = None) -> int:
        async def go():
            status = []
            body = [{"type": "http.request", "body": b"x" * length, "more_body": False}]

            async def receive():
                if hold is not None:
                    await hold.wait()
                return body.pop(0) if body else {"type": "http.disconnect"}

            async def send(message):
                if message["type"] == "http.response.start":
                    status.append(message["status"])
            headers = [(b"content-length", str(length).encode())]
            if cookie:
                headers.append((b"cookie", f"chat_session={cookie}".encode()))
            await middleware({"type": "http", "method": "PUT", "path": f"/_stcore/upload_file/{page}/f",
                              "headers": headers, "query_string": b""}, receive, send)
            return status[0]
        return asyncio.run(go())

    assert put(None, 10) == 401
    assert put("grace-cookie", 10) == 403
    assert put("ada-cookie", 1001) == 413
    assert put("ada-cookie", 1000) == 204

    async def concurrent() -> list[int]:
        hold = asyncio.Event()
        statuses: list[int] = []

        async def one(length):
            async def receive():
                await hold.wait()
                return {"type": "http.request", "body": b"x" * length, "more_body": False}

            async def send(message):
                if message["type"] == "http.response.start":
                    statuses.append(message["status"])
            await middleware({"type": "http", "method": "PUT", "path": "/_stcore/upload_file/ada-page/f",
                              "headers": [(b"content-length", str(length).encode()),
                                          (b"cookie", b"chat_session=ada-cookie")], "query_string": b""},
                             receive, send)
        first = asyncio.create_task(one(1000))
        await asyncio.sleep(0.01)  # the first is uploading (waiting for its body)
        await one(1000)  # 2000 bytes at once is over the 1500 in flight: refused at once
        hold.set()
        await first
        return statuses

    assert asyncio.run(concurrent()) == [429, 204]
    assert middleware._uploading == {}  # nothing left counted after the uploads ended


def _headers(cookie: str) -> Headers:
    return Headers(scope={"type": "http", "headers": [(b"cookie", f"chat_session={cookie}".encode())]})
