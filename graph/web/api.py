"""The HTTP/WebSocket API on the one session (`agent.py serve`): the FastAPI app, with OpenAPI
docs at /docs; the session's turns over HTTP and a WebSocket here, the REST routes over the
actions layer in resources.py.

Owns: the app (`create_app`), the turn routes and the WebSocket protocol, errors as one JSON
line ({"error": "..."}, 4xx for what the client can fix), the body size limit, CORS when
configured. Turns: POST /turns streams server-sent events
(`event: KIND`, `data: {"turn", "seq", "kind", "data"}`); the WebSocket /ws takes
{"type": "turn", "text"}, {"type": "follow", "turn"} and {"type": "approve", "turn", "id",
"answer"} and sends the same event objects; its own replies ({"kind": "answered"} or
{"kind": "error", "data": {"status", "error"}}, the connection going on) carry no "turn".
Does not own: the REST routes (resources.py), running turns (turns.py), the token and
origins (auth.py), binding and start-up (cli/serve.py).
"""

from __future__ import annotations

import asyncio
import json
from contextlib import asynccontextmanager
from importlib.resources import files

from fastapi import (
    Depends,
    FastAPI,
    HTTPException,
    Request,
    WebSocket,
    WebSocketDisconnect,
)
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse
from fastapi.security import HTTPBearer
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.cors import CORSMiddleware

from graph import actions
from graph.session import Session
from graph.web import resources
from graph.web.auth import Guard
from graph.web.turns import Conflict, Turns, Unknown


class TurnIn(BaseModel):
    text: str = Field(min_length=1, max_length=100_000, description="the user's message")


class AnswerIn(BaseModel):
    answer: str = Field(description="yes, no or always (always only where the request allows it)")


def create_app(session: Session, secret: str | None) -> FastAPI:
    """The API on `session`; `secret` is the token every request must carry (None: auth off)."""
    settings = session.ctx.settings.web
    turns = Turns(session, lambda: settings.approval_timeout_s)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        turns.stop()
        await asyncio.to_thread(turns.join)

    app = FastAPI(title="agent", summary="The local agent's one endless session over HTTP and WebSocket.",
                  docs_url=None, lifespan=lifespan, dependencies=[_bearer])
    app.state.turns = turns
    _errors(app)
    _turn_routes(app, turns)
    app.include_router(resources.router(session))

    # Swagger UI's files from the fastapi-offline wheel: /docs works without the internet
    app.mount("/docs-files", StaticFiles(directory=str(files("fastapi_offline") / "static")), name="docs-files")

    @app.get("/docs", include_in_schema=False)
    def docs(token: str = "") -> HTMLResponse:
        query = f"?token={token}" if token else ""  # the page's own requests need the token too
        return get_swagger_ui_html(openapi_url=f"/openapi.json{query}", title="agent API",
                                   swagger_js_url=f"/docs-files/swagger-ui-bundle.js{query}",
                                   swagger_css_url=f"/docs-files/swagger-ui.css{query}",
                                   swagger_favicon_url=f"/docs-files/favicon.png{query}")

    app.add_middleware(Limit, max_bytes=settings.max_body_kb * 1024)
    app.add_middleware(Guard, secret=secret, origins=settings.cors_origins)
    if settings.cors_origins:  # outermost: a browser's preflight carries no token
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["*"],
                           allow_headers=["Authorization", "Content-Type"])
    return app


_bearer = Depends(HTTPBearer(auto_error=False, description="the token in DATA/api_token (or ?token=)"))


def _turn_routes(app: FastAPI, turns: Turns) -> None:
    @app.post("/turns", tags=["turns"], response_class=StreamingResponse,
              responses={200: {"content": {"text/event-stream": {}},
                               "description": "the turn's events as server-sent events, ending with `end`"}})
    def send_turn(body: TurnIn) -> StreamingResponse:
        """Send a message; the answer streams back as server-sent events (notice, status, thought,
        token, tool_call, tool_result, approval, approved, done, error, end). The message is saved
        at once and the turn goes on if the client leaves."""
        turn = turns.send(body.text)
        return StreamingResponse(_sse(turn), media_type="text/event-stream", headers={"X-Turn-Id": turn.id})

    @app.get("/turns/{turn_id}", tags=["turns"])
    def turn_state(turn_id: str) -> dict:
        """A turn sent through the API: its events so far and the approval requests it waits for."""
        turn = turns.get(turn_id)
        return {**turn.summary(), "log": list(turn.events)}

    @app.get("/turns/{turn_id}/events", tags=["turns"], response_class=StreamingResponse)
    def follow_turn(turn_id: str) -> StreamingResponse:
        """A turn's events from its first, then live, as server-sent events."""
        return StreamingResponse(_sse(turns.get(turn_id)), media_type="text/event-stream")

    @app.post("/turns/{turn_id}/approvals/{approval_id}", tags=["turns"])
    def approve(turn_id: str, approval_id: str, body: AnswerIn) -> dict:
        """Answer a tool call's approval request (once; a second answer is 409)."""
        turns.answer(turn_id, approval_id, body.answer)
        return {"turn": turn_id, "id": approval_id, "answer": body.answer}

    @app.websocket("/ws")
    async def socket(ws: WebSocket) -> None:
        await _socket(ws, turns)


