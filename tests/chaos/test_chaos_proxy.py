"""The harness's TCP proxy (bench/chaos/proxy.py) against a local echo server: each mode does what
it says, and a broken side breaks the other (a client never waits forever on a dead server)."""

from __future__ import annotations

import socket
import struct
import threading
import time

import pytest

from bench.chaos.proxy import FaultProxy


@pytest.fixture
def echo_server():
    server = socket.create_server(("127.0.0.1", 0))
    clients: list[socket.socket] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            clients.append(conn)
            threading.Thread(target=_echo, args=(conn,), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    yield server.getsockname()[1], clients
    server.close()
    for c in clients:
        c.close()


def _echo(conn: socket.socket) -> None:
    try:
        while data := conn.recv(65536):
            if data == b"RST":  # the server dies: an RST, as a crashed process's kernel sends
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                conn.close()
                return
            conn.sendall(data)
    except OSError:
        pass


@pytest.fixture
def proxy(echo_server):
    port, _ = echo_server
    p = FaultProxy("echo", ("127.0.0.1", port)).start()
    yield p
    p.stop()


def roundtrip(port: int, payload: bytes = b"ping", timeout: float = 2.0) -> tuple[bytes, float]:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        started = time.monotonic()
        s.sendall(payload)
        return s.recv(65536), time.monotonic() - started


def test_pass_and_latency(proxy):
    assert roundtrip(proxy.port)[0] == b"ping"
    proxy.set_mode("latency", ms=150)
    answer, took = roundtrip(proxy.port)
    assert answer == b"ping" and took >= 0.28  # both directions delayed
    assert proxy.stats()["chunks_delayed"] >= 2


def test_stall_holds_bytes_and_delivers_them_afterwards(proxy):
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as s:
        s.sendall(b"a")
        assert s.recv(10) == b"a"
        proxy.set_mode("stall")
        s.sendall(b"b")
        s.settimeout(0.5)
        with pytest.raises(TimeoutError):
            s.recv(10)
        proxy.set_mode("pass")
        s.settimeout(5)
        assert s.recv(10) == b"b"


def test_reset_sends_an_rst(proxy):
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as s:
        s.sendall(b"a")
        assert s.recv(10) == b"a"
        proxy.set_mode("reset")
        time.sleep(0.2)
        with pytest.raises(ConnectionResetError):
            s.sendall(b"b")
            s.recv(10)
    assert proxy.stats()["resets"] == 1
    with pytest.raises((ConnectionResetError, ConnectionAbortedError, BrokenPipeError)):
        roundtrip(proxy.port)  # new connections too, while the mode lasts
    proxy.set_mode("pass")
    assert roundtrip(proxy.port)[0] == b"ping"


def test_blackhole_drops_and_resets_what_it_dropped_on_leaving(proxy):
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as s:
        proxy.set_mode("blackhole")
        s.sendall(b"lost")
        s.settimeout(0.5)
        with pytest.raises(TimeoutError):
            s.recv(10)
        proxy.set_mode("pass")
        s.settimeout(5)
        with pytest.raises(ConnectionResetError):
            s.recv(10)
    assert proxy.stats()["bytes_dropped"] >= 4
    assert roundtrip(proxy.port)[0] == b"ping"


def test_a_server_side_reset_reaches_the_client(proxy):
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as s:
        s.sendall(b"a")
        assert s.recv(10) == b"a"
        s.sendall(b"RST")
        s.settimeout(3)
        try:
            got = s.recv(10)  # a timeout here: the client would wait forever for a dead server
        except ConnectionResetError:
            got = None
        assert got in (b"", None)
