// The voice-chat page of liveactors.web: microphone in (16 kHz PCM16 over the socket), the
// model's voice out (24 kHz PCM16), the transcript of both, and the connection's state.
// Protocol: docs/web.md. `window.liveChat` exposes the page's state (tests read it).
"use strict";

(() => {
  const OUTPUT_RATE = 24000;
  // Close codes after which the page does not reconnect on its own.
  const FINAL = new Map([
    [1000, "the conversation ended"],
    [1008, "refused"],
    [1009, "a message was too large"],
    [1011, "the conversation failed"],
    [4000, "continued in another window"],
  ]);
  const RETRY = [250, 500, 1000, 2000, 4000];

  const $ = (id) => document.getElementById(id);
  const chat = (window.liveChat = {
    state: "idle",
    states: ["idle"],
    conversation: null,
    token: sessionStorage.getItem("liveactors.token"),
    keepFor: 0,
    sessions: 0,
    resumed: 0,
    lines: [],
    events: {},
    audioBytesUp: 0,
    audioBytesDown: 0,
    audioChunksDown: 0,
    chunksPlayed: 0,
    interrupted: 0,
    dropped: null,
    errors: [],
    socket: null,
    muted: false,
  });

  let audio = null; // the AudioContext, made on Start (a user gesture)
  let playAt = 0;
  const playing = new Set();
  let ended = false; // the user ended it, or the server said it is over
  let retries = 0;
  let lostAt = 0;
  let userLine = null;
  const modelLines = new Map(); // turn -> element

  function setState(state, detail) {
    chat.state = state;
    chat.states.push(state);
    const pill = $("state");
    pill.dataset.state = state;
    pill.textContent = detail ? `${state}: ${detail}` : state;
  }

  function addLine(kind, text) {
    const hint = $("hint");
    if (hint) hint.remove();
    const p = document.createElement("p");
    p.className = `line ${kind}`;
    p.textContent = text;
    const pane = $("transcript");
    pane.appendChild(p);
    pane.scrollTop = pane.scrollHeight;
    chat.lines.push({ kind, element: p });
    return p;
  }

  function note(text, error) {
    addLine(error ? "note error" : "note", text);
    if (error) chat.errors.push(text);
  }

  function appendTo(p, text) {
    p.textContent += text;
    const pane = $("transcript");
    pane.scrollTop = pane.scrollHeight;
  }

  // -- the model's voice -----------------------------------------------------------------------

  function play(buffer) {
    chat.audioBytesDown += buffer.byteLength;
    chat.audioChunksDown++;
    if (!audio || buffer.byteLength < 2) return;
    const pcm = new Int16Array(buffer, 0, buffer.byteLength >> 1);
    const samples = new Float32Array(pcm.length);
    for (let i = 0; i < pcm.length; i++) samples[i] = pcm[i] / 32768;
    const clip = audio.createBuffer(1, samples.length, OUTPUT_RATE);
    clip.copyToChannel(samples, 0);
    const source = audio.createBufferSource();
    source.buffer = clip;
    source.connect(audio.destination);
    const start = Math.max(playAt, audio.currentTime + 0.05);
    source.start(start);
    playAt = start + clip.duration;
    playing.add(source);
    source.onended = () => {
      if (playing.delete(source)) chat.chunksPlayed++;
    };
    $("stat-down").textContent = (chat.audioBytesDown / 2 / OUTPUT_RATE).toFixed(1);
  }

  function flushPlayback() {
    for (const source of playing) {
      try {
        source.stop();
      } catch (_) {
        // not started yet
      }
    }
    playing.clear();
    playAt = 0;
  }

  // -- the microphone --------------------------------------------------------------------------

  async function startMic() {
    const stream = await navigator.mediaDevices.getUserMedia({
      audio: { channelCount: 1, echoCancellation: true, noiseSuppression: true,
               autoGainControl: true },
    });
    await audio.audioWorklet.addModule("static/mic-worklet.js");
    const source = audio.createMediaStreamSource(stream);
    const capture = new AudioWorkletNode(audio, "pcm16-capture", {
      processorOptions: { targetRate: 16000, chunkMs: 40 },
    });
    capture.port.onmessage = (message) => {
      const socket = chat.socket;
      if (chat.muted || !socket || socket.readyState !== WebSocket.OPEN) return;
      socket.send(message.data);
      chat.audioBytesUp += message.data.byteLength;
      $("stat-up").textContent = (chat.audioBytesUp / 2 / 16000).toFixed(1);
    };
    const silent = audio.createGain();
    silent.gain.value = 0; // the processor must be pulled, but nothing of it should be heard
    source.connect(capture).connect(silent).connect(audio.destination);
  }

  // -- the socket ------------------------------------------------------------------------------

  function socketUrl() {
    const url = new URL("ws", location.href);
    url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
    if (chat.token) url.searchParams.set("resume", chat.token);
    return url.toString();
  }

  function connect() {
    const socket = new WebSocket(socketUrl());
    socket.binaryType = "arraybuffer";
    chat.socket = socket;
    socket.onmessage = (message) => {
      if (message.data instanceof ArrayBuffer) play(message.data);
      else receive(JSON.parse(message.data));
    };
    socket.onclose = (close) => {
      if (chat.socket !== socket) return;
      chat.socket = null;
      lost(close.code, close.reason);
    };
  }

  function lost(code, reason) {
    if (ended || FINAL.has(code)) {
      finish(code === 1011 ? "failed" : "closed", reason || FINAL.get(code));
      return;
    }
    if (!chat.token) {
      finish("closed", reason || `connection lost (${code})`);
      return;
    }
    if (!lostAt) lostAt = Date.now();
    if (Date.now() - lostAt > chat.keepFor * 1000) {
      finish("closed", "could not reconnect in time");
      return;
    }
    setState("reconnecting");
    const delay = RETRY[Math.min(retries++, RETRY.length - 1)];
    setTimeout(connect, delay);
  }

  function finish(state, detail) {
    ended = true;
    flushPlayback();
    chat.token = null;
    sessionStorage.removeItem("liveactors.token");
    setState(state, detail);
    for (const id of ["mute", "text", "send", "stop"]) $(id).disabled = true;
    if (chat.socket) chat.socket.close(1000);
  }

  function receive(message) {
    const type = message.type;
    chat.events[type] = (chat.events[type] || 0) + 1;
    switch (type) {
      case "session":
        chat.sessions++;
        if (message.resumed) chat.resumed++;
        else if (chat.conversation) note("a new conversation started");
        chat.conversation = message.conversation;
        chat.token = message.token;
        chat.keepFor = message.keep_for;
        if (message.token) sessionStorage.setItem("liveactors.token", message.token);
        retries = 0;
        lostAt = 0;
        $("conversation").textContent = message.conversation;
        setState("connected");
        break;
      case "Connected":
        if (chat.state !== "connected") setState("connected");
        break;
      case "GoAway":
      case "Reconnecting":
        setState("reconnecting");
        break;
      case "InputTranscript":
        if (!message.interim) {
          if (!userLine) userLine = addLine("user", "");
          appendTo(userLine, message.text);
        }
        break;
      case "OutputTranscript":
      case "TextDelta": {
        let line = modelLines.get(message.turn);
        if (!line) {
          userLine = null; // the user's words of this turn are complete
          line = addLine("model", "");
          modelLines.set(message.turn, line);
        }
        appendTo(line, message.text);
        break;
      }
      case "Interrupted": {
        chat.interrupted++;
        flushPlayback();
        const line = modelLines.get(message.turn);
        if (line) line.classList.add("interrupted");
        break;
      }
      case "TurnComplete":
        userLine = null;
        break;
      case "dropped":
        chat.dropped = message;
        $("stat-dropped").textContent = String(message.audio_chunks + message.events);
        break;
      case "error":
        note(message.message, true);
        break;
      case "ConversationFailed":
        note(`${message.error.class}: ${message.error.message}`, true);
        break;
      case "ConversationClosed":
        ended = true;
        break;
      default:
        break;
    }
  }

  // -- the controls ----------------------------------------------------------------------------

  async function start() {
    $("start").disabled = true;
    ended = false;
    audio = new AudioContext();
    await audio.resume();
    setState("connecting");
    connect();
    for (const id of ["mute", "text", "send", "stop"]) $(id).disabled = false;
    try {
      await startMic();
      $("start").textContent = "Listening";
    } catch (error) {
      note(`no microphone: ${error.message}; type instead`, true);
      $("mute").disabled = true;
    }
  }

  function send(message) {
    const socket = chat.socket;
    if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(message));
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("start").addEventListener("click", start);
    $("mute").addEventListener("click", () => {
      chat.muted = !chat.muted;
      $("mute").setAttribute("aria-pressed", String(chat.muted));
      $("mute").textContent = chat.muted ? "Unmute" : "Mute";
    });
    $("stop").addEventListener("click", () => {
      ended = true;
      send({ type: "stop" });
      setState("closing");
    });
    $("composer").addEventListener("submit", (submit) => {
      submit.preventDefault();
      const text = $("text").value.trim();
      if (!text) return;
      addLine("user", text);
      send({ type: "text", text });
      $("text").value = "";
    });
  });
})();
