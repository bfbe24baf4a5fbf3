"""The WebSocket frames of a client link (RFC 6455 §5), sans-IO and lean: reading what a server
sends, and writing the client's own (masked) frames.

This is the hot path of every conversation: each model chunk arrives as one frame, and each
20 ms of microphone audio leaves as one. wsproto (which the link still uses for the opening
handshake) spends ~6 µs per 6 KiB audio frame slicing its buffers and a few more per frame
sent (an event object, copies, a ``getrandom`` call for the mask); this reader and writer do
the same work in about one. The reader handles exactly what a server may send a client that
negotiated no extension: unmasked frames, text and binary messages possibly split into
continuation frames, and ping, pong and close control frames between them. Anything else is a
protocol error with the close code RFC 6455 prescribes.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Final

__all__ = [
    "BINARY",
    "CLOSE",
    "PING",
    "PONG",
    "TEXT",
    "FrameError",
    "FrameReader",
    "FrameWriter",
]

CONTINUATION: Final = 0x0
TEXT: Final = 0x1
BINARY: Final = 0x2
CLOSE: Final = 0x8
PING: Final = 0x9
PONG: Final = 0xA

_DATA: Final = frozenset({TEXT, BINARY})
_CONTROL: Final = frozenset({CLOSE, PING, PONG})


class FrameError(Exception):
    """The server broke the framing rules; ``code`` is the close code to answer with."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class FrameReader:
    """Bytes in, whole messages and control frames out.

    :meth:`next` returns ``(opcode, payload)``: a whole TEXT message as ``str``, a whole BINARY
    message as ``bytes``, or a control frame (CLOSE, PING, PONG) with its ``bytes`` payload;
    None when more bytes are needed.
    """

    __slots__ = ("_buffer", "_max_size", "_opcode", "_parts", "_pos", "_size")

    def __init__(self, max_message_size: int) -> None:
        self._buffer = bytearray()
        self._pos = 0
        self._max_size = max_message_size
        #: Opcode of a fragmented message in progress, and its fragments so far.
        self._opcode: int | None = None
        self._parts: list[bytes] = []
        self._size = 0

    def feed(self, data: bytes | bytearray) -> None:
        """Bytes as they came off the socket."""
        buffer = self._buffer
        if self._pos:
            if self._pos >= len(buffer):
                buffer.clear()
            else:
                del buffer[: self._pos]
            self._pos = 0
        buffer += data

    def next(self) -> tuple[int, str | bytes] | None:
        """The next message or control frame, or None if it has not fully arrived."""
        while True:
            frame = self._frame()
            if frame is None:
                return None
            fin, opcode, payload = frame
            if opcode in _CONTROL:
                return opcode, payload
            message = self._join(fin, opcode, payload)
            if message is not None:
                return message

    def _frame(self) -> tuple[bool, int, bytes] | None:
        buffer, pos = self._buffer, self._pos
        available = len(buffer) - pos
        if available < 2:
            return None
        first, second = buffer[pos], buffer[pos + 1]
        if first & 0x70:
            raise FrameError(1002, "reserved bits set (no extension was negotiated)")
        if second & 0x80:
            raise FrameError(1002, "a server must not mask its frames")
        opcode = first & 0x0F
        length = second & 0x7F
        head = 2
        if length == 126:
            if available < 4:
                return None
            length = int.from_bytes(buffer[pos + 2 : pos + 4], "big")
            head = 4
        elif length == 127:
            if available < 10:
                return None
            length = int.from_bytes(buffer[pos + 2 : pos + 10], "big")
            head = 10
            if length >> 63:
                raise FrameError(1002, "frame length has its top bit set")
        fin = bool(first & 0x80)
        if opcode in _CONTROL:
            if not fin or length > 125:
                raise FrameError(1002, "control frames must be whole and at most 125 bytes")
        elif opcode not in _DATA and opcode != CONTINUATION:
            raise FrameError(1002, f"unknown opcode {opcode:#x}")
        elif self._size + length > self._max_size:
            raise FrameError(1009, f"message larger than {self._max_size} bytes")
        end = pos + head + length
        if end > len(buffer):
            return None
        self._pos = end
        return fin, opcode, bytes(buffer[pos + head : end])

    def _join(self, fin: bool, opcode: int, payload: bytes) -> tuple[int, str | bytes] | None:
        if opcode == CONTINUATION:
            if self._opcode is None:
                raise FrameError(1002, "continuation frame with no message to continue")
            opcode = self._opcode
        elif self._opcode is not None:
            raise FrameError(1002, "a new message began before the last one finished")
        if fin and not self._parts:
            return opcode, _decode(opcode, payload)
        self._parts.append(payload)
        self._size += len(payload)
        if not fin:
            self._opcode = opcode
            return None
        whole = b"".join(self._parts)
        self._parts, self._size, self._opcode = [], 0, None
        return opcode, _decode(opcode, whole)


