// The key-value state machine. Every node applies the same operations in the same slot order,
// so every node holds the same map. apply() is deterministic: its outcome depends only on the
// map and the operation, never on local configuration or time (replicas must not diverge).

import assert from 'node:assert/strict';
import type { StateMachine } from '../node/state-machine.js';
import { decodeOp, keyBytesMax, valueBytesMax, type KvOp } from './ops.js';

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

const utf8 = new TextEncoder();
const utf8Strict = new TextDecoder('utf-8', { fatal: true });

export class KvStore implements StateMachine<KvResult> {
  /** The data. Invariant: every key is 1..keyBytesMax UTF-8 bytes, every value <= valueBytesMax. */
  private map = new Map<string, Uint8Array>();
  /** Sum of key and value bytes held. Invariant: <= bytesMax. */
  private bytesHeld = 0;

  get size(): number {
    return this.map.size;
  }

  get bytes(): number {
    return this.bytesHeld;
  }

  /** A local read of the applied state (the caller decides whether it is linearizable). */
  get(key: string): Uint8Array | undefined {
    return this.map.get(key);
  }

  apply(command: Uint8Array): KvResult {
    const o = decodeOp(command);
    if ('error' in o) return 'bad';
    return this.applyOp(o);
  }

  private applyOp(o: KvOp): KvResult {
    const old = this.map.get(o.key);
    const keyLen = utf8.encode(o.key).byteLength;
    if (o.op === 'delete') {
      if (old === undefined) return 'not-found';
      this.map.delete(o.key);
      this.bytesHeld -= keyLen + old.byteLength;
      return 'ok';
    }
    if (o.op === 'cas' && (old === undefined || !equalBytes(old, o.expect))) return 'mismatch';
    const grow = old === undefined ? keyLen + o.value.byteLength : o.value.byteLength - old.byteLength;
    if ((old === undefined && this.map.size >= keysMax) || this.bytesHeld + grow > bytesMax) return 'full';
    // The command's bytes belong to the slot's batch; keep a copy of just the value.
    this.map.set(o.key, o.value.slice());
    this.bytesHeld += grow;
    return 'ok';
  }

  /** [count u32] then per entry [keyLen u16][key][valueLen u32][value]. */
  snapshot(): Uint8Array {
    const parts: Uint8Array[] = [];
    let size = 4;
    for (const [key, value] of this.map) {
      const k = utf8.encode(key);
      parts.push(k, value);
      size += 2 + k.byteLength + 4 + value.byteLength;
    }
    const out = new Uint8Array(size);
    const view = new DataView(out.buffer);
    view.setUint32(0, this.map.size, true);
    let at = 4;
    for (let i = 0; i < parts.length; i += 2) {
      view.setUint16(at, parts[i].byteLength, true);
      out.set(parts[i], at + 2);
      at += 2 + parts[i].byteLength;
      view.setUint32(at, parts[i + 1].byteLength, true);
      out.set(parts[i + 1], at + 4);
      at += 4 + parts[i + 1].byteLength;
    }
    assert.equal(at, size);
    return out;
  }

  /** Replace the state with a snapshot; throws on malformed bytes (leaving the state as it was). */
  restore(bytes: Uint8Array): void {
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const fail = (why: string): never => {
      throw new Error(`bad KV snapshot: ${why}`);
    };
    if (bytes.byteLength < 4) fail('shorter than its header');
    const count = view.getUint32(0, true);
    if (count > keysMax) fail(`${count} keys`);
    const map = new Map<string, Uint8Array>();
    let held = 0;
    let at = 4;
    for (let i = 0; i < count; i++) {
      if (at + 2 > bytes.byteLength) fail('truncated key length');
      const keyLen = view.getUint16(at, true);
      if (keyLen === 0 || keyLen > keyBytesMax || at + 2 + keyLen + 4 > bytes.byteLength) fail('bad key');
      let key = '';
      try {
        key = utf8Strict.decode(bytes.subarray(at + 2, at + 2 + keyLen));
      } catch {
        fail('key is not UTF-8');
      }
      at += 2 + keyLen;
      const valueLen = view.getUint32(at, true);
      if (valueLen > valueBytesMax || at + 4 + valueLen > bytes.byteLength) fail('bad value');
      map.set(key, bytes.slice(at + 4, at + 4 + valueLen));
      at += 4 + valueLen;
      held += keyLen + valueLen;
    }
    if (at !== bytes.byteLength) fail('trailing bytes');
    this.map = map;
    this.bytesHeld = held;
  }
}

export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.byteLength === b.byteLength && Buffer.compare(a, b) === 0;
}
