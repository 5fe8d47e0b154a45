// The wire codec: frames, log records and batches, encoded into and decoded from linear memory.
// Byte for byte the same as the TypeScript twin (src/kernels/js/codec.ts); the layout and the
// per-type table are in src/kernels/layout.ts:
//
//    0        1        2                 4                                 8
//   +--------+--------+-----------------+---------------------------------+
//   | version| type   | flags u16       | length u32 (whole frame, bytes) |
//   +--------+--------+-----------------+---------------------------------+
//   8                                   12                14               16
//   | crc32c u32 (all but bytes 8..12)  | from u16        | to u16        |
//   +-----------------------------------+-----------------+---------------+
//   16  ballot-or-term u64   24  a u64   32  b u64   40  c u64
//   48  entryCount u32       52  reserved u32 (zero)             56 = HEADER_BYTES
//   entries: | position u64 | ballot-or-term u64 | valueLength u32 | value ... |  (20 + valueLength)
//
//   record = version u8 | kind u8 | flags u16 | length u32 | crc32c u32 | position u64 | ballot u64 | value
//   batch  = count u32 | (length u32 | bytes) * count
//
// Decoders check in one fixed order, the twin's order, and every read is preceded by a bounds
// check against the length they were given: a decode of any bytes returns a reason, never traps.
//
// Scratch (given by the caller, 8-aligned; numbers as f64 so no i64 crosses the boundary):
//   +0   ballot, a, b, c            4 x f64
//   +32  per entry: position, ballot, valueOffset (from frame start), valueLength   4 x f64
// The caller sizes scratch for 32 + 32 * floor((length - 56) / 20) bytes.

import { crcFrame } from './crc32c';
import { isSafe } from './ballot';

// @ts-ignore: decorator
@inline const FRAME_VERSION: u32 = 1;
// @ts-ignore: decorator
@inline const HEADER_BYTES: u32 = 56;
// @ts-ignore: decorator
@inline const ENTRY_HEADER_BYTES: u32 = 20;
// @ts-ignore: decorator
@inline const SAFE_HI_MAX: u32 = 0x1fffff;
// @ts-ignore: decorator
@inline const RECORD_VERSION: u32 = 1;
// @ts-ignore: decorator
@inline const RECORD_KIND_ENTRY: u32 = 1;
// @ts-ignore: decorator
@inline const RECORD_HEADER_BYTES: u32 = 28;
// @ts-ignore: decorator
@inline const SCRATCH_ENTRIES: usize = 32;

// Entry kinds, as in src/kernels/layout.ts EntryKind.
// @ts-ignore: decorator
@inline const KIND_NONE: u32 = 0;
// @ts-ignore: decorator
@inline const KIND_VALUE: u32 = 3;

// Reasons, as in src/kernels/layout.ts Reason.
// @ts-ignore: decorator
@inline const FRAME_SHORT: i32 = 1;
// @ts-ignore: decorator
@inline const FRAME_VERSION_BAD: i32 = 2;
// @ts-ignore: decorator
@inline const FRAME_LENGTH: i32 = 3;
// @ts-ignore: decorator
@inline const FRAME_TOO_LARGE: i32 = 4;
// @ts-ignore: decorator
@inline const FRAME_CHECKSUM: i32 = 5;
// @ts-ignore: decorator
@inline const FRAME_TYPE: i32 = 6;
// @ts-ignore: decorator
@inline const FRAME_FLAGS: i32 = 7;
// @ts-ignore: decorator
@inline const FRAME_RESERVED: i32 = 8;
// @ts-ignore: decorator
@inline const FIELD_NOT_ZERO: i32 = 9;
// @ts-ignore: decorator
@inline const NUMBER_TOO_LARGE: i32 = 10;
// @ts-ignore: decorator
@inline const ENTRIES_NOT_ALLOWED: i32 = 11;
// @ts-ignore: decorator
@inline const ENTRY_HEADER_PAST_END: i32 = 12;
// @ts-ignore: decorator
@inline const ENTRY_VALUE_PAST_END: i32 = 13;
// @ts-ignore: decorator
@inline const FRAME_TRAILING: i32 = 14;
// @ts-ignore: decorator
@inline const ENTRY_NOT_ZERO: i32 = 15;
// @ts-ignore: decorator
@inline const RECORD_SHORT: i32 = 20;
// @ts-ignore: decorator
@inline const RECORD_VERSION_BAD: i32 = 21;
// @ts-ignore: decorator
@inline const RECORD_KIND: i32 = 22;
// @ts-ignore: decorator
@inline const RECORD_FLAGS: i32 = 23;
// @ts-ignore: decorator
@inline const RECORD_LENGTH: i32 = 24;
// @ts-ignore: decorator
@inline const RECORD_CHECKSUM: i32 = 25;
// @ts-ignore: decorator
@inline const RECORD_NUMBER: i32 = 26;
// @ts-ignore: decorator
@inline const RECORD_POSITION_ZERO: i32 = 27;
// @ts-ignore: decorator
@inline const RECORD_TOO_LARGE: i32 = 28;
// @ts-ignore: decorator
@inline const BATCH_SHORT: i32 = 30;
// @ts-ignore: decorator
@inline const BATCH_COUNT: i32 = 31;
// @ts-ignore: decorator
@inline const BATCH_PAST_END: i32 = 32;
// @ts-ignore: decorator
@inline const BATCH_TRAILING: i32 = 33;

