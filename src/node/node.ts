// The driver: one paxlog node. It feeds peer messages, ticks, client commands and reads into the
// protocol core, and for every Ready: sends `messages`, applies the chosen slots to the state
// machine and answers reads, persists (one LMDB transaction), then sends `messagesAfterPersist`
// and calls advance(). While a persist is in flight it keeps stepping messages and ticks into the
// core; the next Ready carries everything that arrived meanwhile in one transaction (one fsync for many writes).
//
// Applying before this Ready's persist is durable is safe, and takes one fsync off every write's
// path: a slot in `apply` is chosen, that is accepted by a majority whose writes are already
// durable (both cores count their own accept only in advance(), after the persist), so no crash
// can take it back. What this Ready persists for itself (its chosen prefix, new accepts) is what
// the Promise/Accepted in `messagesAfterPersist` report, and those still wait for the fsync.
//
// Time: one tick every `tickMs` (default 20 ms). With the core's defaults (election timeout
// 10..20 ticks, heartbeat every tick, lease 8 ticks less 1 for drift) that gives elections after
// 200..400 ms of leader silence, heartbeats every 20 ms and a 140 ms lease. Ticks follow the wall
// clock: a late timer (or a message, or a read) delivers every tick that passed, so a paused
// process never trusts a lease that ran out while it slept, nor counts its sleep as time after
// the messages that waited meanwhile.

import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import { BATCHER_COUNT_MAX, ENTRY_HEADER_BYTES, FRAME_BYTES_MAX, HEADER_BYTES } from '../kernels/layout.js';
import { loadKernels } from '../kernels/index.js';
import type { KernelKind, Kernels } from '../kernels/types.js';
import { isDecodeError } from '../kernels/types.js';
import type { Message } from '../protocol/messages.js';
import {
  defaultConfig, SNAPSHOT_CHUNK_BYTES_MAX, type Config, type Protocol, type ProtocolName, type ReadMode, type Ready, type Snapshot, type Status,
} from '../protocol/types.js';
import { protocolFactory, protocols } from '../sim/protocols.js';
import { Prng } from '../sim/prng.js';
import { LogDamagedError, LogStore, missingListMax, StorageError, syncDirSync, type LogIdentity } from '../storage/log-store.js';
import { PeerTransport, type PeerAddress } from '../transport/peers.js';
import { clusterShape } from '../transport/handshake.js';
import { hostInUrl, isListenHost } from '../transport/addresses.js';
import { faultsNone, LinkFaults, type FaultOptions } from '../transport/faults.js';
import { checkTlsFiles, createApp, loadNativeUws, type TlsFiles, type UwsModule } from '../transport/uws.js';
import type * as Uws from '@trufflesuite/uws-js-unofficial';
import { envelopeBytes, envelopeIncarnation, envelopeOrigin, envelopeSeq, seal } from './envelope.js';
import { LeaderChanges, PendingWrites } from './pending-writes.js';
import { NodeMetrics } from './metrics.js';
import type { StateMachine } from './state-machine.js';

export interface NodeOptions<R> {
  /** This node's id, 1..65535. */
  id: number;
  /** Every member's peer address, this node's included. */
  peers: Map<number, PeerAddress>;
  /**
   * The address this node's ports are bound on: an IP address ('0.0.0.0' or '::' for every
   * interface) or a host name. Default: the host of its own address in `peers`. Peers still dial
   * that address: set this when it is not an address of this machine (a NAT, a container's
   * published port, a load balancer).
   */
  listenHost?: string;
  /** The node's data directory (its LMDB log). */
  dataDir: string;
  stateMachine: StateMachine<R>;
  logger: Logger;
  protocol?: ProtocolName;
  kernels?: KernelKind;
  /** Default true. False only for experiments: acknowledged writes can be lost on a power cut. */
  fsync?: boolean;
  /** The cluster secret; '' (the default) runs without one and logs a loud warning. */
  secret?: string;
  /** Commands per slot at most. */
  batchMax?: number;
  /** Slots in flight at most. */
  pipeline?: number;
  /** Milliseconds per tick. */
  tickMs?: number;
  /** A proposed command whose outcome is still unknown after this long fails with 'timeout'; after
   *  a leader change, one still pending fails an election timeout later if that is sooner. */
  requestTimeoutMs?: number;
  /** Snapshot the state machine and trim the log below it every this many applied slots (0: never). Default 100,000. */
  snapshotSlots?: number;
  /** ... or once the slots applied since the last snapshot hold this many bytes (0: never). Default 64 MiB. */
  snapshotBytes?: number;
  /** Injected loss and delay on outbound peer frames (benchmarks only); none when absent. */
  faults?: FaultOptions;
  /** Tests only: lets partition() cut this node off from chosen peers (HTTP POST /fault/partition). Default false. */
  faultControl?: boolean;
  /** Overrides of the core's config (ticks, bounds). */
  config?: Partial<Config>;
  /**
   * When the log is damaged (a corrupt or missing hard state, corrupt accepted slots, chosen slots
   * gone, a snapshot that does not restore): false (the default) refuses to start with the reason;
   * true sets the damaged log aside in the data directory (`damaged-<time>/`), starts from an empty
   * one and rejoins without voting until it has caught up from its peers (Restored.rejoining).
   */
  rejoinWithoutVoting?: boolean;
  /**
   * A new data directory belongs to a new cluster: the node votes as soon as a majority of the
   * members, itself included, say they hold nothing (Restored.newCluster). Default false: a new
   * directory might be a wiped one, so the node rejoins without voting, which needs every other
   * member to answer once; pass true to bootstrap a cluster while a minority of it is still down.
   * Passed to restart a node whose disk was wiped, it finds the cluster running when an answering
   * member has a ballot or a slot, and rejoins; but not when every member that answers never took
   * part in anything, so never pass it for that.
   */
  newCluster?: boolean;
  /**
   * A new log's file is written full of zeros to this size at creation, so that its syncs do not
   * also grow it (LogStoreOptions.preallocateBytes). Default 0; `serve` passes --preallocate-mib (128).
   */
  preallocateBytes?: number;
  /** Serve peers and clients over TLS (uWS SSLApp) and dial peers with wss://; absent: plain TCP. */
  tls?: TlsFiles;
}

/** Why a proposal or read failed. `surelyNotProposed` is true when retrying cannot apply it twice. */
export class RequestError extends Error {
  override name = 'RequestError';
  constructor(readonly kind: 'no-leader' | 'full' | 'timeout' | 'stopped' | 'read-failed' | 'too-large', message: string) {
    super(message);
  }

  get surelyNotProposed(): boolean {
    return this.kind === 'no-leader' || this.kind === 'full' || this.kind === 'read-failed' || this.kind === 'too-large';
  }
}

/**
 * Why a node stopped by itself, as the 'fatal' event gives it: a write its disk refused, or a state
 * machine that threw (apply, snapshot, restore). `details` are the fatal log line's fields.
 */
export class FatalError extends Error {
  override name = 'FatalError';
  constructor(message: string, readonly details: Readonly<Record<string, unknown>>) {
    super(message);
  }
}

/** An applied command, as the 'applied' event gives it. */
export interface Applied<R> {
  slot: number;
  command: Uint8Array;
  result: R;
}

/**
 * How a proposal ends: `err` null and the state machine's result once the command is applied here,
 * or the reason it failed (then `result` is undefined). `tag` is the proposer's (see proposeEnveloped).
 */
export type ProposeDone<R> = (err: RequestError | null, result: R | undefined, tag: number) => void;

/** How a read barrier ends: null once the state machine reflects every earlier write, or the reason. */
export type ReadDone = (err: RequestError | null) => void;

// Requests are timed by the tick, not by a timer each: every request waits the same time, so the
// writes (a ring in seq order) and the reads (a map in insertion order) are also in deadline order,
// and the tick only looks at their heads.
// (A timer each is an allocation and a timer-list insert and removal per request.)

interface PendingRead {
  done: ReadDone;
  /** performance.now() past which it fails with 'read-failed'. */
  deadlineMs: number;
}

