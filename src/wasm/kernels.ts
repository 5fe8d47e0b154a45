// The WASM face of the kernels: the Kernels interface over build/paxlog.wasm. Each call crosses
// the boundary once (one call per frame, record, batch or ack run); numbers cross as safe-integer
// f64 and bulk data through fixed regions of linear memory. Nothing is allocated per call beyond
// the results the interface returns.
//
// Regions, each owned by one kernels object (one WASM instance):
//   scratch    decoded header numbers and entry places (see assembly/codec.ts)
//   frameOut   encode() output; the returned view is valid until the next encode()
//   recordOut  encodeRecord() output; valid until the next encodeRecord()
//   input      bytes copied in for decode, decodeRecord, decodeBatch and crc32c
//   cutOut     batcher cut output, copied into the fresh array cut() returns
// A view handed out (encode, encodeRecord, newlyChosen) is detached if memory grows; memory only
// grows when a region must hold a larger frame than ever before.

import assert from 'node:assert/strict';
import type { Message } from '../protocol/messages.js';
import type { LogRecord } from '../protocol/types.js';
import type { Batcher, DecodeError, FrameReader, Kernels, PromiseCounter, SlotWindow } from '../kernels/types.js';
import {
  BATCHER_COUNT_MAX, ENTRY_HEADER_BYTES, EntryKind, FRAME_BYTES_MAX, HEADER_BYTES, MEMBER_MAX, RECORD_BYTES_MAX, RECORD_HEADER_BYTES,
  SHAPES, copyBytes, reasonText, shapeRules,
} from '../kernels/layout.js';
import { JsCodec, encodeBatch, viewsOf } from '../kernels/js/codec.js';
import { StreamFrameReader } from '../kernels/js/reader.js';
import { assertRequired } from '../kernels/js/window.js';
import { Region, WasmHeap } from './heap.js';

/** crc32c() copies at most this many bytes in per call, so the input region stays small. */
const CRC_CHUNK_BYTES = 64 * 1024;
const U32_MAX = 0xffffffff;

const assertSafe = (x: unknown, name: string): number => {
  if (!(typeof x === 'number' && Number.isSafeInteger(x) && x >= 0)) assert.fail(`${name}=${String(x)} is not a non-negative safe integer`);
  return x;
};

/** The u32 at byte `at` of bytes (little-endian); the caller checks at + 4 <= bytes.length. */
const readU32 = (b: Uint8Array, at: number): number => (b[at] | (b[at + 1] << 8) | (b[at + 2] << 16) | (b[at + 3] << 24)) >>> 0;

const assertMember = (member: number): void => {
  if (!(Number.isInteger(member) && member >= 0 && member <= MEMBER_MAX)) assert.fail(`member ${member} out of range`);
};

/** The value bytes of entry i of a message whose shape has entries of `kind`. */
const entryValue = (any: Record<string, unknown>, kind: EntryKind, i: number): Uint8Array =>
  kind === EntryKind.Value ? (any.values as Uint8Array[])[i] : (any.entries as { value: Uint8Array }[])[i].value;

export class WasmKernels implements Kernels {
  readonly kind = 'wasm' as const;
  /** This object's own instance of the module and its memory; nothing else writes to it. */
  readonly heap = new WasmHeap();
  /** The instance's exports (the kernels). */
  private readonly x = this.heap.x;
  /** Decoded header numbers and entry places; sized for the largest frame seen. */
  private readonly scratch = new Region(this.heap, 64 * 1024);
  /** encode() output; the returned view stays valid until the next encode(). */
  private readonly frameOut = new Region(this.heap, 64 * 1024);
  /** encodeRecord() output; the returned view stays valid until the next encodeRecord(). */
  private readonly recordOut = new Region(this.heap, 64 * 1024);
  /** Bytes copied in for decoding and checksumming; never handed out. */
  private readonly input = new Region(this.heap, 64 * 1024);
  /** Batcher cut output, shared by this object's batchers; copied out before cut() returns. */
  private readonly cutOut = new Region(this.heap, 64 * 1024);
  /** Decides the rare frames too large to copy in, with the same reasons. */
  private readonly twin = new JsCodec();
  /** Releases the regions of batchers and windows the program drops. */
  private readonly registry = new FinalizationRegistry<{ ptr: number; bytes: number }[]>((regions) => {
    for (const r of regions) this.heap.release(r.ptr, r.bytes);
  });

