// The streaming frame reader: a push parser that carries a partial frame across chunks. It only
// looks at the first 8 header bytes (version, type, length) to find frame boundaries; the codec
// validates each whole frame. Both kernel faces use this one reader: splitting a stream is a few
// compares per frame, and crossing into WASM for it would cost more than it saves.

import assert from 'node:assert/strict';
import type { DecodeError, FrameReader } from '../types.js';
import { FRAME_BYTES_MAX, FRAME_VERSION, HEADER_BYTES, OFF_LENGTH, OFF_TYPE, Reason, SHAPES, reasonText } from '../layout.js';

export class StreamFrameReader implements FrameReader {
  /** Received bytes; [start, end) are not yet returned as frames. Invariant: start <= end <= buf.length. */
  private buf = new Uint8Array(4096);
  private start = 0;
  private end = 0;

  constructor(readonly frameBytesMax: number) {
    assert.ok(Number.isInteger(frameBytesMax) && frameBytesMax >= HEADER_BYTES && frameBytesMax <= FRAME_BYTES_MAX,
      `frameBytesMax ${frameBytesMax} out of range ${HEADER_BYTES}..${FRAME_BYTES_MAX}`);
  }

  push(chunk: Uint8Array): void {
    const pending = this.end - this.start;
    if (this.end + chunk.length > this.buf.length) {
      // Compact (and grow if needed); a frame handed out by next() is only valid until here.
      const need = pending + chunk.length;
      const next = need > this.buf.length ? new Uint8Array(Math.max(need, this.buf.length * 2)) : this.buf;
      next.set(this.buf.subarray(this.start, this.end), 0);
      this.buf = next;
      this.start = 0;
      this.end = pending;
    }
    this.buf.set(chunk, this.end);
    this.end += chunk.length;
  }

  next(): Uint8Array | null | DecodeError {
    const pending = this.end - this.start;
    if (pending < 8) return null;
    const b = this.buf;
    const s = this.start;
    if (b[s] !== FRAME_VERSION) return { error: reasonText(Reason.FrameVersion) };
    if (SHAPES[b[s + OFF_TYPE]] === undefined) return { error: reasonText(Reason.FrameType) };
    const length = (b[s + OFF_LENGTH] | (b[s + OFF_LENGTH + 1] << 8) | (b[s + OFF_LENGTH + 2] << 16) | (b[s + OFF_LENGTH + 3] << 24)) >>> 0;
    if (length < HEADER_BYTES) return { error: reasonText(Reason.FrameShort) };
    if (length > this.frameBytesMax) return { error: reasonText(Reason.FrameTooLarge) };
    if (pending < length) return null;
    this.start += length;
    // Once everything is consumed, the next push may start over at 0 (the view is then stale, as documented).
    if (this.start === this.end) {
      this.start = 0;
      this.end = 0;
    }
    return b.subarray(s, s + length);
  }
}