export interface NodeStatus extends Status {
  /** The highest applied slot (appliedPrefix - 1). */
  applied: number;
  fsync: 'on' | 'off';
  /** Present only with --fsync off. */
  warning?: string;
  kernels: KernelKind;
  /** Peers whose link from this node is up. A link can be up and silent: see peersHeardMsAgo. */
  peersConnected: number[];
  /** Per peer id, milliseconds since this node last took a message from it; absent if never (since start). */
  peersHeardMsAgo: Record<number, number>;
  corruptRecords: number;
  /** Tests only (faultControl): the peers this node is cut off from. */
  partitioned?: number[];
  /** Tests only (faultControl): the slow disk's delay per log transaction, in ms (0: none). */
  diskDelayMs?: number;
  /** Raft names for the same figures. */
  term?: number;
  commitIndex?: number;
}

/**
 * Move a damaged log out of the way, into `damaged-<time>/` inside the data directory, so that
 * nothing is lost (it can be examined later) and the next open starts a new, empty log.
 */
function setAside(dataDir: string, fsync: boolean): string {
  const aside = path.join(dataDir, `damaged-${new Date().toISOString().replace(/[:.]/g, '-')}`);
  fs.mkdirSync(aside);
  // The LMDB file goes last: a crash before it leaves the log in place, damaged still, and set aside
  // again at the next start. Gone first, the next start would make a new log and remove the files
  // left beside it as snapshot files a crash left over.
  const files = fs.readdirSync(dataDir).filter((f) => f.startsWith('paxlog.mdb') && f !== 'paxlog.mdb');
  for (const f of [...files, 'paxlog.mdb']) {
    if (f !== 'paxlog.mdb' || fs.existsSync(path.join(dataDir, f))) fs.renameSync(path.join(dataDir, f), path.join(aside, f));
  }
  if (fsync) {
    syncDirSync(aside);
    syncDirSync(dataDir);
  }
  return aside;
}

const pendingWritesMax = 65536;
/** Seqs from the oldest pending write to the newest at most: 5 s (the default timeout) at 400,000 writes/s. */
const pendingWritesSpanMax = 2 * 1024 * 1024;
const pendingReadsMax = 65536;
/**
 * The bytes of the commands of one propose call at most, with their entry headers: forwarded, the
 * call is one Propose frame; on the leader a command may take a slot alone, one Accept entry (its
 * batch header is within the margin). Past it the frame could not be encoded (FRAME_BYTES_MAX).
 */
const proposeBytesMax = FRAME_BYTES_MAX - HEADER_BYTES - 1024;
/** NodeOptions.batchMax and pipeline at most, as `serve --batch-max` and `--pipeline` take them. */
const batchMaxCeiling = 65536;
const pipelineCeiling = 4096;
/** NodeOptions.config.batchBytesMax at most: a batch is one log entry, sent whole in one peer frame (a quarter of one, as Multi-Paxos splits its Accepts). */
const batchBytesCeiling = FRAME_BYTES_MAX / 4;
/** config.batchBytesMax at least, as the Multi-Paxos core asserts (below it the option failed that assertion after the data directory was written). */
const batchBytesFloor = 8;
/**
 * NodeOptions.snapshotSlots and snapshotBytes when not given. 100,000 slots, as etcd's
 * --snapshot-count: under load the 64 MiB trigger comes first and bounds the log; at one client
 * (about 950 slots a second) 10,000 slots meant a snapshot somewhere in a 3-node cluster every
 * 3.5 s, and one-client p99 over 10 s was 2.81 to 3.18 ms with them against 2.28 to 2.50 ms
 * with --snapshot-slots 1000000 (five alternated pairs of bench runs).
 */
const snapshotSlotsDefault = 100_000;
const snapshotBytesDefault = 64 * 1024 * 1024;
/**
 * A persist is written inline only when its records hold at most this many bytes (see pump): on
 * the leader, a small one; on any other node, one of up to a MiB.
 */
const inlinePersistBytesMax = { leader: 8 * 1024, other: 1024 * 1024 };
/** A catch-up of this many ticks or more is logged: the event loop was held up that long. */
const lateTicksLogged = 5;
/**
 * Ticks delivered at most in one catch-up: this, or two of the longest election timeouts if that is
 * more (catchUpTicksMax). Fewer than an election timeout would leave a leader paused longer than
 * one believing in its lease on waking, and serving stale lease reads.
 */
const catchUpTicksMin = 1000;

/**
 * The free space of the disk holding `dir`, for a failed write's fatal line, with a hint when it is
 * under 1 % (at least 64 MiB): LMDB reports a write the disk cut short, a full disk, as an
 * "Input/output error", which reads like failing hardware.
 */
function diskFree(dir: string): { freeBytes?: number; hint: string } {
  try {
    const st = fs.statfsSync(dir);
    const free = st.bavail * st.bsize;
    const low = free < Math.max(64 * 1024 * 1024, (st.blocks * st.bsize) / 100);
    return { freeBytes: free, hint: low ? ` (its disk has ${free} bytes free: it is probably full)` : '' };
  } catch {
    return { hint: '' };
  }
}

/** The core's config: the defaults for these members, then the node's knobs, then `opts.config`. */
function nodeConfig(opts: NodeOptions<unknown>): Config {
  return {
    ...defaultConfig(opts.id, [...opts.peers.keys()].sort((a, b) => a - b)),
    ...(opts.batchMax !== undefined ? { batchMax: opts.batchMax } : {}),
    ...(opts.pipeline !== undefined ? { pipeline: opts.pipeline } : {}),
    ...opts.config,
  };
}

/**
 * Refuse what a caller (the library's users, from JavaScript too) can get wrong, naming the option:
 * the cores assert the same rules, but an assertion is a bug's report, not an answer to a caller.
 * Returns the core's config it checked (nodeConfig, built once the peers are known to be a Map).
 */
function checkedConfig(opts: NodeOptions<unknown>): Config {
  const bad = (what: string): never => {
    throw new RangeError(`NodeOptions.${what}`);
  };
  if (!(opts.peers instanceof Map) || opts.peers.size < 1 || opts.peers.size > 32) bad('peers must be a Map of 1 to 32 members');
  if (!opts.peers.has(opts.id)) bad(`peers must include this node's id ${opts.id} (it has ${[...opts.peers.keys()].join(', ')})`);
  if (opts.listenHost !== undefined && !isListenHost(opts.listenHost)) {
    bad(`listenHost ${JSON.stringify(opts.listenHost)} is not an IP address (no brackets) or a host name`);
  }
  if (typeof opts.dataDir !== 'string' || opts.dataDir === '') bad('dataDir must be a directory path');
  if (typeof opts.stateMachine?.apply !== 'function' || typeof opts.stateMachine.snapshot !== 'function' || typeof opts.stateMachine.restore !== 'function') {
    bad('stateMachine must have apply, snapshot and restore methods');
  }
  for (const [name, v] of [['fsync', opts.fsync], ['newCluster', opts.newCluster], ['rejoinWithoutVoting', opts.rejoinWithoutVoting]] as const) {
    if (v !== undefined && typeof v !== 'boolean') bad(`${name} must be true or false, got ${JSON.stringify(v)}`);
  }
  /** A whole number in lo..hi ("lo.." when unbounded), or absent. */
  const whole = (name: string, v: unknown, lo: number, hi = Number.MAX_SAFE_INTEGER): void => {
    if (v !== undefined && !(Number.isSafeInteger(v) && (v as number) >= lo && (v as number) <= hi)) {
      bad(`${name} ${v} is not a whole number in ${lo}..${hi === Number.MAX_SAFE_INTEGER ? '' : hi}`);
    }
  };
  // A negative or NaN tick never fires an election, a negative timeout fails every request at
  // once, a negative snapshot interval means never: each a silently broken node. A batch or
  // pipeline bound below 1 (or not whole) failed an assertion of the core ("positive bounds") that
  // named neither option; above the CLI's bounds, a leader's window and each follower's in-flight
  // ring are allocated at that size.
  whole('tickMs', opts.tickMs, 1);
  whole('requestTimeoutMs', opts.requestTimeoutMs, 1);
  whole('snapshotSlots', opts.snapshotSlots, 0);
  whole('snapshotBytes', opts.snapshotBytes, 0);
  whole('batchMax', opts.batchMax, 1, batchMaxCeiling);
  whole('pipeline', opts.pipeline, 1, pipelineCeiling);
  whole('config.batchMax', opts.config?.batchMax, 1, batchMaxCeiling);
  whole('config.pipeline', opts.config?.pipeline, 1, pipelineCeiling);
  whole('config.batchBytesMax', opts.config?.batchBytesMax, batchBytesFloor, batchBytesCeiling);
  whole('preallocateBytes', opts.preallocateBytes, 0);
  const protocol = opts.protocol ?? 'multipaxos';
  if (!Object.hasOwn(protocols, protocol)) bad(`protocol ${JSON.stringify(protocol)} is not one of ${Object.keys(protocols).join(', ')}`);
  const kernels = opts.kernels ?? 'wasm';
  if (kernels !== 'wasm' && kernels !== 'js') bad(`kernels ${JSON.stringify(kernels)} is not "wasm" or "js"`);
  const c = nodeConfig(opts);
  // The config as the core gets it (defaults filled in), so every field is present but promisePartBytes.
  const field = (name: keyof Config, lo: number, hi?: number): void => whole(`config.${name}`, c[name] ?? NaN, lo, hi);
  field('electionTicksMin', 2);
  field('electionTicksMax', c.electionTicksMin + 1);
  field('heartbeatTicks', 1, c.electionTicksMin - 1);
  field('leaseDriftTicks', 0);
  field('leaseTicks', 0, c.electionTicksMin - 1);
  field('pendingMax', 1, BATCHER_COUNT_MAX);
  field('readysOutstandingMax', 1);
  field('snapshotChunkBytes', 1, SNAPSHOT_CHUNK_BYTES_MAX);
  if (c.promisePartBytes !== undefined) field('promisePartBytes', 1);
  return c;
}

