"""A small user-space TCP proxy for network faults between the services and Postgres or the sandbox.

    proxy = FaultProxy("postgres", target=("127.0.0.1", 5432))
    proxy.start()                       # its own thread and event loop; proxy.port is where to connect
    proxy.set_mode("latency", ms=200)   # pass | latency | stall | reset | blackhole
    proxy.set_mode("pass")
    proxy.stop()

Modes:
    pass       forward both ways
    latency    hold every chunk `ms` milliseconds before forwarding it
    stall      stop forwarding (nothing is read, so data waits in the kernel buffers) until the mode
               changes; no byte is lost, the connections go on afterwards
    reset      close every open connection on both sides with a TCP RST (SO_LINGER 0) once, and reset
               each new one at once while the mode lasts
    blackhole  accept and read, never forward (data is dropped); leaving it resets every connection
               that lost data, since its byte stream can no longer be trusted
    partition  a silent network partition: every connection open (or opened) during it goes dead for
               good (read and dropped, never forwarded, never reset: no FIN, no RST, as behind a
               firewall that forgot the flow); connections opened afterwards work

Counters (`stats()`) say whether a fault did anything: connections reset, chunks delayed, bytes
dropped, connections stalled.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
from collections import Counter
from dataclasses import dataclass, field

MODES = ("pass", "latency", "stall", "reset", "blackhole", "partition")
CHUNK = 65536


def _rst(writer: asyncio.StreamWriter | None) -> None:
    """Abort the connection with an RST rather than a FIN."""
    if writer is None:
        return
    sock = writer.get_extra_info("socket")
    with contextlib.suppress(OSError, AttributeError, ValueError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(Exception):
        writer.transport.abort()


@dataclass(eq=False)
class _Conn:
    client_w: asyncio.StreamWriter
    upstream_w: asyncio.StreamWriter | None = None
    tasks: list[asyncio.Task] = field(default_factory=list)
    dropped: bool = False  # lost bytes in blackhole mode: must be reset on leaving it
    dead: bool = False  # caught in a partition: silent for ever

    def reset(self) -> None:
        _rst(self.client_w)
        _rst(self.upstream_w)
        for task in self.tasks:
            task.cancel()


class FaultProxy:
    def __init__(self, name: str, target: tuple[str, int], listen_port: int = 0, host: str = "127.0.0.1") -> None:
        self.name = name
        self.host = host
        self.target = target
        self.port = listen_port
        self.mode = "pass"
        self.latency_ms = 0
        self.counters: Counter = Counter()
        self._conns: set[_Conn] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.base_events.Server | None = None
        self._thread: threading.Thread | None = None
        self._flowing: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    # ------------------------------------------------------------------ control (any thread)
    def start(self) -> FaultProxy:
        self._thread = threading.Thread(target=self._run, name=f"proxy-{self.name}", daemon=True)
        self._thread.start()
        self._ready.wait(10)
        if self._error is not None:
            raise self._error
        return self

    def stop(self) -> None:
        if self._loop is None:
            return
        fut = asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop)
        with contextlib.suppress(Exception):
            fut.result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)
        self._loop = None

    def set_mode(self, mode: str, *, ms: int = 0) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        fut = asyncio.run_coroutine_threadsafe(self._set_mode(mode, ms), self._loop)
        fut.result(10)

    def set_target(self, target: tuple[str, int]) -> None:
        self.target = target

    def stats(self) -> dict[str, int]:
        return {**self.counters, "open": len(self._conns)}

    @property
    def url_host_port(self) -> str:
        return f"{self.host}:{self.port}"

    # ------------------------------------------------------------------ the loop's side
    def _run(self) -> None:
        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._listen())
        except BaseException as exc:  # noqa: BLE001 - reported to start()
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        self._loop.run_forever()
        with contextlib.suppress(Exception):
            self._loop.close()

    async def _listen(self) -> None:
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._server = await asyncio.start_server(self._accept, self.host, self.port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        for conn in list(self._conns):
            conn.reset()
        self._conns.clear()

    async def _set_mode(self, mode: str, ms: int) -> None:
        previous, self.mode = self.mode, mode
        self.latency_ms = ms
        self.counters[f"mode_{mode}"] += 1
        if mode == "partition":
            for conn in self._conns:
                conn.dead = True
            self.counters["partitioned_connections"] += len(self._conns)
        if mode == "stall":
            self._flowing.clear()
            self.counters["stalled_connections"] += len(self._conns)
        else:
            self._flowing.set()
        if mode == "reset":
            for conn in list(self._conns):
                conn.reset()
                self.counters["resets"] += 1
            self._conns.clear()
        if previous == "blackhole" and mode != "blackhole":
            for conn in [c for c in self._conns if c.dropped]:
                conn.reset()
                self._conns.discard(conn)
                self.counters["resets_after_blackhole"] += 1

    async def _accept(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        conn = _Conn(client_w)
        self.counters["accepted"] += 1
        if self.mode == "reset":
            self.counters["resets"] += 1
            conn.reset()
            return
        self._conns.add(conn)
        try:
            if self.mode == "partition":
                conn.dead = True
                self.counters["partitioned_connections"] += 1
                while data := await client_r.read(CHUNK):
                    self.counters["bytes_dropped"] += len(data)
                return
            if self.mode == "blackhole":
                # Nothing reaches the target: read and drop until the mode changes.
                while self.mode == "blackhole":
                    data = await client_r.read(CHUNK)
                    if not data:
                        return
                    conn.dropped = True
                    self.counters["bytes_dropped"] += len(data)
            await self._flowing.wait()
            try:
                up_r, up_w = await asyncio.wait_for(asyncio.open_connection(*self.target), 10)
            except (TimeoutError, OSError):
                self.counters["upstream_refused"] += 1
                conn.reset()
                return
            conn.upstream_w = up_w
            conn.tasks = [asyncio.current_task()]
            other = asyncio.create_task(self._pump(conn, up_r, client_w, "down"))
            conn.tasks.append(other)
            try:
                await self._pump(conn, client_r, up_w, "up")
            finally:
                # Wait for the other direction to finish too (a half-closed stream still answers).
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await asyncio.wait_for(other, 30)
        except (asyncio.CancelledError, ConnectionError, OSError):
            pass
        finally:
            self._conns.discard(conn)
            for w in (conn.client_w, conn.upstream_w):
                if w is not None:
                    with contextlib.suppress(Exception):
                        w.close()

    async def _pump(self, conn: _Conn, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    direction: str) -> None:
        try:
            while True:
                await self._flowing.wait()
                data = await reader.read(CHUNK)
                if not data:
                    with contextlib.suppress(Exception):
                        writer.write_eof()
                    return
                if conn.dead:
                    self.counters["bytes_dropped"] += len(data)
                    continue
                if self.mode == "blackhole":
                    conn.dropped = True
                    self.counters["bytes_dropped"] += len(data)
                    continue
                if self.mode == "latency" and self.latency_ms:
                    self.counters["chunks_delayed"] += 1
                    await asyncio.sleep(self.latency_ms / 1000)
                await self._flowing.wait()
                writer.write(data)
                await writer.drain()
                self.counters[f"bytes_{direction}"] += len(data)
        except (ConnectionError, OSError):
            # One side broke (a reset, a crashed server): break the other one too, as the network
            # would, or its peer waits forever for an answer that cannot come.
            self.counters["broken_pipes"] += 1
            self._conns.discard(conn)
            conn.reset()
