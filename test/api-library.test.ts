// The library API: three embedded nodes in this process with an application's own state machine
// (propose, linearizable read, 'applied' events, restart from snapshot and log). Ports 17450-17469.

import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { createNode, FatalError, PaxlogClient, RequestError, startKvServer, type Applied, type PaxlogNode } from '../src/index.js';
import { PaxlogNode as Node } from '../src/node/node.js';
import type { LogStore } from '../src/storage/log-store.js';
import { parsePeers } from '../src/transport/addresses.js';
import { failCommits, flipStoredBits } from './lmdb-faults.js';
import { Journal } from './journal.js';

const text = (s: string): Uint8Array => new TextEncoder().encode(s);

async function proposeRetrying(node: PaxlogNode<number>, command: string): Promise<number> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await node.propose(text(command));
    } catch (e) {
      if (!(e instanceof RequestError) || !e.surelyNotProposed || attempt > 200) throw e;
      await new Promise((r) => setTimeout(r, 20));
    }
  }
}

/** Open a node on `opts`, and check that its first write is applied as the first command; then stop it. */
async function servesOneWrite(opts: Parameters<typeof createNode<number>>[0]): Promise<void> {
  const node = await createNode(opts);
  try {
    assert.equal(await proposeRetrying(node, 'a'), 1);
  } finally {
    await node.stop();
  }
}

