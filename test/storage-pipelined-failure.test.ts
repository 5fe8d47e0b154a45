// A persist the disk refuses while later persists are already queued: the later transactions
// may commit, but no chosen prefix they write may count on the refused one's records, or the
// node, stopped for the refusal, would never start again ("no record for chosen slots") over
// records that were never durable and so never acknowledged to anyone.

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

test('a persist refused while later ones are queued: no later transaction writes a chosen prefix over its records, and the log opens again', async () => {
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
  assert.equal(settled[0].status, 'rejected', 'the first one is refused');
  await s.close();

  s = LogStore.open({ dir, fsync: true, kernels });
  const { restored, corrupt, missing } = s.load();
  assert.deepEqual([corrupt, missing], [[], []], `chosen prefix ${restored.chosenPrefix} over records ${restored.records.map((r) => r.position).join(',')}`);
  assert.ok(restored.chosenPrefix >= 4, 'what was durable before stays chosen');
  await s.close();
});
