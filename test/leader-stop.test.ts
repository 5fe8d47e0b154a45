// A leader stopped gracefully (stop(), SIGINT) tells its followers as its links close (code 1001),
// and one of them takes over at once instead of an election timeout later. Three nodes in this
// process, ports 27460-27462.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { createNode, type PaxlogNode } from '../src/index.js';
import { Journal } from './journal.js';

for (const protocol of ['multipaxos', 'raft'] as const) {
  test(`${protocol}: a leader that stops is replaced long before an election timeout, and nothing acknowledged is lost`, { timeout: 60_000 }, async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), `paxlog-leader-stop-${protocol}-`));
    const peers = '1=127.0.0.1:27460,2=127.0.0.1:27461,3=127.0.0.1:27462';
    // An election timeout of 3 to 4 s (300 to 400 ticks of 10 ms): a follower that waited it out
    // could not lead before 3 s after the last word from its leader.
    const config = { electionTicksMin: 300, electionTicksMax: 400 };
    const journals = [new Journal(), new Journal(), new Journal()];
    const nodes: PaxlogNode<number>[] = await Promise.all([1, 2, 3].map((id) => createNode({
      id, peers, dataDir: path.join(dir, `n${id}`), stateMachine: journals[id - 1], protocol, secret: 's', tickMs: 10, newCluster: true,
      config, logger: pino({ level: 'silent' }),
    })));
    const stopped = new Set<number>();
    try {
      await nodes[0].whenLeader(20_000);
      const leader = nodes.find((n) => n.status().role === 'leader')!;
      const id = leader.status().id;
      assert.equal(await leader.propose(new TextEncoder().encode('before')), 1, 'the first command applied');
      const rest = nodes.filter((n) => n !== leader);
      // Until the followers have heard that 'before' is chosen, the new leader could be one without it.
      for (let i = 0; i < 200 && rest.some((n) => n.status().applied < leader.status().applied); i++) await new Promise((r) => setTimeout(r, 10));
      const began = performance.now();
      await leader.stop();
      stopped.add(id);
      let next: PaxlogNode<number> | undefined;
      while (next === undefined && performance.now() - began < 2500) {
        await new Promise((r) => setTimeout(r, 10));
        next = rest.find((n) => n.status().role === 'leader');
      }
      assert.ok(next, `no leader 2.5 s after node ${id} stopped: the followers waited out their election timeout`);
      assert.equal(await next.propose(new TextEncoder().encode('after')), 2);
      assert.deepEqual(journals[next.status().id - 1].lines, ['before', 'after']);
    } finally {
      for (const n of nodes) if (!stopped.has(n.status().id)) await n.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
}