  constructor() {
    this.heap.u8.set(shapeRules(), this.x.rulesPtr());
  }

  ballotPack(round: number, nodeId: number): number {
    const b = this.x.ballotPack(round, nodeId);
    if (!(b >= 0)) assert.fail(`ballotPack(${round}, ${nodeId}): round or node id out of range`);
    return b;
  }
  ballotRound(ballot: number): number {
    const r = this.x.ballotRound(ballot);
    if (!(r >= 0)) assert.fail(`ballot ${ballot} is not a non-negative safe integer`);
    return r;
  }
  ballotNode(ballot: number): number {
    const n = this.x.ballotNode(ballot);
    if (!(n >= 0)) assert.fail(`ballot ${ballot} is not a non-negative safe integer`);
    return n;
  }
  ballotCompare(a: number, b: number): number {
    return this.x.ballotCompare(a, b);
  }
  ballotNextAbove(above: number, nodeId: number): number {
    const b = this.x.ballotNextAbove(above, nodeId);
    if (!(b >= 0)) assert.fail(`ballotNextAbove(${above}, ${nodeId}): ballot or node id out of range`);
    return b;
  }

  crc32c(bytes: Uint8Array, seed = 0): number {
    // Bytes already in linear memory (an encoded frame, say) are read in place.
    if (bytes.buffer === this.x.memory.buffer) return this.x.crc32c(bytes.byteOffset, bytes.length, seed >>> 0) >>> 0;
    let crc = seed >>> 0;
    const p = this.input.ensure(Math.min(bytes.length, CRC_CHUNK_BYTES));
    const h = this.heap;
    h.sync();
    let at = 0;
    do {
      const n = Math.min(CRC_CHUNK_BYTES, bytes.length - at);
      h.u8.set(n === bytes.length ? bytes : bytes.subarray(at, at + n), p);
      crc = this.x.crc32c(p, n, crc) >>> 0;
      at += n;
    } while (at < bytes.length);
    return crc;
  }

  /** CRC32C with the v128 loop (for the benchmark's SIMD comparison). */
  crc32cSimd(bytes: Uint8Array, seed = 0): number {
    assert.ok(bytes.length <= CRC_CHUNK_BYTES, 'crc32cSimd is for the benchmark: at most one chunk');
    const p = this.input.ensure(bytes.length);
    this.heap.sync();
    this.heap.u8.set(bytes, p);
    return this.x.crc32cSimd(p, bytes.length, seed >>> 0) >>> 0;
  }

