// Disk faults in LMDB, injected in JavaScript: a test must not depend on a compiled LD_PRELOAD
// shim (CI cannot build one). Failed commits (failCommits) and flipped stored bits (flipStoredBits).

import path from 'node:path';
import { ABORT, open, type RootDatabase } from 'lmdb';
import type { LogStore } from '../src/storage/log-store.js';

/**
 * Flip the `mask` bits of one stored byte directly in LMDB, as a bad disk would (the log must be
 * closed): byte `at` of the value under `key`, modulo its length; a negative `at` counts from the end.
 */
export async function flipStoredBits(dir: string, db: 'log' | 'meta', key: number | string, at: number, mask: number): Promise<void> {
  const root = open({ path: path.join(dir, 'paxlog.mdb'), maxDbs: 4 });
  const d = root.openDB<Buffer, number | string>({ name: db, encoding: 'binary' });
  const b = Buffer.from(d.getBinary(key)!);
  b[at < 0 ? b.length + at : at % b.length] ^= mask;
  d.putSync(key, b);
  await root.close();
}

/** The store's LMDB environment (a private field, reached for fault injection only). */
export const rootOf = (store: LogStore): RootDatabase => (store as unknown as { root: RootDatabase }).root;

/**
 * Make a store's asynchronous commits fail as lmdb-js fails them when the disk refuses the sync
 * (EIO): while `failing()` says so, a transaction's body runs in a real (child) transaction that is
 * then rolled back, so that it sees and does what it would, and nothing reaches the disk; its
 * promise rejects with lmdb-js's own error, "Commit failed (see commitError for details)", whose
 * cause is a second promise, already rejected, on that error (`commitError`), as lmdb-js makes it.
 * `failing` is asked once per transaction, as it is asked for. Returns a function that gives the
 * store its own transactions back.
 */
export function failCommits(store: LogStore, failing: () => boolean = () => true): () => void {
  const root = rootOf(store);
  const transaction = root.transaction;
  root.transaction = <T>(body: () => T): Promise<T> => {
    if (!failing()) return transaction.call(root, body) as Promise<T>;
    return root.childTransaction(() => {
      body();
      return ABORT;
    }).then(() => {
      const cause = Object.assign(new Error('Input/output error'), { code: 5 });
      throw Object.assign(new Error('Commit failed (see commitError for details)'), { commitError: Promise.reject(cause) });
    });
  };
  return () => {
    root.transaction = transaction;
  };
}