/** The bytes of a Ready's record values. */
function recordBytes(rd: Ready): number {
  let n = 0;
  for (const r of rd.records) n += r.value.byteLength;
  return n;
}

export class PaxlogNode<R = unknown> extends EventEmitter {
  /** This node's id, 1..65535; a key of opts.peers. */
  readonly id: number;
  /** Which core runs: 'multipaxos' or 'raft'. */
  readonly protocolName: ProtocolName;
  /** Which kernels face runs the hot path: 'wasm' or its TypeScript twin 'js'. */
  readonly kernelKind: KernelKind;
  /** This node's Prometheus registry and the figures the driver records. */
  readonly metrics: NodeMetrics;
  /**
   * The uWS App for clients: the API attaches here (src/api/http.ts) and it listens on the ports
   * given to start(). The peer port has an App of its own (peerApp), so that what reaches one port
   * cannot reach the other's routes: firewalling the peer port closes /peer.
   */
  readonly app: Uws.TemplatedApp;
  /** The uWS App on the peer port: /peer only. */
  private readonly peerApp: Uws.TemplatedApp;
  /** The native uWS module (never the package's JS fallback). */
  readonly uws: UwsModule;
  private readonly log: Logger;
  /** Batch decoding for apply; the same kernels the core and transport use. */
  private readonly kernels: Kernels;
  /** The durable log. Invariant: every Ready's state is written here before its messagesAfterPersist leave. */
  private readonly store: LogStore;
  /** The protocol core. Invariant: at most config.readysOutstandingMax Readys outstanding (see `persisting`). */
  private readonly core: Protocol;
  /** Outbound and inbound peer links. */
  private readonly transport: PeerTransport;
  /** Loss, delay and test partitions on peer links; null when none was asked for (the transport skips every hook). */
  private readonly faults: LinkFaults | null;
  /** The application's state machine; every chosen command is applied to it once, in slot order. */
  private readonly sm: StateMachine<R>;
  private readonly opts: NodeOptions<R>;
  /** Random per process: commands proposed by an earlier process never answer this one's requests. */
  private readonly incarnation = crypto.randomBytes(4).readUInt32LE(0);
  /** The next request seq (wraps at 2^32; far fewer are ever pending). */
  private seq = 0;
  /** Writes proposed here and not yet applied, by seq, in proposal (so deadline) order. Invariant: size <= pendingWritesMax. */
  private readonly writes = new PendingWrites<R>(pendingWritesMax, pendingWritesSpanMax);
  /** apply()'s scratch: where one slot's commands start and end, and their results (entries past a slot's count are stale). Sized to the largest slot seen. */
  private applyStarts = new Uint32Array(256);
  private applyEnds = new Uint32Array(256);
  private readonly applyResults: R[] = [];
  /** The id of the next read barrier (ids are never reused within a process). */
  private nextReadId = 1;
  /** Read barriers waiting for the core, by id, in deadline order. Invariant: size <= pendingReadsMax. */
  private readonly reads = new Map<number, PendingRead>();
  /**
   * The Readys handed out and not yet advanced, oldest first, each marked once its persist is
   * durable. They are advanced (and their messagesAfterPersist sent) strictly in this order.
   * Invariant: length <= the core's readysOutstandingMax (the core refuses more).
   */
  private persisting: { rd: Ready; durable: boolean; startMs: number; wrote: boolean }[] = [];
  /** A pump is queued with setImmediate, so many inputs in one turn make one Ready. */
  private pumpScheduled = false;
  /** The tick timer; null before start() and after stop(). */
  private ticker: NodeJS.Timeout | null = null;
  /** The ports this node listens on; closed by stop(). */
  private listenSockets: Uws.us_listen_socket[] = [];
  /** When this node last took a message from each peer (performance.now()). Keys: members only (the
   *  transport takes a frame only from the authenticated member it names). */
  private readonly heardAt = new Map<number, number>();
  /** Set once by stop(); then nothing is stepped, persisted or answered. */
  private stopped = false;
  /** The closing of the log, for a later stop() to wait on; null until stop() or a fatal stop with a 'fatal' listener. */
  private closing: Promise<void> | null = null;
  /** The highest slot applied. Invariant: never decreases; appliedThrough + 1 is the next slot to apply. */
  private appliedThrough = 0;
  /** The last slot the log held as chosen when it was opened: replayed() resolves once it is applied. */
  private replayThrough = 0;
  /** Resolves replayed()'s promise; null once it has. */
  private replayDone: (() => void) | null = null;
  private readonly replay = new Promise<void>((resolve) => (this.replayDone = resolve));
  /** Slots and bytes of commands between snapshots (opts or their defaults); 0: not by that measure. */
  private readonly snapshotSlots: number;
  private readonly snapshotBytes: number;
  /** Slots applied since the last snapshot was taken or installed. */
  private slotsSinceSnapshot = 0;
  /** Bytes of the slots applied since the last snapshot was taken or installed. */
  private bytesSinceSnapshot = 0;
  /** Callers of snapshot() waiting for a durable snapshot of this node's own at or past `need`
   *  (the applied prefix when they asked). Bounded by pendingReadsMax. */
  private snapshotWaiters: { need: number; resolve: (prefix: number) => void; reject: (e: Error) => void }[] = [];
  /** Callers of whenLeader(), in deadline order (one timeout for all). Invariant: length <= pendingReadsMax. */
  private leaderWaiters: { deadlineMs: number; resolve: (leader: number) => void; reject: (e: Error) => void }[] = [];
  /** An asynchronous snapshot (StateMachine.snapshotAsync) is being serialized. */
  private snapshotSerializing = false;
  /** A serialized snapshot of the state at `prefix`, waiting for a moment with no Ready outstanding. */
  private snapshotSerialized: { prefix: number; bytes: Uint8Array } | null = null;
  /** This node's own snapshot is being saved in the background (LogStore.saveSnapshot); at most one at a time. */
  private snapshotSaving = false;
  /** The latest own snapshot whose save failed; the core holds it already, so saving it again is the retry. */
  private snapshotUnsaved: Snapshot | null = null;
  /** The prefix of the latest snapshot known durable here, taken or installed (1: none). Never decreases. */
  private snapshotPrefixDurable = 1;
  /** Milliseconds per tick. */
  private readonly tickMs: number;
  /** A request still pending after this long fails ('timeout' for writes, 'read-failed' for reads). */
  private readonly requestTimeoutMs: number;
  /** The leader and role last logged by noteLeader() (at most a tick old; pump reads the role for its inline persists). */
  private seenLeader = 0;
  private seenRole = '';
  private readonly leaderChanges = new LeaderChanges();
  /** Once another leader is known (leaderChanges), writes pending here get this long (an election
   *  timeout) before they fail, not the whole request timeout: those that went to the old leader
   *  are likely lost, and what the new one keeps it commits in its first round. (The cores fail the
   *  reads they cannot confirm within one or two election timeouts themselves.) Set by open(). */
  private leaderChangeGraceMs = 0;
  /** Ticks one catch-up delivers at most (see catchUpTicksMin): set from the config at open. Invariant: >= 2 * electionTicksMax. */
  private catchUpTicksMax = catchUpTicksMin;
  /** When the core's clock was last brought up to date (performance.now()). Advances by whole ticks. */
  private lastTickAt = 0;

