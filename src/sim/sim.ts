// The deterministic simulator (in the manner of TigerBeetle's VOPR). One seed builds a cluster of
// pure protocol cores and their clients, draws its own fault rates, and drives everything through
// message loss, duplication, reordering, long delays, partitions (asymmetric too), crashes (on
// some seeds aimed at the leader), restarts that lose whatever was not yet durable, disk stalls
// (persists that hang while the node runs on, some ending in a kill), and clock jumps within the
// drift bound. Seeds also draw the batch knobs, down to one command per batch,
// and snapshots: how often every node compacts its log, and how small the chunks are in which a
// lagging node pulls a peer's snapshot.
//
// After every step it checks that no slot has two chosen values, that all applied logs are
// prefixes of one another (both checked as values are applied, against one global log), and,
// for Multi-Paxos, that no slot was ever accepted by a majority at two ballots with different
// values (the ground truth of "chosen", from durable records: a majority with the ballot's
// proposer among them) and that no value is applied before such a majority durably accepted it;
// for Raft, that no entry is applied before a leader of its term or a later one held it on disk
// (with an entry of its own term at or above it). At the end it heals everything and
// requires the cluster to converge on a fresh write (liveness), checks that no acknowledged
// write is lost, and checks the clients' history for linearizability, key by key. With snapshots
// on, the liveness phase first keeps one node down while the others write and compact past its
// log, so that node can only converge by installing a snapshot.
//
// Process pauses (off by default, SimOptions.pauses): a node stops, clock and all, and on waking
// catches its clock up before it handles what waited, as node.ts does.
//
// Storage faults (off by default): a restart may find the node's disk damaged (it refuses and stays
// down, as a real node stops with a clear message, or on a share of such restarts sets the damaged
// log aside and rejoins without voting, as --rejoin-without-voting does) or empty (a replaced disk:
// it rejoins without voting). A rejoining node starts from an empty durable state with
// Restored.rejoining set, and comes up rejoining again after every restart until a persisted Ready
// says `rejoined` (the durable mark). With SimOptions.newCluster every node first starts so too, as
// `--new-cluster` starts it (Restored.newCluster while its log holds nothing), and votes once a
// majority answers holding nothing. Refused and rejoining nodes together stay a minority. The
// Multi-Paxos ground truth keeps every accept a node ever made durable, forgotten ones included:
// a forgotten accept of a chosen value is exactly what a node that votes at once can betray.
//
// A node's snapshot carries a digest of every value it applied; an installed or restored snapshot
// must match the digest of the global log below its prefix.
//
// Everything is generic over the protocol: a factory from src/sim/protocols.ts.

import assert from 'node:assert/strict';
import { MsgType, type Message } from '../protocol/messages.js';
import {
  defaultConfig, holdsNothing, type Config, type LogRecord, type PlantedBug, type Protocol, type ProtocolName,
  type Ready, type ReadMode, type Snapshot,
} from '../protocol/types.js';
import { isDecodeError, type Kernels } from '../kernels/types.js';
import { loadKernels } from '../kernels/index.js';
import { Durable } from './durable.js';
import { Prng } from './prng.js';
import { protocolFactory, type ProtocolFactory } from './protocols.js';
import { checkRegister, type RegisterOp } from './linearizability.js';

export type Bugs = Partial<Record<PlantedBug, boolean>>;

export interface SimOptions {
  seed: number;
  nodes: 3 | 5;
  /** Ticks of the safety phase, with faults. */
  steps: number;
  protocol: ProtocolName;
  bugs?: Bugs;
  kernels?: Kernels;
  /**
   * Storage faults in the manner of Paxos Made Live: the probability that a restart finds the
   * node's durable state damaged (a bit flipped in a record, the hard state lost, or a chosen
   * slot's record gone). Such a node refuses to restore and stays down for good, as a real node
   * stops with a clear message; at most a minority is ever damaged. 0 (the default) draws nothing,
   * so every seed's history is the one it always was.
   */
  storageFaults?: number;
  /**
   * The share of damaged restarts (storageFaults) on which the node sets its damaged log aside and
   * rejoins without voting from an empty durable state instead of staying down. 0 (the default)
   * draws nothing. Drawn from the disk side stream, so the main stream's history stays as it was.
   */
  rejoinShare?: number;
  /**
   * The probability that a restart finds the node's disk empty (a replaced disk): it rejoins
   * without voting. 0 (the default) draws nothing; drawn from the disk side stream.
   */
  wipes?: number;
  /**
   * Process pauses (SIGSTOP, a long garbage collection, a VM descheduled): the per-tick, per-node
   * probability that a running node stops for 1 to 4 election timeouts. A paused node's clock stops
   * and nothing it does moves on: messages and client requests to it wait, its persists do not
   * complete. On waking, as node.ts brings the core's clock up to date before it steps a message or
   * serves a read, its clock catches up first (by at most 2 election timeouts, as node.ts's
   * catch-up is bounded), then what waited is handled. 0 (the default) draws nothing; drawn from a
   * side stream of its own.
   */
  pauses?: number;
  /**
   * Graceful stops: the share of crashes in which the node, as it goes, tells each peer it is
   * stopping (Protocol.peerStopping, as node.ts does on a link closed with code 1001). Each notice
   * reaches a running peer at once, ahead of whatever the node sent before that is still in flight,
   * or is lost (with probability 1/2, or on a cut link). 0 (the default) draws nothing; drawn from
   * a side stream of its own.
   */
  stops?: number;
  /**
   * The cluster bootstraps as `--new-cluster` starts it: every node's first start is from an empty
   * log marked rejoining, with Restored.newCluster, and so is every restart while it holds nothing
   * and has not rejoined (a wipe never is: a wiped node restarted so is the operator's mistake the
   * check only narrows). False (the default): nodes start fresh and vote at once, as always.
   */
  newCluster?: boolean;
  /** TEST ONLY: a driver that handles what waited at a woken node before its clock catches up. */
  staleClockOnWake?: boolean;
  /** TEST ONLY: builds the cores instead of the protocol's own factory (a test wraps a core to make it misbehave). */
  factory?: ProtocolFactory;
}

/** The fault settings one seed draws. */
export interface Faults {
  /** Probability a message is lost. */
  loss: number;
  /** Probability a message is delivered twice. */
  duplicate: number;
  /** Normal delivery delay is uniform in [1, delayMax] ticks, which reorders messages. */
  delayMax: number;
  /** Probability a message is held for a long delay instead (up to longDelayMax ticks). */
  longDelay: number;
  longDelayMax: number;
  /** Per-tick probability that a partition begins (when none is active). */
  partition: number;
  /** Probability a partition is one-way. */
  asymmetric: number;
  /** Per-tick, per-node probability of a crash. */
  crash: number;
  /** Per-tick probability that a node which leads crashes (on top of `crash`): a nemesis that
   *  kills the leader, as Jepsen's does. Short reigns leave entries of a term on a few nodes
   *  only, the history of the Raft paper's Figure 8. Zero on three seeds in four: a seed that
   *  kills leaders does a tenth of the client work of one that does not. */
  leaderCrash: number;
  /** A persist completes after uniform [0, persistDelayMax] ticks; a crash before then loses it. */
  persistDelayMax: number;
  /** Per-tick, per-node probability of one extra tick (a clock running fast), within the drift bound. */
  clockJump: number;
  clients: number;
  keys: number;
  /** Probability a client operation is a read. */
  reads: number;
  pipeline: number;
  batchMax: number;
  /** Bytes per batch, and per Raft AppendEntries, at most (a legal setting of the knob). At 8
   *  bytes a batch holds one command and an AppendEntries one entry that has a command, so an
   *  old-term entry can reach a follower without the new leader's entry behind it (Figure 8). */
  batchBytesMax: number;
  heartbeatTicks: number;
  /** Election timeouts are drawn from [electionTicksMin, electionTicksMax). */
  electionTicksMin: number;
  electionTicksMax: number;
  /** Lease length (< electionTicksMin) and its drift margin; clocks jump within the margin. */
  leaseTicks: number;
  leaseDriftTicks: number;
  /** Positions a node applies between two compactions of its log; 0 (on half the seeds) never. */
  snapshotEvery: number;
  /** Snapshot bytes per SnapshotChunk: tiny (a transfer spans many chunks, some lost) or the 1 MiB default. */
  snapshotChunkBytes: number;
  /** Readys a node has in flight at most (Config.readysOutstandingMax): 1, 2 or 4, or 64 on a
   *  quarter of the seeds (a deep pipeline: a leader whose disk stalls goes on sending Accepts and
   *  commits for a long while). */
  readysOutstandingMax: number;
  /** Per-tick, per-node probability that the node's disk stalls (an fsync that hangs): none of its
   *  persists completes until the stall ends, while the node runs on. Zero on half the seeds. */
  stall: number;
  /** A stall lasts 1..stallTicksMax ticks. On half the stalls the node is then killed with its
   *  persists still hanging (a watchdog, or the kernel's hung-task panic), losing them. */
  stallTicksMax: number;
}

