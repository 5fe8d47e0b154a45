// The scenario runner: text files of commands and their expected output, in the manner of
// etcd-io/raft's testdata/*.txt. Generic over the protocol: it drives any `Protocol` by name.
//
// A file opens with a paragraph of '#' lines saying what it shows. Then blocks:
//
//   command args...
//   ----
//   expected output (no blank lines; "ok" when there is none)
//
// separated by blank lines. Commands:
//
//   cluster nodes=3 [seed=1] [pipeline=4 batchMax=8 heartbeatTicks=3 ...]   fresh cluster
//   campaign N              tick node N until it leaves the follower role (Multi-Paxos: until it asks for a pre-vote)
//   tick N|all K            tick K times
//   advance K               K rounds of (tick all, deliver all once), printing no messages
//   propose N cmd...        propose commands at node N (each word one command)
//   read N lease|quorum ID  ask node N for a read; its answer prints when it comes
//   deliver [drop=(1,2>3)] [hold=(3)]  deliver every queued message once; drop= drops messages
//                           to or from a node ("2>3": from 2 to 3 only), hold= keeps them queued
//   stabilize               deliver until no message is left
//   partition 1 | 2 3       cut every link between the groups; heal removes all cuts
//   crash N / restart N     stop a node (it keeps what it persisted) / start it from storage
//   stop N                  crash N gracefully: every live node its links reach hears it is stopping
//   wipe N [new-cluster]    stop node N and start it from empty storage, rejoining without voting;
//                           with new-cluster, as `serve --new-cluster` starts it (Restored.newCluster)
//   snapshot N              node N snapshots what it applied (compact); the next Ready trims its log
//   status [N]              one describe line per node
//   log N                   the values node N has applied
//
// Persists are immediate here (the simulator models slow disks); after every command each live
// node's Ready is processed in id order: applied slots, installed snapshots, answered reads and
// role changes print. A node's state machine is the list of values it applied; its snapshot is that
// list as JSON.

import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import type { Message } from '../protocol/messages.js';
import { defaultConfig, type Config, type PlantedBug, type Protocol, type ProtocolName, type Status } from '../protocol/types.js';
import type { Kernels } from '../kernels/types.js';
import { loadKernels } from '../kernels/index.js';
import { Durable } from './durable.js';
import { Prng } from './prng.js';
import { protocolFactory, type ProtocolFactory } from './protocols.js';
import { ballotText, describeMessage, describeStatus, valueText } from './describe.js';

export interface Block {
  /** The command line. */
  command: string;
  /** The expected output as written in the file. */
  expected: string;
  /** 1-based line of the command in the file. */
  line: number;
}

export interface ScenarioFile {
  /** The opening paragraph, '#' lines included, as written. */
  header: string;
  blocks: Block[];
}

/** Parse a scenario file; a malformed file gets an error naming its line. */
export const parseScenario = (text: string, name = 'scenario'): ScenarioFile => {
  const lines = text.split('\n');
  let i = 0;
  const head: string[] = [];
  while (i < lines.length && (lines[i].startsWith('#') || lines[i].trim() === '')) head.push(lines[i++]);
  while (head.length > 0 && head[head.length - 1].trim() === '') head.pop();
  if (!head.some((l) => l.startsWith('#'))) throw new Error(`${name}: a scenario opens with a '#' paragraph saying what it shows`);
  const blocks: Block[] = [];
  while (i < lines.length) {
    if (lines[i].trim() === '' || lines[i].startsWith('#')) { i++; continue; }
    const line = i + 1;
    const command = lines[i++].trim();
    if (lines[i] !== '----') throw new Error(`${name}:${line}: expected "----" after the command "${command}"`);
    i++;
    const out: string[] = [];
    while (i < lines.length && lines[i].trim() !== '') out.push(lines[i++]);
    blocks.push({ command, expected: out.join('\n'), line });
  }
  return { header: head.join('\n'), blocks };
};