  private constructor(opts: NodeOptions<R>, config: Config, store: LogStore, core: Protocol, kernels: Kernels, uws: UwsModule) {
    super();
    this.opts = opts;
    this.id = opts.id;
    this.tickMs = opts.tickMs ?? 20;
    this.requestTimeoutMs = opts.requestTimeoutMs ?? 5000;
    this.writes.startAt(this.seq + 1);
    this.log = opts.logger;
    this.sm = opts.stateMachine;
    this.store = store;
    this.core = core;
    this.kernels = kernels;
    this.uws = uws;
    this.protocolName = core.name;
    this.kernelKind = kernels.kind;
    // The members snapshot at different times: this node's first one comes after (n - k) / n of the
    // interval (k: its place among the n members). A snapshot holds a node's event loop 21..48 ms
    // here (11 MB: serializing the state machine, its CRC); at one slot, all three held theirs at
    // once and every write waited, where a follower's alone is covered by the other follower's ack.
    const place = [...opts.peers.keys()].sort((a, b) => a - b).indexOf(opts.id) / opts.peers.size;
    this.snapshotSlots = opts.snapshotSlots ?? snapshotSlotsDefault;
    this.snapshotBytes = opts.snapshotBytes ?? snapshotBytesDefault;
    this.slotsSinceSnapshot = Math.floor(place * this.snapshotSlots);
    this.bytesSinceSnapshot = Math.floor(place * this.snapshotBytes);
    // TLS files were checked in open(); read again here for the CA that outbound links trust.
    this.app = createApp(uws, opts.tls);
    this.peerApp = createApp(uws, opts.tls);
    this.faults = opts.faults !== undefined || opts.faultControl === true ? new LinkFaults(opts.id, { ...faultsNone, ...opts.faults }) : null;
    this.transport = new PeerTransport({
      id: opts.id, peers: opts.peers, secret: opts.secret ?? '', shape: clusterShape(core.name, opts.peers.keys(), { tickMs: this.tickMs, ...config }), kernels, logger: this.log,
      onMessage: (m) => this.onMessage(m),
      onPeerStopping: (id) => this.onPeerStopping(id),
      faults: this.faults ?? undefined,
      tls: opts.tls !== undefined ? checkTlsFiles(opts.tls) : undefined,
    });
    this.transport.attach(this.peerApp, uws);
    this.peerApp.any('/*', (res) => {
      res.writeStatus('404 Not Found').end('this is the peer port: it serves /peer only (clients use the HTTP port)', true);
    });
    this.metrics = new NodeMetrics(() => this.core.status(), () => ({
      fsync: this.store.fsync,
      framesDropped: this.transport.stats.framesDropped,
      bytesSent: this.transport.stats.bytesSent,
      faultFramesDropped: this.transport.faultFramesDropped,
      decodeErrors: this.transport.stats.decodeErrors,
      authFailures: this.transport.stats.authFailures,
      corruptRecords: this.store.corruptCount,
      logCommits: this.store.commits,
    }));
  }

  /** Open the log, recover, and build the node (not yet listening: call start()). */
  static open<R>(opts: NodeOptions<R>): PaxlogNode<R> {
    const uws = loadNativeUws(); // refuses to run on uWS's JS fallback
    if (opts.tls !== undefined) checkTlsFiles(opts.tls); // a bad file fails here, before the data directory is taken
    // Everything else a caller passes is checked before the data directory is taken too: a log's
    // first write records its identity (protocol included), so a bad option must not get that far.
    const config = checkedConfig(opts);
    const kernels = loadKernels(opts.kernels ?? 'wasm');
    const fsync = opts.fsync ?? true;
    const preallocateBytes = opts.preallocateBytes;
    const protocol = opts.protocol ?? 'multipaxos';
    const identity: LogIdentity = { id: opts.id, protocol, members: [...opts.peers.keys()] };
    const recover = (store: LogStore): PaxlogNode<R> => {
      try {
        return PaxlogNode.recover(opts, config, store, kernels, uws);
      } catch (err) {
        store.closeSync(); // release the directory; the error (or broken invariant) goes on up
        throw err;
      }
    };
    // Damage refuses the start; with --rejoin-without-voting the log is set aside instead.
    const startOver = (damage: StorageError): PaxlogNode<R> => {
      if (opts.rejoinWithoutVoting !== true) throw damage;
      const aside = setAside(opts.dataDir, fsync);
      opts.logger.error({ reason: damage.message, setAside: aside }, 'THE LOG IS DAMAGED: set aside; starting from an empty log ' +
        'and rejoining without voting until caught up from the peers (--rejoin-without-voting)');
      return recover(LogStore.open({ dir: opts.dataDir, fsync, kernels, preallocateBytes, identity })); // never newCluster: it lost state
    };
    let store: LogStore;
    try {
      store = LogStore.open({ dir: opts.dataDir, fsync, kernels, newCluster: opts.newCluster, preallocateBytes, identity });
    } catch (err) {
      // An LMDB file refused as damaged is damage like what recovery refuses; a directory in use,
      // or a disk that will not open the log, is not.
      if (err instanceof LogDamagedError) return startOver(err);
      throw err;
    }
    try {
      return recover(store);
    } catch (err) {
      if (err instanceof StorageError) return startOver(err);
      throw err;
    }
  }

  private static recover<R>(opts: NodeOptions<R>, config: Config, store: LogStore, kernels: Kernels, uws: UwsModule): PaxlogNode<R> {
    const fsync = store.fsync;
    const loaded = store.load();
    for (const c of loaded.corrupt) opts.logger.error({ key: c.key, reason: c.reason }, 'corrupt log record refused; it will not be served');
    // A corrupt chosen-prefix mark or snapshot only costs a longer recovery. A corrupt accepted slot
    // is another matter: an acceptor that forgets a value it accepted can let a different value be
    // chosen for that slot, so the node refuses to run rather than vote without it.
    const lostSlots = loaded.corrupt.filter((c) => typeof c.key === 'number').map((c) => c.key);
    if (lostSlots.length > 0) {
      throw new StorageError(`the log in ${opts.dataDir} has corrupt accepted slots (${lostSlots.slice(0, 10).join(', ')}` +
        `${lostSlots.length > 10 ? ', ...' : ''}); refusing to start, since voting without them could break agreement`);
    }
    // A chosen slot with no record at all is lost state, not a gap: Raft would cut its log there and
    // report a shorter committed prefix, Multi-Paxos would have nothing to apply or to tell a peer.
    if (loaded.missing.length > 0) {
      throw new StorageError(`the log in ${opts.dataDir} has no record for chosen slots (${loaded.missing.join(', ')}` +
        `${loaded.missing.length >= missingListMax ? ', ...' : ''}) below its chosen prefix ${loaded.restored.chosenPrefix}; ` +
        'refusing to start, since the log lost chosen slots');
    }
    const snap = loaded.restored.snapshot;
    if (snap !== null) {
      try {
        opts.stateMachine.restore(snap.bytes);
      } catch (err) {
        throw new StorageError(`the snapshot in ${opts.dataDir} (positions below ${snap.prefix}) does not restore: ` +
          `${(err as Error).message}; refusing to start, since the log below it was trimmed`);
      }
    }
    const make = protocolFactory(opts.protocol ?? 'multipaxos');
    const core = make({ config, kernels, rng: new Prng(crypto.randomBytes(4).readUInt32LE(0)), restored: loaded.restored, incarnation: crypto.randomBytes(4).readUInt32LE(0) });
    const node = new PaxlogNode(opts, config, store, core, kernels, uws);
    node.appliedThrough = loaded.restored.appliedPrefix - 1;
    node.leaderChangeGraceMs = config.electionTicksMin * node.tickMs;
    node.catchUpTicksMax = Math.max(catchUpTicksMin, 2 * config.electionTicksMax);
    node.snapshotPrefixDurable = loaded.restored.snapshot?.prefix ?? 1;
    node.replayThrough = loaded.restored.chosenPrefix - 1;
    node.checkReplayed();
    if (!fsync) {
      opts.logger.warn('FSYNC IS OFF (--fsync off): writes are acknowledged before they are on disk; ' +
        'a power cut or kernel crash can lose acknowledged writes. For experiments only.');
    }
    if ((opts.secret ?? '') === '') {
      opts.logger.warn('NO CLUSTER SECRET (--secret-file, PAXLOG_SECRET or --secret): any process that reaches the peer port can join ' +
        'the protocol. Set a secret outside of local experiments.');
    }
    if (loaded.restored.newCluster === true) {
      opts.logger.info('a new cluster (--new-cluster): the node votes once a majority of the members, itself included, report ' +
        'that they hold nothing. If one holds a ballot or a slot, the cluster is running (and this node a late member, or a wiped one): ' +
        'the node then rejoins without voting until caught up from every other member');
    } else if (loaded.restored.rejoining) {
      opts.logger.warn('rejoining without voting: this log is new (a first start, or a wiped or damaged one) and may have ' +
        'forgotten promises and accepts; the node catches up from every other member before it votes');
    }
    opts.logger.info({ id: opts.id, protocol: core.name, kernels: kernels.kind, fsync, restored: {
      ballot: loaded.restored.hardState.ballot, records: loaded.restored.records.length,
      chosenPrefix: loaded.restored.chosenPrefix, appliedPrefix: loaded.restored.appliedPrefix,
    } }, 'node recovered from its log');
    return node;
  }

