"""What a client may send: the known fields of every client message, and their normalisation.

The service parses client frames as proto3 JSON: it accepts lowerCamelCase and proto
snake_case names at every level, refuses unknown names (close 1007 ``Invalid JSON payload
received. Unknown name "x" at 'setup': Cannot find field.``) and leaves free-form values
(``google.protobuf.Struct``: function ``args``, a function ``response``, JSON schemas, ``labels``,
the names under a schema's ``properties``) exactly as given. :func:`normalise` does the same and
returns the message with camelCase keys and standard base64, which is what the log shows.

The tables list the Developer API's fields as the google-genai 3.4 converters send them
(``_live_converters.py`` ``*_to_mldev``). Vertex-only fields are accepted only in Vertex mode.
Rarely used tool configurations are ``LENIENT``: their keys are normalised but not checked.
"""

from __future__ import annotations

import json
import math
from typing import Any, Final

from ._wire import (
    INVALID_ARGUMENT,
    SESSION_NOT_FOUND,
    ProtocolViolation,
    b64_standard,
    camel,
    snake,
)

__all__ = ["ENVELOPE_KINDS", "normalise"]

# Field kinds. A message type is named by its key in ``_TYPES``.
STRING: Final = "string"
BOOL: Final = "bool"
INT: Final = "int"  # int32 and int64: a number or a numeric string
FLOAT: Final = "float"
ENUM: Final = "enum"
BYTES: Final = "bytes"
STRUCT: Final = "struct"  # free-form JSON kept verbatim
LENIENT: Final = "lenient"  # an object whose keys are normalised, never checked
UNSUPPORTED: Final = "unsupported"  # a real field the Live API refuses
VERTEX: Final = "vertex:"  # prefix: a field only Vertex AI knows
MAP: Final = "map:"  # prefix: map<string, type>; keys are user names