export interface SimResult {
  seed: number;
  faults: Faults;
  /** null when every check passed. */
  violation: string | null;
  /** Why each node that found its storage damaged refused to restore, as "node N: reason" (SimOptions.storageFaults). */
  refusals: string[];
  /** Nodes still marked rejoining at the end (their `rejoined` Ready never persisted), not counting nodes that refused
   *  damaged storage later (they never run again). Empty when no node refused: every rejoin then completed. */
  rejoining: number[];
  stats: {
    delivered: number; dropped: number; crashes: number; partitions: number; writesAcked: number; readsOk: number; unknown: number; applied: number;
    /** Restarts that found damaged storage (SimOptions.storageFaults); each was detected, then refused or set aside. */
    storageFaults: number;
    /** Restarts from an empty durable state, rejoining: a replaced disk, or a damaged log set aside. */
    wipes: number;
    /** Cores started rejoining: every wipe, and every restart of a node whose rejoining was not yet persisted as done. */
    rejoins: number;
    /** Readys with `rejoined` persisted: rejoins completed. Invariant: at most wipes, plus the nodes with SimOptions.newCluster. */
    rejoined: number;
    /** Cores started with Restored.newCluster (SimOptions.newCluster): each node's first start, and restarts before it voted. */
    newClusterStarts: number;
    /** Rejoins completed before a CatchUpReply from every other member reached the node in that life:
     *  only the newCluster check completes so (it needs a majority), never a full rejoin. */
    rejoinedOnMajority: number;
    /** compact() calls: snapshots the nodes took. */
    snapshots: number;
    /** Readys with install=true: snapshots taken in from a peer (each checked against the global log). */
    installs: number;
    /** SnapshotChunk messages delivered. */
    chunks: number;
    /** Process pauses (SimOptions.pauses). */
    pauses: number;
    /** Stopping notices delivered (SimOptions.stops). */
    notices: number;
    /** Disk stalls begun (Faults.stall). */
    stalls: number;
  };
}

/**
 * The faults one seed draws from its main stream `rng` (which goes on to drive the run), and the
 * snapshot knobs from a side stream of its own: a seed that never snapshots then runs exactly as
 * it did before snapshots existed (same draws, same history), and its old replay lines still hold.
 */
export const drawFaults = (rng: Prng, seed: number): Faults => ({
  ...drawRunFaults(rng), ...drawSnapshotKnobs(sideStream(seed, SideStream.Snapshots)),
  readysOutstandingMax: drawReadys(sideStream(seed, SideStream.Readys)), ...drawStallKnobs(sideStream(seed, SideStream.StallKnobs)),
});

/** The SimOptions that are probabilities of faults; the sim command takes each as a flag of the same name in kebab case. */
export const faultFields = ['storageFaults', 'rejoinShare', 'wipes', 'pauses', 'stops'] as const;

/** The side streams of a seed, each the seed's nth fork; adding one never moves the others. */
const enum SideStream {
  /** The snapshot knobs (drawFaults). */
  Snapshots = 0,
  /** Every wipe and set-aside decision (Sim.diskRng). */
  Disk = 1,
  /** Readys in flight at most (drawFaults). */
  Readys = 2,
  /** Process pauses (Sim.pauseRng). */
  Pauses = 3,
  /** Graceful stops and their notices (Sim.stopRng). */
  Stops = 4,
  /** How often and how long disks stall (drawFaults). */
  StallKnobs = 5,
  /** Every disk stall: where, how long, and how it ends (Sim.stallRng). */
  Stalls = 6,
}

const sideStream = (seed: number, which: SideStream): Prng => {
  const side = new Prng(seed);
  for (let i = 0; i < which; i++) side.fork();
  return side.fork();
};

/** The draws from the main stream, in the order they always had. */
export const drawRunFaults = (rng: Prng): Omit<Faults, 'snapshotEvery' | 'snapshotChunkBytes' | 'readysOutstandingMax' | 'stall' | 'stallTicksMax'> => ({
  loss: rng.next() * 0.3,
  duplicate: rng.next() * 0.5,
  delayMax: rng.int(1, 11),
  longDelay: rng.next() * 0.03,
  longDelayMax: rng.int(20, 300),
  partition: rng.next() * 0.01,
  asymmetric: rng.next(),
  crash: rng.next() * 0.006,
  persistDelayMax: rng.int(0, 8),
  clockJump: rng.next() * 0.05,
  clients: rng.int(1, 9),
  keys: rng.int(1, 4),
  reads: 0.2 + rng.next() * 0.5,
  pipeline: [1, 2, 4, 8, 32][rng.int(0, 5)],
  batchMax: [1, 2, 8, 64][rng.int(0, 4)],
  heartbeatTicks: rng.int(1, 3),
  ...drawTimeouts(rng),
  batchBytesMax: [8, 8, 64, 256 * 1024][rng.int(0, 4)],
  leaderCrash: rng.chance(0.75) ? 0 : 0.02 + rng.next() * 0.13,
});

/** 1, 2 or 4 from the first draw, as before 64 was drawn too: a seed that draws no 64 keeps its value. */
const drawReadys = (rng: Prng): number => {
  const shallow = [1, 2, 4][rng.int(0, 3)];
  return rng.chance(0.25) ? 64 : shallow;
};

const drawStallKnobs = (rng: Prng): Pick<Faults, 'stall' | 'stallTicksMax'> =>
  rng.chance(0.5) ? { stall: rng.next() * 0.004, stallTicksMax: rng.int(10, 201) } : { stall: 0, stallTicksMax: 0 };

const drawSnapshotKnobs = (rng: Prng): Pick<Faults, 'snapshotEvery' | 'snapshotChunkBytes'> => {
  const kind = rng.int(0, 4);
  return {
    snapshotEvery: kind < 2 ? 0 : kind === 2 ? rng.int(2, 6) : rng.int(10, 51),
    snapshotChunkBytes: rng.chance(0.7) ? rng.int(8, 65) : 1024 * 1024,
  };
};

const drawTimeouts = (rng: Prng): Pick<Faults, 'electionTicksMin' | 'electionTicksMax' | 'leaseTicks' | 'leaseDriftTicks'> => {
  const electionTicksMin = rng.int(6, 25);
  const leaseDriftTicks = rng.int(1, 3);
  return {
    electionTicksMin,
    electionTicksMax: electionTicksMin + rng.int(1, electionTicksMin + 1),
    leaseTicks: rng.int(leaseDriftTicks + 2, electionTicksMin),
    leaseDriftTicks,
  };
};

