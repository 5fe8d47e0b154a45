// A command proposed through the library API must fit in one peer frame (FRAME_BYTES_MAX): on a
// follower it is forwarded as one Propose, on the leader it takes a slot, sent in one Accept. One
// that does not fit is refused with a clear error; the node does not die encoding it and keeps
// serving. Embedded nodes in this process, ports 18320-18322.

import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { createNode, RequestError, type PaxlogNode, type StateMachine } from '../src/index.js';
import { FRAME_BYTES_MAX } from '../src/kernels/index.js';

class Sizes implements StateMachine<number> {
  applied: number[] = [];
  apply(command: Uint8Array): number { this.applied.push(command.byteLength); return command.byteLength; }
  snapshot(): Uint8Array { return new TextEncoder().encode(JSON.stringify(this.applied)); }
  restore(bytes: Uint8Array): void { this.applied = JSON.parse(new TextDecoder().decode(bytes)) as number[]; }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('a command too large for a frame', { timeout: 60_000 }, () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'paxlog-too-large-'));
  const peers = '1=127.0.0.1:18320,2=127.0.0.1:18321,3=127.0.0.1:18322';
  const nodes: PaxlogNode<number>[] = [];
  after(async () => {
    for (const n of nodes) await n.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const refusal = async (p: Promise<unknown>): Promise<RequestError> => {
    try {
      await p;
    } catch (e) {
      assert.ok(e instanceof RequestError, `not a RequestError: ${e}`);
      return e;
    }
    assert.fail('proposed');
  };

  test('is refused on a follower and on the leader, and both go on serving', async () => {
    for (const id of [1, 2, 3]) {
      nodes.push(await createNode({ id, peers, dataDir: path.join(dir, `n${id}`), stateMachine: new Sizes(), secret: 's', tickMs: 50, newCluster: true, logger: pino({ level: 'silent' }) }));
    }
    let leaderId = 0;
    for (let i = 0; i < 500 && leaderId === 0; i++) {
      await sleep(20);
      const l = nodes[0].status().leader;
      if (l !== 0 && nodes.every((n) => n.status().leader === l)) leaderId = l;
    }
    assert.ok(leaderId !== 0, 'a leader');
    const leader = nodes.find((n) => n.id === leaderId)!;
    const follower = nodes.find((n) => n.id !== leaderId)!;

    // Forwarded as one Propose longer than a frame: the follower's send threw and ended the process.
    const a = await refusal(follower.propose(new Uint8Array(FRAME_BYTES_MAX + 1024)));
    assert.equal((a as { kind: string }).kind, 'too-large');
    // Within the leader's pending bytes, but its slot's Accept is longer than a frame.
    const b = await refusal(leader.propose(new Uint8Array(FRAME_BYTES_MAX - 64)));
    assert.equal((b as { kind: string }).kind, 'too-large');

    // Both still serve, and a command of a MiB goes through. On a loaded machine the cluster may
    // change leader meanwhile (a MiB synced on each node holds its loop up): a write pending then
    // ends 'timeout' (outcome unknown) or 'no-leader', and is asked again; any other error fails.
    await sleep(100);
    const served = async (n: PaxlogNode<number>, bytes: number): Promise<number> => {
      for (let attempt = 1; ; attempt++) {
        try {
          return await n.propose(new Uint8Array(bytes));
        } catch (e) {
          const kind = (e as { kind?: string }).kind;
          if (attempt === 5 || !(kind === 'timeout' || kind === 'no-leader')) throw e;
          await sleep(200);
        }
      }
    };
    assert.equal(await served(follower, 1024 * 1024), 1024 * 1024);
    assert.equal(await served(leader, 10), 10);
  });
});
