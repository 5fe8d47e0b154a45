// The codec's TypeScript twin: frames, log records and batches, byte for byte what the WASM
// codec (assembly/codec.ts) writes and reads. The layout diagram and the per-type table live in
// ../layout.ts, shared by both faces:
//
//   frame  = version u8 | type u8 | flags u16 | length u32 | crc32c u32 | from u16 | to u16
//            | ballot-or-term u64 | a u64 | b u64 | c u64 | entryCount u32 | reserved u32   (56 bytes)
//            then entryCount * (position u64 | ballot-or-term u64 | valueLength u32 | value)
//   record = version u8 | kind u8 | flags u16 | length u32 | crc32c u32 | position u64 | ballot u64 | value
//   batch  = count u32 | (length u32 | bytes) * count
//
// Decoders check in one fixed order (the WASM codec uses the same order, so both give the same
// reason for the same bytes) and never read past the bytes they are given.

import assert from 'node:assert/strict';
import type { Message } from '../../protocol/messages.js';
import type { LogRecord } from '../../protocol/types.js';
import type { DecodeError } from '../types.js';
import {
  ENTRY_HEADER_BYTES, EntryKind, FRAME_BYTES_MAX, FRAME_VERSION, HEADER_BYTES, OFF_A, OFF_B, OFF_BALLOT, OFF_C,
  OFF_COUNT, OFF_CRC, OFF_FLAGS, OFF_FROM, OFF_LENGTH, OFF_RESERVED, OFF_TO, OFF_TYPE, RECORD_BYTES_MAX,
  RECORD_HEADER_BYTES, RECORD_KIND_ENTRY, RECORD_VERSION, Reason, SAFE_HI_MAX, SHAPES, copyBytes, reasonText,
} from '../layout.js';
import { crcFrame } from './crc32c.js';

const TWO_32 = 0x100000000;

const fail = (code: Reason): DecodeError => ({ error: reasonText(code) });

export const writeU64 = (view: DataView, at: number, x: number): void => {
  view.setUint32(at, x % TWO_32, true);
  view.setUint32(at + 4, Math.floor(x / TWO_32), true);
};

/** A u64 as a number, or -1 if it is above 2^53 - 1. */
export const readU64 = (view: DataView, at: number): number => {
  const hi = view.getUint32(at + 4, true);
  return hi > SAFE_HI_MAX ? -1 : hi * TWO_32 + view.getUint32(at, true);
};

const assertNumber = (x: unknown, name: string): number => {
  if (!(typeof x === 'number' && Number.isSafeInteger(x) && x >= 0)) assert.fail(`${name}=${String(x)} is not a non-negative safe integer`);
  return x;
};

const assertNodeId = (x: unknown, name: string): number => {
  if (!(typeof x === 'number' && Number.isInteger(x) && x >= 0 && x <= 0xffff)) assert.fail(`${name}=${String(x)} is not a node id`);
  return x;
};

/** One entry as the codec sees it, whatever the message calls its fields. */
interface WireEntry { position: number; ballot: number; value: Uint8Array }

/** The entries of a message as wire entries (position, ballot, value); [] for types without any. */
export const wireEntries = (m: Message): WireEntry[] => {
  const s = SHAPES[m.type];
  if (!(s !== undefined)) assert.fail(`unknown message type ${m.type}`);
  const any = m as unknown as Record<string, unknown>;
  switch (s.entries) {
    case EntryKind.None: return [];
    case EntryKind.Slot:
      return (any.entries as { slot: number; ballot: number; value: Uint8Array }[])
        .map((e) => ({ position: e.slot, ballot: e.ballot, value: e.value }));
    case EntryKind.Raft:
      return (any.entries as { index: number; term: number; value: Uint8Array }[])
        .map((e) => ({ position: e.index, ballot: e.term, value: e.value }));
    case EntryKind.Value:
      return (any.values as Uint8Array[]).map((value) => ({ position: 0, ballot: 0, value }));
  }
};