export const describeFaults = (f: Faults): string =>
  `loss=${pct(f.loss)} dup=${pct(f.duplicate)} delay<=${f.delayMax} longDelay=${pct(f.longDelay)}<=${f.longDelayMax} ` +
  `partition=${pct(f.partition)}/tick asym=${pct(f.asymmetric)} crash=${pct(f.crash)}/tick leaderCrash=${pct(f.leaderCrash)}/tick persistDelay<=${f.persistDelayMax} ` +
  `stall=${pct(f.stall)}/tick<=${f.stallTicksMax} ` +
  `clockJump=${pct(f.clockJump)} clients=${f.clients} keys=${f.keys} reads=${pct(f.reads)} pipeline=${f.pipeline} ` +
  `batchMax=${f.batchMax} batchBytesMax=${f.batchBytesMax} heartbeatTicks=${f.heartbeatTicks} electionTicks=[${f.electionTicksMin},${f.electionTicksMax}) ` +
  `leaseTicks=${f.leaseTicks} leaseDriftTicks=${f.leaseDriftTicks} ` +
  `snapshotEvery=${f.snapshotEvery === 0 ? 'never' : f.snapshotEvery} snapshotChunkBytes=${f.snapshotChunkBytes} readys<=${f.readysOutstandingMax}`;

const pct = (x: number): string => `${(x * 100).toFixed(1)}%`;

/** Thrown by a check; carries what differed. */
export class Violation extends Error {}

interface SimNode {
  id: number;
  core: Protocol | null;
  durable: Durable;
  /** The Readys being persisted, oldest first, each with the tick it becomes durable (never before
   *  the one ahead of it: persists complete in order). Invariant: length <= readysOutstandingMax. */
  persisting: { rd: Ready; doneAt: number }[];
  /** The next position this node's state machine applies. On restart, its durable snapshot's prefix (or 1). */
  appliedNext: number;
  /** Digest of the values applied at positions 1..appliedNext-1, in order (see chain()). */
  digest: number;
  /** The prefix of the last snapshot this node took or installed (1 when none): the next compaction is due snapshotEvery past it. */
  snapshotAt: number;
  /** Snapshots this node installed from a peer. */
  installs: number;
  /** The key-value state machine: key -> value. */
  kv: Map<string, string>;
  /** Reads confirmed by the core, waiting for this node to apply through their index. */
  readsHeld: { id: number; index: number }[];
  /** Tick at which a crashed node restarts. */
  restartAt: number;
  /** Tick at which a paused node wakes (SimOptions.pauses); <= now when it runs. */
  pausedUntil: number;
  /** Tick at which the node's disk stall ends (Faults.stall); 0 when it has none. Persists complete only outside one. */
  stalledUntil: number;
  /** The stall ends with the node killed, its persists still hanging. */
  stallKills: boolean;
  /** Ticks the node's clock fell behind while paused, paid when it wakes. */
  ticksOwed: number;
  /** Peer messages that arrived while the node was paused, in arrival order. Bounded by what is in flight. */
  heldMessages: Message[];
  /** Client requests that arrived while the node was paused, in arrival order. Invariant: at most one per client. */
  heldRequests: PendingOp[];
  /** Ticks at which this node's clock jumped, to keep jumps within the drift bound. */
  jumps: number[];
  /** '' while the node may run; else why it refused to restore damaged storage (it never runs again). */
  refused: string;
  /** The durable mark of a node restarted from an empty disk: set at the wipe, cleared when a Ready
   *  with `rejoined` is persisted. While set, every restart comes up rejoining, and the node counts
   *  as damaged for the minority rule. */
  rejoining: boolean;
  /** Started as `--new-cluster` starts a node (SimOptions.newCluster): set at the first start,
   *  cleared by a wipe and once `rejoined` is persisted. While set, a start whose durable state
   *  holds nothing restores with Restored.newCluster, as LogStore does. */
  newCluster: boolean;
  /** Members whose CatchUpReply reached this node since it last started. Bounded by the member count. */
  answeredBy: Set<number>;
}

interface PendingOp {
  kind: 'write' | 'read';
  key: string;
  /** The value written (writes). */
  value: string;
  op: number;
  /** The client that issued it. */
  client: number;
  node: number;
  readId: number;
  /** How a read is made (reads). */
  mode: ReadMode;
  /** Logical event time of the call. */
  call: number;
  deadline: number;
}

interface SimClient {
  id: number;
  /** The op id of the last op issued. Invariant: increases by one per op. */
  op: number;
  pending: PendingOp | null;
  nextAt: number;
}

interface InFlight {
  m: Message;
  at: number;
  seq: number;
}

const enc = new TextEncoder();
const dec = new TextDecoder();

/** A write's command, "w:<client>:<op>:<key>:<value>" (applyCommand reads it back). */
const commandOf = (p: PendingOp): Uint8Array => enc.encode(`w:${p.client}:${p.op}:${p.key}:${p.value}`);

/** A node's snapshot bytes: its state machine after applying every position below `prefix`. */
interface SnapshotState {
  prefix: number;
  /** digest over the values of positions 1..prefix-1 (chain()). */
  digest: number;
  kv: [string, string][];
}

/** The digest of a log extended by one value: FNV-1a over the value's text and a separator. Order matters. */
const chain = (digest: number, text: string): number => {
  let h = digest ^ 0x0a;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
  return Math.imul(h, 0x01000193) >>> 0;
};
/** The digest of the empty log. */
const DIGEST_EMPTY = 0x811c9dc5;
/** Ticks the liveness phase has to converge. */
const LIVENESS_TICKS = 4000;

export class Simulation {
  readonly faults: Faults;
  private readonly rng: Prng;
  /** The disk side stream: every wipe and set-aside decision, so that with those options at 0 the
   *  main stream, and so each seed's history, is what it always was. */
  private readonly diskRng: Prng;
  /** The pause side stream: whether and how long a node pauses (SimOptions.pauses). */
  private readonly pauseRng: Prng;
  /** The stop side stream: whether a crash is a graceful stop, and which notices arrive (SimOptions.stops). */
  private readonly stopRng: Prng;
  /** The stall side stream: which disk stalls, how long, and how it ends (Faults.stall). */
  private readonly stallRng: Prng;
  private readonly k: Kernels;
  private readonly nodes: SimNode[] = [];
  private readonly configs: Config[];
  private readonly factory: ProtocolFactory;
  private readonly majority: number;
  private now = 0;
  /** Messages in flight, a binary min-heap on (at, seq). */
  private readonly heap: InFlight[] = [];
  private sendSeq = 0;
  /** Cut links as from * 1000 + to. */
  private cuts = new Set<number>();
  private partitionEndsAt = 0;
  private readonly clients: SimClient[] = [];
  /** Logical clock for the history: every call and return gets a fresh time. */
  private eventTime = 0;
  private readId = 0;
  /** The one global log: position -> value (as text). Every apply anywhere must agree. */
  private readonly log = new Map<number, string>();
  /** digests[i]: the digest of the global log's positions 1..i, for as long as it has no hole. Grows with the log. */
  private readonly digests: number[] = [DIGEST_EMPTY];
  /** The CRC32C a node's durable snapshot was saved with, by node id (as LogStore keeps one beside it). */
  private readonly snapshotCrcs = new Map<number, number>();
  /** Multi-Paxos ground truth: slot -> ballot -> value and the nodes that durably accepted it. */
  private readonly accepts = new Map<number, Map<number, { value: string; nodes: Set<number> }>>();
  /** Multi-Paxos ground truth: slot -> the value a majority accepted at one ballot, its proposer among them. */
  private readonly trulyChosen = new Map<number, string>();
  /** Raft: term -> the node seen leading it (a term has one leader). */
  private readonly termLeader = new Map<number, number>();
  /** Raft: term -> the highest position its leader held on disk with an entry of that term. */
  private readonly leaderDurable = new Map<number, number>();
  private readonly history = new Map<string, RegisterOp[]>();
  /** Acknowledged writes: command text -> position applied at. */
  private readonly acked = new Map<string, number>();
  private faultsOn = true;
  /** Nodes the liveness phase asks nothing of: rejoining while another node refused for good (see liveness()). */
  private readonly heldBack = new Set<number>();
  readonly stats = {
    delivered: 0, dropped: 0, crashes: 0, partitions: 0, writesAcked: 0, readsOk: 0, unknown: 0, applied: 0,
    storageFaults: 0, wipes: 0, rejoins: 0, rejoined: 0, newClusterStarts: 0, rejoinedOnMajority: 0, snapshots: 0, installs: 0, chunks: 0, pauses: 0, notices: 0, stalls: 0,
  };

