// The wire layout shared by both kernel faces (the TypeScript twin in src/kernels/js and the WASM
// face in src/wasm). This is the ONE table that says which header field carries which named field
// of each message; the WASM codec is generic and receives the per-type rules from this table at
// load time, so the two faces cannot drift apart.
//
// Frame (all integers little-endian; every u64 holds a safe integer <= 2^53 - 1):
//
//    0        1        2                 4                                 8
//   +--------+--------+-----------------+---------------------------------+
//   | version| type   | flags u16       | length u32 (whole frame, bytes) |
//   +--------+--------+-----------------+---------------------------------+
//   8                                   12                16               16
//   | crc32c u32                        | from u16        | to u16        |
//   +-----------------------------------+-----------------+---------------+
//   16  ballot-or-term u64   24  a u64   32  b u64   40  c u64
//   48  entryCount u32       52  reserved u32 (zero)             56 = HEADER_BYTES
//   then entryCount entries, back to back:
//   | position u64 | ballot-or-term u64 | valueLength u32 | value bytes ... |   (20 + valueLength)
//
// The CRC32C covers bytes [0, 8) and then [12, length): the whole frame except the CRC field
// itself, so a flipped bit in the version, type, flags or length is caught too.
//
// Log record (one per slot or Raft index):
//   version u8 | kind u8 | flags u16 | length u32 | crc32c u32 | position u64 | ballot u64 | value
//   28 = RECORD_HEADER_BYTES; the CRC covers [0, 8) and [12, length) as for frames.
//
// Batch (a slot's value): count u32 | (length u32 | bytes) * count. A no-op is the empty batch.

import { MsgType } from '../protocol/messages.js';

export const FRAME_VERSION = 1;
export const HEADER_BYTES = 56;
export const ENTRY_HEADER_BYTES = 20;
/** The default and largest frame decode accepts; FrameReader may be given a smaller bound. */
export const FRAME_BYTES_MAX = 64 * 1024 * 1024;

export const OFF_VERSION = 0;
export const OFF_TYPE = 1;
export const OFF_FLAGS = 2;
export const OFF_LENGTH = 4;
export const OFF_CRC = 8;
export const OFF_FROM = 12;
export const OFF_TO = 14;
export const OFF_BALLOT = 16;
export const OFF_A = 24;
export const OFF_B = 32;
export const OFF_C = 40;
export const OFF_COUNT = 48;
export const OFF_RESERVED = 52;

export const RECORD_VERSION = 1;
/** The only record kind so far: an accepted slot (Multi-Paxos) or a log entry (Raft). */
export const RECORD_KIND_ENTRY = 1;
export const RECORD_HEADER_BYTES = 28;
export const RECORD_BYTES_MAX = FRAME_BYTES_MAX;

/** The largest safe integer's high 32-bit word: a u64 above it is not a JS safe integer. */
export const SAFE_HI_MAX = 0x1fffff;

/** What a frame's entries are: none allowed, Paxos slots, Raft entries, or bare values (Propose). */
export const enum EntryKind {
  None = 0,
  Slot = 1,
  Raft = 2,
  Value = 3,
}

/** How one message type maps onto the fixed header. A null field must be zero on the wire. */
export interface FrameShape {
  readonly type: MsgType;
  readonly ballot: string | null;
  readonly a: string | null;
  readonly b: string | null;
  readonly c: string | null;
  /** flags[i] names the boolean carried in flag bit i; every other flag bit must be zero. */
  readonly flags: readonly string[];
  readonly entries: EntryKind;
}

const shape = (type: MsgType, ballot: string | null, a: string | null, b: string | null, c: string | null,
  flags: string[], entries: EntryKind): FrameShape => ({ type, ballot, a, b, c, flags, entries });

/** The one table. Index it with SHAPES[type]; undefined means an unknown type. */
export const SHAPES: readonly (FrameShape | undefined)[] = (() => {
  const t: (FrameShape | undefined)[] = new Array(32).fill(undefined);
  const add = (s: FrameShape): void => { t[s.type] = s; };
  add(shape(MsgType.Prepare, 'ballot', 'fromSlot', null, null, [], EntryKind.None));
  add(shape(MsgType.Promise, 'ballot', 'fromSlot', 'chosenPrefix', 'coverFrom', ['more'], EntryKind.Slot));
  add(shape(MsgType.Accept, 'ballot', 'chosenPrefix', null, null, [], EntryKind.Slot));
  add(shape(MsgType.Accepted, 'ballot', 'firstSlot', 'count', null, [], EntryKind.None));
  add(shape(MsgType.Nack, 'ballot', 'slot', null, null, [], EntryKind.None));
  add(shape(MsgType.Commit, 'ballot', 'firstSlot', 'count', 'chosenPrefix', [], EntryKind.None));
  add(shape(MsgType.Heartbeat, 'ballot', 'chosenPrefix', 'seq', null, [], EntryKind.None));
  add(shape(MsgType.HeartbeatAck, 'ballot', 'chosenPrefix', 'seq', null, [], EntryKind.None));
  add(shape(MsgType.LearnRequest, null, 'firstSlot', 'count', null, [], EntryKind.None));
  add(shape(MsgType.LearnReply, null, 'chosenPrefix', null, null, [], EntryKind.Slot));
  add(shape(MsgType.Propose, 'ballot', 'incarnation', 'seq', null, [], EntryKind.Value));
  add(shape(MsgType.ReadIndex, null, 'readId', null, null, [], EntryKind.None));
  add(shape(MsgType.ReadIndexReply, null, 'readId', 'index', null, ['ok'], EntryKind.None));
  add(shape(MsgType.SnapshotRequest, null, 'prefix', 'offset', null, [], EntryKind.None));
  add(shape(MsgType.SnapshotChunk, 'ballot', 'prefix', 'offset', 'total', [], EntryKind.Value));
  add(shape(MsgType.RequestVote, 'term', 'lastIndex', 'lastTerm', null, ['preVote'], EntryKind.None));
  add(shape(MsgType.Vote, 'term', null, null, null, ['granted', 'preVote'], EntryKind.None));
  add(shape(MsgType.AppendEntries, 'term', 'prevIndex', 'prevTerm', 'commitIndex', [], EntryKind.Raft));
  add(shape(MsgType.AppendResult, 'term', 'index', 'hintTerm', null, ['success'], EntryKind.None));
  add(shape(MsgType.CatchUpRequest, null, 'nonce', null, null, [], EntryKind.None));
  add(shape(MsgType.CatchUpReply, 'ballot', 'lastPosition', 'chosenPrefix', 'nonce', [], EntryKind.None));
  add(shape(MsgType.PrePrepare, 'ballot', null, null, null, [], EntryKind.None));
  add(shape(MsgType.PrePromise, 'ballot', 'promised', null, null, ['granted'], EntryKind.None));
  return t;
})();