async def _sse(turn):
    """The turn's events as server-sent events; those already waiting go out in one write."""
    q = turn.listen()
    try:
        while True:
            events = [await q.get()]
            while not q.empty() and events[-1]["kind"] != "end":
                events.append(q.get_nowait())
            yield "".join(f"id: {e['seq']}\nevent: {e['kind']}\ndata: {json.dumps(e, ensure_ascii=False)}\n\n"
                          for e in events)
            if events[-1]["kind"] == "end":
                return
    finally:
        turn.unlisten(q)


async def _socket(ws: WebSocket, turns: Turns) -> None:
    """One connection: sends the events of the turns it sent or follows, takes approvals."""
    await ws.accept()
    sending = asyncio.Lock()
    tasks: set[asyncio.Task] = set()

    async def send(obj: dict) -> None:
        async with sending:
            await ws.send_text(json.dumps(obj, ensure_ascii=False))

    async def forward(turn) -> None:
        q = turn.listen()
        try:
            while (event := await q.get())["kind"] != "end":
                await send(event)
            await send(event)
        except (WebSocketDisconnect, RuntimeError, OSError):  # the client left: the turn goes on without it
            pass
        finally:
            turn.unlisten(q)

    async def error(status: int, message: str) -> None:
        await send({"kind": "error", "data": {"status": status, "error": message}})

    try:
        while (message := await ws.receive())["type"] != "websocket.disconnect":
            try:
                msg = json.loads(message.get("text") or "")  # a binary frame is not JSON text either
            except ValueError:
                msg = None
            if not isinstance(msg, dict):
                await error(400, 'not a JSON object: send {"type": "turn", "text": ...}, {"type": "follow", '
                                 '"turn": ID} or {"type": "approve", "turn": ID, "id": ID, "answer": "yes"}')
                continue
            kind = msg.get("type")
            try:
                if kind == "turn":
                    if not isinstance(msg.get("text"), str) or not msg["text"].strip():
                        raise ValueError("a turn needs a non-empty text")
                    turn = await asyncio.to_thread(turns.send, msg["text"])
                elif kind == "follow":
                    turn = turns.get(str(msg.get("turn")))
                elif kind == "approve":
                    turns.answer(str(msg.get("turn")), str(msg.get("id")), str(msg.get("answer")))
                    await send({"kind": "answered", "data": {k: msg.get(k) for k in ("turn", "id", "answer")}})
                    continue
                else:
                    raise ValueError(f"unknown message type {kind!r} (turn, follow or approve)")
            except Unknown as exc:
                await error(404, str(exc))
                continue
            except Conflict as exc:
                await error(409, str(exc))
                continue
            except ValueError as exc:
                await error(400, str(exc))
                continue
            task = asyncio.create_task(forward(turn))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
    finally:
        for task in tasks:
            task.cancel()


def _errors(app: FastAPI) -> None:
    def one(status: int, message: str) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status)

    @app.exception_handler(StarletteHTTPException)  # FastAPI's and the router's (404, 405)
    async def http_error(request: Request, exc: StarletteHTTPException):
        return one(exc.status_code, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def bad_input(request: Request, exc: RequestValidationError):
        first = exc.errors()[0]
        if first.get("type") == "json_invalid":
            return one(400, f"the body is not valid JSON: {first.get('ctx', {}).get('error', first['msg'])}")
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        return one(422, f"{where}: {first['msg']}" if where else first["msg"])

    @app.exception_handler(Unknown)
    async def unknown(request: Request, exc: Unknown):
        return one(404, str(exc.args[0]))

    @app.exception_handler(Conflict)
    async def conflict(request: Request, exc: Conflict):
        return one(409, str(exc))

    @app.exception_handler(actions.Problem)
    async def problem(request: Request, exc: actions.Problem):
        return one(400, str(exc))

    @app.exception_handler(ValueError)
    async def value(request: Request, exc: ValueError):
        return one(400, str(exc))


class Limit:
    """ASGI middleware: a request body over `max_bytes` is 413, whether or not it says its length."""

    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes
        self.error = f"the request body is larger than web.max_body_kb ({max_bytes // 1024} KB)"

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length", b"0")
        if not length.isdigit() or int(length) > self.max_bytes:
            return await JSONResponse({"error": self.error}, status_code=413)(scope, receive, send)
        seen = 0

        async def counted():  # a chunked body: counted as it comes
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                raise HTTPException(413, self.error)
            return message

        await self.app(scope, counted, send)