export const formatScenario = (f: ScenarioFile, outputs: string[]): string =>
  `${f.header}\n\n${f.blocks.map((b, i) => `${b.command}\n----\n${outputs[i]}\n`).join('\n')}`;

interface ScenarioNode {
  core: Protocol | null;
  durable: Durable;
  /** The state machine: the value applied at position i + 1, as text, at [i]. */
  applied: string[];
  /** The last status printed (role and leader changes print). */
  last: Status | null;
  /** Wiped and not yet caught up: a restart before the Ready with `rejoined` is durable rejoins again. */
  rejoining: boolean;
}

const enc = new TextEncoder();
const utf8 = new TextDecoder();
const fromSnapshot = (bytes: Uint8Array): string[] => JSON.parse(utf8.decode(bytes)) as string[];

/** A cluster driven step by step by scenario commands. */
export class ScenarioCluster {
  private readonly nodes = new Map<number, ScenarioNode>();
  private queue: Message[] = [];
  /** Cut links as "from>to". */
  private readonly cuts = new Set<string>();
  private readonly ids: number[];
  /** The protocol the cores run, as they report it. */
  private readonly protocol: ProtocolName;

  constructor(private readonly factory: ProtocolFactory, private readonly k: Kernels, private readonly configs: Config[], private readonly seed: number) {
    this.ids = configs.map((c) => c.id);
    for (const c of configs) {
      this.nodes.set(c.id, { core: null, durable: new Durable(), applied: [], last: null, rejoining: false });
      this.start(c.id, false);
    }
    this.protocol = this.core(this.ids[0]).status().protocol;
  }

  /** Cores started so far: each gets the next as its incarnation (see ProtocolOptions). */
  private incarnations = 0;

  private start(id: number, restore: boolean, newCluster = false): void {
    const n = this.nodes.get(id)!;
    const config = this.configs.find((c) => c.id === id)!;
    const restored = restore ? n.durable.restored() : undefined;
    if (restored && n.rejoining) restored.rejoining = true;
    if (restored && newCluster) restored.newCluster = true;
    n.core = this.factory({
      config, kernels: this.k, rng: new Prng(this.seed * 1000 + id + (restore ? 500 : 0)), restored, incarnation: ++this.incarnations,
    });
    n.applied = restore && n.durable.snapshot ? fromSnapshot(n.durable.snapshot.bytes) : [];
    n.last = n.core.status();
  }

  /** Node `id` is down: its core is gone, what it persisted stays. */
  private down(id: number): void {
    const n = this.nodes.get(id)!;
    n.core = null;
    n.last = null;
  }

  private core(id: number): Protocol {
    const n = this.nodes.get(id);
    if (!n) throw new Error(`no node ${id}`);
    if (!n.core) throw new Error(`node ${id} is down`);
    return n.core;
  }

  /** Drain every live node's Ready, in id order, printing what the state machine sees. */
  process(out: string[]): void {
    for (const id of this.ids) {
      const n = this.nodes.get(id)!;
      const core = n.core;
      if (!core) continue;
      while (core.hasReady()) {
        const rd = core.ready();
        n.durable.persist(rd);
        if (rd.rejoined) {
          n.rejoining = false;
          out.push(`${id} rejoined: votes again`);
        }
        this.queue.push(...rd.messages, ...rd.messagesAfterPersist);
        if (rd.install && rd.snapshot) {
          n.applied = fromSnapshot(rd.snapshot.bytes);
          assert.equal(n.applied.length, rd.snapshot.prefix - 1, `node ${id} installed a snapshot whose bytes disagree with its prefix`);
          out.push(`${id} installed snapshot below ${rd.snapshot.prefix}`);
        }
        for (const a of rd.apply) {
          assert.equal(a.position, n.applied.length + 1, `node ${id} applied position ${a.position} out of order`);
          const text = valueText(this.k, a.value);
          n.applied.push(text);
          out.push(`${id} applied ${a.position}: ${text}`);
        }
        for (const r of rd.reads) out.push(`${id} read ${r.id} ok index=${r.index}`);
        for (const r of rd.readsFailed) out.push(`${id} read ${r} failed`);
        core.advance(rd);
      }
      const s = core.status();
      if (!n.last || n.last.role !== s.role || n.last.leader !== s.leader) {
        const ballot = s.protocol === 'multipaxos' ? `ballot=${ballotText(s.ballot)}` : `term=${s.ballot}`;
        out.push(`${id} is ${s.role} (leader=${s.leader} ${ballot})`);
      }
      n.last = s;
    }
  }