/** The header numbers of a message in wire order [ballot, a, b, c] and its flags. */
export const headerNumbers = (m: Message, out: Float64Array): number => {
  const s = SHAPES[m.type];
  if (!(s !== undefined)) assert.fail(`unknown message type ${m.type}`);
  const any = m as unknown as Record<string, unknown>;
  out[0] = s.ballot === null ? 0 : assertNumber(any[s.ballot], s.ballot);
  out[1] = s.a === null ? 0 : assertNumber(any[s.a], s.a);
  out[2] = s.b === null ? 0 : assertNumber(any[s.b], s.b);
  out[3] = s.c === null ? 0 : assertNumber(any[s.c], s.c);
  let flags = 0;
  for (let i = 0; i < s.flags.length; i++) {
    const v = any[s.flags[i]];
    if (!(typeof v === 'boolean')) assert.fail(`${s.flags[i]} must be a boolean`);
    if (v) flags |= 1 << i;
  }
  return flags;
};

export class JsCodec {
  /** Encode output, reused: encode() returns a view of it valid until the next encode(). */
  private out = new Uint8Array(64 * 1024);
  private recordOut = new Uint8Array(64 * 1024);
  private readonly numbers = new Float64Array(4);

  encode(m: Message): Uint8Array {
    const entries = wireEntries(m);
    const flags = headerNumbers(m, this.numbers);
    let length = HEADER_BYTES;
    for (const e of entries) {
      assert.ok(e.value instanceof Uint8Array, 'entry value must be a Uint8Array');
      length += ENTRY_HEADER_BYTES + e.value.length;
    }
    if (!(length <= FRAME_BYTES_MAX)) assert.fail(`frame of ${length} bytes exceeds FRAME_BYTES_MAX`);
    if (this.out.length < length) this.out = new Uint8Array(Math.max(length, this.out.length * 2));
    const buf = this.out;
    const view = new DataView(buf.buffer, buf.byteOffset, length);
    buf[0] = FRAME_VERSION;
    buf[OFF_TYPE] = m.type;
    view.setUint16(OFF_FLAGS, flags, true);
    view.setUint32(OFF_LENGTH, length, true);
    view.setUint16(OFF_FROM, assertNodeId(m.from, 'from'), true);
    view.setUint16(OFF_TO, assertNodeId(m.to, 'to'), true);
    writeU64(view, OFF_BALLOT, this.numbers[0]);
    writeU64(view, OFF_A, this.numbers[1]);
    writeU64(view, OFF_B, this.numbers[2]);
    writeU64(view, OFF_C, this.numbers[3]);
    view.setUint32(OFF_COUNT, entries.length, true);
    view.setUint32(OFF_RESERVED, 0, true);
    let at = HEADER_BYTES;
    for (const e of entries) {
      writeU64(view, at, assertNumber(e.position, 'entry position'));
      writeU64(view, at + 8, assertNumber(e.ballot, 'entry ballot'));
      view.setUint32(at + 16, e.value.length, true);
      buf.set(e.value, at + ENTRY_HEADER_BYTES);
      at += ENTRY_HEADER_BYTES + e.value.length;
    }
    view.setUint32(OFF_CRC, crcFrame(buf, length), true);
    return buf.subarray(0, length);
  }

