// The decoder fuzzer: random and mutated peer frames, log records and batches, fed to BOTH kernel
// faces (WASM and the TypeScript twin) and to their FrameReaders. For every input it requires:
// no throw and no WASM trap; a refusal carries a known reason; both faces give the same answer;
// and whatever decodes re-encodes to exactly the bytes that came in (the codec is canonical, so
// a frame that decodes cannot mean two things).
//
// Mutations: bit flips, byte overwrites, truncations, extensions, splices of two valid frames,
// header fields (length, type, version, flags, entry count, u64 fields, value lengths) set to
// extremes, and wholly random bytes. Half of the mutated frames get their CRC32C recomputed
// ("resealed"), so the mutation reaches the checks behind the checksum instead of stopping at it.

import assert from 'node:assert/strict';
import { loadKernels } from '../kernels/index.js';
import { TestRng, MESSAGE_TYPES, randomMessage } from '../kernels/gen.js';
import {
  ENTRY_HEADER_BYTES, FRAME_BYTES_MAX, HEADER_BYTES, OFF_A, OFF_BALLOT, OFF_COUNT, OFF_CRC, OFF_FLAGS, OFF_LENGTH,
  OFF_RESERVED, OFF_TYPE, OFF_VERSION, REASONS,
} from '../kernels/layout.js';
import { isDecodeError, type DecodeError, type Kernels } from '../kernels/types.js';

export interface FuzzOptions {
  /** Peer frames to generate (each goes to both faces' decode). Records and batches get a quarter each. */
  frames: number;
  seed: number;
  /** Frames per FrameReader stream (each stream is cut into random chunks). */
  streamFrames?: number;
  /** Makes the face under test (default: the WASM kernels); tests hand in a broken one to see it caught. */
  face?: () => Kernels;
  /** Called about every 2^16 frames with the count so far. */
  onProgress?: (done: number) => void;
}

export interface FuzzReport {
  frames: number;
  records: number;
  batches: number;
  /** Frames that came out of FrameReaders (both faces' streams). */
  readerFrames: number;
  /** Inputs that decoded (and round-tripped), by kind. */
  accepted: { frames: number; records: number; batches: number };
  /** Refusals by reason text (decode, decodeRecord, decodeBatch and FrameReader together). */
  rejects: Map<string, number>;
  /** Broken properties (throws, traps, disagreements, unexplained refusals). Bounded: the first failuresMax. */
  failures: string[];
  failureCount: number;
  elapsedMs: number;
}

const failuresMax = 20;
/** The reasons a refusal may give: the layout's table. Anything else is unexplained. */
const knownReasons = new Set(Object.values(REASONS));
/** FrameReader bound in the fuzzer: small, so lengths above it are exercised cheaply. */
const readerBytesMax = 1 << 20;

const hex = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, Math.min(b.byteLength, 96)).toString('hex') +
  (b.byteLength > 96 ? `...(${b.byteLength} bytes)` : '');

const sameBytes = (a: Uint8Array, b: Uint8Array): boolean =>
  a.byteLength === b.byteLength && Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.byteLength), Buffer.from(b.buffer, b.byteOffset, b.byteLength)) === 0;

/** Recompute the CRC32C of a frame or record in place: it covers [0, 8) and [12, end). */
const reseal = (k: Kernels, b: Uint8Array): void => {
  if (b.byteLength < 12) return;
  const crc = k.crc32c(b.subarray(12), k.crc32c(b.subarray(0, 8)));
  new DataView(b.buffer, b.byteOffset).setUint32(OFF_CRC, crc, true);
};

const extremes32 = [0, 1, 55, 56, 57, 0x7fffffff, 0x80000000, 0xffffffff, readerBytesMax, readerBytesMax + 1, FRAME_BYTES_MAX, FRAME_BYTES_MAX + 1];

class Fuzzer {
  readonly rng: TestRng;
  /** The two faces; replaced after a trap, since a trapped instance's memory is suspect. */
  wasm: Kernels;
  readonly js = loadKernels('js');
  readonly report: FuzzReport;

