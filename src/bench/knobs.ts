// The benchmark's knobs: one table gives each knob its flag, its parser, its default and its
// meaning, so `paxlog bench --help`, `--sweep NAME=a,b,c` and the report all agree on them.
// A run is one protocol at one setting of every knob; a sweep is the cross product of lists.

import { InvalidArgumentError } from 'commander';
import type { ProtocolName } from '../protocol/types.js';

/** One setting of every knob but the protocol: what a single run measures. */
export interface RunKnobs {
  /** Cluster size: 3 or 5. */
  nodes: number;
  /** Requests in flight (closed loop) or connections (open loop over HTTP). Invariant: 1..100000. */
  clients: number;
  /** WebSocket connections the requests are spread over (ws only); 0 means min(clients, 8). */
  connections: number;
  /** closed: each client sends its next request when the last one is answered; open: a fixed rate. */
  mode: 'closed' | 'open';
  /** Requests per second offered in open loop (ignored in closed loop). Invariant: >= 1. */
  rate: number;
  /** Seconds measured, after the warmup. */
  durationS: number;
  /** Seconds of load before measuring (leader settled, caches warm, LMDB map grown). */
  warmupS: number;
  /** Bytes of each written value. */
  payloadBytes: number;
  /** Commands per slot at most (the node's --batch-max). */
  batchMax: number;
  /** Slots in flight at most (the node's --pipeline). */
  pipeline: number;
  /** Sync every log write (the node's --fsync). */
  fsync: boolean;
  /** Fraction of requests that are reads, 0..1. */
  readRatio: number;
  /** How reads are served. */
  read: 'lease' | 'quorum';
  /** ws: the binary /client WebSocket; http: PUT/GET /kv/{key} over keep-alive HTTP/1.1. */
  api: 'ws' | 'http';
  /** leader: every connection goes to the leader; all: connections are spread over every node,
   *  and followers forward writes to the leader (as etcd's benchmark does with several endpoints). */
  connect: 'leader' | 'all';
  /** The nodes' hot-path kernels. */
  kernels: 'wasm' | 'js';
  /** Probability that a node drops each outbound peer frame (the node's --fault-loss). */
  loss: number;
  /** Milliseconds added to every outbound peer message (the node's --fault-delay-ms). */
  delayMs: number;
  /** Distinct keys written and read. */
  keys: number;
}

export interface BenchOptions extends RunKnobs {
  /** Protocols compared; their runs are interleaved. */
  protocols: ProtocolName[];
  /** How many times each (setting, protocol) runs. */
  repeat: number;
  /** Lists of values for knobs; the runs cover their cross product. */
  sweeps: Sweep[];
  /** The short preset for CI: a shape check, finished in under a minute. */
  quick: boolean;
  /** Directory for results.json, report.md, runs/*.json and *.svg. */
  out: string;
  /** The first peer port; each run takes the next 20 ports, wrapping within 1000. */
  basePort: number;
  /** Seeds the injected loss; each run's nodes use seed + run index. */
  seed: number;
  /** If set, every node runs with `node --cpu-prof` and writes its profile under this directory. */
  profileDir: string | null;
  /** Draw the progress bar (when stderr is a terminal). */
  progress: boolean;
}

export interface Sweep {
  knob: keyof RunKnobs;
  /** Values parsed by the knob's own parser. Invariant: at least one. */
  values: RunKnobs[keyof RunKnobs][];
}

const wholeIn = (lo: number, hi: number) => (v: string): number => {
  if (!/^\d+$/.test(v)) throw new InvalidArgumentError(`"${v}" is not a whole number`);
  const n = Number(v);
  if (n < lo || n > hi) throw new InvalidArgumentError(`${n} is not in ${lo}..${hi}`);
  return n;
};

const realIn = (lo: number, hi: number, hiOpen = false) => (v: string): number => {
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n)) throw new InvalidArgumentError(`"${v}" is not a number`);
  if (n < lo || (hiOpen ? n >= hi : n > hi)) throw new InvalidArgumentError(`${n} is not in [${lo}, ${hi}${hiOpen ? ')' : ']'}`);
  return n;
};

const oneOf = <T extends string>(...choices: T[]) => (v: string): T => {
  if (!(choices as string[]).includes(v)) throw new InvalidArgumentError(`"${v}" is not one of ${choices.join(', ')}`);
  return v as T;
};

const onOff = (v: string): boolean => {
  if (v === 'on') return true;
  if (v === 'off') return false;
  throw new InvalidArgumentError(`"${v}" is not on or off`);
};

interface Knob {
  key: keyof RunKnobs;
  /** The flag's name without dashes; also the name used in --sweep. */
  flag: string;
  /** Shown in --help after the flag. */
  arg: string;
  parse: (v: string) => RunKnobs[keyof RunKnobs];
  describe: string;
}

