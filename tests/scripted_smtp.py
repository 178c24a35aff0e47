"""SMTP servers that misbehave where aiosmtpd cannot: silent, trickling, or dumb at DATA.

    with ScriptedServer(greeting="silent") as server:      # accepts, never says 220
        ...transport to server.url...
    assert server.connections == 1

A raw asyncio server on 127.0.0.1 in a thread of its own. It speaks just enough SMTP to take
EHLO, MAIL and RCPT, and then behaves as `greeting` and `data` say:

- greeting "normal" | "silent" (never greets) | "trickle" (the 220 line one byte every
  `trickle_every` seconds, forever, so only a deadline ends it);
- data "normal" (354, then 250 after the message) | "silent" (no answer to DATA at all);
- `pipelining`: it offers PIPELINING (RFC 2920), and reads commands as they come;
- `hold_first`: the first N messages' final replies wait until the client's next command
  has arrived (at most `hold_for` seconds); `early` then says, per held message, whether the
  client sent its next command before it had the answer (pipelining across messages);
- `after_dot`: by message number (1 first), what follows that message's final dot: "vanish"
  (the connection is closed, unanswered) or "421" (421, then closed).

Messages it accepts are kept in `received` (recipient, data), numbered in `count`.
"""

from __future__ import annotations

import asyncio
import threading
from types import TracebackType
from typing import Literal


class ScriptedServer:
    def __init__(
        self, greeting: Literal["normal", "silent", "trickle"] = "normal",
        data: Literal["normal", "silent"] = "normal", trickle_every: float = 0.2, pipelining: bool = False,
        hold_first: int = 0, hold_for: float = 30.0, after_dot: dict[int, Literal["vanish", "421"]] | None = None,
    ) -> None:
        self.greeting = greeting
        self.data = data
        self.pipelining = pipelining
        self.hold_first = hold_first
        self.hold_for = hold_for
        self.after_dot = after_dot or {}
        self.early: list[bool] = []
        self.count = 0
        self.trickle_every = trickle_every
        self.connections = 0
        self.received: list[tuple[str, bytes]] = []
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="scripted-smtp", daemon=True)
        self._server: asyncio.Server | None = None
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def __enter__(self) -> ScriptedServer:
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    async def _shutdown(self) -> None:
        """Close the listener and end every conversation still going (a trickle never ends)."""
        if self._server is not None:
            self._server.close()
        others = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(asyncio.start_server(self._client, "127.0.0.1", 0))
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()
        self._server.close()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with self._lock:
            self.connections += 1
        try:
            await self._talk(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def _talk(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.greeting == "silent":
            await reader.read()  # until the client gives up and closes
            return
        if self.greeting == "trickle":
            while True:  # "220 ..." forever, one byte at a time, never a line end
                for byte in b"220 smtp.test at your service, slowly":
                    writer.write(bytes([byte]))
                    await writer.drain()
                    await asyncio.sleep(self.trickle_every)
        writer.write(b"220 smtp.test ready\r\n")
        recipient = ""
        ahead = b""  # a command that came before its turn (pipelined behind a message)
        while line := ahead or await reader.readline():
            ahead = b""
            command = line.strip().upper()
            if command.startswith((b"EHLO", b"HELO")):
                extensions = b"250-PIPELINING\r\n" if self.pipelining else b""
                writer.write(b"250-smtp.test\r\n" + extensions + b"250 8BITMIME\r\n")
            elif command.startswith(b"MAIL"):
                writer.write(b"250 2.1.0 OK\r\n")
            elif command.startswith(b"RCPT"):
                recipient = line.decode().split("<", 1)[1].split(">", 1)[0]
                writer.write(b"250 2.1.5 OK\r\n")
            elif command == b"DATA":
                if self.data == "silent":
                    await reader.read()
                    return
                writer.write(b"354 go on\r\n")
                await writer.drain()
                body = await reader.readuntil(b"\r\n.\r\n")
                with self._lock:
                    self.received.append((recipient, body))
                    self.count += 1
                    number = self.count
                fault = self.after_dot.get(number)
                if fault == "vanish":
                    return
                if fault == "421":
                    writer.write(b"421 4.3.2 shutting down\r\n")
                    await writer.drain()
                    return
                if number <= self.hold_first:
                    try:
                        ahead = await asyncio.wait_for(reader.readline(), self.hold_for)
                    except TimeoutError:
                        ahead = b""
                    self.early.append(bool(ahead))
                writer.write(b"250 2.0.0 queued\r\n")
            elif command == b"QUIT":
                writer.write(b"221 2.0.0 bye\r\n")
                await writer.drain()
                return
            else:
                writer.write(b"250 2.0.0 OK\r\n")
            await writer.drain()
