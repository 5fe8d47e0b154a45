// The key-value state machine. Every node applies the same operations in the same slot order,
// so every node holds the same map. apply() is deterministic: its outcome depends only on the
// map and the operation, never on local configuration or time (replicas must not diverge).
//
// Keys and values are held as byte strings: each byte of the key's UTF-8 (or of the value) is one
// Latin-1 character. V8 keeps such strings one byte per character on its own heap, so a value
// costs its length and no ArrayBuffer: a fresh ArrayBuffer per value (Uint8Array.slice) costs
// about ten times as much CPU to make and hands the garbage collector off-heap memory to track.
// apply() never decodes UTF-8 (a key's byte length is its string length); only get() converts.

import assert from 'node:assert/strict';
import type { StateMachine } from '../node/state-machine.js';
import { isUtf8Range, keyBytesMax, KvOpCode, valueBytesMax } from './ops.js';

/** What applying one operation did. */
export type KvResult =
  | 'ok'          // put done, delete removed the key, cas swapped
  | 'not-found'   // delete of an absent key
  | 'mismatch'    // cas whose expected value differed (or the key was absent)
  | 'full'        // refused: the store is at keysMax or bytesMax (same on every node)
  | 'bad';        // the command bytes did not decode (nothing changed)

/** The store's bounds. Constants, not options: every replica must refuse the same writes. */
export const keysMax = 16 * 1024 * 1024;
export const bytesMax = 4 * 1024 * 1024 * 1024;

/** Entries snapshotAsync writes per turn of the event loop (about 10 ms here). */
const snapshotSliceEntries = 10_000;

/** Write one snapshot entry at `at`; returns where the next one goes. */
function writeEntry(out: Buffer, at: number, key: string, value: string): number {
  at = out.writeUInt16LE(key.length, at);
  at += out.write(key, at, 'latin1');
  at = out.writeUInt32LE(value.length, at);
  return at + out.write(value, at, 'latin1');
}

/** A Buffer over the same bytes (no copy), for Buffer's string conversions. */
function asBuffer(b: Uint8Array): Buffer {
  return Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.byteLength);
}

export class KvStore implements StateMachine<KvResult> {
  /**
   * The data, as byte strings (see the top of the file). Invariant: every key is 1..keyBytesMax
   * characters whose bytes are valid UTF-8; every value is at most valueBytesMax characters; every
   * character is below 256.
   */
  private map = new Map<string, string>();
  /** Sum of key and value bytes held. Invariant: <= bytesMax. */
  private bytesHeld = 0;

  get size(): number {
    return this.map.size;
  }

  get bytes(): number {
    return this.bytesHeld;
  }

  /** A local read of the applied state (the caller decides whether it is linearizable). A copy. `key` as a string or its UTF-8 bytes. */
  get(key: string | Uint8Array): Uint8Array | undefined {
    const v = this.map.get(typeof key === 'string' ? Buffer.from(key, 'utf8').toString('latin1') : asBuffer(key).toString('latin1'));
    return v === undefined ? undefined : Buffer.from(v, 'latin1');
  }

  apply(command: Uint8Array): KvResult {
    const b = asBuffer(command);
    const n = b.byteLength;
    if (n < 3) return 'bad';
    const code = b[0];
    const keyLen = b[1] | (b[2] << 8);
    if (keyLen === 0 || keyLen > keyBytesMax || 3 + keyLen > n || !isUtf8Range(b, 3, 3 + keyLen)) return 'bad';
    const key = b.toString('latin1', 3, 3 + keyLen);
    let at = 3 + keyLen;
    const old = this.map.get(key);
    switch (code) {
      case KvOpCode.Put:
        if (n - at > valueBytesMax) return 'bad';
        return this.set(key, old, b.toString('latin1', at, n));
      case KvOpCode.Delete:
        if (at !== n) return 'bad';
        if (old === undefined) return 'not-found';
        this.map.delete(key);
        this.bytesHeld -= keyLen + old.length;
        return 'ok';
      case KvOpCode.Cas: {
        if (at + 4 > n) return 'bad';
        const expectLen = b.readUInt32LE(at);
        at += 4;
        if (expectLen > valueBytesMax || at + expectLen > n || n - (at + expectLen) > valueBytesMax) return 'bad';
        if (old === undefined || old !== b.toString('latin1', at, at + expectLen)) return 'mismatch';
        return this.set(key, old, b.toString('latin1', at + expectLen, n));
      }
      default:
        return 'bad';
    }
  }

