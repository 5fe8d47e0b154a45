// The key-value operations as bytes: what a client's write becomes inside a slot's batch.
//
//   put     [1][keyLen u16][key][value...]
//   delete  [2][keyLen u16][key]
//   cas     [3][keyLen u16][key][expectLen u32][expect][value...]
//
// Numbers are little-endian. Keys are UTF-8. The decoder never throws: bad bytes give a reason.

import assert from 'node:assert/strict';
import { isUtf8 } from 'node:buffer';

export const keyBytesMax = 1024;
export const valueBytesMax = 1024 * 1024;

export const enum KvOpCode {
  /** Set key to value. */
  Put = 1,
  /** Remove key. */
  Delete = 2,
  /** Set key to value only if its current value equals `expect`. */
  Cas = 3,
}

export type KvOp =
  | { op: 'put'; key: string; value: Uint8Array }
  | { op: 'delete'; key: string }
  | { op: 'cas'; key: string; expect: Uint8Array; value: Uint8Array };

// ignoreBOM: a key's leading U+FEFF is part of the key (the store keeps its bytes as they are).
const utf8Strict = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** A user-caused problem with an operation; `status` is the HTTP status it maps to. */
export class KvInputError extends Error {
  override name = 'KvInputError';
  constructor(message: string, readonly status: 400 | 413) {
    super(message);
  }
}

export function encodeOp(o: KvOp): Uint8Array {
  return opBytes(o.op === 'put' ? KvOpCode.Put : o.op === 'delete' ? KvOpCode.Delete : KvOpCode.Cas, o.key,
    o.op === 'cas' ? o.expect : null, o.op === 'delete' ? null : o.value, 0);
}

/** Whether bytes [start, end) of `b` are UTF-8. The usual all-ASCII key needs no call into C++. */
export function isUtf8Range(b: Uint8Array, start: number, end: number): boolean {
  let high = 0;
  for (let i = start; i < end; i++) high |= b[i];
  return high < 0x80 || isUtf8(b.subarray(start, end));
}

/**
 * Throws KvInputError for an operation's key (bytes [keyStart, keyStart + keyLength) of `b`) or
 * values out of bounds (a length of -1: absent), or a key that is not UTF-8. `b` null: the key was
 * a string, whose UTF-8 is well formed by construction (a lone surrogate is written as U+FFFD).
 */
function checkParts(b: Uint8Array | null, keyStart: number, keyLength: number, expectLength: number, valueLength: number): void {
  if (keyLength === 0) throw new KvInputError('the key is empty', 400);
  if (keyLength > keyBytesMax) throw new KvInputError(`the key is ${keyLength} bytes; at most ${keyBytesMax}`, 413);
  if (valueLength > valueBytesMax) throw new KvInputError(`the value is ${valueLength} bytes; at most ${valueBytesMax}`, 413);
  if (expectLength > valueBytesMax) throw new KvInputError(`the expected value is ${expectLength} bytes; at most ${valueBytesMax}`, 413);
  if (b !== null && !isUtf8Range(b, keyStart, keyStart + keyLength)) throw new KvInputError('the key is not UTF-8', 400);
}

/** [code][keyLength u16] at `room`, with room for the rest of an operation of `size` bytes after `room`. */
function opHeader(code: KvOpCode, keyLength: number, size: number, room: number): Buffer {
  // A pooled Buffer: a fresh ArrayBuffer per command costs about ten times as much here.
  const out = Buffer.allocUnsafe(room + size);
  out[room] = code;
  out[room + 1] = keyLength;
  out[room + 2] = keyLength >>> 8;
  return out;
}

/**
 * An operation's bytes from its parts, after `room` free bytes at the front (where the node puts
 * its envelope, so the command is never copied again). `key` is a string (written as UTF-8) or
 * UTF-8 bytes. Throws KvInputError for an empty, oversized or non-UTF-8 key and oversized values.
 */
