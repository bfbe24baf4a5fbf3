"""The documentation agrees with the model table, and shows only configs the models accept.

* docs/models.md's table of what each model accepts is generated from
  ``liveactors._models.KNOWN_MODELS``; the test fails when the two disagree. Regenerate it with
  ``python tests/test_docs_models.py``.
* Every ``LiveConnectConfig(...)`` and every config dict passed to ``spawn`` in the pages'
  Python blocks is checked the way ``spawn`` checks it, against the default model, or the model
  named by a ``<!-- model: NAME -->`` line right before the block. A block after a
  ``<!-- refused -->`` line shows a refused config: it must hold one that is refused.
* The pages cite public sources, never the team's internal notes.
"""

from __future__ import annotations

import ast
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from google.genai import types

import liveactors
from liveactors._models import (
    KNOWN_MODELS,
    RECOMMENDED,
    ModelInfo,
    Platform,
    Status,
    Thinking,
    check_config,
)
from liveactors._session_config import live_config

REPO = Path(__file__).resolve().parent.parent
MODELS_PAGE = REPO / "docs" / "models.md"
TABLE_START = (
    "<!-- models-table: generated from src/liveactors/_models.py by tests/test_docs_models.py -->"
)
TABLE_END = "<!-- /models-table -->"

#: The pages this checks: the README, the docs (but the two other teams write) and the
#: examples' README.
PAGES = sorted(
    [
        REPO / "README.md",
        REPO / "examples" / "README.md",
        *(REPO / "docs").glob("*.md"),
        *(REPO / "docs" / "guides").glob("*.md"),
    ]
)
PAGES = [p for p in PAGES if p.name not in ("fake-server.md", "vertex.md")]


# -- the table ----------------------------------------------------------------------------------

_LEVEL_ORDER = ("MINIMAL", "LOW", "MEDIUM", "HIGH")
_PLATFORMS = {Platform.DEVELOPER: "Developer API", Platform.VERTEX: "Vertex AI"}
_STATUS = {
    Status.GA: "GA",
    Status.PREVIEW: "preview",
    Status.LEGACY: "legacy preview",
    Status.FAKE: "fake server only",
}


def _answers(info: ModelInfo) -> str:
    if info.transcription_only:
        return " or ".join(sorted(info.modalities)) + " (speech to text only)"
    answers = " or ".join(sorted(info.modalities))
    return answers + ("; VIDEO avatars (Vertex AI)" if info.avatars else "")


def _thinking(info: ModelInfo) -> str:
    if info.thinking is Thinking.NONE:
        return "refused"
    if info.thinking is Thinking.BUDGET:
        return "`thinking_budget`"
    levels = sorted(info.thinking_levels, key=lambda level: (*_LEVEL_ORDER, level).index(level))
    return "`thinking_level`" + (f": {', '.join(levels)}" if levels else "")


def _calls(info: ModelInfo) -> str:
    if info.transcription_only:
        return "none"
    if info.non_blocking_default:
        return "NON_BLOCKING unless declared BLOCKING"
    if info.async_calls:
        return "BLOCKING unless declared NON_BLOCKING"
    return "BLOCKING only"


def _notes(info: ModelInfo) -> str:
    notes = []
    if info.name == RECOMMENDED:
        notes.append("`liveactors.DEFAULT_MODEL`")
    if info.turn_complete_not_idle:
        notes.append("`turnComplete` is not idle: watch `interactionStatus`")
    if info.transcription_only:
        notes.append("input transcription only: no model turns, no tools")
    if info.status is Status.FAKE:
        notes.append("for tests of text answers")
    return "; ".join(notes)


def _row(info: ModelInfo) -> list[str]:
    if info.status is Status.RETIRED:
        return [
            f"`{info.name}`",
            f"shut down {info.shut_down}",
            *["—"] * 6,
            f"use `{info.instead}`",
        ]
    proactive = {
        "no": "refused",
        "optional": "on or off",
        "always": "always on (`False` refused)",
    }[info.proactive_audio]
    served = (
        "the fake server"
        if info.status is Status.FAKE
        else ", ".join(
            _PLATFORMS[p] for p in (Platform.DEVELOPER, Platform.VERTEX) if p in info.platforms
        )
    )
    return [
        f"`{info.name}`",
        _STATUS[info.status],
        _answers(info),
        _thinking(info),
        "yes" if info.affective_dialog else "refused",
        proactive,
        _calls(info),
        served,
        _notes(info),
    ]