def _decode(opcode: int, payload: bytes) -> str | bytes:
    if opcode != TEXT:
        return payload
    try:
        return payload.decode("utf-8")
    except UnicodeDecodeError:
        raise FrameError(1007, "text message is not valid UTF-8") from None


class FrameWriter:
    """Client frames, whole and masked (RFC 6455 §5.3), as bytes ready for the wire.

    Each frame gets a fresh 32-bit masking key from the operating system's strong source of
    entropy (``os.urandom``), drawn ``_KEYS`` bytes at a time rather than one system call per
    frame. The mask is applied by ``websockets``' C helper (installed with google-genai: 0.1 µs
    for a 20 ms audio chunk), else by one XOR of two big integers.
    """

    __slots__ = ("_keys", "_next")

    def __init__(self) -> None:
        self._keys = b""
        self._next = 0

    def _key(self) -> bytes:
        at = self._next
        if at >= len(self._keys):
            self._keys, at = os.urandom(_KEYS), 0
        self._next = at + 4
        return self._keys[at : at + 4]

    def frame(self, opcode: int, payload: bytes) -> bytes:
        """One whole (FIN) frame of ``opcode`` carrying ``payload``, masked."""
        size = len(payload)
        if size < 126:
            head = bytes((0x80 | opcode, 0x80 | size))
        elif size < 65536:
            head = bytes((0x80 | opcode, 0xFE)) + size.to_bytes(2, "big")
        else:
            head = bytes((0x80 | opcode, 0xFF)) + size.to_bytes(8, "big")
        key = self._key()
        return head + key + _apply_mask(payload, key) if size else head + key

    def text(self, text: str) -> bytes:
        """A TEXT frame of ``text`` (UTF-8)."""
        return self.frame(TEXT, text.encode("utf-8"))

    def close(self, code: int, reason: str = "") -> bytes:
        """A CLOSE frame: ``code`` and ``reason`` (cut to fit the 125-byte limit)."""
        data = code.to_bytes(2, "big") + _truncate_utf8(reason.encode("utf-8"), 123)
        return self.frame(CLOSE, data)


#: Masking keys drawn from the OS per system call (4 bytes each).
_KEYS: Final = 256


def _xor_mask(payload: bytes, key: bytes) -> bytes:
    """``payload`` XOR ``key`` repeated (the pure-Python way: linear, no per-byte loop)."""
    size = len(payload)
    mask = key * ((size + 3) // 4)
    if size % 4:
        mask = mask[:size]
    return (int.from_bytes(payload, "little") ^ int.from_bytes(mask, "little")).to_bytes(
        size, "little"
    )


_apply_mask: Callable[[bytes, bytes], bytes]
try:
    from websockets.speedups import apply_mask as _apply_mask
except ImportError:  # pragma: no cover - websockets built without its C extension
    _apply_mask = _xor_mask


def _truncate_utf8(data: bytes, limit: int) -> bytes:
    """``data`` cut to at most ``limit`` bytes, never in the middle of a character."""
    if len(data) <= limit:
        return data
    return data[:limit].decode("utf-8", "ignore").encode("utf-8")
