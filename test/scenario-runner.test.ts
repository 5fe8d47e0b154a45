// The scenario runner itself: its file format, its errors, and the rewrite round trip.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatScenario, parseScenario, runScenario } from '../src/sim/scenario.js';

const file = `# What this shows.

cluster nodes=3
----
ok

campaign 1
----
ok

stabilize
----
1->2 PrePrepare ballot=0.1
1->3 PrePrepare ballot=0.1
2->1 PrePromise ballot=0.1 promised=0 granted=true
3->1 PrePromise ballot=0.1 promised=0 granted=true
1 is candidate (leader=0 ballot=0.1)
1->2 Prepare ballot=0.1 fromSlot=1
1->3 Prepare ballot=0.1 fromSlot=1
2->1 Promise ballot=0.1 fromSlot=1 chosenPrefix=1 coverFrom=1 more=false entries=[]
3->1 Promise ballot=0.1 fromSlot=1 chosenPrefix=1 coverFrom=1 more=false entries=[]
1 is leader (leader=1 ballot=0.1)
1->2 Heartbeat ballot=0.1 chosenPrefix=1 seq=1
1->3 Heartbeat ballot=0.1 chosenPrefix=1 seq=1
2 is follower (leader=1 ballot=0.1)
3 is follower (leader=1 ballot=0.1)
2->1 HeartbeatAck ballot=0.1 chosenPrefix=1 seq=1
3->1 HeartbeatAck ballot=0.1 chosenPrefix=1 seq=1
`;

test('a scenario parses into its opening paragraph and blocks, and formats back unchanged', () => {
  const f = parseScenario(file);
  assert.equal(f.header, '# What this shows.');
  assert.deepEqual(f.blocks.map((b) => [b.command, b.line]), [['cluster nodes=3', 3], ['campaign 1', 7], ['stabilize', 11]]);
  assert.equal(formatScenario(f, f.blocks.map((b) => b.expected)), file);
});

test('running a scenario prints what the file expects', () => {
  const f = parseScenario(file);
  assert.deepEqual(runScenario(f, 'multipaxos'), f.blocks.map((b) => b.expected));
});

test('a file without an opening paragraph, or a command without "----", is refused with its line', () => {
  assert.throws(() => parseScenario('cluster nodes=3\n----\nok\n', 'x.txt'), /x\.txt: a scenario opens with a '#' paragraph/);
  assert.throws(() => parseScenario('# p\n\ncampaign 1\nok\n', 'y.txt'), /y\.txt:3: expected "----" after the command "campaign 1"/);
});

test('bad commands print a clear error as their output and the run goes on', () => {
  const f = parseScenario('# p\n\ncampaign 1\n----\n\ncluster nodes=3\n----\n\nfly 1\n----\n\npropose 9 x\n----\n\ndeliver drop=[1]\n----\n\nread 1 stale 1\n----\n\nstatus 1\n----\n');
  const out = runScenario(f, 'multipaxos');
  assert.match(out[0], /^error: no cluster yet/);
  assert.equal(out[1], 'ok');
  assert.equal(out[2], 'error: unknown command "fly"');
  assert.equal(out[3], 'error: no node 9');
  assert.match(out[4], /^error: drop= takes a list like/);
  assert.equal(out[5], 'error: read mode must be lease or quorum, not stale');
  assert.match(out[6], /^1: follower leader=0 /);
});

test('an unknown protocol is refused by name', () => {
  assert.throws(() => runScenario(parseScenario('# p\n\ncluster nodes=3\n----\n'), 'zab'), /unknown protocol "zab": expected one of multipaxos/);
});