export function opBytes(code: KvOpCode, key: string | Uint8Array, expect: Uint8Array | null, value: Uint8Array | null, room: number): Buffer {
  const text = typeof key === 'string';
  const keyLength = text ? Buffer.byteLength(key, 'utf8') : key.byteLength;
  checkParts(text ? null : key, 0, keyLength, expect?.byteLength ?? -1, value?.byteLength ?? -1);
  const out = opHeader(code, keyLength, 3 + keyLength + (expect !== null ? 4 + expect.byteLength : 0) + (value?.byteLength ?? 0), room);
  if (text) out.write(key, room + 3, keyLength, 'utf8');
  else out.set(key, room + 3);
  let at = room + 3 + keyLength;
  if (expect !== null) {
    out.writeUInt32LE(expect.byteLength, at);
    out.set(expect, at + 4);
    at += 4 + expect.byteLength;
  }
  if (value !== null) out.set(value, at);
  return out;
}

/**
 * opBytes for a /client request, whose key, expect and value lie back to back in `src` (the key
 * at keyStart, the value ending at `end`), copied straight from there. A put or delete ignores the
 * expect, a delete the value.
 */
export function opBytesFromRequest(code: KvOpCode, src: Buffer, keyStart: number, keyLength: number, expectLength: number, end: number,
  room: number): Buffer {
  const keyEnd = keyStart + keyLength;
  const valueStart = keyEnd + expectLength;
  const cas = code === KvOpCode.Cas;
  const valueLength = code === KvOpCode.Delete ? 0 : end - valueStart;
  checkParts(src, keyStart, keyLength, cas ? expectLength : -1, valueLength);
  const out = opHeader(code, keyLength, 3 + keyLength + (cas ? 4 + expectLength : 0) + valueLength, room);
  let at = room + 3 + src.copy(out, room + 3, keyStart, keyEnd);
  if (cas) {
    at = out.writeUInt32LE(expectLength, at);
    at += src.copy(out, at, keyEnd, valueStart);
  }
  if (valueLength > 0) src.copy(out, at, valueStart, end);
  return out;
}

/**
 * A put (of no expect) or a delete made in place in `b`, a copy of a /client message the caller
 * owns: the three bytes before the key become the operation's header and the `room` before them
 * the envelope's, which the request's own header (requestHeaderBytes) leaves. No copy per write.
 * Throws KvInputError as opBytes does.
 */
export function opInPlace(code: KvOpCode.Put | KvOpCode.Delete, b: Buffer, keyStart: number, keyLength: number, end: number, room: number): Buffer {
  assert.ok(keyStart >= 3 + room, 'room for the envelope and header before the key');
  const keyEnd = keyStart + keyLength;
  checkParts(b, keyStart, keyLength, -1, code === KvOpCode.Put ? end - keyEnd : -1);
  b[keyStart - 3] = code;
  b[keyStart - 2] = keyLength;
  b[keyStart - 1] = keyLength >>> 8;
  return b.subarray(keyStart - 3 - room, code === KvOpCode.Put ? end : keyEnd);
}

export function decodeOp(b: Uint8Array): KvOp | { error: string } {
  if (b.byteLength < 3) return { error: 'operation shorter than its header' };
  const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const code = b[0];
  const keyLen = view.getUint16(1, true);
  if (keyLen === 0 || keyLen > keyBytesMax) return { error: `key length ${keyLen} out of range` };
  if (3 + keyLen > b.byteLength) return { error: 'key runs past the end' };
  let key: string;
  try {
    key = utf8Strict.decode(b.subarray(3, 3 + keyLen));
  } catch {
    return { error: 'key is not UTF-8' };
  }
  let at = 3 + keyLen;
  switch (code) {
    case KvOpCode.Put:
      if (b.byteLength - at > valueBytesMax) return { error: 'value too large' };
      return { op: 'put', key, value: b.subarray(at) };
    case KvOpCode.Delete:
      if (at !== b.byteLength) return { error: 'delete carries trailing bytes' };
      return { op: 'delete', key };
    case KvOpCode.Cas: {
      if (at + 4 > b.byteLength) return { error: 'expect length runs past the end' };
      const expectLen = view.getUint32(at, true);
      at += 4;
      if (expectLen > valueBytesMax || at + expectLen > b.byteLength) return { error: 'expect runs past the end' };
      const expect = b.subarray(at, at + expectLen);
      at += expectLen;
      if (b.byteLength - at > valueBytesMax) return { error: 'value too large' };
      return { op: 'cas', key, expect, value: b.subarray(at) };
    }
    default:
      return { error: `unknown operation code ${code}` };
  }
}
