// Direct tests of the Raft core: 3 and 5 instances driven by hand through a tiny message pump
// (persists are immediate), plus the Figure 8 run with the commitOldTerm bug planted, and
// snapshots: compaction, bad chunks, offers and install.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Raft } from '../src/protocol/raft/index.js';
import { MsgType, type AppendEntries, type Message, type SnapshotChunk } from '../src/protocol/messages.js';
import { defaultConfig, SNAPSHOT_BYTES_MAX, type LogRecord, type PlantedBug, type Ready, type Restored, type Snapshot } from '../src/protocol/types.js';
import { loadKernels } from '../src/kernels/index.js';
import { Prng } from '../src/sim/prng.js';
import { AppliedValues, clusterFromCommand, parseScenario, replayWithBugs } from '../src/sim/scenario.js';

const k = loadKernels('js');
const enc = new TextEncoder();
const dec = new TextDecoder();

/** What a node persisted, as a restart would find it. */
interface Disk {
  term: number;
  vote: number;
  records: LogRecord[];
  chosenPrefix: number;
  /** The last persisted snapshot; records hold nothing below its prefix. */
  snapshot: Snapshot | null;
}

/** A cluster of Raft cores with an in-memory network and disks. */
class Pump {
  readonly nodes = new Map<number, Raft>();
  readonly disks = new Map<number, Disk>();
  /** Commands each node applied, in order, as text ("noop" for the empty batch). */
  readonly applied = new Map<number, string[]>();
  readonly reads: { node: number; id: number; index: number }[] = [];
  readonly readsFailed: { node: number; id: number }[] = [];
  queue: Message[] = [];
  /** Nodes whose messages (both ways) are dropped. */
  readonly isolated = new Set<number>();
  /** Nodes whose Ready said `rejoined`, in order. */
  readonly rejoined: number[] = [];

  constructor(readonly n: number, readonly bugs: Partial<Record<PlantedBug, boolean>> = {}, readonly configure = {}) {
    for (let id = 1; id <= n; id++) {
      this.disks.set(id, { term: 0, vote: 0, records: [], chosenPrefix: 0, snapshot: null });
      this.start(id, undefined);
    }
  }

  start(id: number, restored: Restored | undefined): void {
    const peers = Array.from({ length: this.n }, (_, i) => i + 1);
    const config = { ...defaultConfig(id, peers), ...this.configure };
    this.nodes.set(id, new Raft({ config, kernels: k, rng: new Prng(id), restored, bugs: this.bugs }));
    this.applied.set(id, restored?.snapshot ? fromSnapshot(restored.snapshot) : []);
  }

  restart(id: number): void {
    const d = this.disks.get(id)!;
    this.start(id, {
      hardState: { ballot: d.term, vote: d.vote }, records: [...d.records], chosenPrefix: d.chosenPrefix,
      appliedPrefix: d.snapshot?.prefix ?? 1, snapshot: d.snapshot, rejoining: false,
    });
  }

  /** Node `id` loses everything it persisted and starts again, rejoining without voting. */
  wipe(id: number): void {
    this.disks.set(id, { term: 0, vote: 0, records: [], chosenPrefix: 0, snapshot: null });
    this.start(id, { hardState: { ballot: 0, vote: 0 }, records: [], chosenPrefix: 0, appliedPrefix: 1, snapshot: null, rejoining: true });
  }

  /** Node `id` snapshots its state machine (the applied list as JSON) at its applied prefix, or at `prefix`. */
  compact(id: number, prefix = this.node(id).status().appliedPrefix): void {
    this.node(id).compact(prefix, enc.encode(JSON.stringify(this.applied.get(id)!.slice(0, prefix - 1))));
  }

  node(id: number): Raft {
    return this.nodes.get(id)!;
  }

  /** Handle every node's Ready: persist, queue messages, apply. */
  process(): void {
    for (const [id, core] of this.nodes) {
      while (core.hasReady()) this.handle(id, core, core.ready());
      core.invariants();
    }
  }

  handle(id: number, core: Raft, rd: Ready): void {
    const d = this.disks.get(id)!;
    if (rd.snapshot) {
      const snap = rd.snapshot;
      d.snapshot = snap;
      d.records = d.records.filter((r) => r.position >= snap.prefix);
    }
    if (rd.hardState) { d.term = rd.hardState.ballot; d.vote = rd.hardState.vote; }
    if (rd.truncateFrom > 0) d.records = d.records.filter((r) => r.position < rd.truncateFrom);
    for (const r of rd.records) {
      d.records = d.records.filter((x) => x.position !== r.position);
      d.records.push(r);
    }
    d.records.sort((a, b) => a.position - b.position);
    if (rd.chosenPrefix > 0) d.chosenPrefix = rd.chosenPrefix;
    if (rd.rejoined) {
      assert.ok(rd.hardState, 'the Ready that says rejoined carries the hard state');
      this.rejoined.push(id);
    }
    this.queue.push(...rd.messages, ...rd.messagesAfterPersist);
    if (rd.install && rd.snapshot) this.applied.set(id, fromSnapshot(rd.snapshot));
    const log = this.applied.get(id)!;
    for (const a of rd.apply) {
      assert.equal(a.position, log.length + 1, `node ${id} applied ${a.position} out of order`);
      const cmds = k.decodeBatch(a.value);
      assert.ok(Array.isArray(cmds));
      log.push(cmds.length === 0 ? 'noop' : cmds.map((c) => dec.decode(c)).join(' '));
    }
    for (const r of rd.reads) this.reads.push({ node: id, id: r.id, index: r.index });
    for (const r of rd.readsFailed) this.readsFailed.push({ node: id, id: r });
    core.advance(rd);
  }

  /** Deliver every queued message once. */
  deliver(filter: (m: Message) => boolean = () => true): number {
    const batch = this.queue;
    this.queue = [];
    for (const m of batch) {
      if (this.isolated.has(m.from) || this.isolated.has(m.to) || !filter(m)) continue;
      this.node(m.to).step(m);
    }
    this.process();
    return batch.length;
  }

  stabilize(): void {
    this.process();
    for (let i = 0; this.queue.length > 0; i++) {
      assert.ok(i < 1000, 'the cluster did not settle');
      this.deliver();
    }
  }

  /** Tick `id` until it leaves the follower role, then settle. */
  elect(id: number): void {
    const core = this.node(id);
    for (let i = 0; core.status().role === 'follower'; i++) {
      assert.ok(i < 1000, `node ${id} never campaigned`);
      core.tick();
    }
    this.stabilize();
  }

  tickAll(times: number): void {
    for (let t = 0; t < times; t++) {
      for (const core of this.nodes.values()) core.tick();
      this.stabilize();
    }
  }
}

const cmds = (...words: string[]): Uint8Array[] => words.map((w) => enc.encode(w));
const fromSnapshot = (s: Snapshot): string[] => JSON.parse(dec.decode(s.bytes)) as string[];

for (const n of [3, 5]) {
  test(`${n} nodes elect one leader and apply the same commands in the same order everywhere`, () => {
    const c = new Pump(n);
    c.elect(1);
    assert.equal(c.node(1).status().role, 'leader');
    for (let id = 2; id <= n; id++) assert.equal(c.node(id).status().leader, 1, `node ${id} follows 1`);
    assert.equal(c.node(1).propose(cmds('a', 'b')), 'proposed');
    c.stabilize();
    assert.equal(c.node(2).propose(cmds('c')), 'forwarded');
    c.stabilize();
    c.tickAll(1); // the next heartbeat carries the last commit index to the followers
    for (let id = 1; id <= n; id++) {
      assert.deepEqual(c.applied.get(id), ['noop', 'a b', 'c'], `node ${id}'s applied log`);
    }
  });
}

test('a leader counts its own entry only once it is persisted (after advance)', () => {
  const c = new Pump(3);
  c.elect(1);
  const leader = c.node(1);
  leader.propose(cmds('x'));
  const rd = leader.ready();
  assert.equal(rd.records.length, 1, 'the new entry is handed to storage');
  const ae = rd.messages.filter((m) => m.type === MsgType.AppendEntries && m.entries.length === 1);
  assert.equal(ae.length, 2, 'the entry goes to the followers before the leader persists it');
  // One follower acknowledges before the leader's own persist is done: with the leader's
  // unpersisted copy that would be 2 of 3, but an unpersisted copy does not count.
  const to2 = ae.find((m) => m.to === 2)!;
  c.node(2).step(to2);
  const frd = c.node(2).ready();
  assert.equal(frd.messages.filter((m) => m.type === MsgType.AppendResult).length, 0, 'AppendResult never leaves before the persist');
  frd.messagesAfterPersist.forEach((m) => leader.step(m));
  c.node(2).advance(frd);
  assert.equal(leader.status().chosenPrefix, 2, 'not committed while the leader\'s own copy is not durable');
  leader.advance(rd);
  assert.equal(leader.status().chosenPrefix, 3, 'committed once the leader\'s persist is acknowledged');
});

test('votes and the candidate\'s own RequestVote wait for the persist of term and vote', () => {
  const c = new Pump(3);
  const cand = c.node(1);
  while (cand.status().role === 'follower') cand.tick();
  let rd = cand.ready();
  assert.ok(rd.messages.every((m) => m.type === MsgType.RequestVote && m.preVote), 'pre-votes go at once');
  cand.advance(rd);
  for (const m of rd.messages) c.node(m.to).step(m);
  for (const id of [2, 3]) {
    const v = c.node(id).ready();
    for (const m of v.messagesAfterPersist) cand.step(m);
    c.node(id).advance(v);
  }
  rd = cand.ready();
  assert.deepEqual(rd.hardState, { ballot: 1, vote: 1 }, 'the candidate persists term 1 and its vote for itself');
  assert.equal(rd.messages.length, 0);
  assert.ok(rd.messagesAfterPersist.every((m) => m.type === MsgType.RequestVote && !m.preVote));
  cand.advance(rd);
  c.node(2).step(rd.messagesAfterPersist.find((m) => m.to === 2)!);
  const v = c.node(2).ready();
  assert.deepEqual(v.hardState, { ballot: 1, vote: 1 }, 'the voter persists its vote');
  assert.equal(v.messages.length, 0);
  assert.equal(v.messagesAfterPersist.length, 1);
  assert.equal(v.messagesAfterPersist[0].type, MsgType.Vote);
});

