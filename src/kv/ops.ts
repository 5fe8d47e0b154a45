// The key-value operations as bytes: what a client's write becomes inside a slot's batch.
//
//   put     [1][keyLen u16][key][value...]
//   delete  [2][keyLen u16][key]
//   cas     [3][keyLen u16][key][expectLen u32][expect][value...]
//
// Numbers are little-endian. Keys are UTF-8. The decoder never throws: bad bytes give a reason.

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

const utf8 = new TextEncoder();
const utf8Strict = new TextDecoder('utf-8', { fatal: true });

/** A user-caused problem with an operation; `status` is the HTTP status it maps to. */
export class KvInputError extends Error {
  override name = 'KvInputError';
  constructor(message: string, readonly status: 400 | 413) {
    super(message);
  }
}

/** Checks a key's size; throws KvInputError (413 if too long, 400 if empty). */
export function keyBytes(key: string): Uint8Array {
  const k = utf8.encode(key);
  if (k.byteLength === 0) throw new KvInputError('the key is empty', 400);
  if (k.byteLength > keyBytesMax) throw new KvInputError(`the key is ${k.byteLength} bytes; at most ${keyBytesMax}`, 413);
  return k;
}

export function encodeOp(o: KvOp): Uint8Array {
  const k = keyBytes(o.key);
  const value = o.op === 'delete' ? new Uint8Array(0) : o.value;
  if (value.byteLength > valueBytesMax) {
    throw new KvInputError(`the value is ${value.byteLength} bytes; at most ${valueBytesMax}`, 413);
  }
  const expect = o.op === 'cas' ? o.expect : null;
  if (expect !== null && expect.byteLength > valueBytesMax) {
    throw new KvInputError(`the expected value is ${expect.byteLength} bytes; at most ${valueBytesMax}`, 413);
  }
  const size = 3 + k.byteLength + (expect !== null ? 4 + expect.byteLength : 0) + value.byteLength;
  const out = new Uint8Array(size);
  const view = new DataView(out.buffer);
  out[0] = o.op === 'put' ? KvOpCode.Put : o.op === 'delete' ? KvOpCode.Delete : KvOpCode.Cas;
  view.setUint16(1, k.byteLength, true);
  out.set(k, 3);
  let at = 3 + k.byteLength;
  if (expect !== null) {
    view.setUint32(at, expect.byteLength, true);
    out.set(expect, at + 4);
    at += 4 + expect.byteLength;
  }
  out.set(value, at);
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