  decode(frame: Uint8Array, frameBytesMax = FRAME_BYTES_MAX): Message | DecodeError {
    const len = frame.length;
    if (len < HEADER_BYTES) return fail(Reason.FrameShort);
    const view = new DataView(frame.buffer, frame.byteOffset, len);
    if (frame[0] !== FRAME_VERSION) return fail(Reason.FrameVersion);
    if (view.getUint32(OFF_LENGTH, true) !== len) return fail(Reason.FrameLength);
    if (len > frameBytesMax) return fail(Reason.FrameTooLarge);
    if (view.getUint32(OFF_CRC, true) !== crcFrame(frame, len)) return fail(Reason.FrameChecksum);
    const s = SHAPES[frame[OFF_TYPE]];
    if (s === undefined) return fail(Reason.FrameType);
    const flags = view.getUint16(OFF_FLAGS, true);
    if ((flags & ~((1 << s.flags.length) - 1)) !== 0) return fail(Reason.FrameFlags);
    if (view.getUint32(OFF_RESERVED, true) !== 0) return fail(Reason.FrameReserved);
    const m: Record<string, unknown> = { type: s.type, from: view.getUint16(OFF_FROM, true), to: view.getUint16(OFF_TO, true) };
    const fields = [s.ballot, s.a, s.b, s.c];
    for (let i = 0; i < 4; i++) {
      const at = OFF_BALLOT + 8 * i;
      const name = fields[i];
      if (name === null) {
        if (view.getUint32(at, true) !== 0 || view.getUint32(at + 4, true) !== 0) return fail(Reason.FieldNotZero);
        continue;
      }
      const x = readU64(view, at);
      if (x < 0) return fail(Reason.NumberTooLarge);
      m[name] = x;
    }
    for (let i = 0; i < s.flags.length; i++) m[s.flags[i]] = (flags & (1 << i)) !== 0;
    const count = view.getUint32(OFF_COUNT, true);
    if (count > 0 && s.entries === EntryKind.None) return fail(Reason.EntriesNotAllowed);
    if (count > (len - HEADER_BYTES) / ENTRY_HEADER_BYTES) return fail(Reason.EntryHeaderPastEnd);
    const entries: unknown[] = [];
    let at = HEADER_BYTES;
    for (let i = 0; i < count; i++) {
      if (at + ENTRY_HEADER_BYTES > len) return fail(Reason.EntryHeaderPastEnd);
      let position: number;
      let ballot: number;
      if (s.entries === EntryKind.Value) {
        for (let k = 0; k < 16; k += 4) if (view.getUint32(at + k, true) !== 0) return fail(Reason.EntryNotZero);
        position = 0;
        ballot = 0;
      } else {
        position = readU64(view, at);
        ballot = readU64(view, at + 8);
        if (position < 0 || ballot < 0) return fail(Reason.NumberTooLarge);
      }
      const vlen = view.getUint32(at + 16, true);
      if (vlen > len - at - ENTRY_HEADER_BYTES) return fail(Reason.EntryValuePastEnd);
      const value = copyBytes(frame, at + ENTRY_HEADER_BYTES, at + ENTRY_HEADER_BYTES + vlen);
      at += ENTRY_HEADER_BYTES + vlen;
      if (s.entries === EntryKind.Slot) entries.push({ slot: position, ballot, value });
      else if (s.entries === EntryKind.Raft) entries.push({ index: position, term: ballot, value });
      else entries.push(value);
    }
    if (at !== len) return fail(Reason.FrameTrailingBytes);
    if (s.entries === EntryKind.Value) m.values = entries;
    else if (s.entries !== EntryKind.None) m.entries = entries;
    return m as unknown as Message;
  }

  encodeRecord(r: LogRecord): Uint8Array {
    assert.ok(r.value instanceof Uint8Array, 'record value must be a Uint8Array');
    assert.ok(assertNumber(r.position, 'record position') >= 1, 'record position must be >= 1');
    const length = RECORD_HEADER_BYTES + r.value.length;
    if (!(length <= RECORD_BYTES_MAX)) assert.fail(`record of ${length} bytes exceeds RECORD_BYTES_MAX`);
    if (this.recordOut.length < length) this.recordOut = new Uint8Array(Math.max(length, this.recordOut.length * 2));
    const buf = this.recordOut;
    const view = new DataView(buf.buffer, buf.byteOffset, length);
    buf[0] = RECORD_VERSION;
    buf[1] = RECORD_KIND_ENTRY;
    view.setUint16(2, 0, true);
    view.setUint32(4, length, true);
    writeU64(view, 12, r.position);
    writeU64(view, 20, assertNumber(r.ballot, 'record ballot'));
    buf.set(r.value, RECORD_HEADER_BYTES);
    view.setUint32(8, crcFrame(buf, length), true);
    return buf.subarray(0, length);
  }