_TYPES: Final[dict[str, dict[str, str]]] = {
    "ClientMessage": {
        "setup": "Setup",
        "clientContent": "ClientContent",
        "realtimeInput": "RealtimeInput",
        "toolResponse": "ToolResponse",
        # SDK 3.4 only (not in the published proto); accepted so the SDK works against us.
        "contextUpdate": "ContextUpdate",
    },
    "Setup": {
        "model": STRING,
        "generationConfig": "GenerationConfig",
        "systemInstruction": "Content",
        "tools": "Tool",
        "realtimeInputConfig": "RealtimeInputConfig",
        "sessionResumption": "SessionResumptionConfig",
        "contextWindowCompression": "ContextWindowCompression",
        "inputAudioTranscription": LENIENT,
        "outputAudioTranscription": LENIENT,
        "proactivity": "ProactivityConfig",
        "historyConfig": "HistoryConfig",
        "avatarConfig": LENIENT,
        "safetySettings": "SafetySetting",
        "labels": MAP + STRING,
        "explicitVadSignal": VERTEX + BOOL,
    },
    "GenerationConfig": {
        "candidateCount": INT,
        "maxOutputTokens": INT,
        "temperature": FLOAT,
        "topP": FLOAT,
        "topK": INT,
        "seed": INT,
        "presencePenalty": FLOAT,
        "frequencyPenalty": FLOAT,
        "responseModalities": ENUM,
        "speechConfig": "SpeechConfig",
        "mediaResolution": ENUM,
        "thinkingConfig": "ThinkingConfig",
        "enableAffectiveDialog": BOOL,
        "translationConfig": "TranslationConfig",
        "audioTranscriptionConfig": LENIENT,
        # GenerationConfig fields the Live API does not support (ai.google.dev/api/live).
        "responseLogprobs": UNSUPPORTED,
        "responseMimeType": UNSUPPORTED,
        "logprobs": UNSUPPORTED,
        "responseSchema": UNSUPPORTED,
        "responseJsonSchema": UNSUPPORTED,
        "stopSequences": UNSUPPORTED,
        "routingConfig": UNSUPPORTED,
        "audioTimestamp": UNSUPPORTED,
        "modelSelectionConfig": UNSUPPORTED,
        "responseFormat": UNSUPPORTED,
        "enableEnhancedCivicAnswers": UNSUPPORTED,
    },
    "SpeechConfig": {
        "voiceConfig": "VoiceConfig",
        "languageCode": STRING,
        "multiSpeakerVoiceConfig": UNSUPPORTED,
    },
    "VoiceConfig": {
        "prebuiltVoiceConfig": "PrebuiltVoiceConfig",
        "replicatedVoiceConfig": LENIENT,
        "voice": LENIENT,
    },
    "PrebuiltVoiceConfig": {"voiceName": STRING},
    "ThinkingConfig": {"includeThoughts": BOOL, "thinkingBudget": INT, "thinkingLevel": ENUM},
    "TranslationConfig": {"echoTargetLanguage": BOOL, "targetLanguageCode": STRING},
    "Content": {"parts": "Part", "role": STRING},
    "Part": {
        "text": STRING,
        "inlineData": "Blob",
        "fileData": "FileData",
        "functionCall": "FunctionCall",
        "functionResponse": "FunctionResponse",
        "executableCode": "ExecutableCode",
        "codeExecutionResult": "CodeExecutionResult",
        "thought": BOOL,
        "thoughtSignature": BYTES,
        "videoMetadata": LENIENT,
        "mediaResolution": LENIENT,
        "toolCall": LENIENT,
        "toolResponse": LENIENT,
        "partMetadata": STRUCT,
        "audioTranscription": LENIENT,
        "mediaProcessing": LENIENT,
        "speechMetadata": LENIENT,
        "documentMetadata": LENIENT,
        "spreadsheetMetadata": LENIENT,
        "audioMetadata": LENIENT,
    },
    "Blob": {"data": BYTES, "mimeType": STRING, "displayName": STRING},
    "FileData": {"fileUri": STRING, "mimeType": STRING, "displayName": STRING},
    "FunctionCall": {
        "id": STRING,
        "name": STRING,
        "args": STRUCT,
        "partialArgs": LENIENT,
        "willContinue": BOOL,
    },
    "FunctionResponse": {
        "id": STRING,
        "name": STRING,
        "response": STRUCT,
        "willContinue": BOOL,
        "scheduling": ENUM,
        "parts": "FunctionResponsePart",
    },
    "FunctionResponsePart": {
        "inlineData": "Blob",
        "fileData": "FileData",
        "mediaProcessing": LENIENT,
        "mediaResolution": LENIENT,
        "videoMetadata": LENIENT,
        "documentMetadata": LENIENT,
        "spreadsheetMetadata": LENIENT,
        "audioMetadata": LENIENT,
    },
    "ExecutableCode": {"code": STRING, "language": ENUM, "id": STRING},
    "CodeExecutionResult": {"outcome": ENUM, "output": STRING, "id": STRING},
    "Tool": {
        "functionDeclarations": "FunctionDeclaration",
        "googleSearch": LENIENT,
        "googleSearchRetrieval": LENIENT,
        "codeExecution": LENIENT,
        "urlContext": LENIENT,
        "googleMaps": LENIENT,
        "fileSearch": LENIENT,
        "mcpServers": LENIENT,
        "computerUse": LENIENT,
        "retrieval": VERTEX + LENIENT,
        "enterpriseWebSearch": VERTEX + LENIENT,
    },
    "FunctionDeclaration": {
        "name": STRING,
        "description": STRING,
        "parameters": "Schema",
        "parametersJsonSchema": STRUCT,
        "response": "Schema",
        "responseJsonSchema": STRUCT,
        "behavior": ENUM,
    },
    "Schema": {
        "type": ENUM,
        "format": STRING,
        "title": STRING,
        "description": STRING,
        "nullable": BOOL,
        "enum": STRING,
        "maxItems": INT,
        "minItems": INT,
        "properties": MAP + "Schema",
        "required": STRING,
        "minProperties": INT,
        "maxProperties": INT,
        "minLength": INT,
        "maxLength": INT,
        "pattern": STRING,
        "example": STRUCT,
        "anyOf": "Schema",
        "propertyOrdering": STRING,
        "default": STRUCT,
        "items": "Schema",
        "minimum": FLOAT,
        "maximum": FLOAT,
        "additionalProperties": STRUCT,
        "defs": MAP + "Schema",
        "ref": STRING,
    },
    "RealtimeInputConfig": {
        "automaticActivityDetection": "AutomaticActivityDetection",
        "activityHandling": ENUM,
        "turnCoverage": ENUM,
        "interimTranscriptTimestampEnabled": BOOL,
    },
    "AutomaticActivityDetection": {
        "disabled": BOOL,
        "startOfSpeechSensitivity": ENUM,
        "endOfSpeechSensitivity": ENUM,
        "prefixPaddingMs": INT,
        "silenceDurationMs": INT,
    },
    "SessionResumptionConfig": {"handle": STRING, "transparent": VERTEX + BOOL},
    "ContextWindowCompression": {"triggerTokens": INT, "slidingWindow": "SlidingWindow"},
    "SlidingWindow": {"targetTokens": INT},
    "ProactivityConfig": {"proactiveAudio": BOOL, "proactiveVideo": BOOL},
    "HistoryConfig": {"initialHistoryInClientContent": BOOL},
    "SafetySetting": {"category": ENUM, "threshold": ENUM, "method": VERTEX + ENUM},
    "ClientContent": {"turns": "Content", "turnComplete": BOOL},
    "RealtimeInput": {
        "mediaChunks": "Blob",
        "audio": "Blob",
        "video": "Blob",
        "text": STRING,
        "audioStreamEnd": BOOL,
        "activityStart": "Empty",
        "activityEnd": "Empty",
    },
    "Empty": {},
    "ToolResponse": {"functionResponses": "FunctionResponse"},
    "ContextUpdate": {"systemInstruction": "Content", "tools": "ContextUpdateTools"},
    "ContextUpdateTools": {"tools": "Tool"},
}