describe('embedding paxlog with your own state machine', { timeout: 60_000 }, () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'paxlog-lib-'));
  const peers = '1=127.0.0.1:17450,2=127.0.0.1:17451,3=127.0.0.1:17452';
  const journals = new Map<number, Journal>();
  const nodes = new Map<number, PaxlogNode<number>>();
  const options = (id: number, j: Journal) => ({
    id, peers, dataDir: path.join(dir, `n${id}`), stateMachine: j, secret: 'lib-test', tickMs: 10,
    snapshotSlots: 4, logger: pino({ level: 'silent' }),
  });
  const open = async (id: number): Promise<PaxlogNode<number>> => {
    const j = new Journal();
    journals.set(id, j);
    const n = await createNode(options(id, j));
    nodes.set(id, n);
    return n;
  };
  after(async () => {
    for (const n of nodes.values()) await n.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  /** The leader every running node agrees on (a forwarded proposal to a leader that is changing has an unknown outcome). */
  const agreedLeader = async (): Promise<number> => {
    for (let i = 0; i < 500; i++) {
      const leaders = new Set([...nodes.values()].map((n) => n.status().leader));
      const [l] = [...leaders];
      if (leaders.size === 1 && l !== 0) return l;
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.fail('the nodes never agreed on a leader');
  };

  test('propose on any node returns the state machine result; every node applies the same commands in order', async () => {
    for (let id = 1; id <= 3; id++) await open(id);
    await agreedLeader();
    const seen: Applied<number>[] = [];
    nodes.get(3)!.on('applied', (a) => seen.push(a));
    for (let i = 0; i < 9; i++) {
      const n = await proposeRetrying(nodes.get((i % 3) + 1)!, `cmd-${i}`);
      assert.equal(n, i + 1, 'apply() returned the journal length to the proposer');
    }
    await nodes.get(2)!.read();
    await nodes.get(3)!.read('quorum');
    await nodes.get(1)!.read('lease');
    const want = Array.from({ length: 9 }, (_, i) => `cmd-${i}`);
    for (const [id, j] of journals) assert.deepEqual(j.lines, want, `node ${id}`);
    assert.deepEqual(seen.map((a) => new TextDecoder().decode(a.command)), want);
    assert.ok(seen.every((a, i) => i === 0 || a.slot >= seen[i - 1].slot), 'applied events come in slot order');
  });

  test('a stopped node restarts from its snapshot and log and catches up', async () => {
    const leader = await agreedLeader();
    const down = [1, 2, 3].find((id) => id !== leader)!;
    await nodes.get(down)!.stop();
    nodes.delete(down);
    for (let i = 9; i < 14; i++) await proposeRetrying(nodes.get(leader)!, `cmd-${i}`);
    const restarted = await open(down);
    const j = journals.get(down)!;
    assert.equal(j.restores, 1, 'the snapshot was restored on open');
    for (let i = 0; i < 500 && j.lines.length < 14; i++) await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(j.lines, Array.from({ length: 14 }, (_, i) => `cmd-${i}`));
    assert.equal(restarted.status().appliedPrefix > 1, true);
  });

  for (const disk of ['works', 'refuses the install'] as const) test(`a node stopped while it saves a snapshot installed from a peer stops cleanly and restarts (the disk ${disk})`, async () => {
    const leader = await agreedLeader();
    const down = [1, 2, 3].find((id) => id !== leader)!;
    await nodes.get(down)!.stop();
    nodes.delete(down);
    const want = journals.get(leader)!.lines.length + 12;
    for (let i = 0; i < 12; i++) await proposeRetrying(nodes.get(leader)!, `stop-${disk}-${i}`);
    // Open it again, and stop it the moment its Ready with the leader's snapshot (the leader trimmed
    // below it) goes to the log: the snapshot's file is being written then, as node.stop() finds it.
    const node = Node.open({ ...options(down, new Journal()), peers: parsePeers(peers) });
    const store = (node as unknown as { store: LogStore }).store;
    let stopping: Promise<void> | null = null;
    const persist = store.persist.bind(store);
    store.persist = (b, inline) => {
      const p = persist(b, inline);
      if (b.snapshot !== null) stopping ??= node.stop();
      return p;
    };
    // The first commit asked for once stopping began is the install's: the disk may refuse it alone.
    let refused = 0;
    failCommits(store, () => disk !== 'works' && stopping !== null && refused++ === 0);
    // stopFatally would exit the process: counted instead.
    const exits: (string | number | null | undefined)[] = [];
    const exit = process.exit;
    process.exit = ((code) => void exits.push(code)) as typeof process.exit;
    try {
      await node.start();
      for (let i = 0; i < 500 && stopping === null; i++) await new Promise((r) => setTimeout(r, 20));
      assert.ok(stopping !== null, 'the node installed a snapshot');
      await stopping;
      await new Promise((r) => setTimeout(r, 100));
      assert.deepEqual(exits, [], 'a node stopped gracefully does not exit as if fatally');
    } finally {
      process.exit = exit;
      await node.stop();
    }
    await open(down);
    const again = journals.get(down)!;
    for (let i = 0; i < 500 && again.lines.length < want; i++) await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(again.lines, journals.get(leader)!.lines, 'it restarts from its log and catches up');
  });
});

test('a node whose log has a corrupt accepted slot refuses to start, naming the slot', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'paxlog-lib-corrupt-'));
  const peers = '1=127.0.0.1:17460';
  const node = await createNode({ id: 1, peers, dataDir: dir, stateMachine: new Journal(), tickMs: 10, logger: pino({ level: 'silent' }) });
  await proposeRetrying(node, 'one');
  await proposeRetrying(node, 'two');
  await node.stop();
  await flipStoredBits(dir, 'log', 2, -1, 0x01);
  await assert.rejects(
    createNode({ id: 1, peers, dataDir: dir, stateMachine: new Journal(), tickMs: 10, logger: pino({ level: 'silent' }) }),
    /corrupt accepted slots \(2\); refusing to start/);
  fs.rmSync(dir, { recursive: true, force: true });
});

test('a snapshot the disk refuses does not stop the node: writes go on, the request fails, and a later one is saved', { timeout: 30_000 }, async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'paxlog-lib-snapfail-'));
  const peers = '1=127.0.0.1:17461';
  const open = (j: Journal) => createNode({ id: 1, peers, dataDir: dir, stateMachine: j, tickMs: 10, snapshotSlots: 3, newCluster: true, logger: pino({ level: 'silent' }) });
  let node = await open(new Journal());
  // Directories where the snapshots' temporary files go stand in for a disk that refuses them.
  const blocks = Array.from({ length: 100 }, (_, i) => path.join(dir, `paxlog.mdb.snapshot-${i + 2}.tmp`));
  for (const b of blocks) fs.mkdirSync(b);
  for (let i = 0; i < 12; i++) assert.equal(await proposeRetrying(node, `c${i}`), i + 1);
  await assert.rejects(node.snapshot(), /EISDIR/);
  assert.equal(node.status().role, 'leader', 'the node still leads');
  for (const b of blocks) fs.rmSync(b, { recursive: true });
  const prefix = await node.snapshot();
  assert.equal(prefix, node.status().appliedPrefix);
  await node.stop();
  const j = new Journal();
  node = await open(j);
  assert.equal(j.restores, 1, 'restored from the snapshot saved once the disk took it');
  assert.deepEqual(j.lines, Array.from({ length: 12 }, (_, i) => `c${i}`).slice(0, prefix - 1));
  await node.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