  decodeRecord(bytes: Uint8Array): LogRecord | DecodeError {
    const len = bytes.length;
    if (len < RECORD_HEADER_BYTES) return fail(Reason.RecordShort);
    const view = new DataView(bytes.buffer, bytes.byteOffset, len);
    if (bytes[0] !== RECORD_VERSION) return fail(Reason.RecordVersion);
    if (view.getUint32(4, true) !== len) return fail(Reason.RecordLength);
    if (len > RECORD_BYTES_MAX) return fail(Reason.RecordTooLarge);
    if (view.getUint32(8, true) !== crcFrame(bytes, len)) return fail(Reason.RecordChecksum);
    if (bytes[1] !== RECORD_KIND_ENTRY) return fail(Reason.RecordKind);
    if (view.getUint16(2, true) !== 0) return fail(Reason.RecordFlags);
    const position = readU64(view, 12);
    const ballot = readU64(view, 20);
    if (position < 0 || ballot < 0) return fail(Reason.RecordNumberTooLarge);
    if (position === 0) return fail(Reason.RecordPositionZero);
    return { position, ballot, value: copyBytes(bytes, RECORD_HEADER_BYTES, len) };
  }
}

/** Encode commands as one batch: count u32 | (length u32 | bytes)*. */
export const encodeBatch = (commands: Uint8Array[]): Uint8Array => {
  let length = 4;
  for (const c of commands) length += 4 + c.length;
  const out = new Uint8Array(length);
  const view = new DataView(out.buffer);
  view.setUint32(0, commands.length, true);
  let at = 4;
  for (const c of commands) {
    view.setUint32(at, c.length, true);
    out.set(c, at + 4);
    at += 4 + c.length;
  }
  return out;
};

/** Reused by decodeBatchPlaces; grows to the largest batch seen (at most (batch bytes - 4) / 2 words). */
let placesOut = new Uint32Array(1024);

/**
 * Where the commands of a batch are: (start, length) pairs of offsets into `value`, in a view that
 * is valid until the next call; or why the batch is malformed.
 */
export const decodeBatchPlaces = (value: Uint8Array): Uint32Array | DecodeError => {
  const len = value.length;
  if (len < 4) return fail(Reason.BatchShort);
  const view = new DataView(value.buffer, value.byteOffset, len);
  const count = view.getUint32(0, true);
  if (count > (len - 4) / 4) return fail(Reason.BatchCountTooLarge);
  if (placesOut.length < 2 * count) placesOut = new Uint32Array(2 * count);
  let at = 4;
  for (let i = 0; i < count; i++) {
    if (at + 4 > len) return fail(Reason.BatchCommandPastEnd);
    const clen = view.getUint32(at, true);
    if (clen > len - at - 4) return fail(Reason.BatchCommandPastEnd);
    placesOut[2 * i] = at + 4;
    placesOut[2 * i + 1] = clen;
    at += 4 + clen;
  }
  if (at !== len) return fail(Reason.BatchTrailingBytes);
  return placesOut.subarray(0, 2 * count);
};

/** The commands of a batch as views into `value`, or why the batch is malformed. */
export const decodeBatch = (value: Uint8Array): Uint8Array[] | DecodeError => viewsOf(value, decodeBatchPlaces(value));

/** Views into `value` at the places decodeBatchPlaces gave (or its error). */
export const viewsOf = (value: Uint8Array, places: Uint32Array | DecodeError): Uint8Array[] | DecodeError => {
  if (!(places instanceof Uint32Array)) return places;
  const out: Uint8Array[] = new Array(places.length >>> 1);
  for (let i = 0; i < out.length; i++) out[i] = value.subarray(places[2 * i], places[2 * i] + places[2 * i + 1]);
  return out;
};
