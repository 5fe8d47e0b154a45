// Embedding paxlog: three nodes in one process replicate a counter state machine.
// Run: npm run build && node dist/examples/embedded-counter.js
// It proposes increments on different nodes, reads linearizably, prints what was applied, and stops.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createNode, type PaxlogNode, type StateMachine } from '../src/index.js';

/** A counter: commands are signed 32-bit increments; apply returns the new total. */
class Counter implements StateMachine<number> {
  /** The sum of every applied increment. */
  total = 0;

  apply(command: Uint8Array): number {
    if (command.byteLength !== 4) return this.total; // bad bytes change nothing, on every node alike
    this.total += new DataView(command.buffer, command.byteOffset, 4).getInt32(0, true);
    return this.total;
  }

  snapshot(): Uint8Array {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setFloat64(0, this.total, true);
    return b;
  }

  restore(bytes: Uint8Array): void {
    if (bytes.byteLength !== 8) throw new Error('bad counter snapshot');
    this.total = new DataView(bytes.buffer, bytes.byteOffset, 8).getFloat64(0, true);
  }
}

const increment = (n: number): Uint8Array => {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setInt32(0, n, true);
  return b;
};

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'paxlog-example-'));
const peers = '1=127.0.0.1:7401,2=127.0.0.1:7402,3=127.0.0.1:7403';
const counters = [new Counter(), new Counter(), new Counter()];
const nodes: PaxlogNode<number>[] = [];
// newCluster: these data directories are new and belong to a new cluster, so the nodes vote at once.
// Without it a new directory might be a wiped one: each node would warn and rejoin without voting
// (see "Known limits of rejoining" in the README). Never pass it to restart a node whose disk was wiped.
for (let id = 1; id <= 3; id++) {
  nodes.push(await createNode({ id, peers, dataDir: path.join(dir, `n${id}`), stateMachine: counters[id - 1], secret: 'example-secret', newCluster: true }));
}
nodes[2].on('applied', ({ slot, result }) => console.log(`node 3 applied slot ${slot}: total ${result}`));

// Proposals may start before a leader is elected: retry while the cluster says so.
async function propose(node: PaxlogNode<number>, n: number): Promise<number> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await node.propose(increment(n));
    } catch (e) {
      if (attempt > 50 || !(e as { surelyNotProposed?: boolean }).surelyNotProposed) throw e;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

console.log('total after +5 on node 1:', await propose(nodes[0], 5));
console.log('total after +10 on node 2:', await propose(nodes[1], 10));
console.log('total after -3 on node 3:', await propose(nodes[2], -3));
await nodes[1].read();
console.log('node 2 reads (linearizable):', counters[1].total);
console.log('status of node 1:', JSON.stringify(nodes[0].status()));
for (const n of nodes) await n.stop();
fs.rmSync(dir, { recursive: true, force: true });