  constructor(private readonly o: SimOptions) {
    this.rng = new Prng(o.seed);
    this.faults = drawFaults(this.rng, o.seed);
    for (const name of faultFields) {
      const x = o[name];
      if (x !== undefined && !(x >= 0 && x <= 1)) throw new RangeError(`${name} must be a probability in [0, 1], got ${x}`);
    }
    this.diskRng = sideStream(o.seed, SideStream.Disk);
    this.pauseRng = sideStream(o.seed, SideStream.Pauses);
    this.stopRng = sideStream(o.seed, SideStream.Stops);
    this.stallRng = sideStream(o.seed, SideStream.Stalls);
    this.k = o.kernels ?? loadKernels('js');
    this.factory = o.factory ?? protocolFactory(o.protocol);
    const peers = Array.from({ length: o.nodes }, (_, i) => i + 1);
    this.majority = Math.floor(o.nodes / 2) + 1;
    this.configs = peers.map((id) => ({
      ...defaultConfig(id, peers),
      pipeline: this.faults.pipeline,
      batchMax: this.faults.batchMax,
      batchBytesMax: this.faults.batchBytesMax,
      heartbeatTicks: this.faults.heartbeatTicks,
      electionTicksMin: this.faults.electionTicksMin,
      electionTicksMax: this.faults.electionTicksMax,
      leaseTicks: this.faults.leaseTicks,
      leaseDriftTicks: this.faults.leaseDriftTicks,
      pendingMax: 4096,
      snapshotChunkBytes: this.faults.snapshotChunkBytes,
      readysOutstandingMax: this.faults.readysOutstandingMax,
      // About a slot's batch per part, so a Promise of more than one slot comes in parts (whose
      // loss and reordering the seed's faults then draw).
      promisePartBytes: this.faults.batchBytesMax,
    }));
    for (const id of peers) {
      const n: SimNode = {
        id, core: null, durable: new Durable(true),
        persisting: [], appliedNext: 1, digest: DIGEST_EMPTY, snapshotAt: 1, installs: 0,
        kv: new Map(), readsHeld: [], restartAt: 0, pausedUntil: 0, stalledUntil: 0, stallKills: false, ticksOwed: 0, heldMessages: [], heldRequests: [],
        jumps: [], refused: '', rejoining: o.newCluster === true, newCluster: o.newCluster === true, answeredBy: new Set(),
      };
      this.nodes.push(n);
      this.start(n, n.newCluster);
    }
    for (let c = 1; c <= this.faults.clients; c++) this.clients.push({ id: c, op: 0, pending: null, nextAt: this.rng.int(0, 20) });
  }

  /** Run the safety phase, the liveness phase and the final checks. */
  run(): SimResult {
    let violation: string | null = null;
    try {
      for (let t = 0; t < this.o.steps; t++) this.step();
      this.liveness();
      this.finalChecks();
    } catch (e) {
      // The simulator's top level: a violation or a broken core invariant ends this seed with
      // its seed printed by the caller. Nothing inside a core ever catches.
      violation = e instanceof Violation ? e.message : `${(e as Error).name}: ${(e as Error).message}\n${(e as Error).stack ?? ''}`;
    }
    const refusals = this.nodes.filter((n) => n.refused !== '').map((n) => `node ${n.id}: ${n.refused}`);
    const rejoining = this.nodes.filter((n) => n.rejoining && n.refused === '').map((n) => n.id);
    return { seed: this.o.seed, faults: this.faults, violation, refusals, rejoining, stats: this.stats };
  }

  // ------------------------------------------------------------------ nodes

  /** Cores started so far: each gets the next as its incarnation. */
  private incarnations = 0;

  private start(n: SimNode, restore: boolean): void {
    const restored = restore ? n.durable.restored() : undefined;
    n.answeredBy.clear();
    // The durable mark: until a Ready with `rejoined` was persisted, the node rejoins again.
    if (restored && n.rejoining) {
      restored.rejoining = true;
      this.stats.rejoins++;
      if (n.newCluster && holdsNothing(restored)) {
        restored.newCluster = true;
        this.stats.newClusterStarts++;
      }
    }
    n.core = this.factory({
      config: this.configs[n.id - 1], kernels: this.k, rng: this.rng.fork(), bugs: this.o.bugs, restored, incarnation: ++this.incarnations,
    });
    n.persisting = [];
    n.appliedNext = 1;
    n.digest = DIGEST_EMPTY;
    n.snapshotAt = 1;
    n.kv = new Map();
    n.readsHeld = [];
    if (restore && n.durable.snapshot) this.restoreSnapshot(n, n.durable.snapshot, 'restored');
  }

  // ------------------------------------------------------------------ snapshots

  /** The state machine's snapshot bytes at its applied prefix. */
  private snapshotBytes(n: SimNode): Uint8Array {
    const state: SnapshotState = { prefix: n.appliedNext, digest: n.digest, kv: [...n.kv] };
    return enc.encode(JSON.stringify(state));
  }

  /** Compact the node's log at its applied prefix, when snapshotEvery positions were applied since the last snapshot (or when forced). */
  private maybeCompact(n: SimNode, force: boolean): void {
    const every = this.faults.snapshotEvery;
    if (!n.core || every === 0) return;
    if (!force && !this.compactDue(n)) return;
    // compact() only with no Ready outstanding: a forced one lets the disk finish them now.
    if (force) while (n.persisting.length > 0) this.completePersist(n);
    if (n.persisting.length > 0 || n.appliedNext < 2 || n.appliedNext <= n.snapshotAt) return;
    n.core.compact(n.appliedNext, this.snapshotBytes(n));
    n.snapshotAt = n.appliedNext;
    this.stats.snapshots++;
  }

  /** snapshotEvery positions were applied since the node's last snapshot. */
  private compactDue(n: SimNode): boolean {
    const every = this.faults.snapshotEvery;
    return n.core !== null && every > 0 && n.appliedNext >= 2 && n.appliedNext - n.snapshotAt >= every;
  }

  /**
   * Restore the state machine from a snapshot (installed from a peer, or the node's own on
   * restart). A snapshot is the state after positions 1..prefix-1; its digest must equal the
   * global log's, or the snapshot disagrees with what was chosen.
   */
  private restoreSnapshot(n: SimNode, snap: Snapshot, how: 'installed' | 'restored'): void {
    let state: SnapshotState;
    try {
      state = JSON.parse(dec.decode(snap.bytes)) as SnapshotState;
    } catch (e) {
      throw new Violation(`node ${n.id} ${how} a snapshot at ${snap.prefix} whose bytes are not a state machine's: ${(e as Error).message}`);
    }
    if (state.prefix !== snap.prefix) throw new Violation(`node ${n.id} ${how} a snapshot at ${snap.prefix} whose state was taken at ${state.prefix}`);
    if (snap.prefix < n.appliedNext) throw new Violation(`node ${n.id} ${how} a snapshot at ${snap.prefix} after applying through ${n.appliedNext - 1}: its state would go back`);
    const want = this.logDigest(snap.prefix);
    if (want === null) throw new Violation(`node ${n.id} ${how} a snapshot at ${snap.prefix}, but no node applied every position below it`);
    if (state.digest !== want) throw new Violation(`node ${n.id} ${how} a snapshot at ${snap.prefix} that disagrees with the chosen log below it`);
    n.appliedNext = snap.prefix;
    n.digest = state.digest;
    n.snapshotAt = snap.prefix;
    n.kv = new Map(state.kv);
  }