  encode(m: Message): Uint8Array {
    const s = SHAPES[m.type];
    if (!(s !== undefined)) assert.fail(`unknown message type ${m.type}`);
    const any = m as unknown as Record<string, unknown>;
    const kind = s.entries;
    const count = kind === EntryKind.None ? 0 : kind === EntryKind.Value
      ? (any.values as unknown[]).length : (any.entries as unknown[]).length;
    let length = HEADER_BYTES;
    for (let i = 0; i < count; i++) {
      const v = entryValue(any, kind, i);
      assert.ok(v instanceof Uint8Array, 'entry value must be a Uint8Array');
      length += ENTRY_HEADER_BYTES + v.length;
    }
    if (!(length <= FRAME_BYTES_MAX)) assert.fail(`frame of ${length} bytes exceeds FRAME_BYTES_MAX`);
    if (!(Number.isInteger(m.from) && m.from >= 0 && m.from <= 0xffff)) assert.fail(`from=${m.from} is not a node id`);
    if (!(Number.isInteger(m.to) && m.to >= 0 && m.to <= 0xffff)) assert.fail(`to=${m.to} is not a node id`);
    // Growing memory detaches every view of it: copy values that are such views before growing.
    let copies: Uint8Array[] | null = null;
    if (this.scratch.bytes < 32 + 32 * count || this.frameOut.bytes < length) {
      const mem = this.x.memory.buffer;
      copies = [];
      for (let i = 0; i < count; i++) {
        const v = entryValue(any, kind, i);
        copies.push(v.buffer === mem ? copyBytes(v, 0, v.length) : v);
      }
    }
    const sc = this.scratch.ensure(32 + 32 * count);
    const out = this.frameOut.ensure(length);
    const h = this.heap;
    h.sync();
    const f = h.f64;
    const fs = sc >>> 3;
    f[fs] = s.ballot === null ? 0 : assertSafe(any[s.ballot], s.ballot);
    f[fs + 1] = s.a === null ? 0 : assertSafe(any[s.a], s.a);
    f[fs + 2] = s.b === null ? 0 : assertSafe(any[s.b], s.b);
    f[fs + 3] = s.c === null ? 0 : assertSafe(any[s.c], s.c);
    let flags = 0;
    for (let i = 0; i < s.flags.length; i++) {
      const v = any[s.flags[i]];
      if (!(typeof v === 'boolean')) assert.fail(`${s.flags[i]} must be a boolean`);
      if (v) flags |= 1 << i;
    }
    let at = out + HEADER_BYTES;
    for (let i = 0, e = fs + 4; i < count; i++, e += 4) {
      if (kind === EntryKind.Value) {
        f[e] = 0;
        f[e + 1] = 0;
      } else if (kind === EntryKind.Slot) {
        const en = (any.entries as { slot: number; ballot: number }[])[i];
        f[e] = assertSafe(en.slot, 'entry slot');
        f[e + 1] = assertSafe(en.ballot, 'entry ballot');
      } else {
        const en = (any.entries as { index: number; term: number }[])[i];
        f[e] = assertSafe(en.index, 'entry index');
        f[e + 1] = assertSafe(en.term, 'entry term');
      }
      const v = copies === null ? entryValue(any, kind, i) : copies[i];
      f[e + 3] = v.length;
      h.u8.set(v, at + ENTRY_HEADER_BYTES);
      at += ENTRY_HEADER_BYTES + v.length;
    }
    const n = this.x.encodeFrame(out, sc, m.type, flags, m.from, m.to, count);
    if (!(n === length)) assert.fail(`encodeFrame returned ${n}, expected ${length}`);
    return h.u8.subarray(out, out + n);
  }

  /** The bytes the last stage() call placed (a copy if the caller's view had to be replaced). */
  private staged: Uint8Array = new Uint8Array(0);

  /**
   * Where `bytes` sit in linear memory: in place if they already are a view of it (a frame from
   * encode(), say) and no region must grow, else copied into the input region. Returns the address;
   * this.staged is the array to slice values from (a copy if growing memory would detach the view).
   */
  private stage(bytes: Uint8Array, scratchBytes: number): number {
    const h = this.heap;
    if (bytes.buffer === h.x.memory.buffer) {
      if (this.scratch.bytes >= scratchBytes) {
        h.sync();
        this.staged = bytes;
        return bytes.byteOffset;
      }
      bytes = copyBytes(bytes, 0, bytes.length);
    }
    this.scratch.ensure(scratchBytes);
    const p = this.input.ensure(bytes.length);
    h.sync();
    h.u8.set(bytes, p);
    this.staged = bytes;
    return p;
  }

