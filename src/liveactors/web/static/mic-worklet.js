// The microphone, as 16 kHz 16-bit PCM: an AudioWorklet processor that averages the context's
// samples down to the target rate (a box filter, enough against aliasing for speech) and posts
// chunks of `chunkMs` milliseconds to the page as transferable ArrayBuffers.
"use strict";

class Pcm16Capture extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const opts = (options && options.processorOptions) || {};
    this.target = opts.targetRate || 16000;
    this.ratio = sampleRate / this.target; // input samples per output sample
    this.size = Math.round((this.target * (opts.chunkMs || 40)) / 1000);
    this.chunk = new Int16Array(this.size);
    this.filled = 0;
    this.sum = 0;
    this.count = 0;
    this.phase = 0;
    this.last = 0;
  }

  emit(value) {
    const v = Math.max(-1, Math.min(1, value));
    this.chunk[this.filled++] = v < 0 ? v * 0x8000 : v * 0x7fff;
    if (this.filled === this.size) {
      this.port.postMessage(this.chunk.buffer, [this.chunk.buffer]);
      this.chunk = new Int16Array(this.size);
      this.filled = 0;
    }
  }

  process(inputs) {
    const input = inputs[0];
    if (input && input.length) {
      const samples = input[0];
      for (let i = 0; i < samples.length; i++) {
        this.sum += samples[i];
        this.count++;
        this.phase += 1;
        while (this.phase >= this.ratio) {
          this.phase -= this.ratio;
          if (this.count) {
            this.last = this.sum / this.count;
            this.sum = 0;
            this.count = 0;
          }
          this.emit(this.last);
        }
      }
    }
    return true;
  }
}

registerProcessor("pcm16-capture", Pcm16Capture);