  /** The digest of the global log's positions below `prefix`, or null if one of them is unknown. */
  private logDigest(prefix: number): number | null {
    const d = this.digests;
    while (d.length < prefix && this.log.has(d.length)) d.push(chain(d[d.length - 1], this.log.get(d.length)!));
    return d.length >= prefix ? d[prefix - 1] : null;
  }

  private crash(n: SimNode): void {
    if ((this.o.stops ?? 0) > 0 && this.stopRng.chance(this.o.stops!)) {
      for (const m of this.nodes) {
        if (m === n || !m.core || this.paused(m) || this.cuts.has(n.id * 1000 + m.id) || this.stopRng.chance(0.5)) continue;
        m.core.peerStopping(n.id);
        this.stats.notices++;
      }
    }
    n.core = null;
    n.persisting = []; // whatever was not yet durable is lost
    n.pausedUntil = 0; // a paused process can be killed; what waited for it is gone with it
    n.stalledUntil = 0;
    n.ticksOwed = 0;
    n.heldMessages = [];
    n.heldRequests = [];
    n.durable.crash();
    n.restartAt = this.now + this.rng.int(5, 150);
    this.stats.crashes++;
    for (const c of this.clients) if (c.pending?.node === n.id) this.giveUp(c);
  }

  /** One tick of the whole world. */
  private step(): void {
    this.now++;
    if (this.faultsOn) this.injectFaults();
    this.deliverDue();
    for (const n of this.nodes) {
      if (!n.core) continue;
      if (this.paused(n)) {
        n.ticksOwed++;
        continue;
      }
      n.core.tick();
      if (this.faultsOn && this.rng.chance(this.faults.clockJump) && this.mayJump(n)) {
        n.jumps.push(this.now);
        n.core.tick();
      }
    }
    this.clientsAct();
    this.processReadys();
  }

  /** The node is stopped (SimOptions.pauses): it neither ticks, nor handles messages, nor completes persists. */
  private paused(n: SimNode): boolean {
    return this.now < n.pausedUntil;
  }

  /** Pause a running node for 1 to 4 election timeouts (SimOptions.pauses). */
  private pause(n: SimNode): void {
    const c = this.configs[n.id - 1];
    n.pausedUntil = this.now + this.pauseRng.int(1, 4 * c.electionTicksMax + 1);
    this.stats.pauses++;
  }

  /**
   * Wake a paused node as a node's event loop runs after SIGCONT: its clock catches up, by at most
   * 2 election timeouts (as node.ts's catch-up, which runs before a message is stepped or a read
   * served); then each socket with something waiting is read in one go, in an order of the
   * kernel's choosing (every message from one peer together, in arrival order; each client
   * request on its own). A peer's link may have broken meanwhile (the peer gave up on a silent
   * link, or a partition cut it): on half the links, what waited is lost.
   */
  private wake(n: SimNode): void {
    const c = this.configs[n.id - 1];
    n.pausedUntil = 0;
    const sockets: (Message[] | PendingOp)[] = [...n.heldRequests];
    for (const peer of this.nodes) {
      const from = n.heldMessages.filter((m) => m.from === peer.id);
      if (from.length === 0) continue;
      if (this.pauseRng.chance(0.5)) sockets.push(from);
      else this.stats.dropped += from.length;
    }
    n.heldMessages = [];
    n.heldRequests = [];
    const catchUp = (): void => {
      const owed = Math.min(n.ticksOwed, 2 * c.electionTicksMax);
      n.ticksOwed = 0;
      for (let i = 0; i < owed && n.core; i++) n.core.tick();
    };
    if (this.o.staleClockOnWake !== true) catchUp();
    while (sockets.length > 0 && n.core) {
      const next = sockets.splice(this.pauseRng.int(0, sockets.length), 1)[0];
      if (!Array.isArray(next)) {
        this.serveHeld(n, next);
        continue;
      }
      for (const m of next) {
        if (!n.core) break;
        this.stats.delivered++;
        if (m.type === MsgType.CatchUpReply) n.answeredBy.add(m.from);
        n.core.step(m);
      }
    }
    catchUp();
  }

  /** A client request that waited at a paused node reaches its core (its client may have given up on it meanwhile). */
  private serveHeld(n: SimNode, p: PendingOp): void {
    if (!n.core) return;
    const c = this.clients.find((x) => x.pending === p);
    if (p.kind === 'write') {
      // Sent, so it may take effect whether or not its client still waits (then it is recorded unknown).
      const r = n.core.propose([commandOf(p)]);
      if ((r === 'no-leader' || r === 'full') && c !== undefined) {
        c.pending = null; // surely not proposed
        c.nextAt = this.now + this.rng.int(1, 10);
      }
    } else if (c !== undefined) {
      n.core.read(p.readId, p.mode);
    }
  }

  /** A clock may run at most leaseDriftTicks ahead over any election timeout. */
  private mayJump(n: SimNode): boolean {
    const c = this.configs[n.id - 1];
    n.jumps = n.jumps.filter((t) => t > this.now - c.electionTicksMin);
    return n.jumps.length < c.leaseDriftTicks;
  }

  private injectFaults(): void {
    const f = this.faults;
    if (this.cuts.size > 0 && this.now >= this.partitionEndsAt) this.cuts = new Set();
    else if (this.cuts.size === 0 && this.rng.chance(f.partition)) this.partition();
    for (const n of this.nodes) {
      if (n.core && (this.rng.chance(f.crash) || this.killsLeader(n.core))) this.crash(n);
      else if (!n.core && n.refused === '' && this.now >= n.restartAt) this.restart(n);
    }
    if (f.stall > 0) for (const n of this.nodes) if (n.core) this.stallOrRecover(n);
    const pauses = this.o.pauses ?? 0;
    if (pauses > 0) {
      for (const n of this.nodes) {
        if (!n.core) continue;
        if (n.pausedUntil !== 0 && !this.paused(n)) this.wake(n);
        else if (n.pausedUntil === 0 && this.pauseRng.chance(pauses)) this.pause(n);
      }
    }
  }

  /**
   * A disk stall (Faults.stall): no persist of the node completes until it ends, while the node
   * runs on and sends what needs no sync (a leader's Accepts, its commits), so its followers' acks
   * can come back long before its own write is durable. It ends with the disk recovering, or with
   * the node killed and its hanging persists lost: a leader that crashes with writes it already
   * counted on others unsynced.
   */
  private stallOrRecover(n: SimNode): void {
    if (n.stalledUntil !== 0 && this.now >= n.stalledUntil) {
      n.stalledUntil = 0;
      if (n.stallKills) this.crash(n);
    } else if (n.stalledUntil === 0 && this.stallRng.chance(this.faults.stall)) {
      n.stalledUntil = this.now + this.stallRng.int(1, this.faults.stallTicksMax + 1);
      n.stallKills = this.stallRng.chance(0.5);
      this.stats.stalls++;
    }
  }

  /**
   * Restart a crashed node from its durable state, unless the disk damaged it (storageFaults: it
   * refuses, or on a share of such restarts sets the log aside and rejoins) or was replaced (wipes).
   * Refused and rejoining nodes together stay a minority: a majority that forgot could lose a
   * chosen value whatever the protocol does.
   */
  private restart(n: SimNode): void {
    const p = this.o.storageFaults ?? 0;
    const damagedElsewhere = this.nodes.filter((x) => x !== n && (x.refused !== '' || x.rejoining)).length;
    const mayDamage = damagedElsewhere < this.nodes.length - this.majority;
    if (p > 0 && mayDamage && this.rng.chance(p)) {
      const reason = this.damage(n);
      if (reason !== null) {
        this.stats.storageFaults++;
        if (!this.diskRng.chance(this.o.rejoinShare ?? 0)) {
          n.refused = reason;
          return;
        }
        this.wipe(n); // the damaged log is set aside, as --rejoin-without-voting does
        return;
      }
    }
    if (mayDamage && this.diskRng.chance(this.o.wipes ?? 0)) {
      this.wipe(n);
      return;
    }
    this.start(n, true);
  }