/**
 * Per-type rules, written once by the TypeScript face from the one table in layout.ts:
 * 4 bytes per type 0..31: fieldMask (bit 0 ballot, 1 a, 2 b, 3 c), flagsMask, entry kind, known.
 */
const RULES: usize = memory.data(32 * 4, 8);

export function rulesPtr(): usize {
  return RULES;
}

/** A u64 at p as f64, or -1 if above 2^53 - 1. */
// @ts-ignore: decorator
@inline function readSafe(p: usize): f64 {
  return load<u32>(p, 4) > SAFE_HI_MAX ? -1 : <f64>load<u64>(p);
}

/**
 * Write the header and entry headers of a frame whose values the caller already placed at their
 * offsets in `out`, then its CRC. Numbers come from scratch (see the layout above). Returns the
 * frame length, or -NUMBER_TOO_LARGE if a number is not a non-negative safe integer.
 */
export function encodeFrame(out: usize, scratch: usize, type: u32, flags: u32, from: u32, to: u32, count: u32): i32 {
  for (let i: usize = 0; i < 4; i++) if (!isSafe(load<f64>(scratch + (i << 3)))) return -NUMBER_TOO_LARGE;
  let at: usize = HEADER_BYTES;
  let e = scratch + SCRATCH_ENTRIES;
  for (let i: u32 = 0; i < count; i++) {
    const position = load<f64>(e);
    const ballot = load<f64>(e, 8);
    const vlen = <u32>load<f64>(e, 24);
    if (!isSafe(position) || !isSafe(ballot)) return -NUMBER_TOO_LARGE;
    store<u64>(out + at, <u64>position);
    store<u64>(out + at, <u64>ballot, 8);
    store<u32>(out + at, vlen, 16);
    at += ENTRY_HEADER_BYTES + vlen;
    e += 32;
  }
  store<u8>(out, <u8>FRAME_VERSION);
  store<u8>(out, <u8>type, 1);
  store<u16>(out, <u16>flags, 2);
  store<u32>(out, <u32>at, 4);
  store<u16>(out, <u16>from, 12);
  store<u16>(out, <u16>to, 14);
  store<u64>(out, <u64>load<f64>(scratch), 16);
  store<u64>(out, <u64>load<f64>(scratch, 8), 24);
  store<u64>(out, <u64>load<f64>(scratch, 16), 32);
  store<u64>(out, <u64>load<f64>(scratch, 24), 40);
  store<u32>(out, count, 48);
  store<u32>(out, 0, 52);
  store<u32>(out, crcFrame(out, at), 8);
  return <i32>at;
}

/**
 * Validate the frame of `len` bytes at p and write its numbers and entry places to scratch.
 * Returns 0 or a reason. Never reads outside [p, p + len).
 */
