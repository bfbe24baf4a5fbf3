"""Live avatars (Vertex AI only): the model answers in fragmented MP4 video.

With ``responseModalities: ["VIDEO"]`` and an ``avatarConfig``, the service streams the avatar as
fragmented MP4 in ``modelTurn.parts[].inlineData{mimeType: "video/mp4"}`` (the Vertex AI guide
"Configure live avatars"; google-genai ``types.AvatarConfig``): an *initialization segment*
(``ftyp`` + ``moov``) first, then *media segments* (``moof`` + ``mdat``), the voice muxed in, and
the words in ``outputTranscription``.

The fake cannot draw a face. Its segments are small but structurally valid ISO BMFF boxes (size,
type, payload; ``moov`` holds ``mvhd`` and ``mvex/trex``, each ``moof`` an ``mfhd`` with its
sequence number and a ``traf``), so a client can check the box order and hand the bytes to a
demuxer without a real encoder. Each turn starts with a fresh initialization segment, so every
answer can be played on its own; ``mdat`` holds zero bytes in proportion to the segment's
duration at the configured (or a default 512 kbit/s) video bitrate.
"""

from __future__ import annotations

import base64
import struct
from collections.abc import Mapping
from typing import Any, Final

from ._frames import Frame
from ._wire import dumps

__all__ = ["VIDEO_MIME", "init_segment", "media_segment", "video_message"]

VIDEO_MIME: Final = "video/mp4"
#: Timescale of the fake movie (24 fps, as observed).
_TIMESCALE: Final = 24_000
_DEFAULT_BITRATE: Final = 512_000


def _box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", 8 + len(payload)) + kind + payload


def _full_box(kind: bytes, version: int, flags: int, payload: bytes) -> bytes:
    return _box(kind, struct.pack(">I", (version << 24) | flags) + payload)


def init_segment() -> bytes:
    """``ftyp`` + ``moov`` (``mvhd``, ``mvex/trex``): the start of every answer."""
    ftyp = _box(b"ftyp", b"iso6" + struct.pack(">I", 0) + b"iso6mp41")
    matrix = struct.pack(">9I", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)
    mvhd = _full_box(
        b"mvhd",
        0,
        0,
        struct.pack(">IIII", 0, 0, _TIMESCALE, 0)
        + struct.pack(">IH", 0x10000, 0x100)
        + bytes(10)
        + matrix
        + bytes(24)
        + struct.pack(">I", 2),
    )
    trex = _full_box(b"trex", 0, 0, struct.pack(">IIIII", 1, 1, 0, 0, 0))
    moov = _box(b"moov", mvhd + _box(b"mvex", trex))
    return ftyp + moov


def media_segment(sequence: int, start_seconds: float, seconds: float, bitrate: int) -> bytes:
    """One ``moof`` + ``mdat`` fragment of ``seconds`` of video starting at ``start_seconds``."""
    mfhd = _full_box(b"mfhd", 0, 0, struct.pack(">I", sequence))
    tfhd = _full_box(b"tfhd", 0, 0x020000, struct.pack(">I", 1))  # default-base-is-moof
    tfdt = _full_box(b"tfdt", 1, 0, struct.pack(">Q", round(start_seconds * _TIMESCALE)))
    moof = _box(b"moof", mfhd + _box(b"traf", tfhd + tfdt))
    return moof + _box(b"mdat", bytes(max(1, round(seconds * bitrate / 8))))


def bitrate_of(avatar_config: Mapping[str, Any] | None) -> int:
    """The video bitrate an ``avatarConfig`` asks for (bits per second)."""
    value = (avatar_config or {}).get("videoBitrateBps")
    try:
        bitrate = int(value) if value is not None else _DEFAULT_BITRATE
    except (TypeError, ValueError):
        bitrate = _DEFAULT_BITRATE
    return bitrate if bitrate > 0 else _DEFAULT_BITRATE


def video_message(segments: list[bytes], transcript: str | None) -> Frame:
    """One ``serverContent`` with one ``video/mp4`` part per segment, and the words said."""
    parts = [
        {"inlineData": {"mimeType": VIDEO_MIME, "data": base64.b64encode(s).decode("ascii")}}
        for s in segments
    ]
    content: dict[str, Any] = {"modelTurn": {"role": "model", "parts": parts}}
    if transcript is not None:
        content["outputTranscription"] = {"text": transcript}
    return "serverContent.modelTurn", dumps({"serverContent": content})