  /** Start a node from an empty durable state, rejoining without voting. What it accepted before stays in the ground truth. */
  private wipe(n: SimNode): void {
    n.durable = new Durable(true);
    this.snapshotCrcs.delete(n.id);
    n.rejoining = true;
    n.newCluster = false;
    this.stats.wipes++;
    this.start(n, true);
  }

  /**
   * Damage what a node's disk holds, as LogStore would find it, and say why a restore must refuse;
   * null when there is nothing to damage. The durable state itself is left as it was: it is the
   * history of what this acceptor accepted, which the ground-truth check still counts. A flipped
   * bit goes through the real record codec; one that decodes is a violation (a wrong read).
   */
  private damage(n: SimNode): string | null {
    const d = n.durable;
    const records = [...d.records.values()];
    // Positions below the snapshot's prefix have no record by design: only those above it can go missing.
    const floor = d.snapshot?.prefix ?? 1;
    const kinds: ('flip' | 'hard' | 'chosen' | 'snapshot')[] = [];
    if (records.length > 0) kinds.push('flip', 'hard');
    if (d.chosenPrefix > floor && d.records.has(d.chosenPrefix - 1)) kinds.push('chosen');
    if (d.snapshot) kinds.push('snapshot');
    if (kinds.length === 0) return null;
    const kind = kinds[this.rng.int(0, kinds.length)];
    if (kind === 'hard') return `hard state missing while ${records.length} records remain`;
    if (kind === 'chosen') {
      const slot = this.rng.int(floor, d.chosenPrefix);
      return `no record for chosen slot ${slot} (chosen prefix ${d.chosenPrefix})`;
    }
    if (kind === 'snapshot') return this.flipSnapshot(n, d.snapshot!);
    const r = records[this.rng.int(0, records.length)];
    const bytes = this.k.encodeRecord(r).slice();
    const at = this.rng.int(0, bytes.length);
    const bit = this.rng.int(0, 8);
    bytes[at] ^= 1 << bit;
    const got = this.k.decodeRecord(bytes);
    if (!isDecodeError(got)) {
      throw new Violation(`a bit flip in record ${r.position} (byte ${at}, bit ${bit}) went undetected: it decodes as slot ${got.position}`);
    }
    return `record ${r.position} corrupt: ${got.error}`;
  }

  /** A bit flipped in the snapshot's bytes must fail the CRC32C it was saved with, as LogStore checks it. */
  private flipSnapshot(n: SimNode, snap: Snapshot): string {
    const bytes = snap.bytes.slice();
    const at = this.rng.int(0, bytes.length);
    const bit = this.rng.int(0, 8);
    bytes[at] ^= 1 << bit;
    const saved = this.snapshotCrcs.get(n.id);
    assert.ok(saved !== undefined, `node ${n.id} has a durable snapshot at ${snap.prefix} but no CRC was kept for it`);
    if (this.k.crc32c(bytes) === saved) {
      throw new Violation(`a bit flip in the snapshot at ${snap.prefix} (byte ${at}, bit ${bit}) went undetected by its CRC32C`);
    }
    return `snapshot at ${snap.prefix} corrupt: CRC32C mismatch`;
  }

  /** The leader-killing nemesis: a leader crashes with probability leaderCrash per tick. */
  private killsLeader(core: Protocol): boolean {
    return this.faults.leaderCrash > 0 && core.status().role === 'leader' && this.rng.chance(this.faults.leaderCrash);
  }

  /** Either two groups (cut both ways or one way), or a random set of cut links, which makes
   *  connectivity non-transitive (A hears B and C, but B and C do not hear each other). */
  private partition(): void {
    const ids = this.nodes.map((n) => n.id);
    if (this.rng.chance(0.5)) {
      for (const x of ids) for (const y of ids) if (x !== y && this.rng.chance(0.35)) this.cuts.add(x * 1000 + y);
      if (this.cuts.size === 0) return;
    } else {
      const a = ids.filter(() => this.rng.chance(0.5));
      if (a.length === 0 || a.length === ids.length) return;
      const b = ids.filter((x) => !a.includes(x));
      const oneWay = this.rng.chance(this.faults.asymmetric);
      for (const x of a) for (const y of b) {
        this.cuts.add(x * 1000 + y);
        if (!oneWay) this.cuts.add(y * 1000 + x);
      }
    }
    this.partitionEndsAt = this.now + this.rng.int(10, 300);
    this.stats.partitions++;
  }

  // ------------------------------------------------------------------ network

  private send(m: Message): void {
    const f = this.faults;
    if (this.faultsOn && this.rng.chance(f.loss)) { this.stats.dropped++; return; }
    const copies = this.faultsOn && this.rng.chance(f.duplicate) ? 2 : 1;
    for (let i = 0; i < copies; i++) {
      let delay = this.faultsOn ? this.rng.int(1, f.delayMax + 1) : 1;
      if (this.faultsOn && this.rng.chance(f.longDelay)) delay = this.rng.int(1, f.longDelayMax + 1);
      this.push({ m, at: this.now + delay, seq: this.sendSeq++ });
    }
  }

  private deliverDue(): void {
    while (this.heap.length > 0 && this.heap[0].at <= this.now) {
      const { m } = this.pop();
      const target = this.nodes[m.to - 1];
      if (!target?.core || this.cuts.has(m.from * 1000 + m.to)) { this.stats.dropped++; continue; }
      if (this.paused(target)) { target.heldMessages.push(m); continue; }
      this.stats.delivered++;
      if (m.type === MsgType.SnapshotChunk) this.stats.chunks++;
      if (m.type === MsgType.CatchUpReply) target.answeredBy.add(m.from);
      target.core.step(m);
    }
  }

