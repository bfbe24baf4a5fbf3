"""Which model the fake is playing: the library's model table, and a profile for other names.

The library keeps one table of the Live models it knows (:mod:`liveactors._models`); the fake
server uses it as its own knowledge, so a model fact lives in one place. A setup naming a model

* **in the table** behaves as its entry says (a shut-down model is refused with 1008, as the
  service refuses it: https://ai.google.dev/gemini-api/docs/deprecations);
* **not in the table** behaves as the server's ``model_profile`` generation:

  - ``"3.8"`` (default): like ``gemini-3.8-live`` (AUDIO only, NON_BLOCKING calls by default,
    no thinking or affective dialog, proactive audio always on);
  - ``"3.1"``: like ``gemini-3.1-flash-live-preview`` (thinking levels, BLOCKING calls only);
  - ``"2.5"``: the old half-cascade behaviour: TEXT or AUDIO (AUDIO only when the name contains
    ``native-audio``), calls BLOCKING unless declared otherwise, no config checks.

:class:`FakeModel` is what the rest of the server reads: the model's limits (what a setup may ask
for, checked in ``_model_checks``) and the behaviour of its generation (how output is framed,
how barge-in and tool calls go), each overridable by a server option.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final, Literal, TypeAlias

import attrs

from .._models import (
    KNOWN_MODELS,
    RECOMMENDED,
    ModelInfo,
    Platform,
    Status,
    Thinking,
    base_name,
    lookup,
)

if TYPE_CHECKING:
    from ._options import ServerOptions

__all__ = [
    "PROFILE_MODELS",
    "Behaviour",
    "FakeModel",
    "Generation",
    "ProfileName",
    "behaviour_of",
    "resolve_model",
]

ProfileName: TypeAlias = Literal["3.8", "3.1", "2.5"]
Generation: TypeAlias = Literal["3.8", "3.1", "2.5"]

#: The model each profile stands for (``FakeServer.backend()``'s default model).
PROFILE_MODELS: Final[dict[str, str]] = {
    "3.8": RECOMMENDED,
    "3.1": "gemini-3.1-flash-live-preview",
    "2.5": "gemini-2.5-flash-native-audio-preview-12-2025",
}

#: Context windows (https://ai.google.dev/gemini-api/docs/live-guide, "Limitations").
NATIVE_AUDIO_WINDOW: Final = 131_072
DEFAULT_WINDOW: Final = 32_768


@attrs.frozen
class FakeModel:
    """The model a session runs on, as the fake plays it."""

    #: The bare model name (``gemini-3.8-live``).
    name: str
    generation: Generation
    #: The library's table entry, or None for a name the table does not know.
    info: ModelInfo | None
    #: Response modalities it answers in (one per session).
    modalities: frozenset[str]
    #: None: thinking settings are not checked (the old half-cascade profile).
    thinking: Thinking | None
    thinking_levels: frozenset[str]
    #: None: not checked; else whether ``enableAffectiveDialog`` is accepted.
    affective_dialog: bool | None
    #: "no", "optional", "always" (as in the table), or "any" (not checked).
    proactive_audio: str
    #: Whether NON_BLOCKING declarations are accepted.
    async_calls: bool
    #: Whether a declaration without ``behavior`` runs NON_BLOCKING.
    non_blocking_default: bool
    transcription_only: bool
    avatars: bool
    turn_complete_not_idle: bool
    platforms: frozenset[Platform]
    retired: bool
    window: int
    #: A resumption forgets the history the client prefilled (the 3.8 generation, observed).
    loses_prefill: bool = False

    @property
    def default_modality(self) -> str:
        """The modality of a setup that names none: AUDIO, unless the model cannot speak."""
        if "AUDIO" in self.modalities or not self.modalities:
            return "AUDIO"
        return min(self.modalities)


def _generation_of(info: ModelInfo) -> Generation:
    if info.non_blocking_default:
        return "3.8"
    if info.name.startswith("gemini-3"):
        return "3.1"
    return "2.5"


def _from_info(info: ModelInfo, name: str, generation: Generation) -> FakeModel:
    return FakeModel(
        name=name,
        generation=generation,
        info=info if info.name == name else None,
        modalities=info.modalities,
        thinking=info.thinking,
        thinking_levels=info.thinking_levels,
        affective_dialog=info.affective_dialog,
        proactive_audio=info.proactive_audio,
        async_calls=info.async_calls,
        non_blocking_default=info.non_blocking_default,
        transcription_only=info.transcription_only,
        avatars=info.avatars,
        turn_complete_not_idle=info.turn_complete_not_idle,
        platforms=info.platforms,
        retired=info.status is Status.RETIRED,
        # Native-audio models have the larger window; a model that writes TEXT is of the
        # half-cascade kind (the library's fake-only text model).
        window=DEFAULT_WINDOW
        if "TEXT" in info.modalities and not info.transcription_only
        else NATIVE_AUDIO_WINDOW,
        loses_prefill=not info.resume_keeps_seed,
    )


def _half_cascade(name: str, native_audio_refuses_text: bool) -> FakeModel:
    native = "native-audio" in name
    return FakeModel(
        name=name,
        generation="2.5",
        info=None,
        modalities=frozenset({"AUDIO"})
        if native and native_audio_refuses_text
        else frozenset({"TEXT", "AUDIO"}),
        thinking=None,
        thinking_levels=frozenset(),
        affective_dialog=None,
        proactive_audio="any",
        async_calls=True,
        non_blocking_default=False,
        transcription_only=False,
        avatars=False,
        turn_complete_not_idle=False,
        platforms=frozenset({Platform.DEVELOPER, Platform.VERTEX}),
        retired=False,
        window=NATIVE_AUDIO_WINDOW if native else DEFAULT_WINDOW,
    )


def resolve_model(
    model: str, profile: ProfileName, *, native_audio_refuses_text: bool = True
) -> FakeModel:
    """How the fake plays ``model`` (any spelling: ``models/x``, ``publishers/google/models/x``)
    on a server whose ``model_profile`` is ``profile``."""
    name = base_name(model)
    info = lookup(name)
    if info is not None:
        return _from_info(info, name, _generation_of(info))
    if profile == "2.5":
        return _half_cascade(name, native_audio_refuses_text)
    return _from_info(KNOWN_MODELS[PROFILE_MODELS[profile]], name, profile)


@attrs.frozen
class Behaviour:
    """How one session behaves: its model's generation, with the server's overrides applied."""

    #: Audio ``inlineData`` parts per ``serverContent``.
    audio_parts: int
    #: The output transcription rides in the audio's message.
    transcript_with_audio: bool
    #: Speech interrupts only after ``barge_in_delay``; no turn starts while the user speaks.
    polite: bool
    barge_in_delay: float
    #: New input drops a waiting BLOCKING call and re-issues it under a new id.
    reissue: bool
    interaction_status: bool
    #: ``clientContent`` interrupts only with ``turnComplete: true`` (3.8); else always.
    interrupt_needs_turn_complete: bool
    #: ``clientContent`` after the connection's first model turn closes 1007 (3.1).
    refuse_late_client_content: bool


def _pick(value: bool | None, default: bool) -> bool:
    return default if value is None else value


def behaviour_of(model: FakeModel, options: ServerOptions) -> Behaviour:
    """The behaviour of a session on ``model`` under ``options``."""
    current = model.generation == "3.8"
    return Behaviour(
        audio_parts=options.audio_parts or (3 if current else 1),
        transcript_with_audio=_pick(options.transcript_with_audio, model.generation != "2.5"),
        polite=_pick(options.polite_barge_in, current),
        barge_in_delay=options.barge_in_delay,
        reissue=_pick(options.reissue_blocking_calls, current),
        interaction_status=_pick(options.interaction_status, model.turn_complete_not_idle),
        interrupt_needs_turn_complete=current,
        refuse_late_client_content=_pick(
            options.refuse_late_client_content,
            model.generation == "3.1" and not model.transcription_only,
        ),
    )