test('a snapshot whose commit the disk refuses (EIO) does not stop the node: the request fails with the cause, a retry saves it, and the slots it did not cover are kept', { timeout: 30_000 }, async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'paxlog-lib-snapcommit-'));
  const peers = '1=127.0.0.1:17462';
  const open = (j: Journal) => createNode({ id: 1, peers, dataDir: dir, stateMachine: j, tickMs: 10, snapshotSlots: 0, newCluster: true, logger: pino({ level: 'silent' }) });
  let node = await open(new Journal());
  try {
    // The disk refuses the commit of the transaction that names the node's own snapshot, and no other.
    let refusing = true;
    failCommits((node as unknown as { store: LogStore }).store, () => refusing && /saveSnapshot/.test(new Error().stack ?? ''));
    const write = async (from: number, to: number): Promise<void> => {
      for (let i = from; i < to; i++) assert.equal(await proposeRetrying(node, `c${i}`), i + 1);
    };
    await write(0, 12);
    await assert.rejects(node.snapshot(), /saving the snapshot at 13 failed: the commit failed: Input\/output error/);
    assert.equal(node.status().role, 'leader', 'the node still leads');
    // Nothing applied since: the node saves the same snapshot again, and it is not taken for saved already.
    refusing = false;
    const answer = await Promise.race([node.snapshot(), new Promise((r) => setTimeout(r, 5000, 'no answer'))]);
    assert.equal(answer, 13);
    // A snapshot refused at 61, then writes: their transactions must not trim below 13, the durable
    // one (48 slots between: more than the refused transaction itself would have trimmed).
    await write(12, 60);
    refusing = true;
    await assert.rejects(node.snapshot(), /saving the snapshot at 61 failed/);
    refusing = false;
    await write(60, 72);
    await node.stop();
    const j = new Journal();
    node = await open(j);
    assert.equal(j.restores, 1, 'restored from the snapshot at 13');
    for (let i = 0; i < 500 && j.lines.length < 72; i++) await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(j.lines, Array.from({ length: 72 }, (_, i) => `c${i}`), 'then every slot above it, from the log');
  } finally {
    await node.stop();
  }
  fs.rmSync(dir, { recursive: true, force: true });
});