def render_table() -> str:
    """docs/models.md's table, from the model table."""
    header = [
        "Model",
        "Status",
        "Answers in",
        "Thinking",
        "Affective dialog",
        "Proactive audio",
        "Function calls",
        "Served on",
        "Notes",
    ]
    lines = [header, ["---"] * len(header), *(_row(info) for info in KNOWN_MODELS.values())]
    return "\n".join("| " + " | ".join(cells) + " |" for cells in lines)


def _page_table(text: str) -> str:
    start = text.index(TABLE_START) + len(TABLE_START)
    return text[start : text.index(TABLE_END, start)].strip()


def test_the_models_page_table_is_the_model_table() -> None:
    page = MODELS_PAGE.read_text(encoding="utf-8")
    assert _page_table(page) == render_table(), (
        "docs/models.md disagrees with src/liveactors/_models.py: "
        "run `python tests/test_docs_models.py` to regenerate the table"
    )


def test_the_models_page_names_every_known_model() -> None:
    page = MODELS_PAGE.read_text(encoding="utf-8")
    prose = page.replace(_page_table(page), "")
    for name in KNOWN_MODELS:
        assert f"`{name}`" in prose, f"docs/models.md says nothing about {name}"


def test_every_model_name_in_the_docs_is_known() -> None:
    """No typo and no forgotten model: every Live model name the pages mention is in the table
    (or is a placeholder for a model that does not exist yet)."""
    for page in PAGES:
        for name in re.findall(r"\bgemini-[0-9a-z.-]*[0-9a-z]", page.read_text(encoding="utf-8")):
            if name in ("gemini-4-live", "gemini-api"):  # a future model, a URL path
                continue
            assert name in KNOWN_MODELS, f"{page.relative_to(REPO)} names unknown model {name}"


def test_the_default_model_is_the_recommended_one() -> None:
    assert liveactors.DEFAULT_MODEL == RECOMMENDED == "gemini-3.8-live"
    assert liveactors.TEXT_MODEL == liveactors.DEFAULT_MODEL


# -- the configs the pages show -----------------------------------------------------------------


def _blocks(page: Path) -> Iterator[tuple[int, str, str | None, bool]]:
    """(line, code, model marker, refused marker) of each ```python block."""
    lines = page.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        if lines[i].strip() == "```python":
            markers = [line.strip() for line in lines[max(0, i - 2) : i]]
            model = next(
                (
                    m.removeprefix("<!-- model:").removesuffix("-->").strip()
                    for m in markers
                    if m.startswith("<!-- model:")
                ),
                None,
            )
            refused = "<!-- refused -->" in markers
            indent = len(lines[i]) - len(lines[i].lstrip())
            end = i + 1
            while lines[end].strip() != "```":
                end += 1
            code = "\n".join(line[indent:] for line in lines[i + 1 : end])
            yield i + 1, code, model, refused
            i = end
        i += 1


def _parse(code: str, where: str) -> ast.Module:
    flags = ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
    tree = compile(code, where, "exec", flags=flags, dont_inherit=True)
    assert isinstance(tree, ast.Module)
    return tree


def _root(node: ast.expr) -> str:
    while isinstance(node, ast.Attribute | ast.Call):
        node = node.func if isinstance(node, ast.Call) else node.value
    return node.id if isinstance(node, ast.Name) else ""


def _namespace(tree: ast.Module) -> dict[str, Any]:
    """``types`` and ``liveactors``, plus the snippet's top-level assignments that only build
    google-genai values (``weather = types.FunctionDeclaration(...)``), so configs that use
    them can be checked whole. Nothing else of the snippet runs."""
    namespace: dict[str, Any] = {"types": types, "liveactors": liveactors}
    for statement in tree.body:
        if not isinstance(statement, ast.Assign):
            continue
        calls = [n for n in ast.walk(statement.value) if isinstance(n, ast.Call)]
        if calls and all(_root(call.func) == "types" for call in calls):
            try:
                exec(compile(ast.Module([statement], []), "<doc>", "exec"), namespace)
            except NameError:
                continue  # it uses something else of the snippet (a call's id, say)
    return namespace


def _value(node: ast.expr, namespace: dict[str, Any]) -> Any:
    return eval(compile(ast.Expression(node), "<doc>", "eval"), dict(namespace))


