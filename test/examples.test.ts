// The examples run as documented in examples/README.md: against a live node, and with a bad URL.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { oneNodeKv } from './one-node-kv.js';

const examples = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'examples');
/** Run an example to its end (asynchronously: the node under test lives in this process). */
const run = (file: string, ...args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> =>
  new Promise((resolve) => {
    execFile(process.execPath, [path.join(examples, file), ...args], { encoding: 'utf8', timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ status: err === null ? 0 : typeof err.code === 'number' ? err.code : null, stdout, stderr });
    });
  });

describe('examples', () => {
  const peerPort = 27400;
  oneNodeKv(peerPort, 'examples');

  it('kv-client writes, reads, swaps and misses against a node, as its comments say', async () => {
    const r = await run('kv-client.js', `ws://127.0.0.1:${peerPort + 1}/client`);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^100 pipelined PUTs: 100 answered 200 in /m);
    assert.match(r.stdout, /^GET example-42 \(linearizable\): value 42$/m);
    assert.match(r.stdout, /^compare-and-set example-42: 200 ; now swapped$/m);
    assert.match(r.stdout, /^GET no-such-key: 404 /m);
  });

  it('kv-client says what is wrong with a bad URL or a missing node, exits 1, and prints no stack trace', async () => {
    for (const [url, reason] of [['not-a-url', /Invalid URL/], [`ws://127.0.0.1:${peerPort + 2}/client`, /ECONNREFUSED/]] as const) {
      const r = await run('kv-client.js', url);
      assert.equal(r.status, 1, r.stderr);
      assert.match(r.stderr, new RegExp(`^kv-client: cannot reach a node at ${url.replace(/[.]/g, '\\.')}: `));
      assert.match(r.stderr, reason);
      assert.doesNotMatch(r.stderr, /^\s+at /m);
    }
  });

  it('embedded-counter replicates its increments to every node and stops by itself', async () => {
    const r = await run('embedded-counter.js');
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^total after \+5 on node 1: 5$/m);
    assert.match(r.stdout, /^total after \+10 on node 2: 15$/m);
    assert.match(r.stdout, /^total after -3 on node 3: 12$/m);
    assert.match(r.stdout, /^node 2 reads \(linearizable\): 12$/m);
  });
});