test('bad numeric options are refused by name before the data directory is taken, not run as a node that never elects', { timeout: 30_000 }, async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'paxlog-lib-opts-'));
  try {
    const base = { id: 1, peers: '1=127.0.0.1:18650', dataDir: dir, stateMachine: new Journal(), newCluster: true, logger: pino({ level: 'silent' }) };
    for (const [name, bad] of [['tickMs', -5], ['tickMs', NaN], ['tickMs', 0], ['requestTimeoutMs', -1], ['snapshotSlots', -1], ['snapshotBytes', 1.5]] as const) {
      await assert.rejects(createNode({ ...base, [name]: bad }), (e: Error) => {
        assert.ok(e instanceof RangeError, `${name} ${bad}: ${e.name} ${e.message}`);
        assert.match(e.message, new RegExp(`NodeOptions\\.${name} ${bad} is not a whole number`));
        return true;
      }, `${name} ${bad}`);
      assert.equal(fs.existsSync(path.join(dir, 'paxlog.lock')), false, 'the directory is not taken');
    }
    for (const bad of [0, 4, 1.5, 16 * 1024 * 1024 + 1, Infinity]) {
      await assert.rejects(createNode({ ...base, config: { batchBytesMax: bad } }),
        new RangeError(`NodeOptions.config.batchBytesMax ${bad} is not a whole number in 8..16777216`));
      assert.equal(fs.existsSync(path.join(dir, 'paxlog.lock')), false, 'the directory is not taken');
    }
    // The same directory then serves with good options.
    await servesOneWrite({ ...base, tickMs: 10 });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a batch or pipeline bound below 1 or not whole is refused by name, not by an assertion of the core', { timeout: 30_000 }, async () => {
  // It failed inside the core with "positive bounds" (Raft: "limits must be >= 1"), naming no option.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'paxlog-lib-bounds-'));
  try {
    // Refused before anything listens: the peer port is never opened.
    const base = { id: 1, peers: '1=127.0.0.1:18650', dataDir: dir, stateMachine: new Journal(), newCluster: true, logger: pino({ level: 'silent' }) };
    for (const protocol of ['multipaxos', 'raft'] as const) {
      for (const [name, bad] of [['batchMax', 0], ['batchMax', NaN], ['pipeline', 0], ['pipeline', -1], ['pipeline', 1.5]] as const) {
        await assert.rejects(createNode({ ...base, protocol, [name]: bad }), (e: Error) => {
          assert.ok(e instanceof RangeError, `${protocol} ${name} ${bad}: ${e.name} ${e.message}`);
          assert.match(e.message, new RegExp(`NodeOptions\\.${name} ${bad} is not a whole number in 1\\.\\.\\d`));
          return true;
        }, `${protocol} ${name} ${bad}`);
        assert.equal(fs.existsSync(path.join(dir, 'paxlog.lock')), false, 'the directory is not taken');
      }
      for (const name of ['batchMax', 'pipeline'] as const) {
        await assert.rejects(createNode({ ...base, protocol, config: { [name]: 0 } }),
          new RangeError(`NodeOptions.config.${name} 0 is not a whole number in 1..${name === 'batchMax' ? 65536 : 4096}`));
      }
      // Above the CLI's bounds: a pipeline of 2^30 would allocate rings of that size per follower.
      await assert.rejects(createNode({ ...base, protocol, pipeline: 2 ** 30 }), new RangeError(`NodeOptions.pipeline ${2 ** 30} is not a whole number in 1..4096`));
      await assert.rejects(createNode({ ...base, protocol, batchMax: 65537 }), new RangeError('NodeOptions.batchMax 65537 is not a whole number in 1..65536'));
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a second stop() resolves only once the log is closed: the data directory is free for a new node', { timeout: 30_000 }, async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'paxlog-lib-stop2-'));
  const options = () => ({ id: 1, peers: '1=127.0.0.1:18651', dataDir: dir, stateMachine: new Journal(), newCluster: true, tickMs: 10, logger: pino({ level: 'silent' }) });
  try {
    const node = await createNode(options());
    assert.equal(await proposeRetrying(node, 'a'), 1);
    const first = node.stop(); // e.g. a signal handler
    await node.stop(); // and the application's own shutdown
    assert.equal(fs.existsSync(path.join(dir, 'paxlog.lock')), false, 'the lock is released when the second stop() resolves');
    const again = await createNode(options());
    try {
      assert.equal(await proposeRetrying(again, 'b'), 2);
    } finally {
      await again.stop();
      await first;
    }
    await assert.rejects(node.propose(text('c')), (e: RequestError) => e.kind === 'stopped');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('PaxlogClient: a request after the connection closed fails at once instead of never settling', { timeout: 30_000 }, async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'paxlog-lib-client-'));
  const log = pino({ level: 'silent' });
  const server = await startKvServer({ id: 1, peers: parsePeers('1=127.0.0.1:18652'), dataDir: dir, logger: log, newCluster: true, httpPort: 18653, tickMs: 10 }, log);
  try {
    const client = await PaxlogClient.connect('ws://127.0.0.1:18653/client');
    let put = 0;
    for (let i = 0; i < 100 && put !== 200; i++) {
      put = (await client.put('k', text('v'))).status;
      if (put !== 200) await new Promise((r) => setTimeout(r, 20));
    }
    assert.equal(put, 200);
    client.close();
    await new Promise((r) => setTimeout(r, 300)); // the closing handshake is over: 'close' has fired
    for (const late of [() => client.put('k', text('w')), () => client.get('k'), () => client.delete('k'), () => client.cas('k', text('v'), text('w'))]) {
      const settled = await Promise.race([late().then((a) => `answered ${a.status}`, (e: Error) => `rejected: ${e.message}`),
        new Promise<string>((r) => setTimeout(() => r('not settled after 2 s'), 2000))]);
      assert.equal(settled, 'rejected: the connection is closed; the request was not sent');
    }
  } finally {
    await server.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a state machine that throws stops the node with the slot and the reason, not an uncaught exception', { timeout: 30_000 }, async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'paxlog-throwing-sm-'));
  const index = new URL('../src/index.js', import.meta.url).href;
  // A child process: the node ends its process on a fatal stop. Port 18795.
  const script = `
    import { createNode } from ${JSON.stringify(index)};
    const sm = { apply() { throw new Error('boom in apply'); }, snapshot: () => new Uint8Array(0), restore() {} };
    const node = await createNode({ id: 1, peers: '1=127.0.0.1:18795', dataDir: ${JSON.stringify(dir)}, stateMachine: sm, secret: 's', tickMs: 10, newCluster: true });
    for (let i = 0; node.status().role !== 'leader'; i++) { if (i > 500) process.exit(3); await new Promise((r) => setTimeout(r, 10)); }
    node.propose(new TextEncoder().encode('x')).catch(() => {});
    setTimeout(() => process.exit(4), 10_000);
  `;
  const { spawnSync } = await import('node:child_process');
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 20_000 });
  try {
    assert.equal(r.status, 1, `exit ${r.status}: ${r.stdout}${r.stderr}`);
    assert.match(r.stdout + r.stderr, /the state machine threw applying a chosen slot/);
    assert.match(r.stdout + r.stderr, /boom in apply/);
    assert.doesNotMatch(r.stderr, /Uncaught|at .*node\.js:\d+/, 'an uncaught exception');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('with a \'fatal\' listener, a state machine that throws stops the node and tells the application; the process lives on', { timeout: 30_000 }, async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'paxlog-lib-fatal-'));
  class Throwing extends Journal {
    override apply(command: Uint8Array): number {
      if (new TextDecoder().decode(command) === 'poison') throw new Error('boom in apply');
      return super.apply(command);
    }
  }
  const options = (sm: Journal) => ({ id: 1, peers: '1=127.0.0.1:18796', dataDir: dir, stateMachine: sm, newCluster: true, tickMs: 10, logger: pino({ level: 'silent' }) });
  const exit = process.exit;
  const exitCode = process.exitCode;
  let exited: unknown = null;
  process.exit = ((code?: number) => { exited = code; }) as typeof process.exit;
  try {
    const node = await createNode(options(new Throwing()));
    const fatal = new Promise<FatalError>((resolve) => node.once('fatal', resolve));
    assert.equal(await proposeRetrying(node, 'a'), 1);
    const poisoned = assert.rejects(node.propose(text('poison')), (e: RequestError) => e.kind === 'stopped');
    const err = await fatal;
    assert.ok(err instanceof FatalError);
    assert.match(err.message, /the state machine threw applying a chosen slot/);
    assert.equal(err.details.slot, 2);
    assert.equal(err.details.err, 'boom in apply');
    await poisoned;
    await assert.rejects(node.propose(text('b')), (e: RequestError) => e.kind === 'stopped');
    await node.stop();
    assert.equal(exited, null, 'process.exit was called');
    assert.equal(process.exitCode, exitCode, 'process.exitCode was set');
    assert.equal(fs.existsSync(path.join(dir, 'paxlog.lock')), false, 'the lock is released once stop() resolves');
    // The slot that threw is chosen and durable: a node opened again (with a state machine that
    // takes it) applies it.
    const journal = new Journal();
    const again = await createNode(options(journal));
    try {
      assert.equal(await proposeRetrying(again, 'c'), 3);
      assert.deepEqual(journal.lines, ['a', 'poison', 'c']);
    } finally {
      await again.stop();
    }
  } finally {
    process.exit = exit;
    process.exitCode = exitCode;
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('options a caller can get wrong are refused by name before the data directory is taken: a bad protocol no longer marks a new log for good', { timeout: 30_000 }, async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'paxlog-lib-checks-'));
  try {
    const base = { id: 1, peers: '1=127.0.0.1:18760', dataDir: dir, stateMachine: new Journal(), newCluster: true, tickMs: 10, logger: pino({ level: 'silent' }) };
    const refused: [Record<string, unknown>, RegExp][] = [
      [{ protocol: 'zab' }, /NodeOptions\.protocol "zab" is not one of multipaxos, raft/],
      [{ protocol: 'constructor' }, /NodeOptions\.protocol "constructor" is not one of/],
      [{ kernels: 'gpu' }, /NodeOptions\.kernels "gpu" is not "wasm" or "js"/],
      [{ id: 4 }, /NodeOptions\.peers must include this node's id 4 \(it has 1\)/],
      [{ config: { electionTicksMin: 0 } }, /NodeOptions\.config\.electionTicksMin 0 is not a whole number in 2\.\./],
      [{ config: { electionTicksMin: 20, electionTicksMax: 20 } }, /NodeOptions\.config\.electionTicksMax 20 is not a whole number in 21\.\./],
      [{ config: { leaseTicks: 500 } }, /NodeOptions\.config\.leaseTicks 500 is not a whole number in 0\.\./],
      [{ config: { heartbeatTicks: 0 } }, /NodeOptions\.config\.heartbeatTicks 0 is not a whole number in 1\.\./],
      [{ config: { snapshotChunkBytes: 0 } }, /NodeOptions\.config\.snapshotChunkBytes 0 is not a whole number in 1\.\./],
      [{ config: { pendingMax: 2 ** 25 } }, /NodeOptions\.config\.pendingMax 33554432 is not a whole number in 1\.\.16777216/],
      [{ preallocateBytes: -1 }, /NodeOptions\.preallocateBytes -1 is not a whole number in 0\.\.$/],
      [{ fsync: 'off' }, /NodeOptions\.fsync must be true or false, got "off"/],
      [{ newCluster: 1 }, /NodeOptions\.newCluster must be true or false, got 1/],
      [{ stateMachine: undefined }, /NodeOptions\.stateMachine must have apply, snapshot and restore methods/],
      [{ stateMachine: { apply() {} } }, /NodeOptions\.stateMachine must have apply, snapshot and restore methods/],
      [{ dataDir: '' }, /NodeOptions\.dataDir must be a directory path/],
    ];
    for (const [change, message] of refused) {
      await assert.rejects(createNode({ ...base, ...change } as Parameters<typeof createNode<number>>[0]), (e: Error) => {
        assert.ok(e instanceof RangeError, `${JSON.stringify(change)}: ${e.name} ${e.message}`);
        assert.match(e.message, message);
        return true;
      });
      assert.deepEqual(fs.readdirSync(dir), [], `${JSON.stringify(change)}: nothing is written to the data directory`);
    }
    // The directory then serves with good options, as the protocol it is first opened with.
    await servesOneWrite({ ...base, protocol: 'raft' });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('whenLeader() resolves once a leader is known and times out by name when no majority is up; propose right after it succeeds', { timeout: 30_000 }, async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'paxlog-lib-leader-'));
  const nodes: PaxlogNode<number>[] = [];
  try {
    // One member of three: no majority, no leader.
    const alone = await createNode({ id: 1, peers: '1=127.0.0.1:18761,2=127.0.0.1:18762,3=127.0.0.1:18763', dataDir: path.join(dir, 'alone'),
      stateMachine: new Journal(), newCluster: true, tickMs: 10, logger: pino({ level: 'silent' }) });
    nodes.push(alone);
    const t0 = performance.now();
    await assert.rejects(alone.whenLeader(300), (e: Error) => e instanceof RequestError && e.kind === 'timeout' && /is a majority of the members up/.test(e.message));
    assert.ok(performance.now() - t0 >= 290, 'it waited for its timeout');
    await assert.rejects(alone.whenLeader(-1), RangeError);
    const pending = alone.whenLeader(60_000);
    await alone.stop();
    await assert.rejects(pending, (e: Error) => e instanceof RequestError && e.kind === 'stopped', 'stop() settles who waits');

    // A cluster of one elects itself: whenLeader gives its id, and a propose right after it is taken.
    const one = await createNode({ id: 7, peers: '7=127.0.0.1:18764', dataDir: path.join(dir, 'one'), stateMachine: new Journal(), newCluster: true,
      tickMs: 10, logger: pino({ level: 'silent' }) });
    nodes.push(one);
    assert.equal(one.status().leader, 0, 'no leader yet when createNode resolves');
    assert.equal(await one.whenLeader(), 7);
    assert.equal(await one.propose(text('x')), 1);
    assert.equal(await one.whenLeader(0), 7, 'known already: at once');
  } finally {
    for (const n of nodes) await n.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('createNode resolves once the log is replayed, and status().applied counts what propose() saw applied', { timeout: 30_000 }, async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'paxlog-lib-replay-'));
  const options = (j: Journal) => ({ id: 1, peers: '1=127.0.0.1:18765', dataDir: dir, stateMachine: j, newCluster: true, tickMs: 10,
    snapshotSlots: 1_000_000, logger: pino({ level: 'silent' }) });
  try {
    const first = new Journal();
    let node = await createNode(options(first));
    let applied = 0;
    try {
      await node.whenLeader();
      let slot = 0;
      node.on('applied', (a) => (slot = a.slot));
      for (let i = 1; i <= 5; i++) {
        assert.equal(await node.propose(text(`c${i}`)), i);
        assert.equal(node.status().applied, slot, `right after the write that made ${i} lines`);
      }
      await node.snapshot();
      assert.equal(await node.propose(text('c6')), 6);
      applied = node.status().applied;
    } finally {
      await node.stop();
    }
    // Reopened: the snapshot is restored, and the slot after it replayed from the log, before createNode resolves.
    const second = new Journal();
    node = await createNode(options(second));
    try {
      assert.deepEqual(second.lines, ['c1', 'c2', 'c3', 'c4', 'c5', 'c6'], 'the whole log is applied when createNode resolves');
      assert.equal(node.status().applied, applied);
    } finally {
      await node.stop();
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a state machine whose snapshot() throws stops the node with the reason, not an unhandled rejection', { timeout: 30_000 }, async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'paxlog-throwing-snapshot-'));
  const index = new URL('../src/index.js', import.meta.url).href;
  // A child process: the node ends its process on a fatal stop. Port 18766.
  const script = `
    import { createNode } from ${JSON.stringify(index)};
    const sm = { apply: () => 1, snapshot() { throw new Error('boom in snapshot'); }, restore() {} };
    const node = await createNode({ id: 1, peers: '1=127.0.0.1:18766', dataDir: ${JSON.stringify(dir)}, stateMachine: sm, secret: 's', tickMs: 10, newCluster: true, snapshotSlots: 2 });
    await node.whenLeader();
    for (let i = 0; i < 5; i++) await node.propose(new TextEncoder().encode('x')).catch(() => {});
    setTimeout(() => process.exit(4), 10_000);
  `;
  const { spawnSync } = await import('node:child_process');
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 20_000 });
  try {
    assert.equal(r.status, 1, `exit ${r.status}: ${r.stdout}${r.stderr}`);
    assert.match(r.stdout + r.stderr, /the state machine could not snapshot its state; stopping the node/);
    assert.match(r.stdout + r.stderr, /boom in snapshot/);
    assert.doesNotMatch(r.stderr, /Uncaught|unhandled|at .*node\.js:\d+/i, 'an unhandled error');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('the README\'s key-value server in a process: startKvServer takes peers as a string and a default logger; PaxlogClient puts and gets', { timeout: 30_000 }, async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'paxlog-lib-kvserver-'));
  const server = await startKvServer({ id: 1, peers: '1=127.0.0.1:18767', dataDir: dir, secret: 's', newCluster: true, httpPort: 18768, tickMs: 10 });
  try {
    assert.equal(server.httpPort, 18768);
    await server.node.whenLeader();
    const client = await PaxlogClient.connect(`ws://127.0.0.1:${server.httpPort}/client`);
    try {
      assert.equal((await client.put('greeting', text('hello'))).status, 200);
      const { status, body } = await client.get('greeting', 'quorum');
      assert.deepEqual([status, new TextDecoder().decode(body)], [200, 'hello']);
      assert.equal(new TextDecoder().decode(server.kv.get('greeting') ?? new Uint8Array()), 'hello', 'the store in this process has it');
    } finally {
      client.close();
    }
  } finally {
    await server.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
