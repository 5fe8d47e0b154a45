// The key-value operations as bytes: what a client's write becomes inside a slot's batch.
//
//   put     [1][keyLen u16][key][value...]
//   delete  [2][keyLen u16][key]
//   cas     [3][keyLen u16][key][expectLen u32][expect][value...]
//
// Numbers are little-endian. Keys are UTF-8. The decoder never throws: bad bytes give a reason.

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

const utf8Strict = new TextDecoder('utf-8', { fatal: true });

/** A user-caused problem with an operation; `status` is the HTTP status it maps to. */
export class KvInputError extends Error {
  override name = 'KvInputError';
  constructor(message: string, readonly status: 400 | 413) {
    super(message);
  }
}

/** Checks a key's size; throws KvInputError (413 if too long, 400 if empty). */
export function checkKey(key: string): void {
  const n = Buffer.byteLength(key, 'utf8');
  if (n === 0) throw new KvInputError('the key is empty', 400);
  if (n > keyBytesMax) throw new KvInputError(`the key is ${n} bytes; at most ${keyBytesMax}`, 413);
}

export function encodeOp(o: KvOp): Uint8Array {
  return opBytes(o.op === 'put' ? KvOpCode.Put : o.op === 'delete' ? KvOpCode.Delete : KvOpCode.Cas, Buffer.from(o.key, 'utf8'),
    o.op === 'cas' ? o.expect : null, o.op === 'delete' ? null : o.value, 0);
}

/**
 * An operation's bytes from its parts, after `room` free bytes at the front (where the node puts
 * its envelope, so the command is never copied again). `key` is UTF-8 bytes. Throws KvInputError
 * for an empty, oversized or non-UTF-8 key and oversized values. The result is a pooled Buffer:
 * a fresh ArrayBuffer per command costs about ten times as much here.
 */
export function opBytes(code: KvOpCode, key: Uint8Array, expect: Uint8Array | null, value: Uint8Array | null, room: number): Buffer {
  if (key.byteLength === 0) throw new KvInputError('the key is empty', 400);
  if (key.byteLength > keyBytesMax) throw new KvInputError(`the key is ${key.byteLength} bytes; at most ${keyBytesMax}`, 413);
  if (!isUtf8(key)) throw new KvInputError('the key is not UTF-8', 400);
  if (value !== null && value.byteLength > valueBytesMax) {
    throw new KvInputError(`the value is ${value.byteLength} bytes; at most ${valueBytesMax}`, 413);
  }
  if (expect !== null && expect.byteLength > valueBytesMax) {
    throw new KvInputError(`the expected value is ${expect.byteLength} bytes; at most ${valueBytesMax}`, 413);
  }
  const size = room + 3 + key.byteLength + (expect !== null ? 4 + expect.byteLength : 0) + (value?.byteLength ?? 0);
  const out = Buffer.allocUnsafe(size);
  out[room] = code;
  out.writeUInt16LE(key.byteLength, room + 1);
  out.set(key, room + 3);
  let at = room + 3 + key.byteLength;
  if (expect !== null) {
    out.writeUInt32LE(expect.byteLength, at);
    out.set(expect, at + 4);
    at += 4 + expect.byteLength;
  }
  if (value !== null) out.set(value, at);
  return out;
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