  /** Run one command line; returns its output lines. */
  run(command: string): string[] {
    const out: string[] = [];
    const [cmd, ...args] = command.split(/\s+/);
    switch (cmd) {
      case 'campaign': {
        const id = num(args[0]);
        const core = this.core(id);
        let ticks = 0;
        // Multi-Paxos asks first (pre-vote): its PrePrepares are queued, and it campaigns once
        // they are granted (deliver them). Raft's pre-candidate is not a follower.
        while (core.status().role === 'follower' && !(core.name === 'multipaxos' && core.hasReady())) {
          assert.ok(ticks++ < 10_000, `node ${id} never campaigned`);
          core.tick();
        }
        break;
      }
      case 'tick': {
        const ids = args[0] === 'all' ? this.ids : [num(args[0])];
        const times = args[1] === undefined ? 1 : num(args[1]);
        for (let t = 0; t < times; t++) {
          for (const id of ids) this.nodes.get(id)!.core?.tick();
          this.process(out);
        }
        break;
      }
      case 'advance': {
        // Rounds of: tick every live node once, then deliver every queued message once. Only
        // applies, reads and role changes print, so long stretches stay readable.
        const rounds = num(args[0]);
        const quiet: string[] = [];
        for (let t = 0; t < rounds; t++) {
          for (const id of this.ids) this.nodes.get(id)!.core?.tick();
          this.process(out);
          this.deliver(() => false, () => false, quiet);
          for (const l of quiet) if (!l.includes('->')) out.push(l);
          quiet.length = 0;
        }
        break;
      }
      case 'propose': {
        const id = num(args[0]);
        const result = this.core(id).propose(args.slice(1).map((a) => enc.encode(a)));
        out.push(`${id} propose: ${result}`);
        break;
      }
      case 'read': {
        const id = num(args[0]);
        if (args[1] !== 'lease' && args[1] !== 'quorum') throw new Error(`read mode must be lease or quorum, not ${args[1]}`);
        this.core(id).read(num(args[2]), args[1]);
        break;
      }
      case 'deliver': this.deliver(parseIds(args, 'drop'), parseIds(args, 'hold'), out); break;
      case 'stabilize': {
        let rounds = 0;
        this.process(out);
        while (this.queue.length > 0) {
          assert.ok(rounds++ < 1000, 'stabilize did not settle in 1000 rounds');
          this.deliver(() => false, () => false, out);
        }
        break;
      }
      case 'partition': {
        const bar = args.indexOf('|');
        if (bar < 0) throw new Error('partition needs two groups split by "|"');
        const a = args.slice(0, bar).map(num);
        const b = args.slice(bar + 1).map(num);
        for (const x of a) for (const y of b) { this.cuts.add(`${x}>${y}`); this.cuts.add(`${y}>${x}`); }
        break;
      }
      case 'heal': this.cuts.clear(); break;
      case 'crash': {
        this.down(num(args[0]));
        out.push(`${args[0]} crashed`);
        break;
      }
      case 'stop': {
        // A graceful stop: the node goes, and every live peer its link reaches hears that it is
        // stopping (Protocol.peerStopping), as node.ts does on a link closed with code 1001.
        const id = num(args[0]);
        this.down(id);
        out.push(`${id} stopped`);
        for (const other of this.ids) {
          if (other !== id && !this.cuts.has(`${id}>${other}`)) this.nodes.get(other)!.core?.peerStopping(id);
        }
        this.process(out);
        break;
      }
      case 'restart': {
        this.start(num(args[0]), true);
        break;
      }
      case 'wipe': {
        // A disk replaced, or a damaged log set aside: everything this node persisted is gone.
        const id = num(args[0]);
        if (args.length > 2 || (args.length === 2 && args[1] !== 'new-cluster')) throw new Error('wipe takes a node id and, optionally, new-cluster');
        const newCluster = args[1] === 'new-cluster';
        const n = this.nodes.get(id)!;
        n.durable = new Durable();
        n.rejoining = true;
        this.start(id, true, newCluster);
        out.push(newCluster ? `${id} wiped, started as for a new cluster: votes at once only if a majority holds nothing` : `${id} wiped: rejoining without voting`);
        break;
      }
      case 'snapshot': {
        const id = num(args[0]);
        const n = this.nodes.get(id)!;
        const core = this.core(id);
        const prefix = core.status().appliedPrefix;
        core.compact(prefix, enc.encode(JSON.stringify(n.applied.slice(0, prefix - 1))));
        out.push(`${id} compacted below ${prefix}`);
        break;
      }
      case 'status': {
        const ids = args.length > 0 ? args.map(num) : this.ids;
        for (const id of ids) {
          const c = this.nodes.get(id)!.core;
          out.push(c ? describeStatus(c.status()) : `${id}: down`);
        }
        break;
      }
      case 'log': {
        const n = this.nodes.get(num(args[0]))!;
        out.push(`${args[0]} log: ${n.applied.length === 0 ? '(empty)' : n.applied.map((v, i) => `${i + 1}:${v}`).join(' ')}`);
        break;
      }
      default: throw new Error(`unknown command "${cmd}"`);
    }
    this.process(out);
    return out;
  }