  constructor(readonly o: FuzzOptions) {
    this.rng = new TestRng(o.seed);
    this.wasm = (o.face ?? (() => loadKernels('wasm')))();
    this.report = {
      frames: 0, records: 0, batches: 0, readerFrames: 0, accepted: { frames: 0, records: 0, batches: 0 },
      rejects: new Map(), failures: [], failureCount: 0, elapsedMs: 0,
    };
  }

  fail(what: string): void {
    this.report.failureCount++;
    if (this.report.failures.length < failuresMax) this.report.failures.push(what);
  }

  /** Count a refusal; false (and a failure recorded) if it gives no known reason. */
  reject(e: DecodeError, input: Uint8Array, where: string): void {
    if (typeof e.error !== 'string' || !knownReasons.has(e.error)) this.fail(`${where}: unexplained refusal ${JSON.stringify(e)} for ${hex(input)}`);
    this.report.rejects.set(e.error, (this.report.rejects.get(e.error) ?? 0) + 1);
  }

  /** Run f on one face, turning a throw or trap into a recorded failure (null). */
  guard<T>(face: 'wasm' | 'js', where: string, input: Uint8Array, f: (k: Kernels) => T): T | null {
    try {
      return f(face === 'wasm' ? this.wasm : this.js);
    } catch (e) {
      this.fail(`${where} (${face}) threw ${(e as Error).name}: ${(e as Error).message} for ${hex(input)}`);
      if (face === 'wasm') this.wasm = (this.o.face ?? (() => loadKernels('wasm')))();
      return null;
    }
  }

  validFrame(): Uint8Array {
    const m = randomMessage(this.rng, MESSAGE_TYPES[this.report.frames % MESSAGE_TYPES.length], 3, 48);
    return this.js.encode(m).slice();
  }

  /** One mutation of a valid frame or record (layout: header fields as in src/kernels/layout.ts). */
  mutate(b: Uint8Array, other: () => Uint8Array, isFrame: boolean): Uint8Array {
    const r = this.rng;
    const set32 = (x: Uint8Array, off: number, v: number): void => {
      if (off + 4 <= x.byteLength) new DataView(x.buffer, x.byteOffset).setUint32(off, v >>> 0, true);
    };
    let out = b;
    switch (r.int(0, 12)) {
      case 0: break; // unchanged: valid inputs must decode on both faces
      case 1: for (let n = r.int(1, 9); n > 0 && out.byteLength > 0; n--) out[r.int(0, out.byteLength)] ^= 1 << r.int(0, 8); break;
      case 2: for (let n = r.int(1, 5); n > 0 && out.byteLength > 0; n--) out[r.int(0, out.byteLength)] = r.u32() & 0xff; break;
      case 3: out = out.slice(0, r.int(0, out.byteLength + 1)); break;
      case 4: { const x = new Uint8Array(out.byteLength + r.int(1, 64)); x.set(out); x.set(r.bytes(x.byteLength - out.byteLength), out.byteLength); out = x; break; }
      case 5: { const o = other(); const cut = r.int(0, out.byteLength + 1); const from = r.int(0, o.byteLength + 1);
        const x = new Uint8Array(cut + o.byteLength - from); x.set(out.subarray(0, cut)); x.set(o.subarray(from), cut); out = x; break; }
      case 6: set32(out, OFF_LENGTH, r.bool() ? r.pick(extremes32) : out.byteLength + r.int(-3, 4)); break;
      case 7: if (isFrame) { out[OFF_TYPE] = r.u32() & 0xff; } else { out[1] = r.u32() & 0xff; } break;
      case 8: if (r.bool()) out[OFF_VERSION] = r.u32() & 0xff; else { out[OFF_FLAGS] = r.u32() & 0xff; out[OFF_FLAGS + 1] = r.bool() ? 0 : r.u32() & 0xff; } break;
      case 9: // a u64 field with a high word past 2^53 (or any value), or the entry count / reserved word
        if (isFrame) {
          const off = r.pick([OFF_BALLOT, OFF_A, OFF_A + 8, OFF_A + 16, OFF_COUNT, OFF_RESERVED]);
          if (off === OFF_COUNT || off === OFF_RESERVED) set32(out, off, r.pick(extremes32));
          else set32(out, off + 4, r.pick([0x1fffff, 0x200000, 0xffffffff, r.u32()]));
        } else {
          set32(out, r.pick([12, 16, 20, 24]), r.pick([0, 1, 0x1fffff, 0x200000, 0xffffffff]));
        }
        break;
      case 10: // an entry's value length (frames) set to an extreme
        if (isFrame && out.byteLength > HEADER_BYTES + ENTRY_HEADER_BYTES) set32(out, HEADER_BYTES + 16, r.pick(extremes32));
        else if (out.byteLength > 0) out[r.int(0, out.byteLength)] ^= 0x80;
        break;
      default: out = r.bytes(r.int(0, 160)); if (isFrame && out.byteLength >= 2 && r.bool()) { out[0] = 1; out[1] = r.pick(MESSAGE_TYPES); } break;
    }
    if (r.bool()) reseal(this.js, out);
    return out;
  }

