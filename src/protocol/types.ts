// The one interface both protocol cores implement (in the manner of etcd-io/raft's RawNode).
// A core does no I/O: no clock, no randomness but the PRNG it is given, no sockets, no disk.
// The driver (src/node) and the simulator (src/sim) are its only callers:
//
//   loop:
//     core.tick() | core.step(msg) | core.propose(cmds) | core.read(id)
//     if core.hasReady():
//       rd = core.ready()
//       persist rd.snapshot, rd.hardState, rd.truncateFrom, rd.records, rd.chosenPrefix (one transaction)
//       send rd.messages at once; send rd.messagesAfterPersist only once the persist is durable
//       if rd.install: restore the state machine from rd.snapshot.bytes
//       apply rd.apply in order; answer rd.reads once applied >= read.index
//       core.advance(rd)
//     now and then, with no Ready outstanding: core.compact(appliedPrefix, stateMachine.snapshot())
//
// Pipelined Readys. Up to config.readysOutstandingMax Readys may be handed out before the first is
// advanced, so that a node keeps sending Accepts and applying chosen slots while its disk syncs
// (and the store can commit the queued persists together). Their persists must become durable in
// the order the Readys were handed out, and advance() takes them in that order; the
// messagesAfterPersist of a Ready leave only once it and every Ready before it are durable.
//
// Log compaction. The driver snapshots the state machine at the core's applied prefix and hands the
// bytes to compact(); the core drops its log below that prefix, keeps the bytes to send to peers
// that need trimmed positions, and returns the snapshot in the next Ready, whose persist saves it
// and drops every record below its prefix. The driver may save its own snapshot after the Ready
// is durable (the node does, in the background): until it is saved, a crash leaves the snapshot
// before and the records it covered, that is, the state before compact(). A node that lags behind a
// peer's trimmed point pulls the peer's snapshot in chunks (SnapshotRequest / SnapshotChunk), and
// its core hands it over in a Ready with `install` set.
//
// Positions are "slots" in Multi-Paxos and "indexes" in Raft; both start at 1. Position 0 is
// "nothing" (Raft's empty-log sentinel).

import type { CatchUpReply, Message } from './messages.js';
import type { Kernels } from '../kernels/types.js';

export type ProtocolName = 'multipaxos' | 'raft';
export type Role = 'leader' | 'candidate' | 'follower';
export type ReadMode = 'lease' | 'quorum';

/** What must survive a crash besides the log. */
export interface HardState {
  /** Multi-Paxos: the promised ballot. Raft: the current term. */
  ballot: number;
  /** Raft: the node voted for in `ballot` (term), 0 for none. Multi-Paxos: always 0. */
  vote: number;
}

/** One durable log record: an accepted slot (Multi-Paxos) or a log entry (Raft). */
export interface LogRecord {
  /** Slot or index, >= 1. */
  position: number;
  /** The ballot it was accepted at, or the entry's term. */
  ballot: number;
  /** An encoded batch (src/kernels/batch). A no-op is an empty batch. */
  value: Uint8Array;
}

/** A linearizable read that may now be served once the state machine has applied `index`. */
export interface ReadState {
  id: number;
  index: number;
}

/** A state machine snapshot: the state after applying every position below `prefix`. */
export interface Snapshot {
  /** Every position below it is in the snapshot, none at or above it. >= 2. */
  prefix: number;
  /** Raft: the term of entry prefix - 1. Multi-Paxos: 0. */
  ballot: number;
  /** What StateMachine.snapshot() returned. At most SNAPSHOT_BYTES_MAX. */
  bytes: Uint8Array;
}

/** The largest snapshot a node takes in from a peer (the receiver allocates it whole). */
export const SNAPSHOT_BYTES_MAX = 1024 * 1024 * 1024;

/** The longest SnapshotChunk a node takes in, whatever its own snapshotChunkBytes: members may be
 *  configured apart, and a receiver that held senders to its own size would never finish a transfer. */