test('a restarted node keeps its term, vote and log and does not vote twice in a term', () => {
  const c = new Pump(3);
  c.elect(1);
  c.node(1).propose(cmds('a'));
  c.stabilize();
  c.restart(2);
  const s = c.node(2).status();
  assert.equal(s.ballot, 1);
  assert.equal(s.chosenPrefix, 3, 'the persisted commit index came back');
  c.stabilize();
  assert.deepEqual(c.applied.get(2), ['noop', 'a'], 'the restarted node applies its committed entries again');
  // Node 2 voted for 1 in term 1: a RequestVote from 3 in term 1 is refused.
  c.node(2).step({ type: MsgType.RequestVote, from: 3, to: 2, term: 1, lastIndex: 9, lastTerm: 1, preVote: false });
  const rd = c.node(2).ready();
  const vote = rd.messagesAfterPersist.find((m) => m.type === MsgType.Vote);
  assert.ok(vote && vote.type === MsgType.Vote && !vote.granted, 'no second vote in term 1');
  c.node(2).advance(rd);
});

test('a node cut off from a healthy leader never raises its term, and rejoins without disrupting it', () => {
  const c = new Pump(3);
  c.elect(1);
  c.isolated.add(3);
  c.tickAll(60);
  assert.equal(c.node(3).status().ballot, 1, 'pre-votes failed, so the term stayed');
  c.isolated.clear();
  // Its pre-vote reaches followers that hear from the leader: they ignore it.
  while (c.node(3).status().role === 'follower') c.node(3).tick();
  c.stabilize();
  c.tickAll(3);
  assert.equal(c.node(1).status().role, 'leader');
  assert.equal(c.node(1).status().ballot, 1);
  assert.equal(c.node(3).status().leader, 1);
});

test('a leader whose followers\' answers stall for 15 ticks at a time (a TCP retransmit) keeps leading: check-quorum waits the longest election timeout', () => {
  const c = new Pump(3);
  c.elect(1);
  c.tickAll(3);
  const upTo = (m: Message) => m.to !== 1; // the followers hear the leader; what they send it waits
  for (let stall = 0; stall < 4; stall++) {
    for (let t = 0; t < 15; t++) {
      for (const core of c.nodes.values()) core.tick();
      const held: Message[] = [];
      do {
        held.push(...c.queue.filter((m) => !upTo(m)));
        c.deliver(upTo);
      } while (c.queue.length > 0);
      c.queue = held; // kept for the end of the stall, as TCP keeps them
    }
    c.stabilize();
    assert.deepEqual([c.node(1).status().role, c.node(1).status().ballot], ['leader', 1], `after stall ${stall + 1}`);
  }
  for (const id of [2, 3]) assert.deepEqual([c.node(id).status().leader, c.node(id).status().ballot], [1, 1]);
});

test('a leader that says it is stopping is replaced within a few ticks, by one election; a notice from a follower changes nothing', () => {
  const c = new Pump(3);
  c.elect(1);
  c.node(2).peerStopping(3); // not its leader: nothing changes
  for (let t = 0; t < 5; t++) { c.node(2).tick(); c.stabilize(); }
  assert.deepEqual([c.node(2).status().role, c.node(2).status().leader, c.node(2).status().ballot], ['follower', 1, 1]);
  // Node 1 stops: nothing of it arrives from now on, and both followers hear its notice.
  c.isolated.add(1);
  c.node(2).peerStopping(1);
  c.node(3).peerStopping(1);
  assert.equal(c.node(2).status().leader, 0, 'a stopped leader is no longer named');
  // Four ticks: far below the election timeout (10 to 20) and below the 10 ticks after a leader's
  // word during which a follower refuses votes (its lease).
  for (let t = 0; t < 4; t++) {
    for (const id of [2, 3]) c.node(id).tick();
    c.stabilize();
  }
  assert.equal(c.node(2).status().role, 'leader', 'node 2, of lowest id, campaigned first and won');
  assert.equal(c.node(2).status().ballot, 2, 'in one election: no split vote');
  assert.equal(c.node(3).status().leader, 2);
});

test('a new leader answers no read before the no-op of its term is committed', () => {
  const c = new Pump(3);
  c.elect(1);
  c.node(1).propose(cmds('a'));
  c.stabilize();
  c.isolated.add(1);
  c.tickAll(25);
  const leader = [2, 3].find((id) => c.node(id).status().role === 'leader');
  assert.ok(leader, 'nodes 2 and 3 elected a leader');
  const other = leader === 2 ? 3 : 2;
  c.isolated.add(other); // the new leader cannot commit its no-op
  const core = c.node(leader);
  const before = core.status();
  core.propose(cmds('b'));
  core.read(42, 'quorum');
  c.tickAll(3);
  assert.equal(c.reads.filter((r) => r.id === 42).length, 0, 'no read answered without a commit in this term');
  assert.equal(core.status().chosenPrefix, before.chosenPrefix);
  c.isolated.delete(other);
  core.read(43, 'quorum');
  c.tickAll(2);
  const r = c.reads.find((x) => x.id === 43);
  assert.ok(r, 'answered once the no-op is committed');
  assert.ok(r.index >= 3, `read index ${r.index} covers the no-op of the new term (index 3)`);
});

test('reads: quorum read at the leader, ReadIndex at a follower, lease read refused without a lease', () => {
  const c = new Pump(3);
  c.elect(1);
  c.node(1).read(1, 'lease'); // no round confirmed yet in this reign
  c.process();
  assert.deepEqual(c.readsFailed, [{ node: 1, id: 1 }]);
  c.node(1).read(2, 'quorum');
  c.stabilize();
  assert.deepEqual(c.reads, [{ node: 1, id: 2, index: 1 }]);
  c.node(1).read(3, 'lease');
  c.process();
  assert.deepEqual(c.reads.at(-1), { node: 1, id: 3, index: 1 }, 'a lease read right after a confirmed round');
  c.node(1).propose(cmds('a'));
  c.stabilize();
  c.node(3).read(4, 'quorum');
  c.stabilize();
  assert.deepEqual(c.reads.at(-1), { node: 3, id: 4, index: 2 });
  assert.equal(c.applied.get(3)!.length >= 2, true, 'node 3 applied through the read index');
});

test('a reply to a read from before a restart does not answer a read after it', () => {
  const c = new Pump(3);
  c.elect(1);
  c.node(1).propose(cmds('a'));
  c.stabilize();
  c.node(2).read(1, 'quorum');
  c.process();
  const ask = c.queue.find((m) => m.type === MsgType.ReadIndex && m.from === 2);
  assert.ok(ask && ask.type === MsgType.ReadIndex);
  c.queue = [];
  c.restart(2);
  c.stabilize();
  c.node(2).read(2, 'quorum');
  c.process();
  c.queue = []; // the new request is lost
  // The old reply arrives late, with the commit index of back then: it must not answer read 2.
  c.node(2).step({ type: MsgType.ReadIndexReply, from: 1, to: 2, readId: ask.readId, index: 1, ok: true });
  c.process();
  assert.deepEqual(c.reads.filter((r) => r.node === 2), []);
});

test('bad input is dropped without harm: malformed AppendEntries, strangers, stray replies', () => {
  const c = new Pump(3);
  c.elect(1);
  const f = c.node(2);
  const before = f.status();
  const gap: AppendEntries = {
    type: MsgType.AppendEntries, from: 1, to: 2, term: 1, prevIndex: 1, prevTerm: 1, commitIndex: 1,
    entries: [{ index: 3, term: 1, value: k.encodeBatch([]) }],
  };
  f.step(gap);
  f.step({ ...gap, entries: [{ index: 2, term: 7, value: k.encodeBatch([]) }] }); // term above the message's
  f.step({ ...gap, from: 99 }); // not a member
  f.step({ type: MsgType.ReadIndexReply, from: 1, to: 2, readId: 1234, index: 5, ok: true });
  f.step({ type: MsgType.AppendResult, from: 3, to: 2, term: 1, success: true, index: 50, hintTerm: 0 });
  c.process();
  assert.deepEqual(f.status(), before);
  f.invariants();
  // A leader ignores a success for an index it never sent.
  c.node(1).step({ type: MsgType.AppendResult, from: 2, to: 1, term: 1, success: true, index: 50, hintTerm: 0 });
  c.node(1).invariants();
});

test('propose: forwarded by a follower, refused with no leader, and all or nothing when full', () => {
  const c = new Pump(3, {}, { pendingMax: 3 });
  assert.equal(c.node(2).propose(cmds('x')), 'no-leader');
  c.elect(1);
  c.isolated.add(2);
  c.isolated.add(3); // nothing commits, so commands pile up behind the pipeline
  assert.equal(c.node(1).propose(cmds('a', 'b', 'c', 'd')), 'full', 'four commands never fit in three');
  assert.equal(c.node(1).status().pending, 0, 'and none of them was queued');
  assert.equal(c.node(1).propose(cmds('a', 'b', 'c')), 'proposed');
});

test('Figure 8 with commitOldTerm planted: two values are applied at one index', () => {
  const path = fileURLToPath(new URL('../../test/testdata/raft/figure8.txt', import.meta.url));
  const file = parseScenario(readFileSync(path, 'utf8'), path);
  const run = (bugs: Partial<Record<PlantedBug, boolean>>): string[] => replayWithBugs(file, 'raft', bugs, k);
  const at2 = (out: string[]): string[] => out.filter((l) => / applied 2: /.test(l));
  const good = run({});
  assert.deepEqual([...new Set(at2(good).map((l) => l.split(': ')[1]))], ['noop'], 'one value at index 2 without the bug');
  const bad = run({ commitOldTerm: true });
  assert.ok(bad.includes('1 applied 2: a'), 'the buggy leader committed the term-1 entry by counting replicas');
  const caught = bad.some((l) => / applied 2: noop/.test(l)) || bad.some((l) => l.startsWith('threw:'));
  assert.ok(caught, `node 5's entry replaced the committed one: ${bad.filter((l) => /applied 2|threw/.test(l)).join('; ')}`);
});

// ---------------------------------------------------------------- snapshots

/** A leader (1) and two followers that applied noop, a..f (indexes 1-7); node 3 is then cut off
 *  while g, h (8-9) commit, and nodes 1 and 2 compact below 10. */