  private set(key: string, old: string | undefined, value: string): KvResult {
    const grow = old === undefined ? key.length + value.length : value.length - old.length;
    if ((old === undefined && this.map.size >= keysMax) || this.bytesHeld + grow > bytesMax) return 'full';
    this.map.set(key, value);
    this.bytesHeld += grow;
    return 'ok';
  }

  /** [count u32] then per entry [keyLen u16][key][valueLen u32][value]. */
  snapshot(): Uint8Array {
    const out = this.snapshotBuffer();
    let at = 4;
    for (const [key, value] of this.map) at = writeEntry(out, at, key, value);
    assert.equal(at, out.byteLength);
    return out;
  }

  /**
   * snapshot() of the state now, written a slice of entries per turn of the event loop: a store of
   * 100,000 keys took about 100 ms in one go here, long enough for peers to call an election.
   */
  snapshotAsync(): Promise<Uint8Array> {
    // The entries now, copied into two arrays (the strings are shared, not copied): about 3 ms for
    // 100,000 keys here, against 15-30 ms for a copy of the Map. Later applies change only this.map.
    const count = this.map.size;
    const keys: string[] = new Array(count);
    const values: string[] = new Array(count);
    let n = 0;
    this.map.forEach((value, key) => {
      keys[n] = key;
      values[n++] = value;
    });
    const out = this.snapshotBuffer();
    let at = 4;
    let i = 0;
    return new Promise((resolve) => {
      const slice = (): void => {
        for (const end = Math.min(count, i + snapshotSliceEntries); i < end; i++) at = writeEntry(out, at, keys[i], values[i]);
        if (i < count) return void setImmediate(slice);
        assert.equal(at, out.byteLength);
        resolve(out);
      };
      slice();
    });
  }

  /** A snapshot's buffer with its count written: its size follows from the count and bytesHeld. */
  private snapshotBuffer(): Buffer {
    const out = Buffer.allocUnsafeSlow(4 + 6 * this.map.size + this.bytesHeld);
    out.writeUInt32LE(this.map.size, 0);
    return out;
  }

  /** Replace the state with a snapshot; throws on malformed bytes (leaving the state as it was). */
  restore(bytes: Uint8Array): void {
    const b = asBuffer(bytes);
    const fail = (why: string): never => {
      throw new Error(`bad KV snapshot: ${why}`);
    };
    if (b.byteLength < 4) fail('shorter than its header');
    const count = b.readUInt32LE(0);
    if (count > keysMax) fail(`${count} keys`);
    const map = new Map<string, string>();
    let held = 0;
    let at = 4;
    for (let i = 0; i < count; i++) {
      if (at + 2 > b.byteLength) fail('truncated key length');
      const keyLen = b.readUInt16LE(at);
      if (keyLen === 0 || keyLen > keyBytesMax || at + 2 + keyLen + 4 > b.byteLength) fail('bad key');
      if (!isUtf8Range(b, at + 2, at + 2 + keyLen)) fail('key is not UTF-8');
      const key = b.toString('latin1', at + 2, at + 2 + keyLen);
      // A store never holds a key twice; counting one twice would break the bytesHeld invariant.
      if (map.has(key)) fail('a key appears twice');
      at += 2 + keyLen;
      const valueLen = b.readUInt32LE(at);
      if (valueLen > valueBytesMax || at + 4 + valueLen > b.byteLength) fail('bad value');
      map.set(key, b.toString('latin1', at + 4, at + 4 + valueLen));
      at += 4 + valueLen;
      held += keyLen + valueLen;
    }
    if (at !== b.byteLength) fail('trailing bytes');
    this.map = map;
    this.bytesHeld = held;
  }
}