export const SNAPSHOT_CHUNK_BYTES_MAX = 16 * 1024 * 1024;

export interface Ready {
  /**
   * Persist if set: save it as the node's snapshot (replacing the one before) and drop every
   * record below its prefix. `records` then hold no position below it. Its prefix is above any
   * snapshot persisted before. An installed one is saved before any later Ready's persist; the
   * driver's own may be saved later (see the header).
   */
  snapshot: Snapshot | null;
  /**
   * True when `snapshot` came from a peer: before `apply`, restore the state machine from
   * snapshot.bytes; the applied prefix becomes snapshot.prefix and `apply` (if any) starts there.
   * False when it is the driver's own compact() coming back to be persisted.
   */
  install: boolean;
  /** Persist if set: changed hard state. */
  hardState: HardState | null;
  /** Raft only: delete every record at position >= truncateFrom before writing `records`. */
  truncateFrom: number;
  /** Records to write (insert or overwrite), in position order. */
  records: LogRecord[];
  /** Persist if > 0: every position below it is chosen (committed). Monotonic. */
  chosenPrefix: number;
  /** Send now; they report nothing that is still waiting to be persisted. */
  messages: Message[];
  /** Send only after this Ready's persist is durable (Promise, Accepted, Vote, AppendResult). */
  messagesAfterPersist: Message[];
  /** Chosen values to hand to the state machine, in position order, without gaps, exactly once. */
  apply: LogRecord[];
  /** Reads now answerable (after `apply` of this Ready). */
  reads: ReadState[];
  /** Reads that failed (not leader, lease lost, leadership unconfirmed): answer 503/504. */
  readsFailed: number[];
  /** Persist if true, with this Ready's hard state: the node has caught up after rejoining (Restored.rejoining) and votes again. */
  rejoined: boolean;
}

export interface Config {
  /** This node's id, 1..65535. */
  id: number;
  /** Every member's id, including this node's. */
  peers: number[];
  /** Commands per slot at most. */
  batchMax: number;
  /** Bytes per slot's batch at most. */
  batchBytesMax: number;
  /** Slots (Multi-Paxos) or AppendEntries (Raft, per follower) in flight at most. */
  pipeline: number;
  /** Readys handed out and not yet advanced, at most (their persists are in flight together); >= 1. */
  readysOutstandingMax: number;
  heartbeatTicks: number;
  /** The election timeout is drawn uniformly from [electionTicksMin, electionTicksMax). */
  electionTicksMin: number;
  electionTicksMax: number;
  /** Lease length in ticks, measured from when the heartbeat was sent; must be < electionTicksMin. */
  leaseTicks: number;
  /** Clock-drift margin subtracted from the lease, in ticks. */
  leaseDriftTicks: number;
  /** Pending client commands at most (the batcher's bound); propose beyond it is refused. */
  pendingMax: number;
  /** Snapshot bytes one SnapshotChunk this node sends carries at most; 1..SNAPSHOT_CHUNK_BYTES_MAX. */
  snapshotChunkBytes: number;
  /** Multi-Paxos: value bytes one part of a Promise carries at most (at least one entry a part); default 16 MiB. */
  promisePartBytes?: number;
}

/** A deterministic PRNG (src/sim/prng). Never Math.random in a core. */
export interface Rng {
  /** A uniform integer in [lo, hi). */
  int(lo: number, hi: number): number;
  /** A uniform float in [0, 1). */
  next(): number;
}