  /** 'applied': every command this node applies (on every node, not only the proposer's). */
  override on(event: 'applied', listener: (a: Applied<R>) => void): this;
  /**
   * 'fatal': the node stopped by itself (see FatalError); it is stopped and its log is closing, and
   * stop() resolves once it is closed. Without a listener a fatal stop ends the process (code 1).
   */
  override on(event: 'fatal', listener: (err: FatalError) => void): this;
  override on(event: string | symbol, listener: (...args: any[]) => void): this;
  override on(event: string | symbol, listener: (...args: any[]) => void): this {
    return super.on(event, listener);
  }

  /** Listen on the peer port (and any extra ports, e.g. the client HTTP port), dial peers, start ticking. */
  async start(extraPorts: number[] = []): Promise<void> {
    const self = this.opts.peers.get(this.id)!;
    const host = this.opts.listenHost ?? self.host;
    for (const [app, port] of [[this.peerApp, self.port], ...extraPorts.map((p) => [this.app, p] as const)] as const) {
      // LIBUS_LISTEN_EXCLUSIVE_PORT (1): without it uWS sets SO_REUSEPORT, and a second node on the
      // same port listens too and takes a share of its connections instead of failing here.
      const sock = await new Promise<Uws.us_listen_socket | false>((resolve) =>
        (app as unknown as { listen(h: string, p: number, o: number, cb: (s: Uws.us_listen_socket | false) => void): void }).listen(host, port, 1, resolve));
      // stop() ran meanwhile: it closed the ports listened on so far; this one, the links and the
      // ticker would be left open for good.
      if (this.stopped) {
        if (sock !== false) this.uws.us_listen_socket_close(sock);
        throw new RequestError('stopped', 'the node was stopped while starting');
      }
      if (sock === false) {
        await this.stop();
        throw new Error(`cannot listen on ${hostInUrl(host)}:${port} (in use, or not an address of this machine)`);
      }
      this.listenSockets.push(sock);
    }
    this.transport.start();
    const tickMs = this.tickMs;
    // A random phase: members started together tick in step, so two followers that drew the same
    // election timeout campaign in the same millisecond after losing their leader and split the
    // vote (a soak saw both candidates within 1 ms, and 719 ms to recover). Apart, they still can
    // when their ticks fall within a message's delay of each other.
    this.lastTickAt = performance.now() - Math.random() * tickMs;
    // Every message and read brings the clock up to date before it is stepped (onMessage,
    // readWith); the timer delivers the ticks of quiet times.
    this.ticker = setInterval(() => setImmediate(() => this.catchUpTicks()), tickMs);
    this.log.info({ host, peerPort: self.port, extraPorts, tickMs }, 'node listening');
  }

  /** Propose a command; resolves with the state machine's result once it is applied here. */
  propose(command: Uint8Array): Promise<R> {
    const envelope = Buffer.allocUnsafe(envelopeBytes + command.byteLength);
    envelope.set(command, envelopeBytes);
    return new Promise<R>((resolve, reject) => this.proposeEnveloped([envelope], [(err, r) => (err === null ? resolve(r as R) : reject(err))]));
  }

  /**
   * The callback form of propose(), for servers that answer many requests per turn: each envelope
   * is envelopeBytes of room, where the node writes its envelope, then the command; `dones[i]`
   * hears how envelopes[i] ends, once, possibly before this returns (a refusal refuses them all).
   * The node keeps the bytes (do not reuse them). Proposing many at once costs one call into the core.
   * `tags[i]` (0 if absent) is handed back to dones[i]: a server can pass one callback for many
   * writes and tell them apart by tag, with no closure per write.
   */
  proposeEnveloped(envelopes: Uint8Array[], dones: ProposeDone<R>[], tags?: number[]): void {
    assert.ok(envelopes.length === dones.length && (tags === undefined || tags.length === dones.length), 'one done and tag per envelope');
    const refuse = (e: RequestError): void => {
      for (let i = 0; i < dones.length; i++) dones[i](e, undefined, tags?.[i] ?? 0);
    };
    if (this.stopped) return refuse(new RequestError('stopped', 'the node is stopping'));
    let bytes = 0;
    for (const e of envelopes) bytes += ENTRY_HEADER_BYTES + e.byteLength;
    if (bytes > proposeBytesMax) {
      return refuse(new RequestError('too-large', `the commands hold ${bytes} bytes; one propose carries at most ${proposeBytesMax} (one peer frame)`));
    }
    if (!this.writes.fits(envelopes.length)) {
      return refuse(new RequestError('full', `${pendingWritesMax} requests are pending on this node, or one has been pending a long time`));
    }
    const first = this.seq + 1;
    for (let i = 0; i < envelopes.length; i++) {
      assert.ok(envelopes[i].byteLength >= envelopeBytes, 'an envelope has no room for its header');
      seal(envelopes[i], this.id, this.incarnation, (first + i) >>> 0);
    }
    const result = this.core.propose(envelopes);
    if (result === 'no-leader') return refuse(new RequestError('no-leader', 'no leader is known; retry shortly'));
    if (result === 'full') return refuse(new RequestError('full', 'the leader\'s queue is full; retry shortly'));
    if (result === 'forwarded') this.metrics.forwarded.inc(envelopes.length);
    this.seq = (this.seq + envelopes.length) >>> 0;
    this.schedule();
    const now = performance.now();
    const deadlineMs = now + this.requestTimeoutMs;
    for (let i = 0; i < dones.length; i++) this.writes.add((first + i) >>> 0, dones[i], tags?.[i] ?? 0, now, deadlineMs);
  }

  /**
   * A linearizable read barrier: resolves once this node's state machine reflects every write
   * that completed before the call. Read your state machine right after it resolves.
   */
  read(mode: ReadMode = 'lease'): Promise<void> {
    return new Promise<void>((resolve, reject) => this.readWith(mode, (err) => (err === null ? resolve() : reject(err))));
  }

  /** The callback form of read(); `done` runs once, possibly before this returns (a refusal). */
  readWith(mode: ReadMode, done: ReadDone): void {
    if (this.stopped) return done(new RequestError('stopped', 'the node is stopping'));
    if (this.reads.size >= pendingReadsMax) return done(new RequestError('read-failed', 'too many reads pending'));
    const id = this.nextReadId++;
    // After a pause (GC, SIGSTOP, an overloaded machine) I/O callbacks can run before the timer:
    // bring the core's clock up to date first, so a lapsed lease is seen as lapsed.
    this.catchUpTicks();
    this.core.read(id, mode);
    this.schedule();
    this.reads.set(id, { done, deadlineMs: performance.now() + this.requestTimeoutMs });
  }

