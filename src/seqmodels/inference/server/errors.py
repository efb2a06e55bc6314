"""One error shape: every answer that is not 2xx is ``{"error": "one line"}``, with the status that says why.

400: a body that is not JSON (or not UTF-8, too deeply nested, a number too long); 413: a body over
``--max-body-bytes``, too many sentences or tokens; 415: a content type other than JSON; 422: JSON of the
wrong shape; 503: shed (queue full, loading, draining past its timeout); 504: past ``--request-timeout``;
500: a bug, its traceback in the server's log. FastAPI's and starlette's own errors come through the same
handlers, so no error answers in another shape. Malformed HTTP never reaches the application: uvicorn answers it
with a plain-text 400 and closes the connection, and the server does the same for a request line and headers past
``MAX_HEAD_BYTES`` (:class:`BoundedHttpProtocol`).
"""

from __future__ import annotations

import email.message

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

MAX_HEAD_BYTES = 2**20  # a request line and headers longer than this get a 400 (h11 refused a 1 MB header too)
LINGER_S = 1.0  # how long a refused request's connection stays open, its bytes dropped


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": " ".join(message.split())}, status_code=status, headers=headers)  # one line


def add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        first = error.errors()[0]
        if first["type"] == "json_invalid":
            return error_response(400, f"invalid JSON: {first['ctx']['error']} at character {first['loc'][-1]}")
        where = ".".join(str(part) for part in first["loc"] if part != "body") or "body"
        return error_response(422, f"{where}: {first['msg']}")

    @app.exception_handler(HTTPException)  # FastAPI's own and starlette's (404, 405, a body FastAPI cannot parse)
    async def refused(request: Request, error: HTTPException) -> JSONResponse:
        if error.status_code == 400 and error.__cause__ is not None:  # FastAPI's "error parsing the body": say why
            return error_response(400, f"unreadable JSON body: {error.__cause__}")
        return error_response(error.status_code, str(error.detail), error.headers)

    @app.exception_handler(Exception)  # a bug: starlette re-raises it after this answer, and uvicorn logs it
    async def bug(request: Request, error: Exception) -> JSONResponse:  # with its traceback
        return error_response(500, f"internal error ({type(error).__name__}); the server's log has the traceback")


class RequestLimits:
    """ASGI middleware for POST requests: 415 unless the content type is JSON, 413 for a body over ``max_bytes``,
    told by its Content-Length before it is read, or while it streams in (chunked); either way the body is
    never read whole. (FastAPI's own ``max_body_size`` answers 413 in plain text when Content-Length tells.)"""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        if refusal := self.refusal(headers.get("content-type", ""), headers.get("content-length", "")):
            await refusal(scope, receive, send)
            return
        received = 0

        async def receive_limited() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                raise HTTPException(413, self.too_large(f"more than {self.max_bytes}"))
            return message

        await self.app(scope, receive_limited, send)

    def refusal(self, content_type: str, content_length: str) -> JSONResponse | None:
        parsed = email.message.Message()
        parsed["content-type"] = content_type
        subtype = parsed.get_content_subtype()
        if parsed.get_content_maintype() != "application" or not (subtype == "json" or subtype.endswith("+json")):
            return error_response(415, f"expected content-type application/json, got {content_type or 'none'}")
        if content_length.isdigit() and int(content_length) > self.max_bytes:
            return error_response(413, self.too_large(content_length))
        return None

    def too_large(self, size: str) -> str:
        return f"a body of {size} bytes; at most {self.max_bytes} (--max-body-bytes)"


class BoundedHttpProtocol(HttpToolsProtocol):
    """uvicorn's HTTP/1.1 protocol on httptools' C parser, with the request line and headers bounded: httptools
    buffers a header whole before the server sees it, so a 300 MB header used to take 300 MB of memory. Counted per
    read from the socket (at most 256 KiB): the read that ends the head is not counted, so a head of up to one read
    over the bound may pass, and a read that also holds the previous request's end counts whole.
    Past the bound: a 400, then the rest of what the client sends is read and dropped for ``LINGER_S`` before the
    connection closes (closing with unread bytes would reset it, and the client would never see the 400)."""

    in_head = True  # between a request's first byte and the end of its headers
    head_bytes = 0
    refused = False

    def on_message_begin(self) -> None:
        self.in_head, self.head_bytes = True, 0
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        self.in_head = False
        super().on_headers_complete()

    def data_received(self, data: bytes) -> None:
        if self.refused:
            return
        super().data_received(data)
        if self.in_head and not self.transport.is_closing():
            self.head_bytes += len(data)
            if self.head_bytes > MAX_HEAD_BYTES:
                self.refuse(f"Request line and headers over {MAX_HEAD_BYTES} bytes.")

    def refuse(self, message: str) -> None:
        self.refused = True
        body = message.encode()
        self.transport.write(b"HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain; charset=utf-8\r\n"
                             b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(body), body))  # fmt: skip
        self.loop.call_later(LINGER_S, self.transport.close)