const laggingFollower = (configure = {}): Pump => {
  const c = new Pump(3, {}, { batchMax: 1, ...configure });
  c.elect(1);
  c.node(1).propose(cmds('a', 'b', 'c', 'd', 'e', 'f'));
  c.stabilize();
  c.tickAll(1);
  c.isolated.add(3);
  c.node(1).propose(cmds('g', 'h'));
  c.stabilize();
  c.tickAll(1);
  c.compact(1);
  c.compact(2);
  c.stabilize();
  return c;
};

test('compact() trims the log below the applied prefix; the next Ready persists the snapshot', () => {
  const c = new Pump(3, {}, { batchMax: 1 });
  c.elect(1);
  c.node(1).propose(cmds('a', 'b', 'c'));
  c.stabilize();
  const n = c.node(1);
  assert.equal(n.status().appliedPrefix, 5);
  c.compact(1, 3);
  const rd = n.ready();
  assert.ok(rd.snapshot, 'the Ready carries the snapshot');
  assert.equal(rd.install, false, 'a snapshot of its own is not installed');
  assert.equal(rd.snapshot.prefix, 3);
  assert.equal(rd.snapshot.ballot, 1, 'ballot is the term of entry prefix - 1');
  assert.deepEqual(fromSnapshot(rd.snapshot), ['noop', 'a']);
  c.handle(1, n, rd);
  assert.equal(n.status().snapshotPrefix, 3);
  assert.deepEqual(c.disks.get(1)!.records.map((r) => r.position), [3, 4], 'records below the prefix are gone');
  c.compact(1, 3); // not newer: ignored
  assert.equal(n.hasReady(), false);
  // Entries above the snapshot still replicate, and one just above it is still addressable.
  n.propose(cmds('d'));
  c.stabilize();
  c.tickAll(1);
  for (const id of [1, 2, 3]) assert.deepEqual(c.applied.get(id), ['noop', 'a', 'b', 'c', 'd'], `node ${id}`);
  n.invariants();
});

test('compact() beyond the applied prefix is a driver bug: it throws', () => {
  const c = new Pump(3);
  c.elect(1);
  const applied = c.node(1).status().appliedPrefix;
  assert.throws(() => c.node(1).compact(applied + 1, enc.encode('[]')), { name: 'AssertionError' });
});

test('a restarted node starts from its snapshot and ignores records below it', () => {
  const c = new Pump(3, {}, { batchMax: 1 });
  c.elect(1);
  c.node(1).propose(cmds('a', 'b', 'c'));
  c.stabilize();
  c.tickAll(1);
  c.compact(2, 4);
  c.stabilize();
  const d = c.disks.get(2)!;
  // A stale record below the snapshot (as if the trim had not reached it) must be ignored.
  d.records.unshift({ position: 1, ballot: 1, value: k.encodeBatch(cmds('stale')) });
  c.restart(2);
  const s = c.node(2).status();
  assert.equal(s.snapshotPrefix, 4);
  assert.equal(s.appliedPrefix, 4, 'applied starts at the snapshot prefix');
  c.stabilize();
  assert.deepEqual(c.applied.get(2), ['noop', 'a', 'b', 'c'], 'only index 4 is applied after the snapshot');
  c.node(2).invariants();
});