  /** Fail the requests whose deadline passed (the oldest first; the rest are younger). */
  private expireRequests(now: number): void {
    this.writes.expire(now, () => new RequestError('timeout', 'the outcome is unknown: no answer within the request timeout, or within an election timeout of a leader change (the leader may have failed)'));
    for (const [id, r] of this.reads) {
      if (r.deadlineMs > now) break;
      this.reads.delete(id);
      r.done(new RequestError('read-failed', 'the read was not confirmed within the request timeout'));
    }
  }

  /** True when the node was started with faultControl (tests only). */
  get faultControl(): boolean {
    return this.opts.faultControl === true;
  }

  /**
   * Tests only: drop every peer frame to and from `peers` from now on (an empty list heals). The
   * caller checks that the node has faultControl and that every id is another member.
   */
  partition(peers: readonly number[]): void {
    assert.ok(this.faultControl && this.faults !== null, 'partition() needs faultControl');
    for (const p of peers) assert.ok(p !== this.id && this.opts.peers.has(p), `partition: ${p} is not another member`);
    this.faults.partition(peers);
    this.log.warn({ cut: this.faults.partitioned }, 'test partition set: frames to and from these peers are dropped');
  }

  /** Tests only: the peers this node is cut off from. */
  get partitioned(): number[] {
    return this.faults?.partitioned ?? [];
  }

  /**
   * Tests only: make this node's disk slow, `ms` more per log transaction (0 heals); see
   * LogStore.slowDisk. The caller checks that the node has faultControl and the range.
   */
  slowDisk(ms: number): void {
    assert.ok(this.faultControl, 'slowDisk() needs faultControl');
    this.store.slowDisk(ms);
    this.log.warn({ diskDelayMs: ms }, 'test slow disk set: every log transaction waits this long before its commit');
  }

  /** Whether `id` is another member of the cluster. */
  isPeer(id: number): boolean {
    return id !== this.id && this.opts.peers.has(id);
  }

  status(): NodeStatus {
    const s = this.core.status();
    const out: NodeStatus = {
      ...s,
      applied: this.appliedThrough,
      fsync: this.store.fsync ? 'on' : 'off',
      kernels: this.kernelKind,
      peersConnected: this.transport.connected,
      peersHeardMsAgo: Object.fromEntries([...this.heardAt].map(([id, at]) => [id, Math.round(performance.now() - at)])),
      corruptRecords: this.store.corruptCount,
    };
    if (!this.store.fsync) out.warning = 'FSYNC IS OFF: acknowledged writes can be lost on a power cut';
    if (this.faultControl) {
      out.partitioned = this.partitioned;
      out.diskDelayMs = this.store.diskDelay;
    }
    if (s.protocol === 'raft') {
      out.term = s.ballot;
      out.commitIndex = s.chosenPrefix - 1;
    }
    return out;
  }

  /** Stop ticking, close links and the log; pending requests fail with 'stopped'. */
  stop(): Promise<void> {
    // A second call waits for the first one's close: the data directory is free once either resolves.
    if (this.stopped) return this.closing ?? Promise.resolve();
    this.closing = (async () => {
      this.stopNow();
      await this.store.close();
    })();
    return this.closing;
  }

  /**
   * Log why at fatal level and stop at once. With a 'fatal' listener the node closes its log (stop()
   * waits for that) and tells the listener, outside the call that failed; without one it ends the
   * process with code 1 once the log line is written, as an 'error' event nobody listens to would.
   * Either way nothing more is applied or acknowledged: going on past a refused write or a
   * half-applied slot could lose or fork what the node has acknowledged.
   */
  private stopFatally(fields: Record<string, unknown>, why: string): void {
    this.log.fatal(fields, why);
    this.stopNow();
    if (this.listenerCount('fatal') === 0) {
      process.exitCode = 1;
      setImmediate(() => process.exit(1));
      return;
    }
    this.closing = this.store.close().catch((err: Error) => {
      this.log.error({ err: err.message }, 'the log did not close cleanly after the fatal stop');
    });
    const err = new FatalError(why, fields);
    setImmediate(() => this.emit('fatal', err));
  }

  private stopNow(): void {
    this.stopped = true;
    this.checkReplayed();
    if (this.ticker !== null) clearInterval(this.ticker);
    this.ticker = null;
    this.transport.close();
    for (const s of this.listenSockets) this.uws.us_listen_socket_close(s);
    this.listenSockets = [];
    this.writes.failAll(new RequestError('stopped', 'the node stopped; the outcome is unknown'));
    for (const w of this.snapshotWaiters) w.reject(new RequestError('stopped', 'the node stopped before the snapshot was saved'));
    this.snapshotWaiters = [];
    for (const w of this.leaderWaiters) w.reject(new RequestError('stopped', 'the node stopped before it knew a leader'));
    this.leaderWaiters = [];
    for (const [, r] of this.reads) r.done(new RequestError('stopped', 'the node stopped'));
    this.reads.clear();
  }

  /**
   * Ticks the core once per tickMs of wall-clock time that passed, however late the timer fires:
   * the core measures leases and election timeouts in ticks, so a process that was paused for a
   * second must not believe only one tick went by.
   */
  private catchUpTicks(): void {
    if (this.stopped || this.ticker === null) return;
    const now = performance.now();
    const due = Math.floor((now - this.lastTickAt) / this.tickMs);
    if (due <= 0) return;
    this.lastTickAt += due * this.tickMs;
    // Beyond a few election timeouts every timer in the core has fired anyway; bound the work.
    const ticks = Math.min(due, this.catchUpTicksMax);
    if (ticks >= lateTicksLogged) this.log.warn({ ticks, ms: Math.round(ticks * this.tickMs) }, 'the event loop was held up: ticks delivered late at once');
    for (let i = 0; i < ticks; i++) this.core.tick();
    this.expireRequests(now);
    this.noteLeader();
    if (this.leaderWaiters.length > 0) this.settleLeaderWaiters(now);
    this.schedule();
  }

  /**
   * Resolves with the leader's id once this node knows one (itself or a peer): a new cluster has
   * none until a majority is up and has voted, and propose() refuses meanwhile ('no-leader').
   * Rejects with RequestError 'timeout' after `timeoutMs` (default: the request timeout), 'stopped'
   * if the node stops first.
   */
  whenLeader(timeoutMs: number = this.requestTimeoutMs): Promise<number> {
    if (!(Number.isFinite(timeoutMs) && timeoutMs >= 0)) return Promise.reject(new RangeError(`whenLeader: timeoutMs ${timeoutMs} is not a number >= 0`));
    if (this.stopped) return Promise.reject(new RequestError('stopped', 'the node is stopping'));
    const leader = this.core.status().leader;
    if (leader !== 0) return Promise.resolve(leader);
    if (this.leaderWaiters.length >= pendingReadsMax) return Promise.reject(new RequestError('full', 'too many callers waiting for a leader'));
    return new Promise<number>((resolve, reject) => {
      const w = { deadlineMs: performance.now() + timeoutMs, resolve, reject };
      let at = this.leaderWaiters.length;
      while (at > 0 && this.leaderWaiters[at - 1].deadlineMs > w.deadlineMs) at--;
      this.leaderWaiters.splice(at, 0, w);
    });
  }

  private settleLeaderWaiters(now: number): void {
    const leader = this.core.status().leader;
    if (leader !== 0) {
      for (const w of this.leaderWaiters) w.resolve(leader);
      this.leaderWaiters = [];
      return;
    }
    while (this.leaderWaiters.length > 0 && this.leaderWaiters[0].deadlineMs <= now) {
      this.leaderWaiters.shift()!.reject(new RequestError('timeout', 'no leader became known within the timeout: is a majority of the members up and reachable?'));
    }
  }

  /** Log a change of leader or role as this node sees it (checked once per tick). */
  private noteLeader(): void {
    const s = this.core.status();
    if (s.leader === this.seenLeader && s.role === this.seenRole) return;
    if (this.leaderChanges.seen(s.leader)) this.writes.shortenDeadlines(performance.now() + this.leaderChangeGraceMs);
    this.log.info({ role: s.role, leader: s.leader, ballot: s.ballot, was: { role: this.seenRole, leader: this.seenLeader } }, 'leader or role changed');
    this.seenLeader = s.leader;
    this.seenRole = s.role;
  }