  decode(input: Uint8Array): Message | DecodeError {
    const len = input.length;
    if (len > FRAME_BYTES_MAX) return this.twin.decode(input);
    // Scratch holds one 32-byte slot per entry; the codec writes no more than the header's count,
    // and only after checking the frame has room for that many entry headers.
    const entriesMax = len >= HEADER_BYTES
      ? Math.min(Math.floor((len - HEADER_BYTES) / ENTRY_HEADER_BYTES), readU32(input, 48)) : 0;
    const p = this.stage(input, 32 + 32 * entriesMax);
    const frame = this.staged;
    const sc = this.scratch.ptr;
    const h = this.heap;
    const rc = this.x.decodeFrame(p, len, FRAME_BYTES_MAX, sc);
    if (rc !== 0) return { error: reasonText(rc) };
    const s = SHAPES[frame[1]]!;
    const f = h.f64;
    const fs = sc >>> 3;
    const u8 = h.u8;
    const m: Record<string, unknown> = { type: s.type, from: u8[p + 12] | (u8[p + 13] << 8), to: u8[p + 14] | (u8[p + 15] << 8) };
    if (s.ballot !== null) m[s.ballot] = f[fs];
    if (s.a !== null) m[s.a] = f[fs + 1];
    if (s.b !== null) m[s.b] = f[fs + 2];
    if (s.c !== null) m[s.c] = f[fs + 3];
    const flags = u8[p + 2] | (u8[p + 3] << 8);
    for (let i = 0; i < s.flags.length; i++) m[s.flags[i]] = (flags & (1 << i)) !== 0;
    if (s.entries === EntryKind.None) return m as unknown as Message;
    // The frame may sit at any address (decoded in place), so read the count bytewise.
    const count = readU32(frame, 48);
    const entries: unknown[] = new Array(count);
    for (let i = 0, e = fs + 4; i < count; i++, e += 4) {
      const value = copyBytes(frame, f[e + 2], f[e + 2] + f[e + 3]);
      entries[i] = s.entries === EntryKind.Slot ? { slot: f[e], ballot: f[e + 1], value }
        : s.entries === EntryKind.Raft ? { index: f[e], term: f[e + 1], value } : value;
    }
    if (s.entries === EntryKind.Value) m.values = entries;
    else m.entries = entries;
    return m as unknown as Message;
  }

  encodeRecord(r: LogRecord): Uint8Array {
    assert.ok(r.value instanceof Uint8Array, 'record value must be a Uint8Array');
    assert.ok(assertSafe(r.position, 'record position') >= 1, 'record position must be >= 1');
    assertSafe(r.ballot, 'record ballot');
    const length = RECORD_HEADER_BYTES + r.value.length;
    if (!(length <= RECORD_BYTES_MAX)) assert.fail(`record of ${length} bytes exceeds RECORD_BYTES_MAX`);
    const value = this.recordOut.bytes < length && r.value.buffer === this.x.memory.buffer ? copyBytes(r.value, 0, r.value.length) : r.value;
    const out = this.recordOut.ensure(length);
    const h = this.heap;
    h.sync();
    h.u8.set(value, out + RECORD_HEADER_BYTES);
    const n = this.x.encodeRecord(out, r.position, r.ballot, value.length);
    if (!(n === length)) assert.fail(`encodeRecord returned ${n}, expected ${length}`);
    return h.u8.subarray(out, out + n);
  }

  decodeRecord(input: Uint8Array): LogRecord | DecodeError {
    const len = input.length;
    if (len > RECORD_BYTES_MAX) return this.twin.decodeRecord(input);
    const p = this.stage(input, 16);
    const bytes = this.staged;
    const sc = this.scratch.ptr;
    const h = this.heap;
    const rc = this.x.decodeRecord(p, len, RECORD_BYTES_MAX, sc);
    if (rc !== 0) return { error: reasonText(rc) };
    return { position: h.f64[sc >>> 3], ballot: h.f64[(sc >>> 3) + 1], value: copyBytes(bytes, RECORD_HEADER_BYTES, len) };
  }

  decodeBatch(value: Uint8Array): Uint8Array[] | DecodeError {
    return viewsOf(value, this.decodeBatchPlaces(value));
  }