  private push(x: InFlight): void {
    const h = this.heap;
    h.push(x);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!before(h[i], h[p])) break;
      [h[i], h[p]] = [h[p], h[i]];
      i = p;
    }
  }

  private pop(): InFlight {
    const h = this.heap;
    const top = h[0];
    const last = h.pop()!;
    if (h.length > 0) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && before(h[l], h[m])) m = l;
        if (r < h.length && before(h[r], h[m])) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m], h[i]];
        i = m;
      }
    }
    return top;
  }

  // ------------------------------------------------------------------ Ready

  private processReadys(): void {
    for (const n of this.nodes) {
      if (this.paused(n)) continue;
      for (;;) {
        const core = n.core;
        if (!core) break;
        const head = n.persisting[0];
        if (head !== undefined && head.doneAt <= this.now && this.now >= n.stalledUntil) {
          this.completePersist(n);
          this.maybeCompact(n, false);
          continue;
        }
        // A compaction waits for the persists in flight (the contract: no Ready outstanding), and
        // no new Ready is taken meanwhile, so that a busy node does not put it off for ever.
        if (n.persisting.length > 0 && this.compactDue(n)) break;
        if (!core.hasReady()) break;
        if (this.o.protocol === 'raft') this.noteLeader(n.id, core);
        const rd = core.ready();
        for (const m of rd.messages) this.send(m);
        const delay = this.faultsOn ? this.rng.int(0, this.faults.persistDelayMax + 1) : 0;
        const last = n.persisting[n.persisting.length - 1];
        n.persisting.push({ rd, doneAt: Math.max(this.now + delay, last?.doneAt ?? 0) });
      }
    }
  }

  /** The oldest persist in flight becomes durable: its messages after persist leave, it is applied and advanced. */
  private completePersist(n: SimNode): void {
    const rd = n.persisting.shift()!.rd;
    this.persist(n, rd);
    for (const m of rd.messagesAfterPersist) this.send(m);
    this.apply(n, rd);
    n.core!.advance(rd);
  }

  private persist(n: SimNode, rd: Ready): void {
    n.durable.persist(rd);
    if (rd.rejoined) {
      if (!n.rejoining) throw new Violation(`node ${n.id} said rejoined, but it was never started rejoining (or had rejoined already)`);
      if (!rd.hardState) throw new Violation(`node ${n.id} said rejoined without the hard state that goes with it`);
      n.rejoining = false;
      n.newCluster = false;
      this.stats.rejoined++;
      if (n.answeredBy.size < this.nodes.length - 1) this.stats.rejoinedOnMajority++;
    }
    if (rd.snapshot) this.snapshotCrcs.set(n.id, this.k.crc32c(rd.snapshot.bytes));
    if (this.o.protocol === 'multipaxos') for (const r of rd.records) this.recordAccept(n, r);
    else for (const r of rd.records) {
      if (this.termLeader.get(r.ballot) === n.id && r.position > (this.leaderDurable.get(r.ballot) ?? 0)) this.leaderDurable.set(r.ballot, r.position);
    }
  }

  /** Raft: the node leads its term (noted before each Ready it hands out, so before its entries of the term are persisted). */
  private noteLeader(id: number, core: Protocol): void {
    const st = core.status();
    if (st.role === 'leader') this.termLeader.set(st.ballot, id);
  }

  /** Raft: a leader of the entry's term or a later one held its position on disk (with an entry of its own term). */
  private leaderHeld(e: LogRecord): boolean {
    for (const [term, last] of this.leaderDurable) if (term >= e.ballot && last >= e.position) return true;
    return false;
  }

  /**
   * Multi-Paxos ground truth: a value durably accepted at one ballot by a majority with the
   * ballot's proposer among them is chosen. A leader counts a slot chosen only so (its own accept
   * durable), and only that is safe from a member that lost its disk: it rejoins trusting the
   * answers it gets, and a follower may answer it and then take a delayed Accept, while the
   * leader's answer shows every slot it proposed. Forgotten accepts still count.
   */
  private recordAccept(n: SimNode, r: LogRecord): void {
    const node = n.id;
    let byBallot = this.accepts.get(r.position);
    if (!byBallot) { byBallot = new Map(); this.accepts.set(r.position, byBallot); }
    const value = this.text(r.value);
    // A node's record of a slot it applied is what it serves to learners and applies again after a
    // restart: it must hold the value applied there, whatever arrives later.
    const applied = r.position < n.appliedNext ? this.log.get(r.position) : undefined;
    if (applied !== undefined && applied !== value) {
      throw new Violation(`node ${node} wrote ${JSON.stringify(value)} at ballot ${r.ballot} over slot ${r.position}, which it applied as ${JSON.stringify(applied)}`);
    }
    let a = byBallot.get(r.ballot);
    if (!a) { a = { value, nodes: new Set() }; byBallot.set(r.ballot, a); }
    if (a.value !== value) {
      throw new Violation(`slot ${r.position} has two values at ballot ${r.ballot}: ${JSON.stringify(a.value)} and ${JSON.stringify(value)} (node ${node})`);
    }
    a.nodes.add(node);
    if (a.nodes.size >= this.majority && a.nodes.has(this.k.ballotNode(r.ballot))) {
      const chosen = this.trulyChosen.get(r.position);
      if (chosen === undefined) this.trulyChosen.set(r.position, value);
      else if (chosen !== value) {
        throw new Violation(`slot ${r.position} has two chosen values: ${JSON.stringify(chosen)} and ${JSON.stringify(value)} (a majority accepted each)`);
      }
    }
  }

  private apply(n: SimNode, rd: Ready): void {
    if (rd.install) {
      if (!rd.snapshot) throw new Violation(`node ${n.id} handed out a Ready with install set and no snapshot`);
      this.restoreSnapshot(n, rd.snapshot, 'installed');
      n.installs++;
      this.stats.installs++;
    }
    for (const a of rd.apply) {
      if (a.position !== n.appliedNext) {
        throw new Violation(`node ${n.id} applied position ${a.position}, expected ${n.appliedNext} (in order, exactly once)`);
      }
      n.appliedNext++;
      this.stats.applied++;
      const text = this.text(a.value);
      n.digest = chain(n.digest, text);
      const before = this.log.get(a.position);
      if (before === undefined) this.log.set(a.position, text);
      else if (before !== text) {
        throw new Violation(`position ${a.position} has two chosen values: ${JSON.stringify(before)} and, at node ${n.id}, ${JSON.stringify(text)}`);
      }
      const chosen = this.trulyChosen.get(a.position);
      if (chosen !== undefined && chosen !== text) {
        throw new Violation(`node ${n.id} applied ${JSON.stringify(text)} at slot ${a.position}, but a majority accepted ${JSON.stringify(chosen)}`);
      }
      // Multi-Paxos chooses a value by a majority's durable accepts at one ballot, so one is applied
      // only once they exist: a value applied first was never chosen (a reply sent before its write
      // was durable shows here at once, without waiting for a crash to lose the write; so does a
      // leader that counts its followers' acks before its own accept is durable).
      if (chosen === undefined && this.o.protocol === 'multipaxos') {
        throw new Violation(`node ${n.id} applied ${JSON.stringify(text)} at slot ${a.position}, which no majority has durably accepted (with its proposer among them)`);
      }
      // Raft commits by count only an entry of the leader's term on its own disk, and the older
      // ones below it: so a leader of this entry's term or a later one held it on disk first.
      if (this.o.protocol === 'raft' && !this.leaderHeld(a)) {
        throw new Violation(`node ${n.id} applied position ${a.position} (term ${a.ballot}) before a leader of its term or a later one held it on disk`);
      }
      const cmds = this.k.decodeBatch(a.value);
      if (!Array.isArray(cmds)) throw new Violation(`node ${n.id} applied a malformed batch at ${a.position}: ${cmds.error}`);
      for (const c of cmds) this.applyCommand(n, dec.decode(c), a.position);
    }
    for (const r of rd.reads) n.readsHeld.push(r);
    n.readsHeld = n.readsHeld.filter((r) => {
      if (r.index >= n.appliedNext) return true;
      this.answerRead(n, r.id);
      return false;
    });
    for (const id of rd.readsFailed) {
      for (const c of this.clients) if (c.pending?.kind === 'read' && c.pending.readId === id && c.pending.node === n.id) c.pending = null;
    }
  }

  /** Commands are "w:<client>:<op>:<key>:<value>". */
  private applyCommand(n: SimNode, cmd: string, position: number): void {
    const [kind, cs, os, key, value] = cmd.split(':');
    if (kind !== 'w') throw new Violation(`node ${n.id} applied an unknown command ${JSON.stringify(cmd)}`);
    const client = Number(cs);
    const op = Number(os);
    n.kv.set(key, value);
    const c = this.clients[client - 1];
    const p = c?.pending;
    if (p && p.kind === 'write' && p.op === op && p.node === n.id) {
      this.record(p.key, { kind: 'write', value: p.value, call: p.call, ret: ++this.eventTime });
      this.acked.set(cmd, position);
      this.stats.writesAcked++;
      c.pending = null;
      c.nextAt = this.now + this.rng.int(0, 4);
    }
  }

  private answerRead(n: SimNode, readId: number): void {
    for (const c of this.clients) {
      const p = c.pending;
      if (p?.kind === 'read' && p.readId === readId && p.node === n.id) {
        this.record(p.key, { kind: 'read', value: n.kv.get(p.key) ?? null, call: p.call, ret: ++this.eventTime });
        this.stats.readsOk++;
        c.pending = null;
        c.nextAt = this.now + this.rng.int(0, 4);
      }
    }
  }

  private text(value: Uint8Array): string {
    const cmds = this.k.decodeBatch(value);
    if (!Array.isArray(cmds)) return `<malformed ${cmds.error}>`;
    return cmds.length === 0 ? 'noop' : cmds.map((c) => dec.decode(c)).join(' ');
  }

  // ------------------------------------------------------------------ clients

  private clientsAct(): void {
    for (const c of this.clients) {
      if (c.pending) {
        if (this.now >= c.pending.deadline) this.giveUp(c);
        continue;
      }
      if (this.now < c.nextAt || !this.faultsOn) continue;
      const alive = this.nodes.filter((n) => n.core);
      if (alive.length === 0) continue;
      const n = alive[this.rng.int(0, alive.length)];
      this.issue(c, n, this.rng.chance(this.faults.reads) ? 'read' : 'write', `k${this.rng.int(0, this.faults.keys)}`);
    }
  }

  private issue(c: SimClient, n: SimNode, kind: 'read' | 'write', key: string): void {
    const op = ++c.op;
    const p: PendingOp = {
      kind, key, value: `${c.id}.${op}`, op, client: c.id, node: n.id, readId: 0, mode: 'lease', call: ++this.eventTime, deadline: this.now + 100 + this.rng.int(0, 100),
    };
    if (kind === 'read') {
      p.readId = ++this.readId;
      p.mode = this.rng.chance(0.5) ? 'lease' : 'quorum';
    }
    if (this.paused(n)) {
      n.heldRequests.push(p); // sent; the node serves it when it wakes
    } else if (kind === 'write') {
      const r = n.core!.propose([commandOf(p)]);
      if (r === 'no-leader' || r === 'full') { c.nextAt = this.now + this.rng.int(1, 10); return; } // surely not proposed
    } else {
      n.core!.read(p.readId, p.mode);
    }
    c.pending = p;
  }

  /** The client stops waiting: a write's outcome is unknown; a read simply never happened. */
  private giveUp(c: SimClient): void {
    const p = c.pending;
    if (!p) return;
    if (p.kind === 'write') this.record(p.key, { kind: 'write', value: p.value, call: p.call, ret: Infinity });
    this.stats.unknown++;
    c.pending = null;
    c.nextAt = this.now + this.rng.int(0, 4);
  }

  private record(key: string, op: RegisterOp): void {
    let h = this.history.get(key);
    if (!h) { h = []; this.history.set(key, h); }
    h.push(op);
  }

  // ------------------------------------------------------------------ liveness and final checks

  /**
   * Heal everything, restart every node, and require all nodes to apply one fresh write. With
   * snapshots on (and a majority left without it), one node stays down first while the others
   * apply fresh writes and compact past them; it must then converge by installing a snapshot,
   * since no live node keeps the positions it lacks.
   */
  private liveness(): void {
    this.faultsOn = false;
    this.cuts = new Set();
    for (const n of this.nodes) n.stalledUntil = 0;
    for (const n of this.nodes) if (n.core && n.pausedUntil !== 0) this.wake(n);
    // A node still rejoining while another refused for good can never finish (it needs every
    // member's answer; a Raft node does not even learn meanwhile): it runs, but nothing is asked of it.
    if (!this.rejoinsCanFinish()) {
      for (const n of this.nodes) if (n.refused === '' && n.rejoining) this.heldBack.add(n.id);
      for (const n of this.nodes) if (this.heldBack.has(n.id) && !n.core) this.start(n, true);
    }
    const usable = this.nodes.filter((n) => n.refused === '' && !this.heldBack.has(n.id));
    // A rejoining node needs an answer from every other member before it takes part (a Raft node
    // does not even learn before that), so the rejoins finish first, with every node up.
    if (usable.some((n) => n.rejoining)) {
      for (const n of usable) if (!n.core) this.start(n, true);
      for (const c of this.clients) this.giveUp(c);
      this.converge(usable, 'the healed cluster while nodes rejoin', true);
    }
    const laggard = this.faults.snapshotEvery > 0 && usable.length - 1 >= this.majority
      ? usable.find((n) => !n.core) ?? usable[usable.length - 1]
      : null;
    if (laggard) {
      for (const c of this.clients) this.giveUp(c);
      laggard.core = null; // down (crashed, or stopped now): unsynced writes are lost, as in a crash
      laggard.persisting = [];
      const others = usable.filter((n) => n !== laggard);
      for (const n of others) if (!n.core) this.start(n, true);
      this.converge(others, 'the nodes up while one stayed down');
      for (const n of others) this.maybeCompact(n, true);
      this.converge(others, 'the nodes up after compacting');
      const installs = laggard.installs;
      this.start(laggard, true);
      this.converge(usable, `the cluster after node ${laggard.id} came back`);
      if (laggard.installs === installs) {
        throw new Violation(`liveness: node ${laggard.id} was down while the others compacted past its log, and converged without installing a snapshot`);
      }
      return;
    }
    // In this order (restarts, then clients give up), as before snapshots existed: see drawFaults.
    for (const n of usable) if (!n.core) this.start(n, true);
    for (const c of this.clients) this.giveUp(c);
    this.converge(usable, 'the healed cluster', this.rejoinsCanFinish());
  }

  /** A rejoining node needs an answer from every other member (Restored.rejoining, step 1): while
   *  one refused damaged storage and stays down for good, no rejoin can finish, by design. */
  private rejoinsCanFinish(): boolean {
    return this.nodes.every((n) => n.refused === '');
  }

  /**
   * Require every node of `live` to apply one fresh write (and the same prefix) within
   * LIVENESS_TICKS; with `rejoinedToo`, also every live node to have finished rejoining (more fresh
   * writes follow until then: a rejoining node waits for the chosen prefix to pass positions its
   * peers accepted, which only new writes may fill).
   */
  private converge(live: SimNode[], who: string, rejoinedToo = false): void {
    const probe = this.clients[0];
    const deadlineTick = this.now + LIVENESS_TICKS;
    let probeCmd = '';
    while (this.now < deadlineTick) {
      if (!probe.pending) {
        if (probeCmd !== '' && this.acked.has(probeCmd)) {
          const pos = this.acked.get(probeCmd)!;
          const target = Math.max(...live.map((n) => n.appliedNext));
          if (live.every((n) => n.appliedNext > pos && n.appliedNext === target)) {
            if (!rejoinedToo || live.every((n) => !n.core!.status().rejoining && !n.persisting.some((p) => p.rd.rejoined))) return;
            probeCmd = ''; // someone is still rejoining: one more write
          }
        } else {
          const n = live[this.rng.int(0, live.length)];
          this.issue(probe, n, 'write', 'k0');
          const p = probe.pending as PendingOp | null;
          if (p) probeCmd = `w:${probe.id}:${probe.op}:k0:${p.value}`;
        }
      }
      this.step();
    }
    const s = this.nodes.map((n) => `node ${n.id}: ${n.core ? JSON.stringify(n.core.status()) : `down (${n.refused})`} appliedNext=${n.appliedNext}`).join('\n');
    throw new Violation(`liveness: ${who} did not converge on a fresh write within ${LIVENESS_TICKS} ticks\n${s}`);
  }

  private finalChecks(): void {
    for (const [cmd, pos] of this.acked) {
      const v = this.log.get(pos);
      if (v === undefined || !v.split(' ').includes(cmd)) throw new Violation(`acknowledged write ${cmd} lost from position ${pos}`);
      for (const n of this.nodes) {
        if (n.refused !== '' || this.heldBack.has(n.id)) continue; // down for good, or held back by such a node
        if (n.appliedNext <= pos) throw new Violation(`acknowledged write ${cmd} at ${pos} not applied by node ${n.id}`);
      }
    }
    for (const c of this.clients) this.giveUp(c);
    for (const [key, ops] of [...this.history].sort()) {
      const r = checkRegister(ops, null);
      if (r.ok === false) throw new Violation(`history of key ${key} is not linearizable: ${r.reason}`);
    }
  }
}

const before = (a: InFlight, b: InFlight): boolean => a.at < b.at || (a.at === b.at && a.seq < b.seq);

/** Run one seed. */
export const simulate = (o: SimOptions): SimResult => new Simulation(o).run();