test('a follower behind the trimmed point installs the leader\'s snapshot in chunks, then gets the entries after it', () => {
  const c = laggingFollower({ snapshotChunkBytes: 8 });
  c.isolated.clear();
  let chunks = 0;
  for (let t = 0; t < 30 && c.applied.get(3)!.length < 10; t++) {
    for (const core of c.nodes.values()) core.tick();
    c.process();
    for (let i = 0; c.queue.length > 0; i++) {
      assert.ok(i < 1000);
      chunks += c.queue.filter((m) => m.type === MsgType.SnapshotChunk && m.to === 3).length;
      c.deliver();
    }
  }
  const want = ['noop', 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'];
  assert.deepEqual(c.applied.get(3), want);
  assert.ok(chunks >= 4, `the snapshot came in ${chunks} chunks of at most 8 bytes`);
  assert.equal(c.node(3).status().snapshotPrefix, 10);
  c.node(1).propose(cmds('i'));
  c.stabilize();
  c.tickAll(1);
  assert.deepEqual(c.applied.get(3), [...want, 'i'], 'replication resumes above the snapshot');
});

test('a follower pulling a snapshot finishes it though the leader takes newer ones meanwhile', () => {
  const c = laggingFollower({ snapshotChunkBytes: 8 });
  const first = c.node(1).status().snapshotPrefix;
  c.isolated.clear();
  const offered: number[] = [];
  const installs: number[] = [];
  let taken = 0;
  // One hop per round. Each round the leader takes a command and, once it applied more, a newer
  // snapshot: the transfer (one 8-byte chunk per round trip) outlasts several of them.
  for (let round = 0; round < 200 && installs.length === 0; round++) {
    for (const core of c.nodes.values()) core.tick();
    c.node(1).propose(cmds(`x${round}`));
    c.process();
    offered.push(...c.queue.flatMap((m) => (m.type === MsgType.SnapshotChunk && m.to === 3 && m.offset === 0 ? [m.prefix] : [])));
    const before = c.node(3).status().snapshotPrefix;
    c.deliver();
    if (c.node(3).status().snapshotPrefix !== before) installs.push(c.node(3).status().snapshotPrefix);
    const applied = c.node(1).status().appliedPrefix;
    if (applied > c.node(1).status().snapshotPrefix) { c.compact(1, applied); taken++; }
  }
  assert.ok(taken >= 3, `the leader took ${taken} snapshots during the transfer`);
  assert.deepEqual(installs, [first], 'the first snapshot offered is the one installed');
  assert.deepEqual(offered, [first], 'no newer offer restarted the transfer');
  // The leader trimmed past it meanwhile: a second transfer, with no newer snapshots, brings node 3 up.
  c.stabilize();
  c.tickAll(2 * defaultConfig(1, [1, 2, 3]).electionTicksMax);
  assert.deepEqual(c.applied.get(3), c.applied.get(1));
});

test('a leader offers its snapshot to a follower that needs it at most once per election timeout', () => {
  const c = laggingFollower();
  // Node 3 is still cut off: every heartbeat would reach a trimmed index, but offers are rate-limited.
  let offers = 0;
  for (let t = 0; t < 40; t++) {
    c.node(1).tick();
    c.node(2).tick();
    c.process();
    offers += c.queue.filter((m) => m.type === MsgType.SnapshotChunk && m.to === 3 && m.offset === 0).length;
    c.deliver();
  }
  const cfg = defaultConfig(1, [1, 2, 3]);
  assert.ok(offers >= 2 && offers <= Math.ceil(40 / cfg.electionTicksMin) + 1, `${offers} offers in 40 ticks`);
});

test('a term near 2^53 from a peer is dropped: the cluster keeps its leader and its later elections do not throw', () => {
  const c = new Pump(3);
  c.elect(1);
  const term = c.node(1).status().ballot;
  for (const to of [2, 3]) {
    c.node(to).step({ type: MsgType.AppendEntries, from: 1, to, term: 2 ** 53 - 1, prevIndex: 0, prevTerm: 0, commitIndex: 0, entries: [] });
  }
  c.stabilize();
  assert.deepEqual([1, 2, 3].map((id) => c.node(id).status().ballot), [term, term, term], 'no node took the term');
  // Three elections after it, each one's leader cut off in turn.
  const leaderNow = (): number | undefined => [1, 2, 3].find((id) => c.node(id).status().role === 'leader');
  for (let round = 0; round < 3; round++) {
    c.isolated.add(leaderNow() ?? 0);
    assert.doesNotThrow(() => c.tickAll(3 * defaultConfig(1, [1, 2, 3]).electionTicksMax));
    c.isolated.clear();
    c.tickAll(2);
  }
  assert.ok(leaderNow() !== undefined, 'a leader');
});

test('malformed or unneeded snapshot chunks are dropped without a throw and without changing state', () => {
  const c = laggingFollower({ snapshotChunkBytes: 8 });
  const f = c.node(3);
  const before = f.status();
  const base: SnapshotChunk = { type: MsgType.SnapshotChunk, from: 1, to: 3, ballot: 1, prefix: 10, offset: 0, total: 20, values: [new Uint8Array(8)] };
  const bad: [string, SnapshotChunk][] = [
    ['two values', { ...base, values: [new Uint8Array(4), new Uint8Array(4)] }],
    ['no value', { ...base, values: [] }],
    ['total above the max', { ...base, total: SNAPSHOT_BYTES_MAX + 1 }],
    ['chunk longer than SNAPSHOT_CHUNK_BYTES_MAX', { ...base, total: 2 ** 24 + 1, values: [new Uint8Array(2 ** 24 + 1)] }],
    ['chunk past the total', { ...base, total: 4 }],
    ['empty chunk of a non-empty snapshot', { ...base, values: [new Uint8Array(0)] }],
    ['negative offset', { ...base, offset: -8 }],
    ['ballot above the term', { ...base, ballot: 9 }],
    ['unknown prefix (no transfer running)', { ...base, offset: 8 }],
    ['offer from a node that is not the leader', { ...base, from: 2 }],
    ['offer of a snapshot the node does not need', { ...base, prefix: 2 }],
    ['prefix below 2', { ...base, prefix: 1 }],
  ];
  for (const [what, m] of bad) {
    assert.doesNotThrow(() => f.step(m), what);
    assert.equal(f.hasReady(), false, `${what}: no request, no install`);
    assert.deepEqual(f.status(), before, what);
    f.invariants();
  }
  // A good offer starts a transfer (a request for offset 8 goes out); then a chunk at the wrong
  // offset, or for another prefix, changes nothing.
  f.step(base);
  const rd = f.ready();
  assert.deepEqual(rd.messages.map((m) => m.type === MsgType.SnapshotRequest ? m.offset : -1), [8]);
  f.advance(rd);
  for (const [what, m] of [['wrong offset', { ...base, offset: 16 }], ['other prefix', { ...base, prefix: 9, offset: 8 }], ['other total', { ...base, total: 24, offset: 8 }]] as const) {
    f.step(m);
    assert.equal(f.hasReady(), false, what);
    assert.deepEqual(f.status(), before, what);
  }
});

test('install keeps the entries after the snapshot when the log holds its last entry with its term', () => {
  const c = new Pump(3, {}, { batchMax: 1 });
  c.elect(1);
  // Node 3 gets a..g (indexes 2-8) but none of the commit announcements.
  c.node(1).propose(cmds('a', 'b', 'c', 'd', 'e', 'f', 'g'));
  c.process();
  for (let i = 0; c.queue.length > 0; i++) {
    assert.ok(i < 100);
    c.deliver((m) => !(m.to === 3 && m.type === MsgType.AppendEntries && m.entries.length === 0));
  }
  const f = c.node(3);
  assert.equal(f.status().chosenPrefix, 2, 'node 3 knows only the no-op committed');
  c.compact(1, 7);
  const rd = c.node(1).ready();
  c.handle(1, c.node(1), rd);
  const snap = rd.snapshot!;
  f.step({ type: MsgType.SnapshotChunk, from: 1, to: 3, ballot: snap.ballot, prefix: snap.prefix, offset: 0, total: snap.bytes.length, values: [snap.bytes] });
  const frd = f.ready();
  assert.equal(frd.install, true);
  assert.equal(frd.truncateFrom, 0, 'nothing is discarded: entry 6 has the snapshot\'s term');
  assert.deepEqual(frd.apply.map((a) => a.position), [], 'nothing above the snapshot is committed yet');
  const ack = frd.messagesAfterPersist.find((m) => m.type === MsgType.AppendResult);
  assert.ok(ack && ack.type === MsgType.AppendResult && ack.success && ack.index === 6, 'the leader hears index 6 matches, after the persist');
  c.handle(3, f, frd);
  const s = f.status();
  assert.equal(s.snapshotPrefix, 7);
  assert.equal(s.appliedPrefix, 7);
  assert.equal(s.inFlight, 2, 'entries 7 and 8 are still in the log');
  assert.deepEqual(c.disks.get(3)!.records.map((r) => r.position), [7, 8]);
  f.invariants();
  c.stabilize();
  c.tickAll(1);
  assert.deepEqual(c.applied.get(3), ['noop', 'a', 'b', 'c', 'd', 'e', 'f', 'g']);
});

test('a stored snapshot whose term is above the stored term is refused with a clear error', () => {
  const config = defaultConfig(1, [1, 2, 3]);
  const restored: Restored = {
    hardState: { ballot: 2, vote: 0 }, records: [], chosenPrefix: 5, appliedPrefix: 5,
    snapshot: { prefix: 5, ballot: 3, bytes: enc.encode('[]') }, rejoining: false,
  };
  assert.throws(() => new Raft({ config, kernels: k, rng: new Prng(1), restored }), /does not fit the stored term 2/);
});

test('a stalled transfer re-sends its request every few ticks and is abandoned after an election timeout', () => {
  const c = laggingFollower({ snapshotChunkBytes: 8 });
  const f = c.node(3);
  const offer: SnapshotChunk = { type: MsgType.SnapshotChunk, from: 1, to: 3, ballot: 1, prefix: 10, offset: 0, total: 20, values: [new Uint8Array(8)] };
  f.step(offer);
  const requestsAt: number[] = [];
  const cfg = defaultConfig(3, [1, 2, 3]);
  for (let t = 0; t <= cfg.electionTicksMin + 2; t++) {
    if (t > 0) f.tick();
    if (!f.hasReady()) continue;
    const rd = f.ready();
    for (const m of rd.messages) if (m.type === MsgType.SnapshotRequest) requestsAt.push(t);
    f.advance(rd);
  }
  // One request at once, then one every max(2, heartbeatTicks) idle ticks, none after the abandon.
  assert.deepEqual(requestsAt, [0, 2, 4, 6, 8]);
  f.step({ ...offer, offset: 8 }); // the chunk that was asked for, too late: the transfer is gone
  const late = f.hasReady() ? f.ready() : null;
  assert.ok(late === null || late.messages.every((m) => m.type !== MsgType.SnapshotRequest), 'no transfer to continue');
  assert.equal(f.status().snapshotPrefix, 1, 'nothing was installed');
  f.invariants();
});

// ---------------------------------------------------------------- rejoining without voting

const types = (ms: Message[]): string[] => ms.map((m) => `${m.type}>${m.to}`);
const votesIn = (rd: Ready): { to: number; granted: boolean; preVote: boolean }[] =>
  [...rd.messages, ...rd.messagesAfterPersist].flatMap((m) => (m.type === MsgType.Vote ? [{ to: m.to, granted: m.granted, preVote: m.preVote }] : []));
const appendResultsIn = (rd: Ready): number => [...rd.messages, ...rd.messagesAfterPersist].filter((m) => m.type === MsgType.AppendResult).length;

/** Leader 1 of term 1 has committed noop and a (indexes 1-2) on every node; then node 3 is wiped. */
/** The nonce a rejoining node's CatchUpRequests carry (drawn once per life; replies must echo it). */
const nonceOf = (n: Raft): number => (n as unknown as { catchUpNonce: number }).catchUpNonce;
/** Node `from`'s CatchUpReply to node 3 (term `ballot`, last index `lastPosition`, commitIndex + 1 = 3), echoing n's nonce. */
const answerCatchUp = (n: Raft, from: number, ballot: number, lastPosition: number): void =>
  n.step({ type: MsgType.CatchUpReply, from, to: 3, ballot, lastPosition, chosenPrefix: 3, nonce: nonceOf(n) });

const wipedFollower = (bugs: Partial<Record<PlantedBug, boolean>> = {}): Pump => {
  const c = new Pump(3, bugs);
  c.elect(1);
  c.node(1).propose(cmds('a'));
  c.stabilize();
  c.tickAll(1);
  for (const id of [1, 2, 3]) assert.deepEqual(c.applied.get(id), ['noop', 'a']);
  c.wipe(3);
  return c;
};

test('a wiped node asks every other member, and until all have answered grants no vote, sends no AppendResult, echoes no round, never campaigns', () => {
  const c = wipedFollower();
  const f = c.node(3);
  assert.equal(f.status().rejoining, true);
  let rd = f.ready();
  assert.deepEqual(types(rd.messages), [`${MsgType.CatchUpRequest}>1`, `${MsgType.CatchUpRequest}>2`], 'one request to each other member');
  assert.equal(rd.rejoined, false);
  f.advance(rd);
  // Node 1 answers; node 2's answer never comes.
  answerCatchUp(f, 1, 1, 2);
  // A pre-vote and a vote it would grant with an empty log in term 0, if it remembered nothing.
  f.step({ type: MsgType.RequestVote, from: 2, to: 3, term: 2, lastIndex: 1, lastTerm: 1, preVote: true });
  f.step({ type: MsgType.RequestVote, from: 2, to: 3, term: 1, lastIndex: 1, lastTerm: 1, preVote: false });
  rd = f.ready();
  assert.deepEqual(votesIn(rd), [{ to: 2, granted: false, preVote: true }, { to: 2, granted: false, preVote: false }]);
  assert.deepEqual(rd.hardState, { ballot: 1, vote: 0 }, 'the term may rise with a message, but no vote is cast');
  f.advance(rd);
  // The leader's AppendEntries and its confirmation round: the leader is noted, nothing is acknowledged.
  f.step({ type: MsgType.AppendEntries, from: 1, to: 3, term: 1, prevIndex: 0, prevTerm: 0, commitIndex: 2, entries: [{ index: 1, term: 1, value: k.encodeBatch([]) }] });
  f.step({ type: MsgType.ReadIndex, from: 1, to: 3, readId: 7 });
  assert.equal(f.status().leader, 1, 'the leader is known, for forwarding');
  assert.equal(f.propose(cmds('x')), 'forwarded');
  rd = f.ready();
  assert.equal(appendResultsIn(rd), 0, 'no AppendResult');
  assert.equal(rd.records.length, 0, 'nothing appended');
  assert.deepEqual(types(rd.messages), [`${MsgType.Propose}>1`], 'no ReadIndexReply echo, only the forwarded proposal');
  f.advance(rd);
  // Ticks: never a campaign; the request goes again, to node 2 only, every max(2, heartbeatTicks) ticks.
  const sentAt: number[] = [];
  for (let t = 1; t <= 100; t++) {
    f.tick();
    assert.equal(f.status().role, 'follower', `tick ${t}: a rejoining node never campaigns`);
    if (!f.hasReady()) continue;
    rd = f.ready();
    assert.ok(rd.messages.every((m) => m.type === MsgType.CatchUpRequest && m.to === 2), `tick ${t}: only requests to node 2`);
    if (rd.messages.length > 0) sentAt.push(t);
    f.advance(rd);
  }
  assert.equal(sentAt.length, 50);
  assert.deepEqual(sentAt.slice(0, 3), [2, 4, 6]);
  assert.equal(f.status().rejoining, true);
  f.invariants();
});

test('once every member has answered, the term rises to the highest reported with a vote for itself; it then appends and acknowledges but grants no vote', () => {
  const c = wipedFollower();
  const f = c.node(3);
  c.handle(3, f, f.ready());
  c.queue = [];
  answerCatchUp(f, 1, 1, 2);
  assert.equal(f.hasReady(), false, 'one answer of two changes nothing');
  answerCatchUp(f, 2, 1, 2);
  let rd = f.ready();
  assert.deepEqual(rd.hardState, { ballot: 1, vote: 3 }, 'term 1, the highest reported, with a vote for itself');
  assert.equal(rd.rejoined, false);
  c.handle(3, f, rd);
  assert.equal(f.status().rejoining, true);
  // A candidate in term 1 is refused: node 3 may have voted for node 1 in term 1 before it forgot.
  f.step({ type: MsgType.RequestVote, from: 2, to: 3, term: 1, lastIndex: 5, lastTerm: 1, preVote: false });
  rd = f.ready();
  assert.deepEqual(votesIn(rd), [{ to: 2, granted: false, preVote: false }]);
  c.handle(3, f, rd);
  // The leader's next AppendEntries (withheld commit index) is appended and acknowledged.
  f.step({ type: MsgType.AppendEntries, from: 1, to: 3, term: 1, prevIndex: 0, prevTerm: 0, commitIndex: 0, entries: [{ index: 1, term: 1, value: k.encodeBatch([]) }] });
  rd = f.ready();
  assert.deepEqual(rd.records.map((r) => r.position), [1]);
  const ack = rd.messagesAfterPersist.find((m) => m.type === MsgType.AppendResult);
  assert.ok(ack && ack.type === MsgType.AppendResult && ack.success && ack.index === 1, 'acknowledged after the persist');
  c.handle(3, f, rd);
  // A pre-vote in a later term is refused too, though node 3's log would pass the up-to-date check
  // (after an election timeout without the leader, so that stickiness is not what refuses it).
  for (let t = 0; t < defaultConfig(3, [1, 2, 3]).electionTicksMin; t++) f.tick();
  assert.equal(f.status().role, 'follower', 'it did not campaign');
  c.handle(3, f, f.ready());
  f.step({ type: MsgType.RequestVote, from: 2, to: 3, term: 2, lastIndex: 5, lastTerm: 1, preVote: true });
  rd = f.ready();
  assert.deepEqual(votesIn(rd), [{ to: 2, granted: false, preVote: true }]);
  c.handle(3, f, rd);
  f.invariants();
});

test('the term rises to the highest reported even above its own, and a vote cast in its term before is kept', () => {
  const c = wipedFollower();
  const f = c.node(3);
  c.handle(3, f, f.ready());
  answerCatchUp(f, 1, 4, 2);
  answerCatchUp(f, 2, 1, 9);
  const rd = f.ready();
  assert.deepEqual(rd.hardState, { ballot: 4, vote: 3 });
  assert.equal(f.status().ballot, 4);
  assert.equal(f.status().leader, 0, 'no leader known in term 4');
  // A node restored mid-way with a vote in the highest reported term keeps that vote.
  const config = defaultConfig(3, [1, 2, 3]);
  const g = new Raft({ config, kernels: k, rng: new Prng(3), restored: {
    hardState: { ballot: 4, vote: 2 }, records: [], chosenPrefix: 0, appliedPrefix: 1, snapshot: null, rejoining: true } });
  g.advance(g.ready());
  answerCatchUp(g, 1, 3, 2);
  answerCatchUp(g, 2, 4, 2);
  assert.equal(g.hasReady(), false, 'term 4 and the vote for node 2 stand: nothing to persist');
  assert.equal(g.status().rejoining, true);
  g.invariants();
});

test('it votes again only once commitIndex + 1 exceeds the highest last index reported; that Ready says rejoined with the hard state', () => {
  const c = wipedFollower();
  const f = c.node(3);
  c.handle(3, f, f.ready());
  c.queue = [];
  answerCatchUp(f, 1, 1, 2);
  // Node 2 reports a longer log (as if it held an entry since truncated): it bounds what node 3 may have acked.
  answerCatchUp(f, 2, 1, 3);
  c.handle(3, f, f.ready());
  const noop = k.encodeBatch([]);
  const a = k.encodeBatch(cmds('a'));
  const entries = [{ index: 1, term: 1, value: noop }, { index: 2, term: 1, value: a }];
  f.step({ type: MsgType.AppendEntries, from: 1, to: 3, term: 1, prevIndex: 0, prevTerm: 0, commitIndex: 2, entries });
  let rd = f.ready();
  assert.deepEqual(rd.apply.map((r) => r.position), [1, 2], 'it applies what is committed');
  assert.equal(rd.rejoined, false, 'commitIndex + 1 = 3 does not exceed 3');
  c.handle(3, f, rd);
  assert.equal(f.status().rejoining, true);
  for (let t = 0; t < defaultConfig(3, [1, 2, 3]).electionTicksMin; t++) f.tick(); // past stickiness
  if (f.hasReady()) c.handle(3, f, f.ready());
  f.step({ type: MsgType.RequestVote, from: 2, to: 3, term: 2, lastIndex: 5, lastTerm: 1, preVote: true });
  rd = f.ready();
  assert.deepEqual(votesIn(rd), [{ to: 2, granted: false, preVote: true }]);
  c.handle(3, f, rd);
  // Node 1 commits index 3.
  f.step({ type: MsgType.AppendEntries, from: 1, to: 3, term: 1, prevIndex: 2, prevTerm: 1, commitIndex: 3, entries: [{ index: 3, term: 1, value: noop }] });
  rd = f.ready();
  assert.equal(rd.rejoined, true);
  assert.deepEqual(rd.hardState, { ballot: 1, vote: 3 }, 'the hard state rides with rejoined');
  c.handle(3, f, rd);
  assert.equal(f.status().rejoining, false);
  assert.deepEqual(c.rejoined, [3]);
  // Now a candidate with an up-to-date log in a later term gets its pre-vote (once no leader was heard for a while).
  for (let t = 0; t < defaultConfig(3, [1, 2, 3]).electionTicksMin; t++) f.tick();
  c.handle(3, f, f.ready());
  f.step({ type: MsgType.RequestVote, from: 2, to: 3, term: 2, lastIndex: 5, lastTerm: 1, preVote: true });
  rd = f.ready();
  assert.deepEqual(votesIn(rd), [{ to: 2, granted: true, preVote: true }]);
  assert.equal(rd.rejoined, false, 'only one Ready says rejoined');
  c.handle(3, f, rd);
  f.invariants();
});

test('every node answers CatchUpRequest with its term, last index and commitIndex + 1, whatever its role', () => {
  const c = wipedFollower();
  c.node(2).propose(cmds('b')); // forwarded; node 1 appends b at index 3
  c.process();
  c.deliver((m) => m.to !== 3); // the Propose
  c.deliver((m) => m.to !== 3); // the AppendEntries with b; its acknowledgement stays queued
  c.queue = [];
  const answer = (id: number, from: number): unknown => {
    c.node(id).step({ type: MsgType.CatchUpRequest, from, to: id, nonce: 77 });
    const rd = c.node(id).ready();
    c.node(id).advance(rd);
    return rd.messages.filter((m) => m.type === MsgType.CatchUpReply).map((m) => m.type === MsgType.CatchUpReply &&
      ({ to: m.to, ballot: m.ballot, lastPosition: m.lastPosition, chosenPrefix: m.chosenPrefix }));
  };
  assert.deepEqual(answer(1, 3), [{ to: 3, ballot: 1, lastPosition: 3, chosenPrefix: 3 }], 'the leader');
  assert.deepEqual(answer(2, 3), [{ to: 3, ballot: 1, lastPosition: 3, chosenPrefix: 3 }], 'a follower');
  assert.deepEqual(answer(3, 1), [{ to: 1, ballot: 0, lastPosition: 0, chosenPrefix: 1 }], 'a rejoining node');
  // A (pre-)candidate answers too.
  const lone = new Pump(3);
  const cand = lone.node(1);
  while (cand.status().role === 'follower') cand.tick();
  cand.advance(cand.ready());
  cand.step({ type: MsgType.CatchUpRequest, from: 2, to: 1, nonce: 77 });
  const rd = cand.ready();
  assert.deepEqual(types(rd.messages), [`${MsgType.CatchUpReply}>2`]);
});

test('CatchUpReplies from non-members, malformed ones, and ones after every member answered count for nothing', () => {
  const c = wipedFollower();
  const f = c.node(3);
  c.handle(3, f, f.ready());
  const good = { type: MsgType.CatchUpReply, from: 1, to: 3, ballot: 1, lastPosition: 2, chosenPrefix: 3, nonce: nonceOf(f) } as const;
  f.step({ ...good, from: 2, nonce: nonceOf(f) + 1 }); // an answer to an earlier life of this node
  f.step({ ...good, from: 9 }); // not a member
  f.step({ ...good, from: 3 }); // itself
  f.step({ ...good, from: 2, ballot: -1 });
  f.step({ ...good, from: 2, lastPosition: 1.5 });
  f.step({ ...good, from: 2, chosenPrefix: Number.MAX_SAFE_INTEGER + 2 });
  f.step(good);
  f.step(good); // a duplicate of node 1's answer is not node 2's
  assert.equal(f.hasReady(), false, 'still waiting for node 2');
  assert.equal(f.status().rejoining, true);
  f.invariants();
  f.step({ ...good, from: 2 });
  const rd = f.ready();
  assert.deepEqual(rd.hardState, { ballot: 1, vote: 3 });
  c.handle(3, f, rd);
  // Late answers can neither raise the term nor the bound now.
  f.step({ ...good, from: 2, ballot: 9, lastPosition: 99 });
  assert.equal(f.hasReady(), false);
  assert.equal(f.status().ballot, 1);
  f.invariants();
});

test('a leader that hears a CatchUpRequest forgets the follower\'s match and probes it, so replication resumes after step 1', () => {
  const c = wipedFollower();
  c.node(1).propose(cmds('b'));
  c.stabilize(); // node 3 ignores b while asking; nodes 1 and 2 commit it
  c.tickAll(12);
  assert.equal(c.node(1).status().role, 'leader', 'node 1 kept leading');
  assert.deepEqual(c.applied.get(3), ['noop', 'a', 'b'], 'node 3 caught up from scratch');
  assert.deepEqual(c.rejoined, [3]);
  assert.equal(c.node(3).status().rejoining, false);
  // The probe: right after a CatchUpRequest the leader checks its last index, not the old match.
  c.node(1).step({ type: MsgType.CatchUpRequest, from: 3, to: 1, nonce: 77 });
  const rd = c.node(1).ready();
  const ae = rd.messages.filter((m): m is AppendEntries => m.type === MsgType.AppendEntries && m.to === 3);
  assert.deepEqual(ae.map((m) => [m.prevIndex, m.entries.length]), [[3, 0]], 'an empty probe at the last index 3');
  c.handle(1, c.node(1), rd);
  c.stabilize();
  c.tickAll(2);
  c.node(1).propose(cmds('c'));
  c.stabilize();
  c.tickAll(1);
  assert.deepEqual(c.applied.get(3), ['noop', 'a', 'b', 'c'], 'replication went on after the probe');
});

test('a cluster whose members all start new and rejoining passes through the steps in one round trip, then elects a leader', () => {
  const c = new Pump(3);
  for (const id of [1, 2, 3]) c.wipe(id);
  c.stabilize();
  assert.deepEqual([...c.rejoined].sort(), [1, 2, 3]);
  for (const id of [1, 2, 3]) assert.equal(c.node(id).status().rejoining, false);
  c.elect(1);
  assert.equal(c.node(1).status().role, 'leader');
  c.node(1).propose(cmds('x'));
  c.stabilize();
  c.tickAll(1);
  for (const id of [1, 2, 3]) assert.deepEqual(c.applied.get(id), ['noop', 'x']);
  // A cluster of one has nobody to ask: it rejoins in its first Ready.
  const one = new Raft({ config: defaultConfig(1, [1]), kernels: k, rng: new Prng(1), restored: {
    hardState: { ballot: 0, vote: 0 }, records: [], chosenPrefix: 0, appliedPrefix: 1, snapshot: null, rejoining: true } });
  assert.equal(one.status().rejoining, false);
  const rd = one.ready();
  assert.equal(rd.rejoined, true);
  assert.deepEqual(rd.hardState, { ballot: 0, vote: 1 });
  assert.deepEqual(rd.messages, []);
});

/** What a node told it starts a new cluster (--new-cluster) restores from a log that holds nothing. */
const newClusterLog = (): Restored => ({ hardState: { ballot: 0, vote: 0 }, records: [], chosenPrefix: 0, appliedPrefix: 1, snapshot: null, rejoining: true, newCluster: true });

test('members told they start a new cluster vote once a majority, themselves included, holds nothing: a cluster bootstraps with a member down', () => {
  // Without --new-cluster two new members wait for the third, which is down, and elect nobody.
  const plain = new Pump(3);
  plain.isolated.add(3);
  for (const id of [1, 2]) plain.wipe(id);
  plain.stabilize();
  plain.tickAll(60);
  assert.deepEqual(plain.rejoined, []);
  for (const id of [1, 2]) assert.equal(plain.node(id).status().rejoining, true);
  assert.ok([1, 2].every((id) => plain.node(id).status().role === 'follower'), 'no candidate while rejoining');
  // With it, each counts the other's empty answer and votes.
  const c = new Pump(3);
  c.isolated.add(3);
  for (const id of [1, 2]) c.start(id, newClusterLog());
  c.stabilize();
  assert.deepEqual([...c.rejoined].sort(), [1, 2]);
  c.elect(1);
  c.node(1).propose(cmds('x'));
  c.stabilize();
  c.tickAll(1);
  for (const id of [1, 2]) assert.deepEqual(c.applied.get(id), ['noop', 'x']);
  // A cluster of one is its own majority.
  const one = new Raft({ config: defaultConfig(1, [1]), kernels: k, rng: new Prng(1), restored: newClusterLog() });
  assert.equal(one.status().rejoining, false);
  assert.equal(one.ready().rejoined, true);
});

test('a wiped node restarted as if for a new cluster finds it running and rejoins in full: no vote until caught up', () => {
  for (const evidence of [{ ballot: 0, lastPosition: 2, chosenPrefix: 1 }, { ballot: 1, lastPosition: 2, chosenPrefix: 3 }]) {
    const c = wipedFollower();
    c.start(3, newClusterLog());
    const f = c.node(3);
    c.handle(3, f, f.ready());
    c.queue = [];
    f.step({ type: MsgType.CatchUpReply, from: 1, to: 3, ...evidence, nonce: nonceOf(f) });
    // Node 2 answers empty, as a member that never took part would: with node 3 that would be a majority.
    f.step({ type: MsgType.CatchUpReply, from: 2, to: 3, ballot: 0, lastPosition: 0, chosenPrefix: 1, nonce: nonceOf(f) });
    let rd = f.ready();
    assert.equal(rd.rejoined, false, `${JSON.stringify(evidence)}: not a new cluster`);
    c.handle(3, f, rd);
    assert.equal(f.status().rejoining, true);
    for (let t = 0; t < defaultConfig(3, [1, 2, 3]).electionTicksMin; t++) f.tick();
    if (f.hasReady()) c.handle(3, f, f.ready());
    f.step({ type: MsgType.RequestVote, from: 2, to: 3, term: 5, lastIndex: 9, lastTerm: 1, preVote: true });
    rd = f.ready();
    assert.deepEqual(votesIn(rd), [{ to: 2, granted: false, preVote: true }], `${JSON.stringify(evidence)}: no vote while catching up`);
    c.handle(3, f, rd);
    f.invariants();
  }
  // A member that has only seen a term: the node takes that term with a vote for itself, so it never votes twice in it.
  const t = wipedFollower();
  t.start(3, newClusterLog());
  const g = t.node(3);
  t.handle(3, g, g.ready());
  g.step({ type: MsgType.CatchUpReply, from: 1, to: 3, ballot: 1, lastPosition: 0, chosenPrefix: 1, nonce: nonceOf(g) });
  g.step({ type: MsgType.CatchUpReply, from: 2, to: 3, ballot: 0, lastPosition: 0, chosenPrefix: 1, nonce: nonceOf(g) });
  assert.deepEqual(g.ready().hardState, { ballot: 1, vote: 3 });
  // Against the real members: it catches up with what it lost, then votes.
  const c = wipedFollower();
  c.start(3, newClusterLog());
  c.stabilize();
  c.tickAll(6);
  assert.deepEqual(c.rejoined, [3]);
  assert.deepEqual(c.applied.get(3), ['noop', 'a']);
});

test('a node restarted before its rejoined Ready was durable rejoins again, keeping what it appended', () => {
  const c = wipedFollower();
  c.isolated.add(2); // node 2 never answers: node 3 stays in step 1
  c.stabilize();
  c.tickAll(3);
  assert.equal(c.node(3).status().rejoining, true);
  const d = c.disks.get(3)!;
  c.start(3, { hardState: { ballot: d.term, vote: d.vote }, records: [...d.records], chosenPrefix: d.chosenPrefix, appliedPrefix: 1, snapshot: null, rejoining: true });
  assert.equal(c.node(3).status().rejoining, true);
  c.isolated.clear();
  c.tickAll(6);
  assert.deepEqual(c.rejoined, [3]);
  assert.deepEqual(c.applied.get(3), ['noop', 'a']);
});

test('with rejoinVotesAtOnce planted, the wiped node votes at once, a candidate lacking the committed entry wins, and two values are applied at index 2', () => {
  const path = fileURLToPath(new URL('../../test/testdata/raft/rejoin-committed-entry.txt', import.meta.url));
  const file = parseScenario(readFileSync(path, 'utf8'), path);
  const run = (bugs: Partial<Record<PlantedBug, boolean>>): string[] => replayWithBugs(file, 'raft', bugs, k);
  const at2 = (out: string[]): string[] => [...new Set(out.filter((l) => / applied 2: /.test(l)).map((l) => l.split(': ')[1]))];
  const good = run({});
  assert.deepEqual(at2(good), ['a'], 'without the bug only a is applied at index 2');
  assert.ok(good.includes('3 rejoined: votes again'));
  const bad = run({ rejoinVotesAtOnce: true });
  assert.ok(bad.includes('3->2 Vote term=2 granted=true preVote=false'), 'the wiped node voted for node 2 at once');
  assert.ok(bad.includes('2 is leader (leader=2 term=2)'), 'node 2, lacking a, won');
  assert.ok(!bad.includes('3 rejoined: votes again'));
  const caught = at2(bad).length > 1 || bad.some((l) => l.startsWith('threw:'));
  assert.ok(caught, `a was lost: ${bad.filter((l) => / applied 2|threw|is leader/.test(l)).join('; ')}`);
});

test('a late acknowledgement from a wiped follower\'s earlier life does not stall replication to it', () => {
  const c = new Pump(3, {}, { batchMax: 1 });
  c.elect(1);
  c.node(1).propose(cmds('a', 'b'));
  c.stabilize();
  c.tickAll(1);
  assert.deepEqual(c.applied.get(3), ['noop', 'a', 'b']);
  c.wipe(3);
  c.process();
  c.deliver(); // the CatchUpRequests: the leader forgets node 3's match
  // An acknowledgement node 3 sent of index 3 before it was wiped arrives only now: match is 3 again,
  // though node 3 holds nothing.
  c.node(1).step({ type: MsgType.AppendResult, from: 3, to: 1, term: 1, success: true, index: 3, hintTerm: 0 });
  c.stabilize();
  c.tickAll(6);
  assert.deepEqual(c.applied.get(3), ['noop', 'a', 'b'], 'node 3 got the log again');
  assert.deepEqual(c.rejoined, [3]);
  // A follower that never asked to catch up: a rejection below its match is stale and ignored.
  const before = c.node(1).ready();
  c.handle(1, c.node(1), before);
  c.node(1).step({ type: MsgType.AppendResult, from: 2, to: 1, term: 1, success: false, index: 1, hintTerm: 0 });
  const rd = c.node(1).ready();
  assert.equal(rd.messages.filter((m) => m.type === MsgType.AppendEntries && m.to === 2).length, 0, 'no probe for a stale rejection');
  c.handle(1, c.node(1), rd);
});

/**
 * A random scenario-runner history over three nodes: proposals, dropped messages, partitions,
 * crashes and restarts, and wipes (at most one node without its state at a time, and none while
 * another is down: two nodes of three without their entries could lose a committed one under any
 * rule). After every command no index may have two applied values. At the end everything heals and
 * restarts, and every node must have rejoined and applied one fresh write. Returns the first
 * failure, or null, and how many wipes the history made.
 */
// With rejoinVotesAtOnce the wiped node never says it rejoined, so it counts as rejoining to the end:
// such a history makes one wipe and no crash after it.
const wipeHistory = (seed: number, bugs: Partial<Record<PlantedBug, boolean>>): { failure: string | null; wipes: number } => {
  const rng = new Prng(seed);
  const c = clusterFromCommand((o) => new Raft({ ...o, bugs }), k, `cluster nodes=3 seed=${seed}`);
  const down = new Set<number>();
  let wiped = 0; // the node that is rejoining, 0 if none
  let wipes = 0;
  const applied = new AppliedValues();
  const check = (out: string[]): string | null => {
    if (out.includes(`${wiped} rejoined: votes again`)) wiped = 0;
    const conflict = applied.check(out);
    return conflict === null ? null : `seed ${seed}: ${conflict}`;
  };
  const run = (command: string): string | null => {
    try {
      return check(c.run(command));
    } catch (e) {
      return `seed ${seed}: "${command}" threw: ${(e as Error).message}`;
    }
  };
  for (let step = 0, cmd = 0; step < 300; step++) {
    const r = rng.int(0, 100);
    const id = rng.int(1, 4);
    let failure: string | null = null;
    if (r < 30) failure = run(`advance ${rng.int(1, 6)}`);
    else if (r < 52) { if (!down.has(id)) failure = run(`propose ${id} v${cmd++}`); }
    else if (r < 75) failure = run(`deliver drop=(${rng.int(1, 4)}${rng.int(0, 2) ? `>${rng.int(1, 4)}` : ''})`);
    else if (r < 78) failure = run(rng.int(0, 2) ? 'heal' : `partition ${id} | ${[1, 2, 3].filter((x) => x !== id).join(' ')}`);
    else if (r < 84) { if (down.size === 0 && wiped === 0) { failure = run(`crash ${id}`); down.add(id); } }
    else if (r < 90) { if (down.has(id)) { failure = run(`restart ${id}`); down.delete(id); } }
    else if (r < 94) {
      if ((wiped === 0 || wiped === id) && (down.size === 0 || down.has(id))) { failure = run(`wipe ${id}`); down.delete(id); wiped = id; wipes++; }
    } else failure = run(`tick ${id} ${rng.int(1, 25)}`);
    if (failure) return { failure, wipes };
  }
  // Liveness: healed and all up, the cluster elects a leader, the wiped node rejoins, and every node
  // applies a fresh write. (Not with the planted bug, whose node never says it rejoined: only a
  // safety failure counts as catching it.)
  if (bugs.rejoinVotesAtOnce) return { failure: null, wipes };
  let failure = run('heal');
  for (const id of down) failure ??= run(`restart ${id}`);
  failure ??= run('advance 150');
  const leader = c.run('status').map((l) => /^(\d+): leader /.exec(l)).find((m) => m !== null);
  if (failure) return { failure, wipes };
  if (!leader) return { failure: `seed ${seed}: no leader after healing`, wipes };
  failure = run(`propose ${leader[1]} fresh`) ?? run('advance 60');
  if (failure) return { failure, wipes };
  if (wiped !== 0) return { failure: `seed ${seed}: node ${wiped} never rejoined`, wipes };
  const logs = [1, 2, 3].map((id) => c.run(`log ${id}`)[0].replace(/^\d log: /, ''));
  if (!logs[0].includes(':fresh') || logs.some((l) => l !== logs[0])) return { failure: `seed ${seed}: logs differ after healing: ${logs.join(' | ')}`, wipes };
  return { failure: null, wipes };
};

test('random histories with wiped nodes never apply two values at one index and end with every node rejoined; the same histories catch rejoinVotesAtOnce', (t) => {
  let wipes = 0;
  for (let seed = 1; seed <= 300; seed++) {
    const r = wipeHistory(seed, {});
    assert.equal(r.failure, null);
    wipes += r.wipes;
  }
  assert.ok(wipes >= 300, `only ${wipes} wipes in 300 histories`);
  let caught: string | null = null;
  let seed = 1;
  for (; seed <= 1000 && caught === null; seed++) caught = wipeHistory(seed, { rejoinVotesAtOnce: true }).failure;
  assert.ok(caught, 'the planted bug was not caught in 1,000 seeds');
  t.diagnostic(`${wipes} wipes over 300 histories; rejoinVotesAtOnce caught at ${caught}`);
});

test('pipelined Readys: entries a later truncation replaced do not count as durable when their Ready is advanced', () => {
  const n = new Raft({ config: defaultConfig(2, [1, 2, 3]), kernels: k, rng: new Prng(2) });
  const ae = (term: number, prevIndex: number, prevTerm: number, values: string[]): Message => ({
    type: MsgType.AppendEntries, from: term === 1 ? 1 : 3, to: 2, term, prevIndex, prevTerm, commitIndex: 0,
    entries: values.map((v, i) => ({ index: prevIndex + 1 + i, term, value: k.encodeBatch([enc.encode(v)]) })),
  });
  const durable = (): number => (n as unknown as { durableIndex: number }).durableIndex;
  n.step(ae(1, 0, 0, ['a', 'b', 'c']));
  const first = n.ready();
  assert.deepEqual(first.records.map((r) => r.position), [1, 2, 3]);
  // A leader of term 2 replaces index 2 on while the first persist is in flight.
  n.step(ae(2, 1, 1, ['B']));
  const second = n.ready();
  assert.equal(second.truncateFrom, 2);
  n.advance(first);
  assert.equal(durable(), 1, 'indexes 2 and 3 of the first Ready were replaced: only 1 is durable');
  n.advance(second);
  assert.equal(durable(), 2, 'the replacement at 2 is durable with the second Ready');
});

test('a Raft leader takes a forwarded Propose once: a duplicate, or one for an earlier term, is dropped', () => {
  const c = new Pump(3);
  c.elect(1);
  const l = c.node(1);
  const term = l.status().ballot;
  const propose: Message = { type: MsgType.Propose, from: 2, to: 1, ballot: term, incarnation: 7, seq: 1, values: cmds('once') };
  l.step(propose);
  l.step(propose);
  l.step({ ...propose, ballot: term - 1, seq: 2 });
  const rd = l.ready();
  l.advance(rd);
  const commands = rd.records.reduce((n, r) => {
    const places = k.decodeBatchPlaces(r.value);
    assert.ok(!('error' in places));
    return n + places.length / 2;
  }, 0);
  assert.equal(commands, 1, `${commands} commands appended for one forwarded command`);
});

test('a follower learns the commit index at once though a heartbeat to it (which carries only up to its match) went out after the commit moved', () => {
  const c = new Pump(3);
  c.elect(1);
  c.tickAll(1);
  const l = c.node(1);
  assert.equal(c.node(3).status().chosenPrefix, 2, 'the no-op is committed everywhere');
  l.propose(cmds('x'));
  c.process(); // the leader hands out entry 2: AppendEntries to 2 and 3
  c.deliver(); // the followers append, persist and answer
  const replies = c.queue;
  c.queue = [];
  for (const m of replies) if (m.from === 2) l.step(m);
  assert.equal(l.status().chosenPrefix, 3, 'entry 2 is committed with node 2');
  // A tick before the leader's next Ready: the heartbeat to node 3 checks its match (1) and so
  // can tell it only that entry 1 is committed.
  l.tick();
  for (const m of replies) if (m.from === 3) l.step(m);
  c.stabilize();
  assert.equal(c.node(3).status().chosenPrefix, 3, 'node 3 learns entry 2 is committed without waiting for another heartbeat');
  assert.deepEqual(c.applied.get(3), ['noop', 'x']);
});

test('a restart with 100,000 committed entries applies them 1024 per Ready, and a read asked meanwhile waits for the Ready that applies through its index', () => {
  const entries = 100_000;
  const records: LogRecord[] = Array.from({ length: entries }, (_, i) => ({ position: i + 1, ballot: 1, value: enc.encode('x') }));
  const n = new Raft({ config: defaultConfig(1, [1]), kernels: k, rng: new Prng(1), restored: {
    hardState: { ballot: 1, vote: 1 }, records, chosenPrefix: entries + 1, appliedPrefix: 1, snapshot: null, rejoining: false } });
  let applied = 0;
  let readIndex = 0;
  let appliedWhenAsked = 0;
  let answeredAt = 0;
  // One Ready a tick, so that the replay is still under way when the node has become leader.
  for (let round = 0; round < 1000 && answeredAt === 0; round++) {
    n.tick();
    if (readIndex === 0 && n.status().role === 'leader') {
      n.read(7, 'quorum');
      readIndex = n.status().chosenPrefix - 1; // answerable once this index is applied
      appliedWhenAsked = applied;
    }
    if (!n.hasReady()) continue;
    const rd = n.ready();
    assert.ok(rd.apply.length <= 1024, `one Ready applied ${rd.apply.length} entries`);
    for (const r of rd.apply) assert.equal(r.position, ++applied);
    if (rd.reads.some((r) => r.id === 7)) {
      assert.ok(applied >= readIndex, `the read at ${readIndex} was answered with ${applied} applied`);
      answeredAt = applied;
    }
    n.advance(rd);
  }
  assert.ok(readIndex > 0 && appliedWhenAsked < readIndex, `the read was asked mid-replay (${appliedWhenAsked} applied, index ${readIndex})`);
  assert.ok(answeredAt >= readIndex, `the read was answered (applied through ${answeredAt})`);
  assert.ok(applied >= entries, 'every entry applied');
});

// ---------------------------------------------------------------- replays applied 1024 entries per Ready

/** A member of [1, 2, 3] (or `peers`) restarted with `entries` records of term `term` (then `tail` more,
 *  uncommitted), `committed` of them known committed, nothing applied: it replays them over many Readys. */
const replaying = (id: number, entries: number, committed: number, opts: { term?: number; tail?: number; peers?: number[] } = {}): Raft => {
  const term = opts.term ?? 1;
  const total = entries + (opts.tail ?? 0);
  const records: LogRecord[] = Array.from({ length: total }, (_, i) => ({ position: i + 1, ballot: term, value: k.encodeBatch(cmds(`v${i + 1}`)) }));
  return new Raft({ config: defaultConfig(id, opts.peers ?? [1, 2, 3]), kernels: k, rng: new Prng(id), restored: {
    hardState: { ballot: term, vote: 0 }, records, chosenPrefix: committed + 1, appliedPrefix: 1, snapshot: null, rejoining: false } });
};

/** Drives a core as src/node/node.ts's pump does (install, then apply in order, then answer the reads;
 *  persists are immediate), and checks on every Ready what the state machine and the clients see. */
class Replayer {
  /** The state machine applied every index up to here (an install jumps it forward). */
  applied = 0;
  /** Read id -> what was applied when it was answered. */
  readonly answered = new Map<number, number>();
  readonly failed: number[] = [];
  readonly installs: number[] = [];
  /** The command applied at each index (the install's range stays empty). */
  readonly values = new Map<number, string>();
  readys = 0;

  constructor(readonly core: Raft) {}

  one(): Ready {
    const rd = this.core.ready();
    this.readys++;
    assert.ok(rd.apply.length <= 1024, `one Ready applied ${rd.apply.length} entries`);
    if (rd.install && rd.snapshot) {
      assert.ok(rd.snapshot.prefix > this.applied + 1, `install at ${rd.snapshot.prefix} after applying through ${this.applied}: the state would go back`);
      this.applied = rd.snapshot.prefix - 1;
      this.installs.push(rd.snapshot.prefix);
    }
    for (const a of rd.apply) {
      assert.equal(a.position, this.applied + 1, `applied ${a.position} after ${this.applied} (in order, exactly once)`);
      assert.ok(!this.values.has(a.position), `index ${a.position} applied twice`);
      const c = k.decodeBatch(a.value);
      assert.ok(Array.isArray(c));
      this.values.set(a.position, c.map((x) => dec.decode(x)).join(' '));
      this.applied = a.position;
    }
    assert.equal(this.core.status().appliedPrefix, this.applied + 1, 'the core counts as applied exactly what the Readys handed out');
    for (const r of rd.reads) {
      assert.ok(!this.answered.has(r.id) && !this.failed.includes(r.id), `read ${r.id} answered twice`);
      assert.ok(this.applied >= r.index, `read ${r.id} at index ${r.index} answered with ${this.applied} applied`);
      this.answered.set(r.id, this.applied);
    }
    for (const id of rd.readsFailed) {
      assert.ok(!this.answered.has(id) && !this.failed.includes(id), `read ${id} failed after an answer, or twice`);
      this.failed.push(id);
    }
    this.core.advance(rd);
    this.core.invariants();
    return rd;
  }

  /** Take Readys until there is none; each must make progress (hasReady never spins). */
  drain(): Ready[] {
    const out: Ready[] = [];
    for (let i = 0; this.core.hasReady(); i++) {
      assert.ok(i < 1000, 'hasReady() stays true without progress');
      out.push(this.one());
    }
    assert.equal(this.core.status().appliedPrefix, this.core.status().chosenPrefix, 'drained: everything committed is applied');
    return out;
  }
}

const readIndexTo = (rd: Ready, to: number): number => {
  const m = rd.messages.find((x) => x.type === MsgType.ReadIndex && x.to === to);
  assert.ok(m && m.type === MsgType.ReadIndex, `a ReadIndex to ${to}`);
  return m.readId;
};

for (const keep of [false, true]) {
  test(`a follower mid-replay installs a snapshot (${keep ? 'keeping the log after it' : 'discarding its log'}): its state never goes back, no index is applied twice, and a read held for its index is answered once, after the install`, () => {
    // 5,000 (or 8,000) entries of term 1 on disk, 4,000 known committed, none applied.
    const f = replaying(3, keep ? 8000 : 5000, 4000);
    const d = new Replayer(f);
    d.one();
    assert.equal(d.applied, 1024);
    // Leader 1 of term 2 (whose log agrees at 4,000) is heard; a read is asked of it and confirmed at 4,000.
    f.step({ type: MsgType.AppendEntries, from: 1, to: 3, term: 2, prevIndex: 4000, prevTerm: 1, commitIndex: 4000, entries: [] });
    f.read(9, 'quorum');
    const readId = readIndexTo(d.one(), 1);
    assert.equal(d.applied, 2048);
    f.step({ type: MsgType.ReadIndexReply, from: 1, to: 3, readId, index: 4000, ok: true });
    d.one();
    assert.equal(d.applied, 3072);
    assert.equal(d.answered.has(9), false, 'the read waits: 3,072 applied, its index is 4,000');
    // The leader's snapshot through 6,000 (term 1 when the log after it is kept, else term 2, which this log lacks).
    const bytes = enc.encode('state through 6000');
    f.step({ type: MsgType.SnapshotChunk, from: 1, to: 3, ballot: keep ? 1 : 2, prefix: 6001, offset: 0, total: bytes.length, values: [bytes] });
    const rd = d.one();
    assert.equal(rd.install, true);
    assert.equal(rd.truncateFrom, keep ? 0 : 6001);
    assert.deepEqual(d.installs, [6001]);
    assert.equal(d.answered.get(9), 6000, 'the read is answered in the Ready that installs the state past its index');
    if (keep) {
      // The rest of the kept log is committed: applied from 6,001 on, 1024 per Ready.
      f.step({ type: MsgType.AppendEntries, from: 1, to: 3, term: 2, prevIndex: 8000, prevTerm: 1, commitIndex: 8000, entries: [] });
    }
    const rest = d.drain();
    assert.ok(rest.length <= 3, `${rest.length} more Readys`);
    assert.equal(d.applied, keep ? 8000 : 6000);
    const applied = [...d.values.keys()];
    assert.deepEqual(applied, [...Array.from({ length: 3072 }, (_, i) => i + 1), ...(keep ? Array.from({ length: 2000 }, (_, i) => 6001 + i) : [])]);
    assert.equal(d.values.get(keep ? 8000 : 3072), `v${keep ? 8000 : 3072}`);
    assert.deepEqual(d.failed, []);
    assert.equal(f.status().snapshotPrefix, 6001);
  });
}

test('a leader mid-replay that steps down answers the read it confirmed once its index is applied, fails the one it had not, and answers a follower\'s at once', () => {
  const n = replaying(1, 20_000, 20_000);
  const d = new Replayer(n);
  // Win term 2 with node 2's pre-vote and vote, before any Ready: the replay has not begun.
  for (let i = 0; n.status().role === 'follower'; i++) {
    assert.ok(i < 1000, 'node 1 never campaigned');
    n.tick();
  }
  n.step({ type: MsgType.Vote, from: 2, to: 1, term: 2, granted: true, preVote: true });
  n.step({ type: MsgType.Vote, from: 2, to: 1, term: 2, granted: true, preVote: false });
  assert.equal(n.status().role, 'leader');
  d.one(); // persists the no-op at 20,001 and applies 1..1024
  n.step({ type: MsgType.AppendResult, from: 2, to: 1, term: 2, success: true, index: 20_001, hintTerm: 0 });
  assert.equal(n.status().chosenPrefix, 20_002, 'the no-op of term 2 is committed');
  n.read(7, 'quorum');
  const round = readIndexTo(d.one(), 2);
  n.step({ type: MsgType.ReadIndexReply, from: 2, to: 1, readId: round, index: 0, ok: true });
  n.read(8, 'quorum'); // waits for the next round, which no one will confirm
  n.step({ type: MsgType.ReadIndex, from: 3, to: 1, readId: 42 }); // a follower's read: answered by message, now
  const rd = d.one();
  const reply = rd.messages.filter((m) => m.type === MsgType.ReadIndexReply && m.to === 3 && m.readId === 42);
  assert.ok(reply.length === 1 && reply[0].type === MsgType.ReadIndexReply && reply[0].ok && reply[0].index === 20_001, 'the follower\'s read is answered at 20,001');
  assert.equal(d.answered.has(7), false, `read 7 (index 20,001) waits: ${d.applied} applied`);
  // Node 3 leads term 3: node 1 steps down with read 7 confirmed but not answerable yet.
  n.step({ type: MsgType.AppendEntries, from: 3, to: 1, term: 3, prevIndex: 20_001, prevTerm: 2, commitIndex: 20_001, entries: [] });
  assert.equal(n.status().role, 'follower');
  d.drain();
  assert.deepEqual(d.failed, [8], 'the unconfirmed read fails, once');
  assert.equal(d.answered.get(7), 20_001, 'the confirmed read is answered once, with everything through its index applied');
  assert.equal(d.answered.has(8), false);
  assert.ok(d.readys <= 25, `${d.readys} Readys for 20,001 entries`);
});

test('compact() mid-replay trims only what is applied: the replay goes on from the applied prefix, and a snapshot past it throws', () => {
  const n = replaying(1, 5000, 5000, { peers: [1] });
  const d = new Replayer(n);
  d.one();
  assert.equal(n.status().appliedPrefix, 1025);
  assert.throws(() => n.compact(1026, enc.encode('ahead')), { name: 'AssertionError' });
  n.compact(1025, enc.encode('through 1024'));
  const rd = d.one();
  assert.equal(rd.snapshot?.prefix, 1025);
  assert.equal(rd.install, false);
  assert.deepEqual([rd.apply[0].position, rd.apply.at(-1)!.position], [1025, 2048], 'the Ready with the snapshot applies from its prefix on');
  n.compact(2000, enc.encode('through 1999')); // below the applied prefix: allowed
  d.drain();
  assert.equal(d.applied, 5000);
  assert.equal(d.values.size, 5000);
  assert.equal(d.values.get(5000), 'v5000');
  assert.equal(n.status().snapshotPrefix, 2000);
});

test('a truncation of uncommitted entries mid-replay cuts above the applied prefix and the entries applied are the leader\'s', () => {
  // 3,000 committed entries of term 1, then 500 of term 1 that no majority holds.
  const f = replaying(3, 3000, 3000, { tail: 500 });
  const d = new Replayer(f);
  d.one();
  const mine = k.encodeBatch(cmds('leader2'));
  f.step({ type: MsgType.AppendEntries, from: 1, to: 3, term: 2, prevIndex: 3000, prevTerm: 1, commitIndex: 3001,
    entries: [{ index: 3001, term: 2, value: mine }] });
  const rd = d.one();
  assert.equal(rd.truncateFrom, 3001);
  assert.deepEqual(rd.records.map((r) => r.position), [3001]);
  d.drain();
  assert.equal(d.applied, 3001);
  assert.equal(d.values.get(3000), 'v3000');
  assert.equal(d.values.get(3001), 'leader2', 'the replaced entry is never applied');
});

test('reads confirmed and waiting for a replay count against pendingMax: the read past it is refused', () => {
  const entries = 20_000;
  const records: LogRecord[] = Array.from({ length: entries }, (_, i) => ({ position: i + 1, ballot: 1, value: enc.encode('x') }));
  const n = new Raft({ config: { ...defaultConfig(1, [1]), pendingMax: 4 }, kernels: k, rng: new Prng(1), restored: {
    hardState: { ballot: 1, vote: 1 }, records, chosenPrefix: entries + 1, appliedPrefix: 1, snapshot: null, rejoining: false } });
  // One Ready a tick until the node leads, the replay still under way.
  for (let round = 0; round < 200 && n.status().role !== 'leader'; round++) {
    n.tick();
    if (n.hasReady()) n.advance(n.ready());
  }
  assert.equal(n.status().role, 'leader');
  assert.ok(n.status().appliedPrefix < n.status().chosenPrefix, 'the replay is still under way');
  for (let id = 1; id <= 4; id++) n.read(id, 'quorum');
  // Confirmed (a cluster of one is its own quorum), they wait for the replay, not in a Ready yet.
  let rd = n.ready();
  assert.deepEqual(rd.reads, []);
  assert.deepEqual(rd.readsFailed, []);
  n.advance(rd);
  assert.ok(n.status().appliedPrefix < n.status().chosenPrefix, 'the replay is still under way');
  n.read(5, 'quorum');
  rd = n.ready();
  assert.deepEqual(rd.readsFailed, [5], 'four reads held for the replay, the fifth refused');
  n.advance(rd);
});