  decodeBatchPlaces(value: Uint8Array): Uint32Array | DecodeError {
    const len = value.length;
    assert.ok(len <= U32_MAX, 'batch larger than 4 GiB');
    // Scratch holds 8 bytes per command; the codec writes no more than the batch's count, and only
    // after checking the batch has room for that many length words.
    const commandsMax = len >= 4 ? Math.min(Math.floor((len - 4) / 4), readU32(value, 0)) : 0;
    const p = this.stage(value, 8 * commandsMax + 8);
    const sc = this.scratch.ptr;
    const n = this.x.decodeBatch(p, len, sc);
    if (n < 0) return { error: reasonText(-n) };
    this.heap.sync();
    return this.heap.u32.subarray(sc >>> 2, (sc >>> 2) + 2 * n);
  }

  /** Plain copies with no checksum: crossing into WASM would only add one more copy. */
  encodeBatch(commands: Uint8Array[]): Uint8Array {
    return encodeBatch(commands);
  }

  newBatcher(countMax: number, bytesMax: number): Batcher {
    const b = new WasmBatcher(this.heap, this.cutOut, countMax, bytesMax);
    this.registry.register(b, b.regions);
    return b;
  }

  newSlotWindow(capacity: number): SlotWindow {
    const w = new WasmSlotWindow(this.heap, capacity);
    this.registry.register(w, [{ ptr: w.st, bytes: w.stBytes }]);
    return w;
  }

  newPromiseCounter(): PromiseCounter {
    const c = new WasmPromiseCounter(this.heap);
    this.registry.register(c, [{ ptr: c.st, bytes: 12 }]);
    return c;
  }

  newFrameReader(frameBytesMax: number): FrameReader {
    return new StreamFrameReader(frameBytesMax);
  }

  quorumIndex(matchIndexes: Float64Array, n: number, quorum: number): number {
    if (!(Number.isInteger(n) && n >= 1 && n <= matchIndexes.length)) assert.fail(`n ${n} out of range`);
    if (!(Number.isInteger(quorum) && quorum >= 1 && quorum <= n)) assert.fail(`quorum ${quorum} out of range 1..${n}`);
    const sc = this.scratch.ensure(8 * n);
    const h = this.heap;
    h.sync();
    const f = h.f64;
    for (let i = 0, w = sc >>> 3; i < n; i++, w++) f[w] = matchIndexes[i];
    return this.x.quorumIndex(sc, n, quorum);
  }
}

// Batcher state words, as in assembly/batch.ts.
const B_COUNT_MAX = 0, B_BYTES_MAX = 1, B_HEAD = 2, B_COUNT = 3, B_BYTE_HEAD = 4, B_BYTES = 5,
  B_LEN_CAP = 6, B_BYTE_CAP = 7, B_LEN_RING = 8, B_BYTE_RING = 9;

class WasmBatcher implements Batcher {
  /** Word index of the state block in heap.u32. */
  private readonly w: number;
  /** The regions this batcher owns: state, length ring, byte ring (updated when the rings grow). */
  readonly regions: { ptr: number; bytes: number }[];

  constructor(private readonly heap: WasmHeap, private readonly out: Region, readonly countMax: number, readonly bytesMax: number) {
    if (!(Number.isInteger(countMax) && countMax >= 1 && countMax <= BATCHER_COUNT_MAX)) assert.fail(`countMax ${countMax} out of range 1..2^24`);
    if (!(Number.isSafeInteger(bytesMax) && bytesMax >= 1)) assert.fail(`bytesMax ${bytesMax} must be a safe integer >= 1`);
    const st = heap.alloc(40);
    const lenCap = Math.min(countMax, 64);
    const byteCap = Math.min(bytesMax, 4096);
    const lenRing = heap.alloc(4 * lenCap);
    const byteRing = heap.alloc(byteCap);
    this.regions = [{ ptr: st, bytes: 40 }, { ptr: lenRing, bytes: 4 * lenCap }, { ptr: byteRing, bytes: byteCap }];
    heap.sync();
    this.w = st >>> 2;
    const u = heap.u32;
    u.fill(0, this.w, this.w + 10);
    u[this.w + B_COUNT_MAX] = countMax;
    // The rings grow on demand, so a large bound costs nothing until used; HEAP_BYTES_MAX caps them.
    u[this.w + B_BYTES_MAX] = Math.min(bytesMax, U32_MAX);
    u[this.w + B_LEN_CAP] = lenCap;
    u[this.w + B_BYTE_CAP] = byteCap;
    u[this.w + B_LEN_RING] = lenRing;
    u[this.w + B_BYTE_RING] = byteRing;
  }