  private deliver(drop: LinkFilter, hold: LinkFilter, out: string[]): void {
    const batch = this.queue;
    this.queue = [];
    for (const m of batch) {
      if (hold(m)) { this.queue.push(m); continue; }
      const line = describeMessage(this.k, m, this.protocol);
      if (drop(m)) { out.push(`${line} DROPPED`); continue; }
      if (this.cuts.has(`${m.from}>${m.to}`)) { out.push(`${line} DROPPED (partition)`); continue; }
      const target = this.nodes.get(m.to)?.core;
      if (!target) { out.push(`${line} DROPPED (down)`); continue; }
      out.push(line);
      target.step(m);
    }
    this.process(out);
  }
}

const num = (s: string | undefined): number => {
  const n = Number(s);
  if (s === undefined || !Number.isSafeInteger(n) || n < 0) throw new Error(`expected a number, got ${JSON.stringify(s)}`);
  return n;
};

/** A link filter: "3" matches messages to or from node 3, "2>1" only messages from 2 to 1. */
type LinkFilter = (m: Message) => boolean;

const parseIds = (args: string[], key: string): LinkFilter => {
  const a = args.find((x) => x.startsWith(`${key}=`));
  if (!a) return () => false;
  const m = /^\w+=\(([\d,>\s]*)\)$/.exec(a);
  if (!m) throw new Error(`${key}= takes a list like (1,2>3), got ${a}`);
  const tests = m[1].split(',').filter((x) => x.trim() !== '').map((x): LinkFilter => {
    const [from, to] = x.trim().split('>');
    if (to === undefined) { const id = num(from); return (msg) => msg.from === id || msg.to === id; }
    const f = num(from);
    const t = num(to);
    return (msg) => msg.from === f && msg.to === t;
  });
  return (msg) => tests.some((t) => t(msg));
};

/** Defaults for scenarios: slower heartbeats and a short pipeline keep outputs readable. */
const scenarioConfig = (id: number, peers: number[]): Config => ({
  ...defaultConfig(id, peers),
  heartbeatTicks: 3,
  pipeline: 4,
  batchMax: 8,
});

