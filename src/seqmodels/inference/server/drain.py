"""Draining on SIGTERM: every request whose body was received is answered, no connection is reset.

uvicorn's own graceful shutdown does most of it: on SIGTERM it closes the listening socket (new connections
are refused), tells each connection to close once its response is sent, waits for them (at most
``timeout_graceful_shutdown``), then runs the app's lifespan shutdown. This module adds what that leaves out:

- :class:`Drain`, chained onto uvicorn's SIGTERM handler: readiness turns 503 at once, and past
  ``--drain-timeout`` the requests still waiting are answered 503 (and the log says how many), not cut off;
- :class:`CloseWhileDraining`: while draining, every response says ``Connection: close``, so that a client
  does not send its next request on a connection that is about to close;
- :class:`DrainingHttpProtocol`: uvicorn closes an idle keep-alive connection at once, which resets a request
  the client has just sent on it (unread bytes make the kernel answer RST); here it stays open for
  ``IDLE_GRACE_S``, so such a request is read and answered (with ``Connection: close``);
- :class:`DrainingServer`: uvicorn closes the listening socket up to 0.1 s after SIGTERM (its main loop's
  tick), and closing it resets the connections the kernel has accepted but the server has not yet taken from
  its queue; here the socket is closed at once, after taking those connections (one process: with
  ``--workers N`` the socket is shared, and each worker drains its own connections as uvicorn does).

Before, the model ran in the event loop's thread: requests that arrived during a batch were never read, and
uvicorn's shutdown closed their connections with the bytes unread, which reset them.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import signal
import socket
import threading
from collections.abc import Callable
from types import FrameType

import uvicorn
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

IDLE_GRACE_S = 1.0  # an idle connection's last chance to deliver a request already sent, once draining starts
logger = logging.getLogger("seqmodels.inference.server")


class Drain:
    """The drain's state: ``draining`` from SIGTERM (or SIGINT) on, ``expired`` once ``timeout`` seconds have passed;
    then ``on_expire()`` answers the requests still waiting (it returns how many: ``past_timeout``)."""

    def __init__(self, timeout: float, on_expire: Callable[[], int]) -> None:
        self.timeout, self.on_expire = timeout, on_expire
        self.draining = self.expired = False
        self.past_timeout = 0  # requests answered with a 503 when the timeout passed

    def hook_signals(self) -> None:
        """Start draining on SIGTERM (or SIGINT), then let the handler installed before (uvicorn's) shut the server
        down. Only from the main thread, where signal handlers live (not under a test client: call :meth:`begin`)."""
        if threading.current_thread() is not threading.main_thread():
            return
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, functools.partial(self._on_signal, loop, signal.getsignal(signum)))

    def _on_signal(self, loop: asyncio.AbstractEventLoop, previous: object, signum: int, frame: FrameType | None
                   ) -> None:  # fmt: skip
        loop.call_soon_threadsafe(self.begin)  # signal-safe: the loop runs it next
        if callable(previous):
            previous(signum, frame)

    def begin(self) -> None:
        if not self.draining:
            self.draining = True
            logger.info("draining: readiness 503, no new connections; answering the requests received (at most "
                        "--drain-timeout %g s), then exiting", self.timeout)  # fmt: skip
            asyncio.get_running_loop().call_later(self.timeout, self._expire)

    def _expire(self) -> None:
        self.expired = True
        if unanswered := self.on_expire():
            self.past_timeout = unanswered
            logger.warning("drain: %d requests not answered within --drain-timeout %g s got a 503", unanswered,
                           self.timeout)  # fmt: skip


class CloseWhileDraining:
    """ASGI middleware: while ``drain.draining``, each response carries ``Connection: close``."""

    def __init__(self, app: ASGIApp, drain: Drain) -> None:
        self.app, self.drain = app, drain

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_closing(message: Message) -> None:
            if message["type"] == "http.response.start" and self.drain.draining:
                message = {**message, "headers": [*message.get("headers", []), (b"connection", b"close")]}
            await send(message)

        await self.app(scope, receive, send_closing if scope["type"] == "http" else send)


class DrainingHttpProtocol(HttpToolsProtocol):
    """uvicorn's HTTP/1.1 protocol on httptools' C parser, except that shutdown leaves an idle connection open for
    ``IDLE_GRACE_S`` (its keep-alive timer, re-armed) instead of closing it at once; a request arriving meanwhile
    cancels the timer, is answered, and its ``Connection: close`` ends the connection."""

    def shutdown(self) -> None:
        if self.cycle is None or self.cycle.response_complete:
            self._unset_keepalive_if_required()
            self.timeout_keep_alive_task = self.loop.call_later(IDLE_GRACE_S, self.timeout_keep_alive_handler)
        else:
            super().shutdown()


class DrainingServer(uvicorn.Server):
    """uvicorn's server, except that SIGTERM (or SIGINT) stops accepting at once, and first takes the connections
    waiting in the listening sockets' queues, which closing them would reset."""

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        asyncio.get_running_loop().call_soon_threadsafe(self.stop_accepting)  # signal-safe: next in the loop

    def stop_accepting(self) -> None:
        """Close the listening sockets, the connections queued on them already taken."""
        loop = asyncio.get_running_loop()
        make_protocol = functools.partial(self.config.http_protocol_class, config=self.config,
                                          server_state=self.server_state, app_state=self.lifespan.state)  # fmt: skip
        queued: list[socket.socket] = []
        for server in self.servers:
            for listener in server.sockets:
                with socket.socket(fileno=os.dup(listener.fileno())) as copy:  # the same socket, closed after
                    copy.setblocking(False)
                    with contextlib.suppress(BlockingIOError):
                        while True:
                            queued.append(copy.accept()[0])
            server.close()  # in the same step as the accepting: no connection comes between
        for connection in queued:
            connection.setblocking(False)
        self.taking = [loop.create_task(loop.connect_accepted_socket(make_protocol, c)) for c in queued]  # kept