  get count(): number { this.heap.sync(); return this.heap.u32[this.w + B_COUNT]; }
  get bytes(): number { this.heap.sync(); return this.heap.u32[this.w + B_BYTES]; }

  push(command: Uint8Array): boolean {
    assert.ok(command instanceof Uint8Array, 'a command must be a Uint8Array');
    const h = this.heap;
    h.sync();
    let u = h.u32;
    const w = this.w;
    const count = u[w + B_COUNT];
    const bytes = u[w + B_BYTES];
    const len = command.length;
    if (count + 1 > this.countMax || bytes + len > this.bytesMax) return false;
    if (count + 1 > u[w + B_LEN_CAP] || bytes + len > u[w + B_BYTE_CAP]) {
      this.grow(count + 1, bytes + len);
      u = h.u32;
    }
    const lenCap = u[w + B_LEN_CAP];
    const byteCap = u[w + B_BYTE_CAP];
    let li = u[w + B_HEAD] + count;
    if (li >= lenCap) li -= lenCap;
    u[(u[w + B_LEN_RING] >>> 2) + li] = len;
    let bi = u[w + B_BYTE_HEAD] + bytes;
    if (bi >= byteCap) bi -= byteCap;
    const ring = u[w + B_BYTE_RING];
    const first = Math.min(len, byteCap - bi);
    if (first === len) h.u8.set(command, ring + bi);
    else {
      h.u8.set(command.subarray(0, first), ring + bi);
      h.u8.set(command.subarray(first), ring);
    }
    u[w + B_COUNT] = count + 1;
    u[w + B_BYTES] = bytes + len;
    return true;
  }

  /** Double the rings (at most to the bounds) so they hold `count` commands of `bytes` bytes. */
  private grow(count: number, bytes: number): void {
    const h = this.heap;
    const u = h.u32;
    const lenCap = Math.min(this.countMax, Math.max(count, 2 * u[this.w + B_LEN_CAP]));
    const byteCap = Math.min(this.bytesMax, Math.max(bytes, 2 * u[this.w + B_BYTE_CAP]));
    const lenRing = h.alloc(4 * lenCap);
    const byteRing = h.alloc(byteCap);
    h.x.batcherMove(this.w << 2, lenRing, lenCap, byteRing, byteCap);
    h.release(this.regions[1].ptr, this.regions[1].bytes);
    h.release(this.regions[2].ptr, this.regions[2].bytes);
    this.regions[1] = { ptr: lenRing, bytes: 4 * lenCap };
    this.regions[2] = { ptr: byteRing, bytes: byteCap };
    h.sync();
  }

  cut(countMax: number, bytesMax: number): Uint8Array {
    assert.ok(countMax >= 1 && bytesMax >= 1, 'cut bounds must be >= 1');
    const h = this.heap;
    h.sync();
    const w = this.w;
    const need = 4 + 4 * h.u32[w + B_COUNT] + h.u32[w + B_BYTES];
    const out = this.out.ensure(need);
    const n = h.x.batcherCut(w << 2, out, Math.min(countMax, U32_MAX), Math.min(bytesMax, U32_MAX));
    h.sync();
    return h.u8.slice(out, out + n);
  }