  /** Decode `input` on both faces: their results when both decoded it; otherwise checks both
   *  refused it for the same reason, counts the reason, and returns null (also when a face threw). */
  private decodedBoth<T extends object>(where: string, input: Uint8Array, decode: (k: Kernels) => T | DecodeError): [T, T] | null {
    const w = this.guard('wasm', where, input, decode);
    const j = this.guard('js', where, input, decode);
    if (w === null || j === null) return null;
    if (!isDecodeError(w) && !isDecodeError(j)) return [w, j];
    if (!isDecodeError(w) || !isDecodeError(j) || w.error !== j.error) {
      this.fail(`${where}: faces disagree: wasm ${JSON.stringify(isDecodeError(w) ? w : 'ok')}, js ${JSON.stringify(isDecodeError(j) ? j : 'ok')} for ${hex(input)}`);
    }
    this.reject(isDecodeError(j) ? j : w as DecodeError, input, where);
    return null;
  }

  frame(): Uint8Array {
    const input = this.mutate(this.validFrame(), () => this.validFrame(), true);
    this.report.frames++;
    this.checkFrame(input, 'decode');
    return input;
  }

  checkFrame(input: Uint8Array, where: string): void {
    const both = this.decodedBoth(where, input, (k) => k.decode(input));
    if (both === null) return;
    const [w, j] = both;
    // Both decoded: each must re-encode to the very bytes received.
    for (const [face, m] of [['wasm', w], ['js', j]] as const) {
      const again = this.guard('js', `${where} re-encode`, input, (k) => k.encode(m));
      if (again !== null && !sameBytes(again, input)) this.fail(`${where}: ${face}'s decoded message re-encodes differently for ${hex(input)}`);
    }
    if (where === 'decode') this.report.accepted.frames++;
  }

  record(): void {
    const make = (): Uint8Array => this.js.encodeRecord({
      position: 1 + this.rng.int(0, 1 << 20), ballot: this.rng.safeInt(),
      value: this.js.encodeBatch(Array.from({ length: this.rng.int(0, 4) }, () => this.rng.bytes(this.rng.int(0, 40)))),
    }).slice();
    const input = this.mutate(make(), make, false);
    this.report.records++;
    const both = this.decodedBoth('decodeRecord', input, (k) => k.decodeRecord(input));
    if (both === null) return;
    const [w, j] = both;
    for (const r of [w, j]) {
      const again = this.guard('js', 'encodeRecord', input, (k) => k.encodeRecord(r));
      if (again !== null && !sameBytes(again, input)) this.fail(`decodeRecord: a decoded record re-encodes differently for ${hex(input)}`);
    }
    this.report.accepted.records++;
  }

