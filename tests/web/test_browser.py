"""The voice-chat page in a real browser: headless Chromium with a fake microphone.

Chromium "speaks" a WAV the test makes (``speech.py``) in a loop; the page captures it with its
AudioWorklet at 16 kHz, the fake server's VAD hears each utterance and answers it in speech,
and the page shows the transcript and plays the answer. Then the service misbehaves — a goAway,
a connection dropped in the middle of an answer, the page's own socket lost — and the page
shows "reconnecting" and the same conversation goes on.

Needs Debian's ``chromium`` and ``chromium-driver`` (``.ci/run`` installs them); skipped with the
reason otherwise. ``LIVEACTORS_SCREENSHOTS=docs/img`` saves the screenshots the docs show.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import trio

from .conftest import Web, serving
from .speech import write_speech_wav

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402

CHROMIUM = os.environ.get("CHROMIUM") or next(
    filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None
)
CHROMEDRIVER = os.environ.get("CHROMEDRIVER") or shutil.which("chromedriver")

pytestmark = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER),
    reason="needs a Chromium and its chromedriver: apt-get install chromium chromium-driver",
)

#: What the tests read of the page: its state, as `window.liveChat` keeps it.
STATE_JS = """
const c = window.liveChat;
return {
  state: c.state, states: c.states, shown: document.getElementById("state").textContent,
  conversation: c.conversation, sessions: c.sessions, resumed: c.resumed,
  up: c.audioBytesUp, down: c.audioBytesDown, played: c.chunksPlayed,
  interrupted: c.interrupted, errors: c.errors,
  model: c.lines.filter(l => l.kind === "model").map(l => l.element.textContent),
  user: c.lines.filter(l => l.kind === "user").map(l => l.element.textContent),
};
"""


def _browser(wav: Path) -> Any:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root
        "--disable-dev-shm-usage",
        "--use-fake-ui-for-media-stream",  # grant the microphone without asking
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={wav}",
        "--autoplay-policy=no-user-gesture-required",
        "--window-size=900,760",
    ):
        options.add_argument(argument)
    return webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))


class Page:
    """The browser, driven from trio (each WebDriver call in a worker thread)."""

    def __init__(self, driver: Any, shots: Path) -> None:
        self.driver = driver
        self.shots = shots

    async def call(self, fn: Any, *args: Any) -> Any:
        return await trio.to_thread.run_sync(partial(fn, *args))

    async def state(self) -> dict[str, Any]:
        state: dict[str, Any] = await self.call(self.driver.execute_script, STATE_JS)
        return state

    async def wait(self, what: str, check: Any, within: float = 10.0) -> dict[str, Any]:
        """Poll the page's state until ``check(state)`` holds."""
        state: dict[str, Any] = {}
        try:
            with trio.fail_after(within):
                while True:
                    state = await self.state()
                    if check(state):
                        return state
                    await trio.sleep(0.05)
        except trio.TooSlowError:
            raise AssertionError(f"timed out waiting for {what}; the page: {state}") from None

    async def screenshot(self, name: str) -> None:
        await self.call(self.driver.save_screenshot, str(self.shots / name))


@asynccontextmanager
async def browsing(app: Web, wav: Path, shots: Path) -> AsyncIterator[Page]:
    driver = await trio.to_thread.run_sync(_browser, wav)
    try:
        page = Page(driver, shots)
        await page.call(driver.get, app.url + "/")
        yield page
    finally:
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(driver.quit)


def answers(state: dict[str, Any]) -> list[str]:
    """The model's finished-looking lines (its transcript pieces arrive whole per chunk)."""
    return [line for line in state["model"] if line.startswith("echo #")]


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    """Where screenshots go: ``LIVEACTORS_SCREENSHOTS`` (docs/img for the docs), else a temp."""
    where = Path(os.environ.get("LIVEACTORS_SCREENSHOTS") or tmp_path)
    where.mkdir(parents=True, exist_ok=True)
    return where


@pytest.fixture
def wav(tmp_path: Path) -> Path:
    """The microphone: 0.6 s of voice every 1.6 s."""
    return write_speech_wav(tmp_path / "speech.wav", speech=0.6, period=1.6)


async def test_speak_hear_and_survive_goaway_drop_and_a_lost_socket(wav: Path, shots: Path) -> None:
    config = {"input_audio_transcription": {}}
    fake = {"pace_audio": True}
    async with serving(config=config, keep_for=30.0, fake=fake) as app:
        server = app.server
        async with browsing(app, wav, shots) as page:
            await page.call(lambda: page.driver.find_element(By.ID, "start").click())

            # Speak: the words of both sides show, and the answer is heard.
            state = await page.wait(
                "a spoken answer",
                lambda s: answers(s) and s["down"] > 0 and s["played"] > 0,
            )
            assert state["state"] == "connected" and state["shown"] == "connected"
            assert state["user"][0].startswith("<audio 0.")  # what the VAD heard
            assert state["up"] > 0 and state["up"] % 2 == 0
            conversation = state["conversation"]
            assert conversation.startswith("web-")

            # A goAway: the conversation moves to a new connection.
            seen = len(state["states"])
            heard = len(answers(state))
            server.faults.go_away_now(0.2)
            state = await page.wait(
                "the answer after a goAway",
                lambda s: (
                    "reconnecting" in s["states"][seen:]
                    and s["state"] == "connected"
                    and len(answers(s)) > heard
                ),
            )

            # A drop in the middle of an answer; the reconnect is held up until the screenshot.
            seen = len(state["states"])
            heard = len(answers(state))
            hold = server.faults.stall(kind="setupComplete", connection="next")
            dropped = server.faults.drop(connection="open", after="modelTurn")
            state = await page.wait("reconnecting", lambda s: s["state"] == "reconnecting")
            assert state["shown"] == "reconnecting"
            assert dropped.fired == 1
            await page.screenshot("web-reconnecting.png")
            hold.release()
            state = await page.wait(
                "the answer after a dropped connection",
                lambda s: s["state"] == "connected" and len(answers(s)) > heard,
            )
            assert state["interrupted"] >= 1  # the cut answer's playback was flushed

            # The page's own socket is lost: it comes back with its token, same conversation.
            seen = len(state["states"])
            heard = len(answers(state))
            await page.call(page.driver.execute_script, "liveChat.socket.close(3000)")
            state = await page.wait(
                "the answer after the page reconnected",
                lambda s: (
                    s["resumed"] == 1 and s["state"] == "connected" and len(answers(s)) > heard + 1
                ),
            )
            assert "reconnecting" in state["states"][seen:]
            assert state["conversation"] == conversation
            assert state["errors"] == []
            # One session throughout: the model's turn counter went on (echo #1, #2, ...).
            numbers = [int(line.split("#")[1].split(":")[0]) for line in answers(state)]
            assert numbers == sorted(numbers) and numbers[0] == 1
            assert [c.name for c in app.orch.conversations] == [conversation]
            await page.wait("a whole answer", lambda s: s["model"][-1].endswith(">"))
            await page.screenshot("web-chat.png")