const CONFIG_KEYS = new Set(['batchMax', 'batchBytesMax', 'pipeline', 'heartbeatTicks', 'electionTicksMin', 'electionTicksMax', 'leaseTicks', 'leaseDriftTicks', 'pendingMax', 'snapshotChunkBytes']);

/** Build the cluster a `cluster` command describes. */
export const clusterFromCommand = (factory: ProtocolFactory, k: Kernels, command: string): ScenarioCluster => {
  const [cmd, ...args] = command.split(/\s+/);
  if (cmd !== 'cluster') throw new Error(`a scenario starts with "cluster nodes=N", not "${command}"`);
  let nodes = 3;
  let seed = 1;
  const overrides: Partial<Config> = {};
  for (const a of args) {
    const [key, value] = a.split('=');
    if (key === 'nodes') nodes = num(value);
    else if (key === 'seed') seed = num(value);
    else if (CONFIG_KEYS.has(key)) (overrides as Record<string, number>)[key] = num(value);
    else throw new Error(`unknown cluster option ${key}`);
  }
  const peers = Array.from({ length: nodes }, (_, i) => i + 1);
  return new ScenarioCluster(factory, k, peers.map((id) => ({ ...scenarioConfig(id, peers), ...overrides })), seed);
};

/** Run a parsed scenario; returns each block's actual output. */
export const runScenario = (f: ScenarioFile, protocol: string, k: Kernels = loadKernels('js')): string[] => {
  const factory = protocolFactory(protocol);
  let cluster: ScenarioCluster | null = null;
  return f.blocks.map((b) => {
    let lines: string[];
    try {
      if (b.command.startsWith('cluster')) {
        cluster = clusterFromCommand(factory, k, b.command);
        lines = [];
      } else {
        if (!cluster) throw new Error('no cluster yet: start with "cluster nodes=N"');
        lines = cluster.run(b.command);
      }
    } catch (e) {
      if (e instanceof assert.AssertionError) throw e; // a broken invariant is a failure, not output
      lines = [`error: ${(e as Error).message}`];
    }
    return lines.length === 0 ? 'ok' : lines.join('\n');
  });
};

/**
 * Run a scenario's commands on cores with planted bugs: every output line in order, until a command
 * throws (a broken core invariant included), which ends the run with a "threw: ..." line.
 */
export const replayWithBugs = (f: ScenarioFile, protocol: string, bugs: Partial<Record<PlantedBug, boolean>>,
  k: Kernels = loadKernels('js')): string[] => {
  const make = protocolFactory(protocol);
  const cluster = clusterFromCommand((o) => make({ ...o, bugs }), k, f.blocks[0].command);
  const out: string[] = [];
  for (const b of f.blocks.slice(1)) {
    try {
      out.push(...cluster.run(b.command));
    } catch (e) {
      out.push(`threw: ${(e as Error).message}`);
      break;
    }
  }
  return out;
};

/** The values scenario output says were applied, by position: no position may get two, at any nodes. */
export class AppliedValues {
  /** Position (as printed) -> the value first applied there. */
  private readonly byPosition = new Map<string, string>();

  /** Record the "N applied P: value" lines of `out`; the first conflict, described, or null. */
  check(out: string[]): string | null {
    for (const l of out) {
      const m = /^(\d+) applied (\d+): (.*)$/.exec(l);
      if (!m) continue;
      const before = this.byPosition.get(m[2]);
      if (before === undefined) this.byPosition.set(m[2], m[3]);
      else if (before !== m[3]) return `position ${m[2]} applied as "${before}" and as "${m[3]}" (node ${m[1]})`;
    }
    return null;
  }
}

/** Run a scenario file; with `rewrite`, write the actual outputs back into it. */
export const runScenarioFile = (path: string, protocol: string, rewrite: boolean): { file: ScenarioFile; actual: string[] } => {
  const file = parseScenario(readFileSync(path, 'utf8'), path);
  const actual = runScenario(file, protocol);
  if (rewrite) writeFileSync(path, formatScenario(file, actual));
  return { file, actual };
};