export function decodeFrame(p: usize, len: u32, frameBytesMax: u32, scratch: usize): i32 {
  if (len < HEADER_BYTES) return FRAME_SHORT;
  if (<u32>load<u8>(p) != FRAME_VERSION) return FRAME_VERSION_BAD;
  if (load<u32>(p, 4) != len) return FRAME_LENGTH;
  if (len > frameBytesMax) return FRAME_TOO_LARGE;
  if (load<u32>(p, 8) != crcFrame(p, len)) return FRAME_CHECKSUM;
  const type = <u32>load<u8>(p, 1);
  if (type >= 32) return FRAME_TYPE;
  const rule = RULES + (<usize>type << 2);
  if (load<u8>(rule, 3) == 0) return FRAME_TYPE;
  const fieldMask = <u32>load<u8>(rule);
  const flagsMask = <u32>load<u8>(rule, 1);
  const kind = <u32>load<u8>(rule, 2);
  if ((<u32>load<u16>(p, 2) & ~flagsMask) != 0) return FRAME_FLAGS;
  if (load<u32>(p, 52) != 0) return FRAME_RESERVED;
  for (let i: u32 = 0; i < 4; i++) {
    const at = p + 16 + (<usize>i << 3);
    if ((fieldMask & (1 << i)) == 0) {
      if (load<u64>(at) != 0) return FIELD_NOT_ZERO;
      store<f64>(scratch + (<usize>i << 3), 0);
      continue;
    }
    const x = readSafe(at);
    if (x < 0) return NUMBER_TOO_LARGE;
    store<f64>(scratch + (<usize>i << 3), x);
  }
  const count = load<u32>(p, 48);
  if (count > 0 && kind == KIND_NONE) return ENTRIES_NOT_ALLOWED;
  if (<u64>count * ENTRY_HEADER_BYTES > <u64>(len - HEADER_BYTES)) return ENTRY_HEADER_PAST_END;
  let at: u32 = HEADER_BYTES;
  let e = scratch + SCRATCH_ENTRIES;
  for (let i: u32 = 0; i < count; i++) {
    if (at + ENTRY_HEADER_BYTES > len) return ENTRY_HEADER_PAST_END;
    const q = p + at;
    let position: f64 = 0;
    let ballot: f64 = 0;
    if (kind == KIND_VALUE) {
      if ((load<u64>(q) | load<u64>(q, 8)) != 0) return ENTRY_NOT_ZERO;
    } else {
      position = readSafe(q);
      ballot = readSafe(q + 8);
      if (position < 0 || ballot < 0) return NUMBER_TOO_LARGE;
    }
    const vlen = load<u32>(q, 16);
    if (vlen > len - at - ENTRY_HEADER_BYTES) return ENTRY_VALUE_PAST_END;
    store<f64>(e, position);
    store<f64>(e, ballot, 8);
    store<f64>(e, <f64>(at + ENTRY_HEADER_BYTES), 16);
    store<f64>(e, <f64>vlen, 24);
    at += ENTRY_HEADER_BYTES + vlen;
    e += 32;
  }
  if (at != len) return FRAME_TRAILING;
  return 0;
}

/** Write a record's header and CRC around the value the caller placed at out + 28. Returns its length or -RECORD_NUMBER. */
export function encodeRecord(out: usize, position: f64, ballot: f64, valueLength: u32): i32 {
  if (!isSafe(position) || !isSafe(ballot) || position < 1) return -RECORD_NUMBER;
  const length = RECORD_HEADER_BYTES + valueLength;
  store<u8>(out, <u8>RECORD_VERSION);
  store<u8>(out, <u8>RECORD_KIND_ENTRY, 1);
  store<u16>(out, 0, 2);
  store<u32>(out, length, 4);
  store<u64>(out, <u64>position, 12);
  store<u64>(out, <u64>ballot, 20);
  store<u32>(out, crcFrame(out, length), 8);
  return <i32>length;
}

/** Validate a record of `len` bytes at p; position and ballot go to scratch. Returns 0 or a reason. */
export function decodeRecord(p: usize, len: u32, recordBytesMax: u32, scratch: usize): i32 {
  if (len < RECORD_HEADER_BYTES) return RECORD_SHORT;
  if (<u32>load<u8>(p) != RECORD_VERSION) return RECORD_VERSION_BAD;
  if (load<u32>(p, 4) != len) return RECORD_LENGTH;
  if (len > recordBytesMax) return RECORD_TOO_LARGE;
  if (load<u32>(p, 8) != crcFrame(p, len)) return RECORD_CHECKSUM;
  if (<u32>load<u8>(p, 1) != RECORD_KIND_ENTRY) return RECORD_KIND;
  if (load<u16>(p, 2) != 0) return RECORD_FLAGS;
  const position = readSafe(p + 12);
  const ballot = readSafe(p + 20);
  if (position < 0 || ballot < 0) return RECORD_NUMBER;
  if (position == 0) return RECORD_POSITION_ZERO;
  store<f64>(scratch, position);
  store<f64>(scratch, ballot, 8);
  return 0;
}

/**
 * Validate a batch of `len` bytes at p; each command's (offset, length) goes to scratch as two
 * u32. Returns the command count, or -reason. The caller sizes scratch for 2 * len bytes.
 */
export function decodeBatch(p: usize, len: u32, scratch: usize): i32 {
  if (len < 4) return -BATCH_SHORT;
  const count = load<u32>(p);
  if (count > (len - 4) >>> 2) return -BATCH_COUNT;
  let at: u32 = 4;
  for (let i: u32 = 0; i < count; i++) {
    if (at + 4 > len) return -BATCH_PAST_END;
    const clen = load<u32>(p + at);
    if (clen > len - at - 4) return -BATCH_PAST_END;
    store<u32>(scratch + (<usize>i << 3), at + 4);
    store<u32>(scratch + (<usize>i << 3), clen, 4);
    at += 4 + clen;
  }
  if (at != len) return -BATCH_TRAILING;
  return <i32>count;
}