/** Every knob, in the order --help and the report show them. */
export const knobTable: Knob[] = [
  { key: 'nodes', flag: 'nodes', arg: '<3|5>', parse: (v) => Number(oneOf('3', '5')(v)), describe: 'cluster size' },
  { key: 'clients', flag: 'clients', arg: '<n>', parse: wholeIn(1, 100_000), describe: 'requests in flight (closed loop), or HTTP connections' },
  { key: 'connections', flag: 'connections', arg: '<n>', parse: wholeIn(0, 1024), describe: 'WebSocket connections (0: min(clients, 8))' },
  { key: 'mode', flag: 'mode', arg: '<closed|open>', parse: oneOf('closed', 'open'), describe: 'closed loop, or open loop at --rate' },
  { key: 'rate', flag: 'rate', arg: '<req/s>', parse: wholeIn(1, 10_000_000), describe: 'open-loop offered load, requests per second' },
  { key: 'durationS', flag: 'duration', arg: '<s>', parse: realIn(0.5, 3600), describe: 'seconds measured per run' },
  { key: 'warmupS', flag: 'warmup', arg: '<s>', parse: realIn(0, 600), describe: 'seconds of load before measuring' },
  { key: 'payloadBytes', flag: 'payload', arg: '<bytes>', parse: wholeIn(0, 1024 * 1024), describe: 'bytes per written value' },
  { key: 'batchMax', flag: 'batch-max', arg: '<n>', parse: wholeIn(1, 65536), describe: 'commands per slot at most' },
  { key: 'pipeline', flag: 'pipeline', arg: '<n>', parse: wholeIn(1, 4096), describe: 'slots in flight at most' },
  { key: 'fsync', flag: 'fsync', arg: '<on|off>', parse: onOff, describe: 'sync every log write' },
  { key: 'readRatio', flag: 'read-ratio', arg: '<0..1>', parse: realIn(0, 1), describe: 'fraction of requests that are reads' },
  { key: 'read', flag: 'read', arg: '<lease|quorum>', parse: oneOf('lease', 'quorum'), describe: 'how reads are served' },
  { key: 'api', flag: 'api', arg: '<ws|http>', parse: oneOf('ws', 'http'), describe: 'binary WebSocket /client, or HTTP /kv' },
  { key: 'connect', flag: 'connect', arg: '<leader|all>', parse: oneOf('leader', 'all'), describe: 'connect to the leader only, or spread connections over every node' },
  { key: 'kernels', flag: 'kernels', arg: '<wasm|js>', parse: oneOf('wasm', 'js'), describe: 'the nodes\' hot-path kernels' },
  { key: 'loss', flag: 'loss', arg: '<p>', parse: realIn(0, 1, true), describe: 'drop probability of each outbound peer frame' },
  { key: 'delayMs', flag: 'delay', arg: '<ms>', parse: wholeIn(0, 10_000), describe: 'milliseconds added to each outbound peer message (the nodes\' tick grows to twice it, at least 20 ms: an election timeout stays 10 round trips or more)' },
  { key: 'keys', flag: 'keys', arg: '<n>', parse: wholeIn(1, 10_000_000), describe: 'distinct keys' },
];

/**
 * The nodes' milliseconds per tick for a run: the default 20, or twice the injected delay. An
 * election timeout is 10 to 20 ticks and a lease 8: at 20 ms a delay of 100 ms each way made a
 * heartbeat's round trip as long as the shortest election timeout, and Raft never kept a leader.
 * etcd's guidance likewise sets the election timeout at 10 round trips or more.
 */
export const tickMsFor = (delayMs: number): number => Math.max(20, 2 * delayMs);

export const knobDefaults: RunKnobs = {
  nodes: 3, clients: 256, connections: 0, mode: 'closed', rate: 10_000, durationS: 10, warmupS: 3, payloadBytes: 100,
  batchMax: 256, pipeline: 32, fsync: true, readRatio: 0, read: 'lease', api: 'ws', connect: 'leader', kernels: 'wasm', loss: 0, delayMs: 0,
  keys: 100_000,
};

/** What --quick changes, unless the flag is given too. */
export const quickKnobs: Partial<RunKnobs> = { durationS: 3, warmupS: 1, clients: 64, keys: 10_000 };

export const knobByFlag = new Map(knobTable.map((k) => [k.flag, k]));
export const knobByKey = new Map(knobTable.map((k) => [k.key, k]));

/** Parses `NAME=v1,v2,...` with the knob's own parser. */
export function parseSweep(text: string): Sweep {
  const m = /^([a-z-]+)=(.+)$/.exec(text);
  if (m === null) throw new InvalidArgumentError(`"${text}" is not NAME=v1,v2,... (e.g. batch-max=1,8,64)`);
  const knob = knobByFlag.get(m[1]);
  if (knob === undefined) throw new InvalidArgumentError(`"${m[1]}" is not a knob; knobs: ${knobTable.map((k) => k.flag).join(', ')}`);
  const values = m[2].split(',').map((v) => knob.parse(v.trim()));
  if (values.length > 64) throw new InvalidArgumentError(`--sweep ${m[1]} has ${values.length} values; at most 64`);
  return { knob: knob.key, values };
}

export function parseProtocols(text: string): ProtocolName[] {
  const names = text.split(',').map((p) => p.trim());
  for (const n of names) if (n !== 'multipaxos' && n !== 'raft') throw new InvalidArgumentError(`"${n}" is not multipaxos or raft`);
  if (new Set(names).size !== names.length) throw new InvalidArgumentError(`"${text}" names a protocol twice`);
  return names as ProtocolName[];
}

/**
 * Every setting the sweeps give, in order (the last sweep varies fastest). Each holds the knobs
 * only, even when `base` is the whole BenchOptions: a run's knobs are what it ran with, not the
 * bench's protocols, output directory and the like.
 */
export function expandSweeps(base: RunKnobs, sweeps: Sweep[]): RunKnobs[] {
  let out: RunKnobs[] = [Object.fromEntries(knobTable.map((k) => [k.key, base[k.key]])) as unknown as RunKnobs];
  for (const s of sweeps) {
    out = out.flatMap((k) => s.values.map((v) => ({ ...k, [s.knob]: v })));
  }
  return out;
}

export function formatKnob(v: RunKnobs[keyof RunKnobs]): string {
  return typeof v === 'boolean' ? (v ? 'on' : 'off') : String(v);
}