  batch(): void {
    const r = this.rng;
    const make = (): Uint8Array => this.js.encodeBatch(Array.from({ length: r.int(0, 6) }, () => r.bytes(r.int(0, 24))));
    let input = make();
    switch (r.int(0, 6)) {
      case 0: break;
      case 1: if (input.byteLength > 0) input[r.int(0, input.byteLength)] ^= 1 << r.int(0, 8); break;
      case 2: input = input.slice(0, r.int(0, input.byteLength + 1)); break;
      case 3: { const x = new Uint8Array(input.byteLength + r.int(1, 16)); x.set(input); input = x; break; }
      case 4: if (input.byteLength >= 4) new DataView(input.buffer).setUint32(r.bool() ? 0 : Math.min(4, input.byteLength - 4), r.pick(extremes32), true); break;
      default: input = r.bytes(r.int(0, 64));
    }
    this.report.batches++;
    const both = this.decodedBoth('decodeBatch', input, (k) => k.decodeBatch(input));
    if (both === null) return;
    const [w, j] = both;
    const again = this.js.encodeBatch(j);
    if (!sameBytes(again, input) || w.length !== j.length || w.some((c, i) => !sameBytes(c, j[i]))) {
      this.fail(`decodeBatch: faces disagree or the commands re-encode differently for ${hex(input)}`);
    }
    this.report.accepted.batches++;
  }

  /** Feed a stream of frames, cut at random offsets, to each face's FrameReader. */
  stream(frames: Uint8Array[]): void {
    const total = frames.reduce((s, f) => s + f.byteLength, 0);
    const bytes = new Uint8Array(total);
    let at = 0;
    for (const f of frames) { bytes.set(f, at); at += f.byteLength; }
    const cuts: number[] = [];
    for (let c = 0; c < total;) { c = Math.min(total, c + this.rng.int(1, 300)); cuts.push(c); }
    const outs: string[][] = [];
    for (const face of ['wasm', 'js'] as const) {
      const out: string[] = [];
      this.guard(face, 'FrameReader', bytes, (k) => {
        const reader = k.newFrameReader(readerBytesMax);
        let from = 0;
        let given = 0;
        for (const c of cuts) {
          reader.push(bytes.subarray(from, c));
          from = c;
          for (;;) {
            const f = reader.next();
            if (f === null) break;
            if (isDecodeError(f)) {
              this.reject(f, bytes.subarray(given, given + 64), 'FrameReader');
              out.push(`error ${f.error} at ${given}`);
              return; // the stream must be closed: a real link would end here
            }
            // A reader hands out the stream's own bytes, in order, never more than it was given.
            if (!sameBytes(f, bytes.subarray(given, given + f.byteLength))) this.fail(`FrameReader (${face}) returned bytes not at stream offset ${given}`);
            given += f.byteLength;
            out.push(`frame ${f.byteLength}`);
            this.report.readerFrames++;
            this.checkFrame(f, 'FrameReader+decode');
          }
        }
      });
      outs.push(out);
    }
    if (outs[0].join('|') !== outs[1].join('|')) this.fail(`FrameReader: faces split a stream differently (${outs[0].length} vs ${outs[1].length} outputs)`);
  }
}

/** Run the fuzzer. Deterministic for a seed. */
export function fuzzFrames(o: FuzzOptions): FuzzReport {
  assert.ok(Number.isInteger(o.frames) && o.frames >= 0, 'frames must be a whole number');
  const f = new Fuzzer(o);
  const streamFrames = o.streamFrames ?? 32;
  const t0 = performance.now();
  let pending: Uint8Array[] = [];
  for (let i = 0; i < o.frames; i++) {
    // Mostly valid frames in streams (so the reader gets past the first one); mutated ones too.
    pending.push(f.rng.int(0, 8) === 0 ? f.frame() : (f.frame(), f.validFrame()));
    if (pending.length === streamFrames) { f.stream(pending); pending = []; }
    if ((i & 3) === 0) { f.record(); f.batch(); }
    if ((i & 0xffff) === 0xffff) o.onProgress?.(i + 1);
  }
  if (pending.length > 0) f.stream(pending);
  f.report.elapsedMs = performance.now() - t0;
  return f.report;
}