#: The top-level keys a client message may carry, camelCase.
ENVELOPE_KINDS: Final = frozenset(_TYPES["ClientMessage"])

# A field path is built only when an error needs it: a chain of (parent, segment) tuples.
_Path = tuple[Any, str] | None


def _path_text(path: _Path) -> str:
    parts: list[str] = []
    while path is not None:
        path, segment = path
        parts.append(segment)
    text = ""
    for segment in reversed(parts):
        text += segment if segment.startswith("[") or not text else "." + segment
    return text


def _preview(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else f'"{value}"'
    return text if len(text) <= 40 else text[:37] + "..."


def _invalid(path: _Path, proto_type: str, value: Any) -> ProtocolViolation:
    return ProtocolViolation(
        1007, f"Invalid value at '{_path_text(path)}' ({proto_type}), {_preview(value)}"
    )


def _unknown(name: str, path: _Path) -> ProtocolViolation:
    where = f" at '{_path_text(path)}'" if path is not None else ""
    return ProtocolViolation(
        1007, f'Invalid JSON payload received. Unknown name "{name}"{where}: Cannot find field.'
    )


def normalise(message: Any, *, vertex: bool = False) -> tuple[str, dict[str, Any]]:
    """Check one client message; return its camelCase top-level key and the normalised message.

    Raises :class:`ProtocolViolation` (1007) for anything the service would refuse: a
    non-object, an unknown field, a wrongly typed value, invalid base64, or not exactly one
    top-level key.
    """
    if not isinstance(message, dict):
        raise ProtocolViolation(1007, "Invalid JSON payload received. Expected an object.")
    normalised = _message(message, "ClientMessage", None, vertex)
    if len(normalised) != 1:
        raise ProtocolViolation(1007, INVALID_ARGUMENT)
    (key,) = normalised
    return key, normalised


def _message(value: Any, type_name: str, path: _Path, vertex: bool) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _invalid(path, "TYPE_MESSAGE", value)
    fields = _TYPES[type_name]
    out: dict[str, Any] = {}
    for key, item in value.items():
        name = camel(key)
        kind = fields.get(name)
        if kind is not None and kind.startswith(VERTEX):
            kind = kind[len(VERTEX) :] if vertex else None
        if kind is None:
            raise _unknown(key, path)
        if item is None:
            if type_name == "SessionResumptionConfig" and name == "handle":
                # Observed: ``{"handle": null}`` is refused as an unknown session (omit it).
                raise ProtocolViolation(1008, SESSION_NOT_FOUND)
            continue  # proto3 JSON: null means "not set"
        field_path = (path, snake(name))
        if isinstance(item, list) and kind not in (STRUCT, LENIENT):
            out[name] = [
                _value(element, kind, ((field_path, f"[{i}]")), vertex)
                for i, element in enumerate(item)
            ]
        else:
            out[name] = _value(item, kind, field_path, vertex)
    return out


def _value(value: Any, kind: str, path: _Path, vertex: bool) -> Any:
    if kind == STRING:
        if not isinstance(value, str):
            raise _invalid(path, "TYPE_STRING", value)
        return value
    if kind == BOOL:
        if not isinstance(value, bool):
            raise _invalid(path, "TYPE_BOOL", value)
        return value
    if kind == INT:
        return _integer(value, path)
    if kind == FLOAT:
        return _float(value, path)
    if kind == ENUM:
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise _invalid(path, "TYPE_ENUM", value)
        return value
    if kind == BYTES:
        if not isinstance(value, str):
            raise _invalid(path, "TYPE_BYTES", value)
        try:
            return b64_standard(value)[0]
        except ValueError:
            raise ProtocolViolation(
                1007,
                f"Invalid value at '{_path_text(path)}' (TYPE_BYTES), "
                f"Base64 decoding failed for {_preview(value)}",
            ) from None
    if kind == STRUCT:
        return value
    if kind == LENIENT:
        return _camel_keys(value)
    if kind == UNSUPPORTED:
        raise ProtocolViolation(1007, INVALID_ARGUMENT)
    if kind.startswith(MAP):
        if not isinstance(value, dict):
            raise _invalid(path, "TYPE_MESSAGE", value)
        value_kind = kind[len(MAP) :]
        return {key: _value(item, value_kind, (path, key), vertex) for key, item in value.items()}
    return _message(value, kind, path, vertex)


def _integer(value: Any, path: _Path) -> int:
    if isinstance(value, bool):
        raise _invalid(path, "TYPE_INT64", value)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)  # the SDK sends topK as 40.0
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            pass
    raise _invalid(path, "TYPE_INT64", value)


def _float(value: Any, path: _Path) -> float:
    if isinstance(value, bool):
        raise _invalid(path, "TYPE_FLOAT", value)
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str) and value in ("NaN", "Infinity", "-Infinity"):
        return float(value.replace("Infinity", "inf"))
    raise _invalid(path, "TYPE_FLOAT", value)


def _camel_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {camel(key): _camel_keys(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_camel_keys(item) for item in value]
    return value
