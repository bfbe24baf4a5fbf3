"""Token estimates for context-window accounting and ``usageMetadata``.

The fake has no tokenizer, so it uses the published rules of thumb, chosen to be simple and
deterministic: text costs one token per 4 UTF-8 bytes (rounded up), audio 32 tokens per second,
an image or video frame 258 tokens. A test that needs exact numbers can compute them with these
same functions.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Final

__all__ = [
    "AUDIO_TOKENS_PER_SECOND",
    "IMAGE_TOKENS",
    "audio_tokens",
    "text_tokens",
    "usage_metadata",
]

AUDIO_TOKENS_PER_SECOND: Final = 32
IMAGE_TOKENS: Final = 258
TEXT_BYTES_PER_TOKEN: Final = 4


def text_tokens(text: str) -> int:
    """Tokens of ``text``: one per 4 UTF-8 bytes, rounded up."""
    return -(-len(text.encode("utf-8")) // TEXT_BYTES_PER_TOKEN)


def audio_tokens(seconds: float) -> int:
    """Tokens of ``seconds`` of audio."""
    return math.ceil(seconds * AUDIO_TOKENS_PER_SECOND - 1e-9) if seconds > 0 else 0


def content_tokens(content: Mapping[str, Any]) -> tuple[int, str]:
    """Tokens of one client ``Content`` and its dominant modality."""
    total = 0
    modality = "TEXT"
    for part in content.get("parts") or ():
        if not isinstance(part, Mapping):
            continue
        if "text" in part:
            total += text_tokens(str(part["text"]))
        elif "inlineData" in part:
            blob = part["inlineData"]
            mime = str(blob.get("mimeType", "")) if isinstance(blob, Mapping) else ""
            if mime.startswith("audio/"):
                data = str(blob.get("data", ""))
                total += audio_tokens(len(data) * 3 / 4 / 2 / 16_000)
                modality = "AUDIO"
            else:
                total += IMAGE_TOKENS
                modality = "IMAGE"
        else:
            # functionCall / functionResponse / code: charge their JSON size as text.
            total += text_tokens(repr(part))
    return total, modality


def usage_metadata(prompt: Mapping[str, int], response: Mapping[str, int]) -> dict[str, Any]:
    """``usageMetadata`` for one generation, zero-valued fields omitted as proto3 does."""
    prompt_total = sum(prompt.values())
    response_total = sum(response.values())
    usage: dict[str, Any] = {}
    if prompt_total:
        usage["promptTokenCount"] = prompt_total
    if response_total:
        usage["responseTokenCount"] = response_total
    if prompt_total + response_total:
        usage["totalTokenCount"] = prompt_total + response_total
    details = [{"modality": m, "tokenCount": n} for m, n in sorted(prompt.items()) if n]
    if details:
        usage["promptTokensDetails"] = details
    details = [{"modality": m, "tokenCount": n} for m, n in sorted(response.items()) if n]
    if details:
        usage["responseTokensDetails"] = details
    return usage