/**
 * The per-type rules as the WASM codec reads them: 4 bytes per type 0..31:
 * fieldMask (bit 0 ballot, 1 a, 2 b, 3 c: set if the field is used), flagsMask, entry kind, known (1).
 */
export const SHAPE_RULE_BYTES = 4;
export const shapeRules = (): Uint8Array => {
  const out = new Uint8Array(32 * SHAPE_RULE_BYTES);
  SHAPES.forEach((s, type) => {
    if (s === undefined) return;
    const o = type * SHAPE_RULE_BYTES;
    out[o] = (s.ballot ? 1 : 0) | (s.a ? 2 : 0) | (s.b ? 4 : 0) | (s.c ? 8 : 0);
    out[o + 1] = (1 << s.flags.length) - 1;
    out[o + 2] = s.entries;
    out[o + 3] = 1;
  });
  return out;
};

/** Why a frame, record or batch was refused. Both faces return the same code for the same bytes. */
export const enum Reason {
  Ok = 0,
  FrameShort = 1,
  FrameVersion = 2,
  FrameLength = 3,
  FrameTooLarge = 4,
  FrameChecksum = 5,
  FrameType = 6,
  FrameFlags = 7,
  FrameReserved = 8,
  FieldNotZero = 9,
  NumberTooLarge = 10,
  EntriesNotAllowed = 11,
  EntryHeaderPastEnd = 12,
  EntryValuePastEnd = 13,
  FrameTrailingBytes = 14,
  EntryNotZero = 15,
  RecordShort = 20,
  RecordVersion = 21,
  RecordKind = 22,
  RecordFlags = 23,
  RecordLength = 24,
  RecordChecksum = 25,
  RecordNumberTooLarge = 26,
  RecordPositionZero = 27,
  RecordTooLarge = 28,
  BatchShort = 30,
  BatchCountTooLarge = 31,
  BatchCommandPastEnd = 32,
  BatchTrailingBytes = 33,
}

/** The text of each Reason, as DecodeError.error carries it. */
export const REASONS: Readonly<Record<number, string>> = {
  1: 'frame shorter than its 56-byte header',
  2: 'unknown frame version',
  3: 'frame length field disagrees with the bytes received (truncated or oversized)',
  4: 'frame longer than frameBytesMax',
  5: 'frame checksum mismatch',
  6: 'unknown message type',
  7: 'flag bits not allowed for this message type',
  8: 'reserved header field is not zero',
  9: 'header field unused by this message type is not zero',
  10: 'number above 2^53-1',
  11: 'entries not allowed for this message type',
  12: 'entry header runs past the end of the frame',
  13: 'entry value runs past the end of the frame',
  14: 'bytes left over after the last entry',
  15: 'entry position and ballot must be zero for this message type',
  20: 'record shorter than its 28-byte header',
  21: 'unknown record version',
  22: 'unknown record kind',
  23: 'record flags are not zero',
  24: 'record length field disagrees with the bytes given (truncated or oversized)',
  25: 'record checksum mismatch',
  26: 'record number above 2^53-1',
  27: 'record position is 0',
  28: 'record longer than RECORD_BYTES_MAX',
  30: 'batch shorter than its 4-byte count',
  31: 'batch count larger than its bytes can hold',
  32: 'command length runs past the end of the batch',
  33: 'bytes left over after the last command',
};

export const reasonText = (code: number): string => REASONS[code] ?? `unknown decode failure ${code}`;

/** The largest member index a SlotWindow or PromiseCounter tracks (one bit each in a u32). */
export const MEMBER_MAX = 31;

/** The most commands a Batcher holds (its countMax): the WASM ring's lengths are indexed within it. */
export const BATCHER_COUNT_MAX = 1 << 24;

/**
 * A plain Uint8Array copy of src[start, end). Not `src.slice()`: on a Node Buffer that returns a
 * view, and a view into a transport's or LMDB's reused buffer would change under its owner.
 */
export const copyBytes = (src: Uint8Array, start: number, end: number): Uint8Array =>
  new Uint8Array(src.buffer, src.byteOffset + start, end - start).slice();