  clear(): void {
    const h = this.heap;
    h.sync();
    const u = h.u32;
    u[this.w + B_HEAD] = 0;
    u[this.w + B_COUNT] = 0;
    u[this.w + B_BYTE_HEAD] = 0;
    u[this.w + B_BYTES] = 0;
  }
}

class WasmSlotWindow implements SlotWindow {
  /** Address of the window's state block (layout in assembly/window.ts). */
  readonly st: number;
  /** Size of the state block: 32 + 13 * capacity bytes. */
  readonly stBytes: number;
  /** The view handed out as newlyChosen, re-created only when memory grows. */
  private view: Float64Array | null = null;
  private viewBuffer: ArrayBufferLike | null = null;

  constructor(private readonly heap: WasmHeap, readonly capacity: number) {
    if (!(Number.isInteger(capacity) && capacity >= 1 && capacity <= 1 << 20)) assert.fail(`capacity ${capacity} out of range`);
    this.stBytes = heap.x.windowBytes(capacity);
    this.st = heap.alloc(this.stBytes);
    heap.x.windowInit(this.st, capacity);
  }

  get prefix(): number { this.heap.sync(); return this.heap.f64[this.st >>> 3]; }
  get chosenAbove(): number { this.heap.sync(); return this.heap.u32[(this.st + 16) >>> 2]; }

  get newlyChosen(): Float64Array {
    const b = this.heap.x.memory.buffer;
    if (this.viewBuffer !== b) {
      this.view = new Float64Array(b, this.st + 32, this.capacity);
      this.viewBuffer = b;
    }
    return this.view!;
  }

  reset(prefix: number, quorum: number, required: number): void {
    assertSafe(prefix, 'prefix');
    if (!(Number.isInteger(quorum) && quorum >= 1 && quorum <= MEMBER_MAX + 1)) assert.fail(`quorum ${quorum} out of range`);
    assertRequired(required, quorum);
    this.heap.x.windowReset(this.st, prefix, quorum, required);
  }

  ack(member: number, firstSlot: number, count: number): number {
    assertMember(member);
    assertSafe(count, 'count');
    if (count === 0) return 0;
    assertSafe(firstSlot, 'firstSlot');
    const n = this.heap.x.windowAck(this.st, member, firstSlot, count);
    if (!(n >= 0)) assert.fail(`slots [${firstSlot}, ${firstSlot + count}) reach beyond the window [${this.prefix}, ${this.prefix + this.capacity})`);
    return n;
  }

  markChosen(slot: number): void {
    assertSafe(slot, 'slot');
    const rc = this.heap.x.windowMark(this.st, slot);
    if (!(rc === 0)) assert.fail(`slot ${slot} beyond the window [${this.prefix}, ${this.prefix + this.capacity})`);
  }

  isChosen(slot: number): boolean {
    assertSafe(slot, 'slot');
    return this.heap.x.windowIsChosen(this.st, slot) === 1;
  }

  ackers(slot: number): number {
    assertSafe(slot, 'slot');
    return this.heap.x.windowAckers(this.st, slot) >>> 0;
  }
}

class WasmPromiseCounter implements PromiseCounter {
  /** Address of the counter's 12-byte state block (layout in assembly/quorum.ts). */
  readonly st: number;
  constructor(private readonly heap: WasmHeap) {
    this.st = heap.alloc(12);
    heap.x.promiseReset(this.st, 1);
  }

  get count(): number { this.heap.sync(); return this.heap.u32[(this.st + 4) >>> 2]; }

  reset(quorum: number): void {
    if (!(Number.isInteger(quorum) && quorum >= 1 && quorum <= MEMBER_MAX + 1)) assert.fail(`quorum ${quorum} out of range`);
    this.heap.x.promiseReset(this.st, quorum);
  }

  add(member: number): boolean {
    assertMember(member);
    return this.heap.x.promiseAdd(this.st, member) === 1;
  }
}

/** A new WASM kernels object: one instance of the (once compiled) module with its own memory. */
export const createWasmKernels = (): Kernels => new WasmKernels();