  private onMessage(m: Message): void {
    if (this.stopped) return;
    this.heardAt.set(m.from, performance.now());
    // The ticks that fell due while the loop was held up (a snapshot, a long GC) come first. Stepped
    // after a message, they would count as time since it: a follower would take them for quiet
    // after the heartbeat it just acknowledged and promise another candidate at once, within the
    // lease that acknowledgement gave the leader; and a leader would judge its lease, answering a
    // follower's read, by the clock as it was before the pause.
    this.catchUpTicks();
    this.core.step(m);
    this.schedule();
  }

  /** Peer `id` closed its link saying it is stopping (it serves nothing from then on). */
  private onPeerStopping(id: number): void {
    if (this.stopped) return;
    this.catchUpTicks();
    this.core.peerStopping(id);
    this.schedule();
  }

  private schedule(): void {
    if (this.pumpScheduled || this.stopped) return;
    this.pumpScheduled = true;
    setImmediate(() => {
      this.pumpScheduled = false;
      this.pump();
    });
  }

  private pump(): void {
    if (this.stopped) return;
    // A snapshot is taken with no Ready outstanding (the core's contract): when one is due, let the
    // persists in flight finish before handing out more, or a busy node would put it off for ever.
    if (this.persisting.length > 0 && this.compactWaiting()) return;
    while (this.core.hasReady()) {
      const rd = this.core.ready();
      for (const m of rd.messages) this.transport.send(m);
      this.apply(rd);
      if (this.stopped) return; // the state machine threw (apply stopped the node)
      const p = { rd, durable: false, startMs: performance.now(), wrote: false };
      // This node's own snapshot is saved in the background, outside the Ready's transaction (see
      // LogStore's header comment); a snapshot installed from a peer is persisted with its Ready.
      const own = rd.snapshot !== null && !rd.install ? rd.snapshot : null;
      const batch = own === null ? rd : { ...rd, snapshot: null };
      // A persist with none other in flight is written inline (see LogStore.persist): the sync
      // costs less than the hand-offs to lmdb-js's thread and back. Inline blocks this thread for the
      // sync, so the leader, whose clients' requests would wait, does it only for a small one (a
      // quiet node); under load it queues them and goes on meanwhile. Any other node only waits for
      // the leader's next message anyway, which batches up while it syncs: with inline persists
      // there, 256 HTTP clients had 4% more writes answered and the followers spent a fifth less CPU.
      // Either way, send what is ready for peers first.
      const inlineMax = this.seenRole === 'leader' ? inlinePersistBytesMax.leader : inlinePersistBytesMax.other;
      const inline = this.persisting.length === 0 && batch.snapshot === null && recordBytes(rd) <= inlineMax;
      if (inline) this.transport.flush();
      this.persisting.push(p);
      this.store.persist(batch, inline).then((wrote) => {
        p.durable = true;
        p.wrote = wrote;
        this.advanceDurable();
      }, (err: Error) => {
        // Once the node is stopping (or stopping fatally already), nothing waits on this persist:
        // no reply leaves after it, and the log writes no chosen prefix that counts on it.
        if (this.stopped) {
          this.log.warn({ err: err.message }, 'a write in flight when the node stopped did not reach the log');
          return;
        }
        // The disk refused a write: going on could break a promise made to peers. Stop with context.
        const disk = diskFree(this.opts.dataDir);
        this.stopFatally({ err: err.message, freeBytes: disk.freeBytes }, `the log could not be written${disk.hint}; stopping the node`);
      });
      if (own !== null) this.saveOwnSnapshot(own);
    }
    // What the Readys have for peers leaves in this turn: left to the transport's own flush, queued
    // from here (an immediate), it would wait for the next turn of the loop, after all its I/O.
    this.transport.flush();
  }

  /** Advance the Readys whose persists are durable, oldest first, up to the first still in flight. */
  private advanceDurable(): void {
    while (!this.stopped && this.persisting.length > 0 && this.persisting[0].durable) {
      const { rd, startMs, wrote } = this.persisting.shift()!;
      if (wrote) this.metrics.fsyncSeconds.observe((performance.now() - startMs) / 1e3);
      for (const m of rd.messagesAfterPersist) this.transport.send(m);
      this.core.advance(rd);
      if (rd.rejoined) this.log.info('rejoining done: the node votes from now on');
      if (rd.install && rd.snapshot !== null) this.snapshotDurable(rd.snapshot, true);
    }
    // The replies that waited for the disk leave now rather than at the end of the turn, which may
    // hold another inline sync.
    this.transport.flush();
    if (this.persisting.length === 0) this.maybeSnapshot();
    this.schedule();
  }

  private apply(rd: Ready): void {
    if (rd.install && rd.snapshot !== null) {
      this.install(rd.snapshot);
      if (this.stopped) return; // the state machine could not restore it (install stopped the node)
    }
    for (const rec of rd.apply) {
      assert.ok(rec.position === this.appliedThrough + 1, `apply ${rec.position} after ${this.appliedThrough}`);
      this.appliedThrough = rec.position;
      // As a Buffer, so that the commands (views into it) are Buffers too: a state machine that
      // wants Buffer's string conversions need not wrap each one again.
      const value = Buffer.from(rec.value.buffer, rec.value.byteOffset, rec.value.byteLength);
      const places = this.kernels.decodeBatchPlaces(value);
      if (isDecodeError(places)) {
        // Every node holds the same chosen bytes, so every node skips this slot alike.
        this.log.error({ slot: rec.position, reason: places.error }, 'chosen slot does not decode as a batch; skipped');
        continue;
      }
      // The commands, without their envelopes; bytes too short for an envelope are skipped by every
      // node alike. Copied out of the kernels' array before anything (a done callback) calls them again.
      const wrappedCount = places.length >>> 1;
      this.metrics.batchCommands.observe(wrappedCount);
      const starts = this.applyStarts.length >= wrappedCount ? this.applyStarts : (this.applyStarts = new Uint32Array(wrappedCount));
      const ends = this.applyEnds.length >= wrappedCount ? this.applyEnds : (this.applyEnds = new Uint32Array(wrappedCount));
      let n = 0;
      for (let i = 0; i < wrappedCount; i++) {
        if (places[2 * i + 1] < envelopeBytes) continue;
        starts[n] = places[2 * i] + envelopeBytes;
        ends[n++] = places[2 * i] + places[2 * i + 1];
      }
      const results = this.applyResults;
      try {
        if (this.sm.applyMany !== undefined) this.sm.applyMany(value, starts, ends, n, rec.position, results);
        else for (let i = 0; i < n; i++) results[i] = this.sm.apply(value.subarray(starts[i], ends[i]), rec.position);
      } catch (err) {
        // A state machine must not throw (StateMachine): its state is now part-applied, and every
        // node would throw alike on the same chosen bytes. Stop with the slot and the reason.
        this.stopFatally({ slot: rec.position, err: (err as Error).message }, 'the state machine threw applying a chosen slot (it must not throw); stopping the node');
        return;
      }
      const emit = this.listenerCount('applied') > 0;
      const now = performance.now();
      for (let i = 0; i < n; i++) {
        const result = results[i];
        const at = starts[i] - envelopeBytes;
        if (envelopeOrigin(value, at) === this.id && envelopeIncarnation(value, at) === this.incarnation) {
          const startMs = this.writes.settle(envelopeSeq(value, at), null, result);
          if (startMs >= 0) this.metrics.decideSeconds.observe((now - startMs) / 1e3);
        }
        if (emit) this.emit('applied', { slot: rec.position, command: value.subarray(starts[i], ends[i]), result } satisfies Applied<R>);
      }
      this.slotsSinceSnapshot++;
      this.bytesSinceSnapshot += rec.value.byteLength;
    }
    for (const r of rd.reads) this.settleRead(r.id, null);
    for (const id of rd.readsFailed) this.settleRead(id, new RequestError('read-failed', 'the read could not be confirmed (no leader, or the lease lapsed); retry'));
    this.checkReplayed();
  }

  /**
   * Resolves once the state machine has applied every slot the log held as chosen when it was
   * opened (at once for a new log), or the node stopped: then the state reflects at least what this
   * node knew before it stopped. createNode waits for it. For the latest writes, read() as always.
   */
  replayed(): Promise<void> {
    return this.replay;
  }

  private checkReplayed(): void {
    if (this.replayDone !== null && (this.appliedThrough >= this.replayThrough || this.stopped)) {
      this.replayDone();
      this.replayDone = null;
    }
  }