def _configs(tree: ast.Module) -> Iterator[tuple[int, types.LiveConnectConfig]]:
    """Each config the code builds: ``LiveConnectConfig(...)`` calls (keywords that name other
    variables of the snippet left out) and literal dicts passed to ``spawn``."""
    namespace = _namespace(tree)
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        if name == "LiveConnectConfig":
            fields = {}
            for keyword in node.keywords:
                try:
                    fields[keyword.arg] = _value(keyword.value, namespace)
                except NameError:
                    continue  # e.g. tools=[...] of declarations made earlier in the snippet
            yield node.lineno, types.LiveConnectConfig(**fields)
        elif name == "spawn" and node.args and isinstance(node.args[0], ast.Dict):
            yield node.lineno, types.LiveConnectConfig(**_value(node.args[0], namespace))


def _refusal(model: str, config: types.LiveConnectConfig) -> liveactors.InvalidCommand | None:
    info = KNOWN_MODELS[model]
    platform = Platform.DEVELOPER if Platform.DEVELOPER in info.platforms else Platform.VERTEX
    checked, _ = live_config(config, model=model)
    try:
        check_config(model, checked, platform=platform)
    except liveactors.InvalidCommand as exc:  # InvalidConfig
        return exc
    return None


def _all_blocks() -> list[tuple[str, int, str, str | None, bool]]:
    return [
        (str(page.relative_to(REPO)), line, code, model, refused)
        for page in PAGES
        for line, code, model, refused in _blocks(page)
    ]


@pytest.mark.parametrize(
    ("page", "line", "code", "model", "refused"),
    _all_blocks(),
    ids=[f"{page}:{line}" for page, line, *_ in _all_blocks()],
)
def test_every_config_in_the_docs_is_accepted(
    page: str, line: int, code: str, model: str | None, refused: bool
) -> None:
    where = f"{page}:{line}"
    tree = _parse(code, where)
    model = model or liveactors.DEFAULT_MODEL
    assert model in KNOWN_MODELS, f"{where}: unknown model marker {model!r}"
    outcomes = [(lineno, _refusal(model, config)) for lineno, config in _configs(tree)]
    if refused:
        assert any(exc is not None for _, exc in outcomes), f"{where}: nothing refused"
        return
    for lineno, exc in outcomes:
        assert exc is None, f"{page}:{line + lineno}: {model} refuses this config: {exc}"
    assert "TEXT_MODEL" not in code, f"{where}: TEXT_MODEL (use the default model)"


def test_the_checker_sees_refused_configs() -> None:
    """The check above can fail: a TEXT config and a thinking config are refused on 3.8."""
    code = (
        'conv = await orch.spawn({"response_modalities": ["TEXT"]})\n'
        "config = types.LiveConnectConfig(thinking_config=types.ThinkingConfig("
        "thinking_budget=10), tools=[types.Tool(function_declarations=[unknown])])\n"
    )
    configs = list(_configs(_parse(code, "test")))
    assert len(configs) == 2
    for _, config in configs:
        assert _refusal(liveactors.DEFAULT_MODEL, config) is not None
    # Declarations made earlier in the snippet are part of the check: NON_BLOCKING on 3.1.
    code = (
        'f = types.FunctionDeclaration(name="f", behavior=types.Behavior.NON_BLOCKING)\n'
        "config = types.LiveConnectConfig(tools=[types.Tool(function_declarations=[f])])\n"
    )
    [(_, config)] = _configs(_parse(code, "test"))
    assert _refusal("gemini-3.1-flash-live-preview", config) is not None
    assert _refusal(liveactors.DEFAULT_MODEL, config) is None


# -- sources --------------------------------------------------------------------------------------

#: The team's internal notes, which readers do not have (spelt in pieces, so this guard does
#: not itself name them).
INTERNAL = ("design" + ".md", "live-protocol" + ".md", "\u00a7")


@pytest.mark.parametrize(
    "path",
    [
        *PAGES,
        *(REPO / "examples").glob("*.py"),
        REPO / "src" / "liveactors" / "_cli_demo.py",
    ],
    ids=lambda path: str(path.relative_to(REPO)),
)
def test_no_page_cites_internal_notes(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    for internal in INTERNAL:
        assert internal not in text, f"{path.relative_to(REPO)} cites {internal}"


if __name__ == "__main__":
    page = MODELS_PAGE.read_text(encoding="utf-8")
    MODELS_PAGE.write_text(page.replace(_page_table(page), render_table()), encoding="utf-8")
    print(f"rewrote the table of {MODELS_PAGE.relative_to(REPO)}", file=sys.stderr)
