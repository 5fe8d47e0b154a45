// A persist the disk refuses while later persists are already queued: none of the later
// transactions commits. Durable writes are a prefix of the Readys: a later one committed without
// the refused one left a Raft log spliced (a truncation lost, its old tail under newer entries),
// and a chosen prefix written over records that were never durable would keep the node, stopped
// for the refusal, from ever starting again ("no record for chosen slots").

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadKernels } from '../src/kernels/index.js';
import { LogStore } from '../src/storage/log-store.js';
import { failCommits } from './lmdb-faults.js';

const kernels = loadKernels('js');
const tmp = (): string => fs.mkdtempSync(path.join(os.tmpdir(), 'paxlog-pipelined-failure-'));
const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);
const none = { snapshot: null, hardState: null, truncateFrom: 0, records: [], chosenPrefix: 0 };
const rec = (p: number) => ({ position: p, ballot: 1, value: bytes(`v${p}`) });

test('a persist refused while later ones are queued: no later transaction commits, and the log opens again as it was before', async () => {
  const dir = tmp();
  let s = LogStore.open({ dir, fsync: true, kernels });
  s.load();
  await s.persist({ ...none, records: [1, 2, 3].map(rec), chosenPrefix: 4 });
  // The first transaction asked for from here is refused (a transient EIO); those queued behind it commit.
  let asked = 0;
  failCommits(s, () => asked++ === 0);
  const refused = s.persist({ ...none, records: [rec(4), rec(5)], chosenPrefix: 4 });
  const later = [
    s.persist({ ...none, records: [rec(6)], chosenPrefix: 6 }), // counts on 4 and 5
    s.persist({ ...none, chosenPrefix: 7 }), // a prefix alone
    s.persist({ ...none, records: [rec(7)], chosenPrefix: 8 }),
  ];
  const settled = await Promise.allSettled([refused, ...later]);
  assert.deepEqual(settled.map((x) => x.status), ['rejected', 'rejected', 'fulfilled', 'rejected'], 'every later transaction is refused (a prefix alone writes none)');
  assert.match(String((settled[1] as PromiseRejectedResult).reason), /an earlier write \(number \d+\) did not commit/);
  await s.close();

  s = LogStore.open({ dir, fsync: true, kernels });
  const { restored, corrupt, missing } = s.load();
  assert.deepEqual([corrupt, missing], [[], []], `chosen prefix ${restored.chosenPrefix} over records ${restored.records.map((r) => r.position).join(',')}`);
  assert.ok(restored.chosenPrefix >= 4, 'what was durable before stays chosen');
  assert.deepEqual(restored.records.map((r) => r.position), [1, 2, 3], 'none of the later records is there');
  // This life's first persist follows what the log holds.
  assert.equal(await s.persist({ ...none, records: [rec(4)], chosenPrefix: 5 }), true);
  await s.close();
});