/** What a core recovers from storage after a restart. */
export interface Restored {
  hardState: HardState;
  /** Every durable record, in position order. */
  records: LogRecord[];
  /** The persisted chosen prefix (0 or 1 when nothing is chosen). */
  chosenPrefix: number;
  /** The state machine has applied every position below this (1 when nothing). Equals snapshot.prefix, or 1 without one. */
  appliedPrefix: number;
  /** The latest durable snapshot (the state machine was restored from it), or null. Records below its prefix are ignored. */
  snapshot: Snapshot | null;
  /**
   * The node may have lost durable state: a new data directory (which might be a wiped one), or a
   * damaged log set aside with --rejoin-without-voting. Its promises (Raft: votes) and accepts
   * (acks) from before are forgotten, so it must not count in any quorum as if it remembered them.
   * It rejoins in three steps:
   *   1. It sends CatchUpRequest to every other member (again every few ticks to those that have
   *      not answered), with a nonce drawn once per life (only replies that echo it count), and takes part in nothing else: no Promise, Accepted, HeartbeatAck; Raft: no
   *      vote granted, AppendEntries ignored; it never campaigns. It still learns (fetches chosen
   *      values, installs snapshots) and forwards proposals and reads.
   *   2. Once every other member has answered, it raises its promised ballot (Raft: its term, with
   *      its vote set to itself, so it never votes again in a term it may have voted in) to the
   *      highest ballot (term) reported: no candidate it promised before can be above that, since
   *      a candidate promises its own ballot (votes for itself) durably. From then on it accepts and
   *      acknowledges like any acceptor (Raft: appends and answers AppendEntries), but still sends
   *      no Promise and grants no vote.
   *   3. Once its chosen prefix (Raft: commitIndex + 1) exceeds the highest lastPosition reported,
   *      every slot (entry) it may have accepted (acknowledged) before is chosen and known to it, so
   *      its Promises (votes) can no longer omit one: it votes again, and the Ready that says so
   *      has `rejoined` set.
   * A cluster whose members all start new passes through the steps in one round trip.
   */
  rejoining: boolean;
  /**
   * With `rejoining`: the node was told it starts a new cluster (`--new-cluster`), and its log holds
   * nothing (no ballot or term, no record, no snapshot). In step 1 it then counts the members that
   * answer with nothing either: ballot (term) 0, lastPosition 0, chosenPrefix at most 1. Once such
   * members and itself make a majority, the cluster is new: it votes at once (step 3, `rejoined`),
   * which bootstraps a cluster with a minority of its members down. The first answer that shows
   * anything means a running cluster: this node may be a wiped member of it (or a new member that
   * started late), and it rejoins in full, which is safe either way. This catches the operator's mistake of restarting a wiped node
   * with `--new-cluster` whenever an answering member has taken part in an election or holds a
   * slot; it cannot when only members that never did answer, so it narrows, not closes, that hole.
   */
  newCluster?: boolean;
}

/** Whether a restored log holds nothing at all, as Restored.newCluster requires. */
export function holdsNothing(r: Restored): boolean {
  return r.hardState.ballot === 0 && r.hardState.vote === 0 && r.records.length === 0 && r.snapshot === null && r.chosenPrefix <= 1;
}

/** Whether a member's CatchUpReply says it holds nothing: no ballot (term), no slot, nothing chosen (Restored.newCluster). */
export function answersNothing(m: CatchUpReply): boolean {
  return m.ballot === 0 && m.lastPosition === 0 && m.chosenPrefix <= 1;
}

export interface Status {
  id: number;
  protocol: ProtocolName;
  role: Role;
  /** The leader this node knows, 0 if none. */
  leader: number;
  /** Multi-Paxos: the node's current ballot (promised or leading). Raft: the term. */
  ballot: number;
  /** Every position below it is chosen (committed). */
  chosenPrefix: number;
  /** Every position below it is applied. */
  appliedPrefix: number;
  /** Multi-Paxos: chosen slots above the prefix (holes between). Raft: 0. */
  holes: number;
  /** Slots or entries proposed and not yet chosen. */
  inFlight: number;
  /** Client commands waiting for a slot. */
  pending: number;
  /** The log holds no position below this: the snapshot covers them (1 when none was taken). */
  snapshotPrefix: number;
  /** True while rejoining without voting (Restored.rejoining), until caught up. */
  rejoining: boolean;
}

export type ProposeResult =
  | 'proposed'   // queued at the leader
  | 'forwarded'  // sent to the leader this node knows; the outcome will show in `apply`
  | 'no-leader'  // surely not proposed: no leader known
  | 'full';      // surely not proposed: the pending queue is at pendingMax