  private settleRead(id: number, err: RequestError | null): void {
    const r = this.reads.get(id);
    if (r === undefined) return;
    this.reads.delete(id);
    r.done(err);
  }

  /**
   * Take a snapshot now (at the next point where no Ready is outstanding): the state machine's
   * bytes at the applied prefix, after which the log below it is trimmed. Resolves with the
   * snapshot's prefix once it is durable.
   */
  snapshot(): Promise<number> {
    if (this.stopped) return Promise.reject(new RequestError('stopped', 'the node is stopping'));
    if (this.snapshotWaiters.length >= pendingReadsMax) return Promise.reject(new RequestError('full', 'too many snapshot requests pending'));
    return new Promise<number>((resolve, reject) => {
      this.snapshotWaiters.push({ need: this.appliedThrough + 1, resolve, reject });
      if (this.persisting.length === 0) this.maybeSnapshot();
      this.schedule();
    });
  }

  /** A snapshot is due (by --snapshot-slots or --snapshot-bytes) or was asked for. */
  private snapshotDue(): boolean {
    return (this.snapshotSlots > 0 && this.slotsSinceSnapshot >= this.snapshotSlots) ||
      (this.snapshotBytes > 0 && this.bytesSinceSnapshot >= this.snapshotBytes) || this.snapshotWaiters.length > 0;
  }

  /** A snapshot waits to be handed to the core, which needs a moment with no Ready outstanding. */
  private compactWaiting(): boolean {
    return !this.snapshotSaving && (this.snapshotSerialized !== null || (this.sm.snapshotAsync === undefined && this.snapshotDue()));
  }

  /**
   * With no Ready outstanding: hand the core a snapshot when one is due or was asked for. A state
   * machine with snapshotAsync is frozen now and serialized meanwhile (the pipeline keeps going);
   * its bytes are handed over at the next moment with no Ready outstanding.
   */
  private maybeSnapshot(): void {
    assert.ok(this.persisting.length === 0, 'a snapshot is taken only with no Ready outstanding');
    // One snapshot is saved at a time: one serialized meanwhile waits for the save's end, which
    // calls here again. (Its serialization may have begun before the save did: between a compact()
    // and the pump that hands its Ready out, a snapshot() request starts the next one.)
    if (this.snapshotSaving) return;
    const ready = this.snapshotSerialized;
    if (ready !== null) {
      this.snapshotSerialized = null;
      this.core.compact(ready.prefix, ready.bytes);
      this.schedule();
      return;
    }
    if (this.snapshotSerializing || !this.snapshotDue()) return;
    const prefix = this.appliedThrough + 1;
    if (prefix <= this.snapshotPrefixDurable) {
      // Nothing applied since the last durable snapshot: that one is the answer.
      this.settleSnapshotWaiters(this.snapshotPrefixDurable);
      return;
    }
    this.slotsSinceSnapshot = 0;
    this.bytesSinceSnapshot = 0;
    const unsaved = this.snapshotUnsaved;
    this.snapshotUnsaved = null;
    if (unsaved !== null && unsaved.prefix === prefix) {
      // Nothing applied since a snapshot failed to save (the core ignores compact() at its own prefix).
      this.saveOwnSnapshot(unsaved);
      return;
    }
    const t0 = performance.now();
    if (this.sm.snapshotAsync === undefined) {
      let bytes: Uint8Array;
      try {
        bytes = this.sm.snapshot();
      } catch (err) {
        // As for snapshotAsync below: every node runs the same state machine, so it is a bug. Stop with it.
        this.stopFatally({ prefix, err: (err as Error).message }, 'the state machine could not snapshot its state; stopping the node');
        return;
      }
      this.core.compact(prefix, bytes);
      const ms = performance.now() - t0;
      if (ms >= 50) this.log.info({ prefix, ms: Math.round(ms) }, 'snapshot of the state machine taken (it held up the event loop)');
      this.schedule();
      return;
    }
    this.snapshotSerializing = true;
    this.sm.snapshotAsync().then((bytes) => {
      this.snapshotSerializing = false;
      if (this.stopped) return;
      this.log.debug({ prefix, ms: Math.round(performance.now() - t0), bytes: bytes.byteLength }, 'snapshot of the state machine serialized');
      this.snapshotSerialized = { prefix, bytes };
      if (this.persisting.length === 0) this.maybeSnapshot();
    }, (err: Error) => {
      this.snapshotSerializing = false;
      // Once stopped, nothing waits on it (a state machine shut down with the node may refuse it).
      if (this.stopped) return;
      // Every node runs the same state machine: a snapshot it cannot write is a bug. Stop with it.
      this.stopFatally({ prefix, err: err.message }, 'the state machine could not snapshot its state; stopping the node');
    });
  }

  /** Save this node's own snapshot in the background; the next one waits for it. */
  private saveOwnSnapshot(snap: Snapshot): void {
    this.snapshotSaving = true;
    this.store.saveSnapshot(snap).then((saved) => {
      this.snapshotSaving = false;
      if (this.stopped) return;
      // Not saved: a snapshot installed from a peer, at a later prefix, was saved first.
      if (saved) this.snapshotDurable(snap, false);
      if (this.persisting.length === 0) this.maybeSnapshot();
      this.schedule();
    }, (err: Error) => {
      this.snapshotSaving = false;
      if (this.stopped) return;
      // Unlike a persist, no promise rests on it: the log keeps the slots below it until a later
      // snapshot is saved (the next interval, or the next request). Say so and go on.
      this.log.error({ prefix: snap.prefix, err: err.message }, 'the snapshot could not be saved; the log keeps the slots below it');
      this.snapshotUnsaved = snap;
      this.settleSnapshotWaiters(snap.prefix, err);
      if (this.persisting.length === 0) this.maybeSnapshot();
      this.schedule();
    });
  }

  /** A snapshot is durable (ours, or a peer's installed): count it and answer the snapshot() callers it covers. */
  private snapshotDurable(snap: Snapshot, installed: boolean): void {
    if (installed) {
      this.metrics.snapshotsInstalled.inc();
      this.log.info({ prefix: snap.prefix, bytes: snap.bytes.byteLength }, 'snapshot from a peer installed and saved');
    } else {
      this.metrics.snapshotsTaken.inc();
      this.log.debug({ prefix: snap.prefix, bytes: snap.bytes.byteLength }, 'snapshot saved, log trimmed below it');
    }
    // The answer of an own snapshot's save may come after a newer one installed from a peer was
    // durable (its commit came first; the answers' order is not the commits'). Going back to it
    // would send the next snapshot() to compact() at the installed prefix, which the core ignores
    // as not newer: nothing would be saved, and the request would wait for the next slot applied.
    this.snapshotPrefixDurable = Math.max(this.snapshotPrefixDurable, snap.prefix);
    this.settleSnapshotWaiters(snap.prefix);
  }

  /** Answer the callers whose state the snapshot at `prefix` covers (with `failed`: it could not be saved); those who asked later wait for the next. */
  private settleSnapshotWaiters(prefix: number, failed: Error | null = null): void {
    const covered = this.snapshotWaiters.filter((w) => w.need <= prefix);
    this.snapshotWaiters = this.snapshotWaiters.filter((w) => w.need > prefix);
    for (const w of covered) {
      if (failed === null) w.resolve(prefix);
      else w.reject(failed);
    }
  }

  /**
   * A peer's snapshot replaces this node's state machine: every position below its prefix is
   * chosen and was trimmed at the peer. A state machine that cannot read it cannot go on (every
   * node runs the same one, so this is a bug or a version mismatch): stop with the reason.
   */
  private install(snap: Snapshot): void {
    assert.ok(snap.prefix > this.appliedThrough + 1, `install at ${snap.prefix} after applying through ${this.appliedThrough}`);
    try {
      this.sm.restore(snap.bytes);
    } catch (err) {
      this.stopFatally({ prefix: snap.prefix, err: (err as Error).message }, 'the state machine cannot restore a peer\'s snapshot; stopping the node');
      return;
    }
    this.appliedThrough = snap.prefix - 1;
    this.slotsSinceSnapshot = 0;
    this.bytesSinceSnapshot = 0;
    // Writes proposed here whose commands lie inside the snapshot were applied at the peer: their
    // results are not known here, so they time out as unknown, as after a leader change.
  }
}
