// AudioWorklet: the microphone's float samples to 16-bit PCM, posted in blocks of 2048 samples
// (about 43 ms at 48 kHz) to the page, which sends each block over the WebSocket.

const BLOCK = 2048;

class PcmSender extends AudioWorkletProcessor {
  constructor() {
    super();
    this.block = new Int16Array(BLOCK);
    this.filled = 0;
  }

  process(inputs) {
    const channel = inputs[0] && inputs[0][0];
    if (channel) {
      for (let i = 0; i < channel.length; i++) {
        // The server divides by 32768, so scale by 32768 and clip, as its WAV reader does.
        const v = Math.round(channel[i] * 32768);
        this.block[this.filled++] = v > 32767 ? 32767 : v < -32768 ? -32768 : v;
        if (this.filled === BLOCK) {
          this.port.postMessage(this.block.buffer, [this.block.buffer]);
          this.block = new Int16Array(BLOCK);
          this.filled = 0;
        }
      }
    }
    return true;
  }
}

registerProcessor("pcm-sender", PcmSender);