export interface Protocol {
  readonly name: ProtocolName;
  tick(): void;
  step(m: Message): void;
  /** Queue client commands (each opaque bytes); they are batched into slots. */
  propose(commands: Uint8Array[]): ProposeResult;
  /** Ask for a linearizable read; its ReadState appears in a later Ready. */
  read(id: number, mode: ReadMode): void;
  /**
   * Peer `id` said it is stopping: a graceful stop, after which it answers nothing (the node's
   * transport hears it as the close of a link). If it is the leader this node follows, this node no
   * longer holds back for it and campaigns within stoppingTicks(), not an election timeout later.
   */
  peerStopping(id: number): void;
  hasReady(): boolean;
  ready(): Ready;
  /** Acknowledge the oldest outstanding Ready: persisted (with every one before it), sent and applied. */
  advance(rd: Ready): void;
  /**
   * The driver snapshotted the state machine when it had applied every position below `prefix`
   * (prefix <= the applied prefix; call it only while no Ready is outstanding). The core drops its log
   * below `prefix`, keeps `bytes` to serve peers, and returns the snapshot in the next Ready to be
   * persisted. A prefix at or below the current snapshot's is ignored.
   */
  compact(prefix: number, bytes: Uint8Array): void;
  status(): Status;
  /** Asserts every invariant of the core's state; throws (never caught) when one fails. */
  invariants(): void;
}

/**
 * Ticks until a follower campaigns once its leader said it is stopping (Protocol.peerStopping):
 * 1 for the member of lowest id among the rest, then 3 more per rank, so that the first one's
 * pre-vote reaches the others before their own campaigns (no split vote, no duel). The rest are
 * the members other than the stopping one.
 */
export function stoppingTicks(self: number, stopping: number, others: readonly number[]): number {
  return 1 + 3 * others.filter((o) => o !== stopping && o < self).length;
}

export interface ProtocolOptions {
  config: Config;
  kernels: Kernels;
  rng: Rng;
  restored?: Restored;
  /**
   * This core instance's number, different at every start (the node draws a random one, the
   * simulator counts); the Proposes it forwards carry it. Default 0.
   */
  incarnation?: number;
  /** Test-only switches that plant known bugs (the simulator must catch each). */
  bugs?: Partial<Record<PlantedBug, boolean>>;
}

/** Test-only switches that plant known bugs; the simulator must catch each. */
export const plantedBugs = [
  'quorumOneShort',      // a quorum one short of a majority
  'replyBeforePersist',  // Promise/Accepted/Vote sent before the write is durable
  'acceptLowerBallot',   // an acceptor that takes a lower ballot
  'skipHighestBallot',   // a new leader that ignores the highest-ballot rule
  'skipNoop',            // a new leader that leaves holes instead of no-ops
  'leaseWithoutLease',   // a lease read served without a lease
  'commitOldTerm',       // Raft: commit an old-term entry by counting replicas
  'rejoinVotesAtOnce',   // a node that lost its state votes (promises) without catching up first
  'countPromisePart',    // a candidate that counts an acceptor at each part of its Promise
  'commitWithoutOwnCopy', // a leader counts a slot (entry) chosen from its followers' acks before its own copy is durable
  'learnKeepsOwnValue',  // Multi-Paxos: a learner keeps its own accept over a fetched chosen value at a lower ballot
] as const;
export type PlantedBug = (typeof plantedBugs)[number];

export const defaultConfig = (id: number, peers: number[]): Config => ({
  id,
  peers,
  batchMax: 256,
  batchBytesMax: 256 * 1024,
  pipeline: 32,
  readysOutstandingMax: 4,
  heartbeatTicks: 1,
  electionTicksMin: 10,
  electionTicksMax: 20,
  leaseTicks: 8,
  leaseDriftTicks: 1,
  pendingMax: 65536,
  snapshotChunkBytes: 1024 * 1024,
});
