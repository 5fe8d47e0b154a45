// Raft as the paper gives it (Ongaro and Ousterhout, "In Search of an Understandable Consensus
// Algorithm", and Ongaro's thesis), as a pure state machine behind the same `Protocol` interface as
// Multi-Paxos, so that a comparison measures the protocol and nothing else.
//
// What it has: terms; RequestVote with the up-to-date check; pre-vote and leader stickiness, so a
// node returning from a partition cannot disrupt a healthy leader; AppendEntries with the prefix
// check and truncation of a conflicting suffix; the commit index advanced only through entries of
// the current term (the quorum kernel finds the index a majority has); an empty entry (the empty
// batch, a no-op) on election; lease reads and ReadIndex reads.
//
// Tuned like Multi-Paxos: client commands are cut into batches (one entry holds one batch, as one
// slot does) by the same Batcher kernel and knobs; at most `pipeline` entries are uncommitted at
// the leader and at most `pipeline` AppendEntries are in flight per follower; after a rejection
// nextIndex backtracks by term, not one entry at a time; a stalled pipeline is retransmitted.
//
// Read confirmation. An AppendEntries carries nothing the follower could echo, so the leader
// confirms its leadership with rounds of ReadIndex messages of its own: round r travels as
// readId 2r+1 (odd), and a follower that follows the sender echoes it in a ReadIndexReply (and
// counts it as hearing from its leader). Requests from followers use even readIds. A majority
// echoing round r proves the leader led when r was sent; the lease runs from r's send tick.
//
// Snapshots (paper section 7, with a pull-based transfer). compact() trims the log below the
// applied prefix; the log then starts after the snapshot's last index. A follower whose nextIndex
// falls below it is offered the snapshot (a SnapshotChunk at offset 0, at most one per offer
// interval, behind an empty AppendEntries so it knows its leader), and pulls the rest with
// SnapshotRequests, one chunk at a time. A follower takes an offer only from the leader of its
// current term: by induction every snapshot then holds only entries committed in terms up to the
// node's term, which that leader and every later one hold too, so reporting the snapshot's last
// index as matched is sound.
//
// Rejoining without voting (Restored.rejoining). A node that may have lost its durable state (a new
// or wiped data directory, a damaged log set aside) has forgotten the votes it granted and the
// entries it acknowledged. It asks every other member for its term and last index (CatchUpRequest),
// and until all have answered it grants no vote, ignores AppendEntries and echoes no confirmation
// round (step 1). Then it raises its term to the highest reported and votes for itself in it, and
// appends and acknowledges like any follower (step 2). Once its commit index reaches the highest
// last index reported, it votes again (step 3; the Ready says `rejoined`). It never campaigns before
// that. Why this is safe is argued where each part is enforced: beginCatchingUp (terms),
// maybeRejoined (entries) and mayVote (elections).

import assert from 'node:assert/strict';
import type { Batcher, Kernels } from '../../kernels/types.js';
import {
  MsgType,
  type SnapshotChunk,
  type SnapshotRequest,
  type AppendEntries,
  type AppendResult,
  type CatchUpReply,
  type CatchUpRequest,
  type Message,
  type RaftEntry,
  type ReadIndex,
  type ReadIndexReply,
  type RequestVote,
  type Vote,
  proposeIsNew,
  type ProposesSeen,
} from '../messages.js';
import type {
  Config,
  HardState,
  LogRecord,
  PlantedBug,
  Protocol,
  ProposeResult,
  ProtocolOptions,
  ReadMode,
  ReadState,
  Ready,
  Rng,
  Snapshot,
  Status,
} from '../types.js';
import { SNAPSHOT_BYTES_MAX, SNAPSHOT_CHUNK_BYTES_MAX, answersNothing, holdsNothing, stoppingTicks } from '../types.js';
import { Progress, ReplicaState } from './progress.js';
import { ServedSnapshots } from '../served-snapshots.js';

const enum State {
  Follower = 0,
  /** Asking for pre-votes: the term is not raised until a majority would vote for this node. */
  PreCandidate = 1,
  Candidate = 2,
  Leader = 3,
}


/** Where a node stands in rejoining without voting (Restored.rejoining); see the top of the file. */
const enum Rejoin {
  /** Votes and campaigns like any member. */
  Done = 0,
  /** Step 1: waits for every other member's CatchUpReply; learns (snapshots) and forwards, nothing else. */
  Asking = 1,
  /** Step 2: appends and acknowledges, grants no vote and never campaigns until the commit index
   *  reaches the highest last index reported. */
  CatchingUp = 2,
}

/** Failed campaigns in a row that still lengthen the election timeout (by up to electionTicksMin each). */
const BACKOFF_MAX = 4;

/** How many read-confirmation rounds remember their send tick; older rounds give no lease. */
const ROUND_TICKS_RING = 256;
/**
 * A peer's term above this is dropped. A node that took 2^53 - 1 (the codec carries any safe
 * integer) would throw at its second campaign after it, where term + 1 no longer exceeds the term.
 * An election a millisecond would take 8,900 years to get here.
 */
const TERM_MAX = 2 ** 48;
/** Entries handed to the state machine per Ready at most, so one Ready stays small (as Multi-Paxos's APPLY_MAX). */
const APPLY_MAX = 1024;

/** A linearizable read waiting at the leader, for this node's client (from = 0) or a follower's. */
interface LeaderRead {
  /** The client's read id, or the follower's readId when from > 0. */
  id: number;
  from: number;
  mode: ReadMode;
  /** The first confirmation round sent after the read arrived; a quorum read waits for it. */
  round: number;
  /** Give up (fail the read) at this tick. */
  deadlineTick: number;
}

/** A snapshot this node is pulling from a peer, one chunk at a time, in order. */
interface Transfer {
  /** The peer that offered it; chunks from anyone else are dropped. */
  from: number;
  /** The snapshot's prefix and ballot (term of entry prefix - 1), as the offer gave them. */
  prefix: number;
  ballot: number;
  /** The whole snapshot, allocated at the offer. Invariant: bytes.length <= SNAPSHOT_BYTES_MAX. */
  bytes: Uint8Array;
  /** Bytes [0, received) are in. Invariant: received <= bytes.length; the next chunk must start here. */
  received: number;
  /** Ticks since the last chunk arrived. The request is re-sent every retry interval; the transfer
   *  is abandoned after electionTicksMin (the leader's next offer starts a new one). */
  idleTicks: number;
}

/** A read this follower asked the leader about; the key is its even readId. */
interface RemoteRead {
  id: number;
  deadlineTick: number;
}

export class Raft implements Protocol {
  readonly name = 'raft' as const;

  private readonly cfg: Config;
  /** Batcher, quorum index and batch encoding (WASM or the TypeScript twin). */
  private readonly kernels: Kernels;
  /** The only randomness: election timeouts and, after a restart, the read counters' start. */
  private readonly rng: Rng;
  /** Test-only planted bugs (plantedBugs); empty in production. */
  private readonly bugs: Partial<Record<PlantedBug, boolean>>;
  /** This instance's number (ProtocolOptions.incarnation) and the last Propose number it sent. */
  private readonly incarnation: number;
  private proposeSeq = 0;
  /** Per member, the newest Propose seen from it: a duplicate must not commit its commands twice. Bounded by the members. */
  private readonly proposesSeen: ProposesSeen = new Map();
  /** Every member but this node. */
  private readonly others: number[];
  /** Votes or acknowledgements that make a majority of the members. */
  private readonly quorum: number;
  /** The encoded empty batch: the value of the entry a new leader appends. */
  private readonly noop: Uint8Array;

  // Durable state (HardState and the log).
  /** The current term. Invariant: never decreases; every entry's term <= term. */
  private term = 0;
  /** The member this node voted for in `term`, 0 for none. */
  private vote = 0;
  /** The log after the snapshot: log[i] holds index snapIndex + 1 + i, as AppendEntries carries it.
   *  Invariant: terms never decrease along the log, and none is below snapTerm. Entries are never
   *  mutated, so messages share them. compact() bounds it: everything applied may be trimmed. */
  private log: RaftEntry[] = [];
  /** The same entries as records, as storage writes them and the state machine applies them: one
   *  object each, shared by both. Invariant: recs.length === log.length, recs[i] mirrors log[i]. */
  private recs: LogRecord[] = [];
  /** The last index the snapshot covers (snapshot.prefix - 1), 0 without one. Invariant:
   *  snapIndex <= appliedIndex; it only grows. */
  private snapIndex = 0;
  /** The term of entry snapIndex (snapshot.ballot), 0 without one. Invariant: <= term. */
  private snapTerm = 0;
  /** The latest snapshot (taken, installed or restored) and one a peer is still pulling, served to
   *  peers that need trimmed entries. Invariant: latest is null iff snapIndex === 0; otherwise its
   *  prefix === snapIndex + 1 and ballot === snapTerm. */
  private readonly served: ServedSnapshots;
  /** A snapshot pulled from a peer, while its chunks come in. At most one. */
  private transfer: Transfer | null = null;

  // Volatile state.
  /** The role. Changes only through becomeFollower/PreCandidate/Candidate/Leader. */
  private state: State = State.Follower;
  /** The leader of `term` this node knows, 0 if none. */
  private leader = 0;
  /** Every index <= commitIndex is committed (chosen). Invariant: snapIndex <= commitIndex <= last index; never decreases. */
  private commitIndex = 0;
  /** Every index <= appliedIndex has been handed to the state machine in a Ready. Invariant: <= commitIndex. */
  private appliedIndex = 0;
  /** Every index <= durableIndex is durable here and equals the in-memory log. Invariant: <= last index. */
  private durableIndex = 0;

  // What the next Ready carries.
  /** The first index not yet handed to storage in a Ready. Invariant: snapIndex + 1 <= unstableFrom <= last index + 1. */
  private unstableFrom = 1;
  /** Storage must delete records from here on (0: nothing to delete). */
  private truncateFrom = 0;
  /** term or vote changed since the last Ready. */
  private hardStateDirty = false;
  /** commitIndex moved since the last Ready. */
  private commitDirty = false;
  /** The snapshot the next Ready persists (taken by compact() or installed), or null. */
  private snapshotOut: Snapshot | null = null;
  /** snapshotOut came from a peer: the driver restores its state machine from it. */
  private installOut = false;
  /** To send with the next Ready at once: they report nothing that waits for a persist. */
  private messages: Message[] = [];
  /** To send after the next Ready's persist: Vote, AppendResult, and a candidate's RequestVote. */
  private messagesAfterPersist: Message[] = [];
  /** Reads answerable once a Ready applies through their index (each index <= commitIndex). */
  private readsReady: ReadState[] = [];
  /** Reads refused (no leader, no lease, no confirmation in time). */
  private readsFailed: number[] = [];
  /**
   * The Readys handed out and not yet acknowledged by advance(), oldest first, each with the lowest
   * index truncated since it was taken (Infinity: none): its records from there on were replaced
   * and are not durable when it is. Invariant: length <= cfg.readysOutstandingMax.
   */
  private outstanding: { rd: Ready; truncatedSince: number }[] = [];

  // Time, all in ticks.
  /** Ticks since this node started. */
  private now = 0;
  /** Ticks since the election timer was last reset. */
  private electionElapsed = 0;
  /** The election timeout drawn at the last reset: [electionTicksMin, electionTicksMax) plus backoff. */
  private electionTimeout = 0;
  /** Ticks since this node last heard from a leader (or started). Below electionTicksMin it refuses votes. */
  private leaderHeardElapsed = 0;
  /** Leader: ticks since the last heartbeat. Invariant: < heartbeatTicks after a tick. */
  private heartbeatElapsed = 0;
  /** Campaigns that failed in a row since this node last heard from a leader or won. Invariant: <= BACKOFF_MAX. */
  private backoff = 0;

  // Elections.
  /** The answers to this node's current (pre-)campaign: member -> granted. */
  private votes = new Map<number, boolean>();

  // Leader state.
  /** Leader: what it knows of each follower's log. Empty unless leader. */
  private progress = new Map<number, Progress>();
  /** Scratch for the quorum kernel: this node's value first, then the followers'. */
  private readonly scratch: Float64Array;
  /** Leader: client commands waiting to be cut into entries. Bounded by pendingMax and batcherBytesMax. */
  private readonly batcher: Batcher;
  /** The batcher's bound on pending payload bytes. */
  private readonly batcherBytesMax: number;
  /** The last read-confirmation round sent. Never decreases in one life of the node, across terms too. */
  private round = 0;
  /** The first round of this reign: acknowledgements of older rounds prove nothing now. */
  private reignFirstRound = 1;
  /** Send tick of round r at [r % ROUND_TICKS_RING]. */
  private readonly roundTicks = new Float64Array(ROUND_TICKS_RING);
  /** A read arrived that needs a new confirmation round. */
  private roundWanted = false;
  /** Reads waiting at the leader for a confirmation or for the first commit of the reign. Bounded by pendingMax. */
  private leaderReads: LeaderRead[] = [];

  // Follower reads.
  /** Reads asked of the leader, by even readId. Bounded by pendingMax. */
  private remoteReads = new Map<number, RemoteRead>();
  /** The last even readId used. */
  private remoteReadSeq = 0;
  /** Reads the leader confirmed, waiting for commitIndex to reach their index. */
  private readsWaiting: ReadState[] = [];

  // Rejoining without voting.
  /** The step this node is in. Invariant: not Done only while a follower; it only moves forward
   *  (Asking, CatchingUp, Done) within one life of the node. */
  private rejoin: Rejoin = Rejoin.Done;
  /** Members that answered a CatchUpRequest while this node was Asking. Invariant: a subset of
   *  `others` (so bounded by the member count); cleared once rejoining is done. */
  private readonly catchUpAnswered = new Set<number>();
  /** The highest term those answers reported. Invariant: <= term once CatchingUp. */
  private catchUpTermMax = 0;
  /** The highest last index those answers reported: the entries this node may have acknowledged
   *  before it forgot lie at or below it. Invariant: while CatchingUp, commitIndex < catchUpLastMax. */
  private catchUpLastMax = 0;
  /** Asking: ticks since the CatchUpRequests were last sent; re-sent every retry interval. */
  private catchUpElapsed = 0;
  /** The next Ready carries `rejoined` (with the hard state): this node votes again. */
  private rejoinedOut = false;
  /** Drawn once per life when rejoining; a CatchUpReply counts only if it echoes it (0: not rejoining). */
  private catchUpNonce = 0;
  /**
   * Asking, as a node told it starts a new cluster (Restored.newCluster): the members that answered
   * holding nothing. Null when not checking, or once an answer showed a running cluster (a full
   * rejoin follows). Invariant: non-null only while Asking; a subset of catchUpAnswered.
   */
  private newClusterEmpty: Set<number> | null = null;

  constructor(opts: ProtocolOptions) {
    const cfg = opts.config;
    assert.ok(cfg.peers.includes(cfg.id), `id ${cfg.id} is not among the peers ${cfg.peers.join(',')}`);
    assert.ok(new Set(cfg.peers).size === cfg.peers.length, 'peers must be distinct');
    assert.ok(cfg.electionTicksMin < cfg.electionTicksMax, 'electionTicksMin must be < electionTicksMax');
    assert.ok(cfg.heartbeatTicks >= 1 && cfg.heartbeatTicks < cfg.electionTicksMin, 'heartbeatTicks must be in [1, electionTicksMin)');
    assert.ok(cfg.leaseTicks < cfg.electionTicksMin, 'leaseTicks must be < electionTicksMin');
    assert.ok(cfg.snapshotChunkBytes >= 1 && cfg.snapshotChunkBytes <= SNAPSHOT_CHUNK_BYTES_MAX, `snapshotChunkBytes must be in 1..${SNAPSHOT_CHUNK_BYTES_MAX}`);
    assert.ok(cfg.pipeline >= 1 && cfg.batchMax >= 1 && cfg.batchBytesMax >= 1 && cfg.pendingMax >= 1 && cfg.readysOutstandingMax >= 1, 'limits must be >= 1');
    this.cfg = cfg;
    // A receiver abandons a transfer after electionTicksMin without a chunk (tickTransfer); held
    // for electionTicksMax, a pulled snapshot outlasts that on a node whose ticks run a little fast.
    this.served = new ServedSnapshots(cfg.electionTicksMax);
    this.kernels = opts.kernels;
    this.rng = opts.rng;
    this.bugs = opts.bugs ?? {};
    this.incarnation = opts.incarnation ?? 0;
    this.others = cfg.peers.filter((p) => p !== cfg.id);
    this.quorum = Math.floor(cfg.peers.length / 2) + 1;
    this.noop = this.kernels.encodeBatch([]);
    this.scratch = new Float64Array(cfg.peers.length);
    // The ring holds every command the node accepted and has not cut; its byte bound keeps a flood
    // of large commands from taking all memory.
    this.batcherBytesMax = Math.max(cfg.batchBytesMax * cfg.pipeline, 64 * 1024 * 1024);
    this.batcher = this.kernels.newBatcher(cfg.pendingMax, this.batcherBytesMax);
    if (opts.restored) {
      this.restore(opts.restored);
      // Replies to an earlier life of this node may still be in flight, and ReadIndex carries no
      // term: start the round and read counters at a random multiple of 2^20 (readIds stay below 2^53), so that an old
      // ReadIndexReply cannot confirm a new round or answer a new read (sim seed 1421, 5 nodes).
      this.round = this.rng.int(1, 2 ** 31) * 2 ** 20;
      this.reignFirstRound = this.round + 1;
      this.remoteReadSeq = this.rng.int(1, 2 ** 31) * 2 ** 20;
      // With the planted bug a node that lost its state votes at once, as if it remembered.
      if (opts.restored.rejoining && !this.bugs.rejoinVotesAtOnce) {
        if (opts.restored.newCluster === true) {
          assert.ok(holdsNothing(opts.restored), 'Restored.newCluster with a log that holds something');
          this.newClusterEmpty = new Set();
        }
        this.startRejoin();
      }
    }
    // A node that has seen a term may have acknowledged a leader's confirmation round just before
    // it crashed; it refuses votes for an election timeout after restarting, as it would have.
    this.leaderHeardElapsed = this.term > 0 || (opts.restored !== undefined && !opts.restored.rejoining) ? 0 : cfg.electionTicksMin;
    this.resetElectionTimer();
  }

  private restore(r: NonNullable<ProtocolOptions['restored']>): void {
    this.term = r.hardState.ballot;
    this.vote = r.hardState.vote;
    if (r.snapshot) {
      const { prefix, ballot } = r.snapshot;
      if (!Number.isSafeInteger(prefix) || prefix < 2 || !Number.isSafeInteger(ballot) || ballot < 0 || ballot > this.term) {
        throw new Error(`raft: the stored snapshot (prefix ${prefix}, term ${ballot}) does not fit the stored term ${this.term}; ` +
          "restore this node's data from a peer");
      }
      // The state machine was restored from it; the log starts after it.
      this.served.replace(r.snapshot, this.now);
      this.snapIndex = r.snapshot.prefix - 1;
      this.snapTerm = r.snapshot.ballot;
    }
    // Storage refuses corrupt records, which leaves a gap. Raft's log has none: keep the entries
    // before the first gap (or the first out-of-order term); the leader sends the rest again.
    // Records the snapshot covers are ignored.
    let kept = 0;
    for (const rec of r.records) {
      if (rec.position <= this.snapIndex) continue;
      if (rec.position !== this.lastIndex() + 1 || rec.ballot < this.lastTerm() || rec.ballot > this.term) break;
      this.log.push({ index: rec.position, term: rec.ballot, value: rec.value });
      this.recs.push(rec);
      kept++;
    }
    this.durableIndex = this.lastIndex();
    this.unstableFrom = this.lastIndex() + 1;
    this.appliedIndex = Math.max(0, r.appliedPrefix - 1);
    if (this.appliedIndex < this.snapIndex) {
      throw new Error(`raft: the state machine applied through ${this.appliedIndex} but the snapshot covers ${this.snapIndex}; ` +
        'restore the state machine from the snapshot');
    }
    if (this.appliedIndex > this.lastIndex()) {
      // The state machine is ahead of the log that survived: without a snapshot transfer this node
      // cannot prove which entries it applied. A clear error, not a silent divergence.
      throw new Error(`raft: the log kept ${kept} entries of ${r.records.length} after index ${this.snapIndex} (a record is missing or corrupt) ` +
        `but the state machine applied through ${this.appliedIndex}; restore this node's data from a peer`);
    }
    this.commitIndex = Math.min(Math.max(this.appliedIndex, r.chosenPrefix - 1, 0), this.lastIndex());
  }

  // ---------------------------------------------------------------- log helpers

  private lastIndex(): number {
    return this.snapIndex + this.log.length;
  }

  /** The term of the entry at `index`: snapTerm at snapIndex (0 at index 0). Asserts the index is
   *  in the log or is the snapshot's last. */
  private termAt(index: number): number {
    if (index === this.snapIndex) return this.snapTerm;
    assert.ok(index > this.snapIndex && index <= this.lastIndex(), `index ${index} is outside the log ${this.snapIndex}..${this.lastIndex()}`);
    return this.log[index - this.snapIndex - 1].term;
  }

  private lastTerm(): number {
    return this.log.length === 0 ? this.snapTerm : this.log[this.log.length - 1].term;
  }

  /** The largest index whose term is <= t, searched down to snapIndex (returned when no entry after it
   *  qualifies, whatever the terms below). Terms never decrease along the log, so bisect. */
  private lastIndexOfTermAtMost(t: number): number {
    let lo = this.snapIndex;
    let hi = this.lastIndex();
    while (lo < hi) {
      const mid = lo + Math.ceil((hi - lo) / 2);
      if (this.termAt(mid) <= t) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  /** Append an entry (a received one is kept as it came). */
  private append(e: RaftEntry): void {
    assert.ok(e.index === this.lastIndex() + 1, `entry ${e.index} does not follow ${this.lastIndex()}`);
    assert.ok(e.term >= this.lastTerm() && e.term <= this.term, `entry term ${e.term} out of order`);
    this.log.push(e);
    this.recs.push({ position: e.index, ballot: e.term, value: e.value });
  }

  /** Entries from `from` on were replaced: the outstanding Readys' copies of them are stale. */
  private noteTruncated(from: number): void {
    for (const o of this.outstanding) o.truncatedSince = Math.min(o.truncatedSince, from);
  }

  /** Delete the entries at `from` and above: they conflict with the leader's. */
  private truncate(from: number): void {
    assert.ok(from > this.commitIndex, `truncating from ${from} would delete committed entries (commitIndex ${this.commitIndex})`);
    this.log.length = from - 1 - this.snapIndex;
    this.recs.length = from - 1 - this.snapIndex;
    this.unstableFrom = Math.min(this.unstableFrom, from);
    this.truncateFrom = this.truncateFrom === 0 ? from : Math.min(this.truncateFrom, from);
    this.noteTruncated(from);
    this.durableIndex = Math.min(this.durableIndex, from - 1);
  }

  // ---------------------------------------------------------------- transitions

  /** Draw a new election timeout. After failed campaigns it grows at random (as Multi-Paxos backs
   *  off after a Nack), so that candidates whose timeouts collide, or whose votes come back slower
   *  than the timeout, stop splitting the vote. */
  private resetElectionTimer(): void {
    this.electionElapsed = 0;
    const c = this.cfg;
    this.electionTimeout = this.rng.int(c.electionTicksMin, c.electionTicksMax);
    if (this.backoff > 0) this.electionTimeout += this.rng.int(0, c.electionTicksMin * this.backoff + 1);
  }

  private campaignFailed(): void {
    if (this.backoff < BACKOFF_MAX) this.backoff++;
  }

  /** This node heard from a live leader of its term (or became one): campaigns start afresh. */
  private heardLeader(): void {
    this.backoff = 0;
    this.electionElapsed = 0;
    this.leaderHeardElapsed = 0;
  }

  private setTerm(term: number): void {
    assert.ok(term > this.term, `term ${term} must exceed ${this.term}`);
    this.term = term;
    this.vote = 0;
    this.hardStateDirty = true;
  }

  private becomeFollower(term: number, leader: number): void {
    if (term > this.term) this.setTerm(term);
    if (this.state === State.Leader) this.endReign();
    this.state = State.Follower;
    this.leader = leader;
    this.resetElectionTimer();
  }

  private becomePreCandidate(): void {
    assert.ok(this.state !== State.Leader, 'a leader does not campaign');
    assert.equal(this.rejoin, Rejoin.Done, 'a rejoining node never campaigns');
    this.state = State.PreCandidate;
    this.leader = 0;
    this.votes.clear();
    this.resetElectionTimer();
    this.votes.set(this.cfg.id, true);
    if (this.votes.size >= this.quorum) return this.becomeCandidate();
    for (const to of this.others) {
      this.messages.push(this.requestVote(to, this.term + 1, true));
    }
  }

  private becomeCandidate(): void {
    assert.ok(this.state === State.PreCandidate, 'only a pre-candidate becomes a candidate');
    this.setTerm(this.term + 1);
    this.vote = this.cfg.id;
    this.state = State.Candidate;
    this.leader = 0;
    this.votes.clear();
    this.resetElectionTimer();
    this.votes.set(this.cfg.id, true);
    if (this.votes.size >= this.quorum) return this.becomeLeader();
    // The vote for itself must be durable before anyone can count it: a candidate that lost it in
    // a crash could vote again in the same term, for someone else.
    for (const to of this.others) {
      this.messagesAfterPersist.push(this.requestVote(to, this.term, false));
    }
  }

  private becomeLeader(): void {
    assert.ok(this.state === State.Candidate, 'only a candidate becomes leader');
    this.state = State.Leader;
    this.leader = this.cfg.id;
    this.backoff = 0;
    this.heartbeatElapsed = 0;
    this.electionElapsed = 0;
    this.reignFirstRound = this.round + 1;
    // A leader holds every committed entry already; a snapshot it was pulling adds nothing.
    this.transfer = null;
    this.progress.clear();
    for (const p of this.others) {
      this.progress.set(p, new Progress(this.lastIndex() + 1, this.cfg.pipeline));
    }
    // The empty entry of the new term: committing it commits every entry of earlier terms before it.
    this.append({ index: this.lastIndex() + 1, term: this.term, value: this.noop });
  }

  /** Leave the leader's role: fail what only a leader could answer. */
  private endReign(): void {
    for (const r of this.leaderReads) this.failLeaderRead(r);
    this.leaderReads = [];
    this.roundWanted = false;
    this.progress.clear();
    // Commands not yet cut into an entry were surely not proposed; their clients time out.
    this.batcher.clear();
  }

  /** A node that heard from a leader within electionTicksMin (or just started, or leads) refuses
   *  votes: this keeps a node returning from a partition from deposing a healthy leader, and is
   *  what makes a lease safe. */
  private inLease(): boolean {
    return this.state === State.Leader || this.leaderHeardElapsed < this.cfg.electionTicksMin;
  }

  // ---------------------------------------------------------------- input

  /**
   * A leader that stops serves nothing from then on, so its followers need not refuse votes for
   * the rest of its lease: this one grants them now and campaigns soon. A stale message from that
   * leader still in flight makes it hold back again (liveness only).
   */
  peerStopping(id: number): void {
    if (this.state !== State.Follower || id !== this.leader || this.rejoin !== Rejoin.Done) return;
    this.leader = 0;
    this.leaderHeardElapsed = this.cfg.electionTicksMin;
    this.electionElapsed = 0;
    this.electionTimeout = stoppingTicks(this.cfg.id, id, this.others);
    this.invariants();
  }

  tick(): void {
    this.now++;
    this.electionElapsed++;
    this.leaderHeardElapsed++;
    if (this.state === State.Leader) this.tickLeader();
    else if (this.rejoin !== Rejoin.Done) {
      // Never campaign while rejoining; the full timeout runs again once it is done.
      this.electionElapsed = 0;
      this.tickRejoin();
    } else if (this.electionElapsed >= this.electionTimeout) {
      if (this.state !== State.Follower) this.campaignFailed();
      this.becomePreCandidate();
    }
    this.expireReads();
    this.tickTransfer();
    this.served.tick(this.now);
  }

  private tickLeader(): void {
    this.heartbeatElapsed++;
    if (this.heartbeatElapsed >= this.cfg.heartbeatTicks) {
      this.heartbeatElapsed = 0;
      this.broadcastHeartbeat();
    }
    const retransmitTicks = this.retransmitTicks();
    for (const pr of this.progress.values()) {
      if (pr.state === ReplicaState.Replicate && pr.inflight > 0 && this.now - pr.progressTick >= retransmitTicks) {
        // Nothing was acknowledged for a while: something was lost. Resend from the match point.
        pr.next = pr.match + 1;
        pr.clearInflight();
        pr.progressTick = this.now;
      }
    }
    if (this.electionElapsed >= this.cfg.electionTicksMax) {
      // Check quorum: a leader that has not heard from a majority for the longest election timeout
      // steps down, so that its clients learn to look elsewhere. Not sooner (etcd checks at the
      // shortest): a lost segment stalls a TCP link for a retransmit timeout, over 200 ms, and at
      // 51 ms round trips with 5 % loss (emulated) a check at the shortest timeout deposed a
      // leader both followers still followed. Multi-Paxos checks at the same point.
      this.electionElapsed = 0;
      let active = 1;
      for (const pr of this.progress.values()) {
        if (pr.active) active++;
        pr.active = false;
      }
      if (active < this.quorum) this.becomeFollower(this.term, 0);
    }
  }

  /** Ticks without acknowledgement after which a busy pipeline is resent: the same as Multi-Paxos's
   *  retransmission of unacknowledged Accepts, so that both recover from loss equally fast. */
  private retransmitTicks(): number {
    return Math.max(2, 3 * this.cfg.heartbeatTicks);
  }

  step(m: Message): void {
    assert.equal(m.to, this.cfg.id, `message for ${m.to} stepped into node ${this.cfg.id}`);
    if (m.from === this.cfg.id || !this.cfg.peers.includes(m.from)) return; // not a member: ignore
    switch (m.type) {
      // Only this term's, once (see Propose.ballot): else a duplicate would commit its commands twice.
      case MsgType.Propose: return m.ballot === this.term && proposeIsNew(this.proposesSeen, m) ? this.handlePropose(m.values) : undefined;
      case MsgType.ReadIndex: return this.handleReadIndex(m);
      case MsgType.ReadIndexReply: return this.handleReadIndexReply(m);
      case MsgType.SnapshotRequest: return this.handleSnapshotRequest(m);
      case MsgType.SnapshotChunk: return this.handleSnapshotChunk(m);
      case MsgType.CatchUpRequest: return this.handleCatchUpRequest(m);
      case MsgType.CatchUpReply: return this.handleCatchUpReply(m);
      case MsgType.RequestVote:
      case MsgType.Vote:
      case MsgType.AppendEntries:
      case MsgType.AppendResult:
        return this.stepRaft(m);
      default:
        return; // a Multi-Paxos message: not ours, ignore
    }
  }

  /** Terms first, then the message's own handler. */
  private stepRaft(m: RequestVote | Vote | AppendEntries | AppendResult): void {
    if (!(m.term <= TERM_MAX)) return;
    if (m.term > this.term) {
      if (m.type === MsgType.RequestVote) {
        if (this.inLease()) return; // stickiness: do not even raise the term
        if (!m.preVote) this.becomeFollower(m.term, 0);
      } else if (m.type === MsgType.Vote && m.preVote && m.granted) {
        // A granted pre-vote carries the term this node would campaign in; nothing to raise yet.
      } else {
        this.becomeFollower(m.term, m.type === MsgType.AppendEntries ? m.from : 0);
      }
    } else if (m.term < this.term) {
      // Tell a stale leader or pre-candidate about the newer term so it steps down. index 0 marks
      // the answer as "your term is stale", never a real rejection.
      if (m.type === MsgType.AppendEntries) {
        this.messagesAfterPersist.push(this.appendResult(m.from, false, 0, 0));
      } else if (m.type === MsgType.RequestVote && m.preVote) {
        this.messagesAfterPersist.push(this.voteMsg(m.from, this.term, false, true));
      }
      return;
    }
    switch (m.type) {
      case MsgType.RequestVote: return this.handleRequestVote(m);
      case MsgType.Vote: return this.handleVote(m);
      case MsgType.AppendEntries:
        // A second leader in this term: no correct member sends it (a buggy or hostile peer). Drop it;
        // a throw here would end the node.
        if (this.state === State.Leader || (this.state === State.Follower && this.leader !== 0 && this.leader !== m.from)) return;
        if (this.state !== State.Follower || this.leader !== m.from) this.becomeFollower(this.term, m.from);
        return this.handleAppendEntries(m);
      case MsgType.AppendResult:
        if (this.state === State.Leader) this.handleAppendResult(m);
        return;
    }
  }

  private handleRequestVote(m: RequestVote): void {
    const upToDate = this.mayVote() && (m.lastTerm > this.lastTerm() || (m.lastTerm === this.lastTerm() && m.lastIndex >= this.lastIndex()));
    if (m.preVote) {
      const granted = m.term > this.term && upToDate;
      this.messagesAfterPersist.push(this.voteMsg(m.from, granted ? m.term : this.term, granted, true));
      return;
    }
    const granted = m.term === this.term && (this.vote === m.from || (this.vote === 0 && !this.inLease())) && upToDate;
    if (granted && this.vote === 0) {
      this.vote = m.from;
      this.hardStateDirty = true;
      this.resetElectionTimer();
    }
    this.messagesAfterPersist.push(this.voteMsg(m.from, this.term, granted, false));
  }

  private handleVote(m: Vote): void {
    const counting =
      (this.state === State.PreCandidate && m.preVote && (!m.granted || m.term === this.term + 1)) ||
      (this.state === State.Candidate && !m.preVote && m.term === this.term);
    if (!counting || this.votes.has(m.from)) return;
    this.votes.set(m.from, m.granted);
    let granted = 0;
    for (const g of this.votes.values()) if (g) granted++;
    const refused = this.votes.size - granted;
    if (granted >= this.quorum) {
      if (this.state === State.PreCandidate) this.becomeCandidate();
      else this.becomeLeader();
    } else if (refused >= this.quorum) {
      this.campaignFailed();
      this.becomeFollower(this.term, 0);
    }
  }

  private handleAppendEntries(m: AppendEntries): void {
    this.heardLeader();
    // Step 1 of rejoining: the leader is noted (proposals and reads are forwarded to it), but an
    // acknowledgement now could not be told from one this node gave before it forgot. The leader's
    // Progress for it was reset by its CatchUpRequest, so probing resumes in step 2.
    if (this.rejoin === Rejoin.Asking) return;
    const last = this.lastIndex();
    if (m.prevIndex > last) {
      this.messagesAfterPersist.push(this.appendResult(m.from, false, last + 1, 0));
      return;
    }
    let prevIndex = m.prevIndex;
    let entries = m.entries;
    for (let i = 0, t = m.prevTerm; i < entries.length; t = entries[i].term, i++) {
      const e = entries[i];
      if (e.index !== prevIndex + 1 + i || e.term < t || e.term > m.term) return; // malformed: drop
    }
    if (prevIndex < this.snapIndex) {
      // The snapshot holds every index up to snapIndex, all committed, and the leader of this term
      // holds them too (see the top of the file): skip them, as if the message began there.
      const skip = this.snapIndex - prevIndex;
      if (entries.length < skip) {
        this.messagesAfterPersist.push(this.appendResult(m.from, true, this.snapIndex, 0));
        return;
      }
      if (entries[skip - 1].term !== this.snapTerm) return; // disagrees with a committed entry: drop
      prevIndex = this.snapIndex;
      entries = entries.slice(skip);
    }
    const prevTerm = prevIndex === m.prevIndex ? m.prevTerm : this.snapTerm;
    const have = this.termAt(prevIndex);
    if (have !== prevTerm) {
      // Fast backtracking: name the conflicting term and where it starts here, so the leader can
      // skip the whole term at once.
      if (prevIndex <= this.commitIndex) return; // disagrees with a committed entry: no correct leader sends it, drop
      const first = this.lastIndexOfTermAtMost(have - 1) + 1;
      this.messagesAfterPersist.push(this.appendResult(m.from, false, first, have));
      return;
    }
    let i = 0;
    // Skip what this node already has; truncate at the first conflict.
    for (; i < entries.length; i++) {
      const e = entries[i];
      if (e.index > this.lastIndex()) break;
      if (this.termAt(e.index) !== e.term) {
        if (e.index <= this.commitIndex) return; // would replace a committed entry: drop, as above
        this.truncate(e.index);
        break;
      }
    }
    for (; i < entries.length; i++) this.append(entries[i]);
    const newLast = prevIndex + entries.length;
    const commit = Math.min(m.commitIndex, newLast);
    if (commit > this.commitIndex) this.setCommit(commit);
    this.messagesAfterPersist.push(this.appendResult(m.from, true, newLast, 0));
  }

  private handleAppendResult(m: AppendResult): void {
    const pr = this.progress.get(m.from);
    if (pr === undefined) return;
    pr.active = true;
    if (m.success) {
      if (m.index > this.lastIndex()) return; // cannot be: the leader never sent it
      if (m.index > pr.match) {
        pr.match = m.index;
        pr.progressTick = this.now;
        this.maybeCommit();
      }
      if (pr.state === ReplicaState.Snapshot) {
        // The follower installed a snapshot (or already held the entry at snapIndex): stream from
        // its match if that is no longer trimmed here; otherwise it needs the newer snapshot.
        if (pr.match >= this.snapIndex) pr.becomeReplicate(this.now);
        else pr.next = pr.match + 1;
      } else if (pr.state === ReplicaState.Probe) {
        // Only an answer to the current probe (or a later message) shows where to stream from; a
        // heartbeat's answer just confirms the match.
        if (m.index >= pr.next - 1) pr.becomeReplicate(this.now);
      } else {
        pr.next = Math.max(pr.next, m.index + 1);
        pr.freeTo(m.index);
      }
      return;
    }
    if (m.index === 0) return; // the answer to a message of an older term
    if (pr.state === ReplicaState.Snapshot) return; // it lacks trimmed entries: the snapshot answers that
    let next = m.index;
    if (m.hintTerm > 0) {
      const j = this.lastIndexOfTermAtMost(m.hintTerm);
      if (j > 0 && this.termAt(j) === m.hintTerm) next = j + 1;
    }
    next = Math.min(next, this.lastIndex() + 1);
    // The follower holds everything up to its match, so it diverges above it: a point at or below
    // the match (the hint's term lies wholly below our snapshot, so no entry of it is found here;
    // or the rejection answers an older message) means "from match + 1", as etcd's MaybeDecrTo
    // clamps it. Dropping it instead left a follower in Probe for good once the leader trimmed
    // past its match: every probe drew the same answer, and no snapshot was offered. But a
    // follower that may have lost its log (it asked to catch up) can hold less than its match
    // says, if an acknowledgement from its earlier life arrived late: believe the rejection,
    // forget the match and probe (a lower match only makes commit counting more cautious).
    if (next <= pr.match && !pr.mayHaveLostLog) next = pr.match + 1;
    if (next >= pr.next) return;
    if (next <= pr.match) pr.match = 0;
    pr.becomeProbe(next, false);
  }

  private handlePropose(values: Uint8Array[]): void {
    if (this.state !== State.Leader) return; // forwarded to a node that no longer leads: the client retries
    for (const v of values) if (!this.batcher.push(v)) return;
  }

  propose(commands: Uint8Array[]): ProposeResult {
    if (this.state === State.Leader) {
      let bytes = 0;
      for (const c of commands) bytes += c.length;
      // Refuse all or nothing, so that 'full' means no command of the call was proposed.
      if (this.batcher.count + commands.length > this.cfg.pendingMax || this.batcher.bytes + bytes > this.batcherBytesMax) {
        return 'full';
      }
      for (const c of commands) assert.ok(this.batcher.push(c), 'the batcher refused a command within its bounds');
      return 'proposed';
    }
    if (this.leader === 0 || this.state !== State.Follower) return 'no-leader';
    this.messages.push({ type: MsgType.Propose, from: this.cfg.id, to: this.leader, ballot: this.term, incarnation: this.incarnation, seq: ++this.proposeSeq, values: commands });
    return 'forwarded';
  }

  // ---------------------------------------------------------------- reads

  read(id: number, mode: ReadMode): void {
    // readsReady counts too: confirmed reads wait there for a replay to apply through their index.
    if (this.leaderReads.length + this.remoteReads.size + this.readsWaiting.length + this.readsReady.length >= this.cfg.pendingMax) {
      this.readsFailed.push(id);
      return;
    }
    if (this.state === State.Leader) {
      if (mode === 'lease' && !this.leaseValid() && !this.bugs.leaseWithoutLease) {
        this.readsFailed.push(id); // refused for lack of a lease
        return;
      }
      this.addLeaderRead(id, 0, mode);
      return;
    }
    if (this.leader === 0 || this.state !== State.Follower) {
      this.readsFailed.push(id);
      return;
    }
    this.remoteReadSeq += 2;
    this.remoteReads.set(this.remoteReadSeq, { id, deadlineTick: this.now + this.cfg.electionTicksMin });
    this.messages.push({ type: MsgType.ReadIndex, from: this.cfg.id, to: this.leader, readId: this.remoteReadSeq });
  }

  private addLeaderRead(id: number, from: number, mode: ReadMode): void {
    if (mode === 'quorum') this.roundWanted = true;
    this.leaderReads.push({ id, from, mode, round: this.round + 1, deadlineTick: this.now + this.cfg.electionTicksMin });
    this.serveLeaderReads();
  }

  private handleReadIndex(m: ReadIndex): void {
    if (m.readId % 2 === 1) {
      // A confirmation round from the leader this node follows: echo it, and count it as hearing
      // from the leader (so this node refuses votes for a while: the leader's lease rests on that).
      if (this.state === State.Follower && m.from === this.leader && this.rejoin !== Rejoin.Asking) {
        this.heardLeader();
        this.messages.push(this.readIndexReply(m.from, m.readId, this.commitIndex, true));
      }
      return;
    }
    if (this.state !== State.Leader || this.leaderReads.length >= this.cfg.pendingMax) {
      this.messages.push(this.readIndexReply(m.from, m.readId, 0, false));
      return;
    }
    this.addLeaderRead(m.readId, m.from, this.leaseValid() ? 'lease' : 'quorum');
  }

  private handleReadIndexReply(m: ReadIndexReply): void {
    if (m.readId % 2 === 1) {
      if (this.state !== State.Leader || !m.ok) return;
      const r = (m.readId - 1) / 2;
      const pr = this.progress.get(m.from);
      if (pr === undefined || r < this.reignFirstRound || r > this.round) return;
      pr.active = true;
      if (r > pr.ackedRound) {
        pr.ackedRound = r;
        this.serveLeaderReads();
      }
      return;
    }
    const pending = this.remoteReads.get(m.readId);
    if (pending === undefined) return; // a duplicate, or the read already timed out
    this.remoteReads.delete(m.readId);
    if (m.ok) this.readsWaiting.push({ id: pending.id, index: m.index });
    else this.readsFailed.push(pending.id);
  }

  /** The highest round a majority (this node included) has acknowledged in this reign (0: none). */
  private confirmedRound(): number {
    this.scratch[0] = this.round;
    let i = 1;
    for (const pr of this.progress.values()) this.scratch[i++] = pr.ackedRound;
    const r = this.kernels.quorumIndex(this.scratch, i, this.quorum);
    return r >= this.reignFirstRound ? r : 0;
  }

  /** The leader may answer reads alone: a majority acknowledged a round sent less than the lease ago. */
  private leaseValid(): boolean {
    if (this.state !== State.Leader) return false;
    const r = this.confirmedRound();
    if (r === 0 || this.round - r >= ROUND_TICKS_RING) return false;
    return this.now < this.roundTicks[r % ROUND_TICKS_RING] + this.cfg.leaseTicks - this.cfg.leaseDriftTicks;
  }

  /** True once an entry of this term is committed: then commitIndex covers everything chosen before. */
  private committedInTerm(): boolean {
    return this.commitIndex > 0 && this.termAt(this.commitIndex) === this.term;
  }

  private serveLeaderReads(): void {
    if (this.leaderReads.length === 0 || !this.committedInTerm()) return;
    const confirmed = this.confirmedRound();
    let kept = 0;
    for (const r of this.leaderReads) {
      const ok = r.mode === 'lease' ? (this.bugs.leaseWithoutLease || this.leaseValid()) : confirmed >= r.round;
      if (ok) {
        if (r.from === 0) this.readsReady.push({ id: r.id, index: this.commitIndex });
        else this.messages.push(this.readIndexReply(r.from, r.id, this.commitIndex, true));
      } else if (r.mode === 'lease') {
        this.failLeaderRead(r);
      } else {
        this.leaderReads[kept++] = r;
      }
    }
    this.leaderReads.length = kept;
  }

  private failLeaderRead(r: LeaderRead): void {
    if (r.from === 0) this.readsFailed.push(r.id);
    else this.messages.push(this.readIndexReply(r.from, r.id, 0, false));
  }

  private expireReads(): void {
    if (this.leaderReads.length > 0) {
      this.leaderReads = this.leaderReads.filter((r) => {
        if (this.now < r.deadlineTick) return true;
        this.failLeaderRead(r);
        return false;
      });
    }
    for (const [key, r] of this.remoteReads) {
      if (this.now >= r.deadlineTick) {
        this.remoteReads.delete(key);
        this.readsFailed.push(r.id);
      }
    }
  }

  /** Send a confirmation round to every follower. */
  private sendRound(): void {
    this.round++;
    this.roundTicks[this.round % ROUND_TICKS_RING] = this.now;
    this.roundWanted = false;
    const readId = this.round * 2 + 1;
    for (const to of this.others) {
      this.messages.push({ type: MsgType.ReadIndex, from: this.cfg.id, to, readId });
    }
  }

  // ---------------------------------------------------------------- leader: replication

  private setCommit(index: number): void {
    assert.ok(index > this.commitIndex && index <= this.lastIndex(), `commit ${index} out of range`);
    this.commitIndex = index;
    this.commitDirty = true;
    this.maybeRejoined();
  }

  /**
   * Advance the commit index to what a majority holds with this leader among them (its own copy
   * durable), if that entry is of this term. Returns whether it moved. Followers alone may be a
   * majority, but the leader's copy is what a rejoining member relies on (maybeRejoined): without
   * it, an entry held by two followers, one since wiped, could be lost with a leader that crashed
   * before writing it, while the third applied it.
   */
  private maybeCommit(): boolean {
    this.scratch[0] = this.durableIndex;
    let i = 1;
    for (const pr of this.progress.values()) this.scratch[i++] = pr.match;
    const counted = this.kernels.quorumIndex(this.scratch, i, this.quorum);
    const index = this.bugs.commitWithoutOwnCopy ? counted : Math.min(this.durableIndex, counted);
    if (index <= this.commitIndex) return false;
    // Figure 8: an entry of an older term may sit on a majority and still be overwritten, so only
    // an entry of this term is committed by counting; the older ones before it follow.
    if (this.termAt(index) !== this.term && !this.bugs.commitOldTerm) return false;
    this.setCommit(index);
    this.serveLeaderReads();
    return true;
  }

  private broadcastHeartbeat(): void {
    for (const [to, pr] of this.progress) {
      // Below snapIndex the leader has no term to send: check the follower at the snapshot's end.
      const prev = Math.max(pr.match, this.snapIndex);
      this.messages.push(this.appendEntries(to, pr, prev, prev));
      if (pr.state === ReplicaState.Probe) pr.probeSent = false;
    }
    this.sendRound();
  }

  /** Cut pending commands into entries while fewer than `pipeline` entries are uncommitted. */
  private cutBatches(): void {
    while (this.batcher.count > 0 && this.lastIndex() - this.commitIndex < this.cfg.pipeline) {
      this.append({ index: this.lastIndex() + 1, term: this.term, value: this.batcher.cut(this.cfg.batchMax, this.cfg.batchBytesMax) });
    }
  }

  /** The last index of an AppendEntries starting at `from`: at least one entry, at most batchBytesMax bytes. */
  private chunkEnd(from: number): number {
    const last = this.lastIndex();
    let bytes = this.log[from - this.snapIndex - 1].value.length;
    let end = from;
    while (end < last) {
      const size = this.log[end - this.snapIndex].value.length;
      if (bytes + size > this.cfg.batchBytesMax) break;
      bytes += size;
      end++;
    }
    return end;
  }

  private appendEntries(to: number, pr: Progress, prevIndex: number, end: number): AppendEntries {
    // The follower takes the commit index only up to the message's last index (a heartbeat's is the
    // match): that is all it learns from it. The transport delivers in order, so it never unlearns.
    pr.commitSent = Math.max(pr.commitSent, Math.min(this.commitIndex, end));
    return {
      type: MsgType.AppendEntries, from: this.cfg.id, to, term: this.term,
      prevIndex, prevTerm: this.termAt(prevIndex), commitIndex: this.commitIndex,
      entries: end > prevIndex ? this.log.slice(prevIndex - this.snapIndex, end - this.snapIndex) : [],
    };
  }

  /** Send what each follower lacks, as far as its state and pipeline allow; announce a new commit index. */
  private sendAppends(): void {
    const last = this.lastIndex();
    for (const [to, pr] of this.progress) {
      if (pr.state !== ReplicaState.Snapshot && pr.next <= this.snapIndex) pr.becomeSnapshot();
      if (pr.state === ReplicaState.Snapshot) {
        this.maybeOffer(to, pr);
        continue;
      }
      if (pr.state === ReplicaState.Probe) {
        if (pr.probeSent) continue;
        const end = pr.probeWithEntries && pr.next <= last ? this.chunkEnd(pr.next) : pr.next - 1;
        this.messages.push(this.appendEntries(to, pr, pr.next - 1, end));
        pr.probeSent = true;
        continue;
      }
      while (!pr.full && pr.next <= last) {
        if (pr.inflight === 0) pr.progressTick = this.now;
        const end = this.chunkEnd(pr.next);
        this.messages.push(this.appendEntries(to, pr, pr.next - 1, end));
        pr.addInflight(end);
        pr.next = end + 1;
      }
      if (pr.commitSent < Math.min(this.commitIndex, pr.next - 1)) {
        // Announce the commit index right after everything sent so far (as etcd-io/raft does): a
        // follower applies committed entries as soon as it has them, not one batch late. The
        // transport delivers in order; after a reordering this is rejected and the follower probed.
        this.messages.push(this.appendEntries(to, pr, pr.next - 1, pr.next - 1));
      }
    }
  }

  // ---------------------------------------------------------------- snapshots

  compact(prefix: number, bytes: Uint8Array): void {
    assert.ok(Number.isSafeInteger(prefix) && prefix <= this.appliedIndex + 1,
      `compact at ${prefix} beyond the applied prefix ${this.appliedIndex + 1}`);
    assert.ok(bytes.length <= SNAPSHOT_BYTES_MAX, `a snapshot of ${bytes.length} bytes exceeds SNAPSHOT_BYTES_MAX`);
    if (prefix <= this.snapIndex + 1) return; // not newer than the snapshot held
    const index = prefix - 1;
    this.setSnapshot({ prefix, ballot: this.termAt(index), bytes }, false);
  }

  /** Make `snap` the snapshot: trim the log below its prefix and hand it to the next Ready. */
  private setSnapshot(snap: Snapshot, install: boolean): void {
    const index = snap.prefix - 1;
    assert.ok(index > this.snapIndex && index <= this.lastIndex(), `snapshot at ${index} outside ${this.snapIndex}..${this.lastIndex()}`);
    this.log = this.log.slice(index - this.snapIndex);
    this.recs = this.recs.slice(index - this.snapIndex);
    this.snapIndex = index;
    this.snapTerm = snap.ballot;
    this.served.replace(snap, this.now);
    this.unstableFrom = Math.max(this.unstableFrom, index + 1);
    this.snapshotOut = snap;
    this.installOut = install;
  }

  /** Leader: offer the snapshot to a follower that needs trimmed entries, at most once per
   *  electionTicksMin (a receiver abandons a stalled transfer after as long), and not while it pulls
   *  one. An empty AppendEntries goes first so that the follower knows its leader, which it
   *  requires of an offer. */
  private maybeOffer(to: number, pr: Progress): void {
    if (this.served.latest === null || this.now - pr.offerTick < this.cfg.electionTicksMin || this.now - pr.pullTick < this.cfg.electionTicksMin) return;
    const snap = this.served.offer(this.now)!;
    pr.offerTick = this.now;
    this.messages.push(this.appendEntries(to, pr, this.snapIndex, this.snapIndex));
    this.messages.push(this.snapshotChunk(to, snap, 0));
  }

  private snapshotChunk(to: number, snap: Snapshot, offset: number): SnapshotChunk {
    const end = Math.min(snap.bytes.length, offset + this.cfg.snapshotChunkBytes);
    return {
      type: MsgType.SnapshotChunk, from: this.cfg.id, to, ballot: snap.ballot, prefix: snap.prefix, offset,
      total: snap.bytes.length, values: [snap.bytes.subarray(offset, end)],
    };
  }

  /** Any node answers: the chunk asked for if it serves that snapshot (the latest, or one the peer
   *  is still pulling), otherwise an offer of the latest. */
  private handleSnapshotRequest(m: SnapshotRequest): void {
    if (!Number.isSafeInteger(m.offset) || m.offset < 0) return; // bad request: drop
    const pr = this.progress.get(m.from);
    if (pr !== undefined) pr.pullTick = this.now;
    const snap = this.served.pull(m.prefix, this.now);
    if (snap === null) {
      const latest = this.served.offer(this.now);
      if (latest !== null) this.messages.push(this.snapshotChunk(m.from, latest, 0));
      return;
    }
    if (m.offset >= snap.bytes.length) return; // bad request: drop
    this.messages.push(this.snapshotChunk(m.from, snap, m.offset));
  }

  /** Take an offer this node needs, or the next chunk of the running transfer; drop anything else. */
  private handleSnapshotChunk(m: SnapshotChunk): void {
    if (this.state === State.Leader || m.values.length !== 1) return;
    const chunk = m.values[0];
    const total = m.total;
    if (!Number.isSafeInteger(m.prefix) || m.prefix < 2 || !Number.isSafeInteger(m.ballot) || m.ballot < 0 || m.ballot > this.term ||
      !Number.isSafeInteger(total) || total < 0 || total > SNAPSHOT_BYTES_MAX || !Number.isSafeInteger(m.offset) || m.offset < 0 ||
      chunk.length > SNAPSHOT_CHUNK_BYTES_MAX || m.offset + chunk.length > total || (chunk.length === 0 && total > 0)) {
      return;
    }
    let t = this.transfer;
    if (m.offset === 0 && (t === null || m.prefix > t.prefix)) {
      // An offer. Only the leader of this term may make one (see the top of the file), and only a
      // node that lacks committed entries below its prefix needs it.
      if (this.state !== State.Follower || m.from !== this.leader || m.prefix - 1 <= this.commitIndex) return;
      t = { from: m.from, prefix: m.prefix, ballot: m.ballot, bytes: new Uint8Array(total), received: 0, idleTicks: 0 };
      this.transfer = t;
    }
    if (t === null || m.from !== t.from || m.prefix !== t.prefix || m.ballot !== t.ballot || total !== t.bytes.length || m.offset !== t.received) return;
    t.bytes.set(chunk, t.received);
    t.received += chunk.length;
    t.idleTicks = 0;
    if (t.received < total) {
      this.requestChunk(t);
      return;
    }
    this.transfer = null;
    this.install(t);
  }

  private requestChunk(t: Transfer): void {
    this.messages.push({ type: MsgType.SnapshotRequest, from: this.cfg.id, to: t.from, prefix: t.prefix, offset: t.received });
  }

  /** Re-send the request of a stalled transfer; abandon it after electionTicksMin without a chunk. */
  private tickTransfer(): void {
    const t = this.transfer;
    if (t === null) return;
    t.idleTicks++;
    if (t.idleTicks >= this.cfg.electionTicksMin) this.transfer = null;
    else if (t.idleTicks % Math.max(2, this.cfg.heartbeatTicks) === 0) this.requestChunk(t);
  }

  /** Paper section 7: keep the entries after the snapshot if the log holds its last entry with its
   *  term, otherwise discard the whole log; the state machine restarts from the snapshot. */
  private install(t: Transfer): void {
    const index = t.prefix - 1;
    if (index <= this.commitIndex) return; // caught up meanwhile: nothing to install
    if (index > this.lastIndex() || this.termAt(index) !== t.ballot) {
      // Discard: entries up to `index` are replaced by the snapshot; storage drops the rest.
      this.log = [];
      this.recs = [];
      this.truncateFrom = this.truncateFrom === 0 ? t.prefix : Math.min(this.truncateFrom, t.prefix);
      this.noteTruncated(t.prefix);
      this.durableIndex = Math.min(this.durableIndex, this.snapIndex);
      this.snapIndex = index;
      this.snapTerm = t.ballot;
      this.unstableFrom = index + 1;
      this.snapshotOut = { prefix: t.prefix, ballot: t.ballot, bytes: t.bytes };
      this.served.replace(this.snapshotOut, this.now);
      this.installOut = true;
    } else {
      this.setSnapshot({ prefix: t.prefix, ballot: t.ballot, bytes: t.bytes }, true);
    }
    this.durableIndex = Math.min(this.durableIndex, this.lastIndex());
    this.commitIndex = index;
    this.commitDirty = true;
    this.appliedIndex = index;
    // Tell the leader where this log stands, once the snapshot is durable: it matches through `index`.
    // Not in step 1 of rejoining, which acknowledges nothing; step 2 answers the next heartbeat.
    const to = this.state === State.Follower && this.leader !== 0 ? this.leader : t.from;
    if (this.rejoin !== Rejoin.Asking) this.messagesAfterPersist.push(this.appendResult(to, true, index, 0));
    this.maybeRejoined();
  }

  // ---------------------------------------------------------------- rejoining without voting

  /** Step 1: ask every other member what it holds. */
  private startRejoin(): void {
    this.rejoin = Rejoin.Asking;
    this.catchUpNonce = this.rng.int(1, 2 ** 31);
    this.sendCatchUpRequests();
    if (this.newClusterEmpty !== null && this.quorum === 1) this.newClusterFound();
    else if (this.others.length === 0) this.beginCatchingUp();
  }

  /** Ask the members that have not answered yet. */
  private sendCatchUpRequests(): void {
    this.catchUpElapsed = 0;
    for (const to of this.others) {
      if (!this.catchUpAnswered.has(to)) this.messages.push({ type: MsgType.CatchUpRequest, from: this.cfg.id, to, nonce: this.catchUpNonce });
    }
  }

  /** Asking: re-send the requests every retry interval (requests and replies may be lost). */
  private tickRejoin(): void {
    if (this.rejoin !== Rejoin.Asking) return;
    this.catchUpElapsed++;
    if (this.catchUpElapsed >= Math.max(2, this.cfg.heartbeatTicks)) this.sendCatchUpRequests();
  }

  /** Every node answers, in every state and role, with what is true of it now. A leader also learns
   *  that the asker may have lost its log: its match for it may be above what it holds, and
   *  rejections below the match would be taken as stale forever. It forgets the match (which only
   *  makes commit counting more cautious) and probes again from its last index. */
  private handleCatchUpRequest(m: CatchUpRequest): void {
    this.messages.push({
      type: MsgType.CatchUpReply, from: this.cfg.id, to: m.from,
      ballot: this.term, lastPosition: this.lastIndex(), chosenPrefix: this.commitIndex + 1, nonce: m.nonce,
    });
    const pr = this.state === State.Leader ? this.progress.get(m.from) : undefined;
    if (pr !== undefined) {
      pr.match = 0;
      pr.mayHaveLostLog = true;
      pr.becomeProbe(this.lastIndex() + 1, false);
    }
  }

  /** Asking: count an answer; a malformed one, or one that arrives in any other step, counts for
   *  nothing. Only answers to this life's requests count (the nonce tells a delayed answer to an
   *  earlier life apart); each is true of its sender when sent, and a sender's term and committed
   *  entries never go down. */
  private handleCatchUpReply(m: CatchUpReply): void {
    if (this.rejoin !== Rejoin.Asking || m.nonce !== this.catchUpNonce) return;
    if (!isCount(m.ballot) || m.ballot > TERM_MAX || !isCount(m.lastPosition) || !isCount(m.chosenPrefix)) return;
    this.catchUpAnswered.add(m.from);
    this.catchUpTermMax = Math.max(this.catchUpTermMax, m.ballot);
    this.catchUpLastMax = Math.max(this.catchUpLastMax, m.lastPosition);
    if (this.newClusterEmpty !== null) {
      // A member that has seen a term or holds an entry: the cluster runs, and our new log may be a wiped one.
      if (answersNothing(m)) this.newClusterEmpty.add(m.from);
      else this.newClusterEmpty = null;
      if (this.newClusterEmpty !== null && this.newClusterEmpty.size + 1 >= this.quorum) return this.newClusterFound();
    }
    if (this.catchUpAnswered.size === this.others.length) this.beginCatchingUp();
  }

  /** A majority, this node with them, holds nothing: the cluster is new, nothing was voted or acknowledged that we forgot, and we vote at once. */
  private newClusterFound(): void {
    assert.equal(this.rejoin, Rejoin.Asking, 'only an asking node finds a new cluster');
    this.newClusterEmpty = null;
    this.rejoined();
  }

  /**
   * Step 2. A vote this node granted and forgot was for a candidate that had durably raised its own
   * term to that one and voted for itself before asking, and that candidate answered too: so every
   * term this node may have voted in is at most catchUpTermMax. It moves to that term (if not there
   * already) and votes for itself in it, so it can never vote twice in a term it may have voted in;
   * in every later term it had granted nothing.
   */
  private beginCatchingUp(): void {
    assert.equal(this.rejoin, Rejoin.Asking, 'only an asking node begins to catch up');
    this.rejoin = Rejoin.CatchingUp;
    if (this.catchUpTermMax > this.term) this.becomeFollower(this.catchUpTermMax, 0);
    if (this.vote === 0) {
      this.vote = this.cfg.id;
      this.hardStateDirty = true;
    }
    this.maybeRejoined();
  }

  /**
   * Step 3. An entry this node acknowledged and forgot was committed, if at all, by a leader that
   * counted it only with its own copy durable (maybeCommit), and appended it before we lost our
   * state: that leader's answer, sent after, shows a last index at or above it (a committed entry is
   * never truncated). Not so a follower's: it may answer, then append a delayed AppendEntries. So
   * once commitIndex reaches catchUpLastMax, this node holds every entry it may have counted for, and
   * its up-to-date check can no longer favour a candidate that lacks one.
   */
  private maybeRejoined(): void {
    if (this.rejoin !== Rejoin.CatchingUp || this.commitIndex < this.catchUpLastMax) return;
    this.rejoined();
  }

  /** Rejoining is done (step 3, or a new cluster found): this node votes from now on. */
  private rejoined(): void {
    this.rejoin = Rejoin.Done;
    this.rejoinedOut = true;
    this.hardStateDirty = true; // the Ready that says `rejoined` carries the hard state too
    this.catchUpAnswered.clear();
    this.resetElectionTimer();
  }

  /**
   * Whether this node may grant a vote (or pre-vote) at all. While rejoining it grants none: every
   * majority that elects a leader then excludes it, and so still intersects the majority that
   * committed any entry it forgot in a member that holds the entry; the up-to-date check there keeps
   * a candidate lacking it from winning.
   */
  private mayVote(): boolean {
    return this.rejoin === Rejoin.Done;
  }

  // ---------------------------------------------------------------- output

  /** Work that waits for the next Ready: new entries, AppendEntries, a confirmation round, reads. */
  private flush(): void {
    if (this.state === State.Leader) {
      this.cutBatches();
      this.sendAppends();
      if (this.roundWanted) this.sendRound();
      this.serveLeaderReads();
    }
    if (this.readsWaiting.length > 0) {
      let kept = 0;
      for (const r of this.readsWaiting) {
        if (r.index <= this.commitIndex) this.readsReady.push(r);
        else this.readsWaiting[kept++] = r;
      }
      this.readsWaiting.length = kept;
    }
  }

  hasReady(): boolean {
    if (this.outstanding.length >= this.cfg.readysOutstandingMax) return false;
    this.flush();
    return this.snapshotOut !== null || this.hardStateDirty || this.truncateFrom !== 0 || this.unstableFrom <= this.lastIndex() ||
      this.commitDirty || this.messages.length > 0 || this.messagesAfterPersist.length > 0 ||
      this.appliedIndex < this.commitIndex || this.readsReady.length > 0 || this.readsFailed.length > 0 || this.rejoinedOut;
  }

  ready(): Ready {
    assert.ok(this.outstanding.length < this.cfg.readysOutstandingMax, 'ready() called with readysOutstandingMax Readys not yet advanced');
    this.flush();
    const hardState: HardState | null = this.hardStateDirty ? { ballot: this.term, vote: this.vote } : null;
    // At most APPLY_MAX entries per Ready: a restart hands the whole log since the snapshot to the
    // state machine, and in one Ready that held the event loop 131 ms at 100,000 entries. A read
    // is answered in the Ready that applies through its index, not before.
    const applyTo = Math.min(this.commitIndex, this.appliedIndex + APPLY_MAX);
    let reads = this.readsReady;
    if (applyTo < this.commitIndex) {
      reads = this.readsReady.filter((r) => r.index <= applyTo);
      this.readsReady = this.readsReady.filter((r) => r.index > applyTo);
    } else {
      this.readsReady = [];
    }
    const rd: Ready = {
      snapshot: this.snapshotOut,
      install: this.installOut,
      hardState,
      truncateFrom: this.truncateFrom,
      records: this.unstableFrom <= this.lastIndex() ? this.recs.slice(this.unstableFrom - this.snapIndex - 1) : [],
      chosenPrefix: this.commitDirty ? this.commitIndex + 1 : 0,
      messages: this.messages,
      messagesAfterPersist: this.messagesAfterPersist,
      apply: applyTo > this.appliedIndex ? this.recs.slice(this.appliedIndex - this.snapIndex, applyTo - this.snapIndex) : [],
      reads,
      readsFailed: this.readsFailed,
      rejoined: this.rejoinedOut,
    };
    this.rejoinedOut = false;
    this.snapshotOut = null;
    this.installOut = false;
    this.hardStateDirty = false;
    this.truncateFrom = 0;
    this.unstableFrom = this.lastIndex() + 1;
    this.commitDirty = false;
    this.appliedIndex = applyTo;
    this.messages = [];
    this.messagesAfterPersist = [];
    this.readsFailed = [];
    this.outstanding.push({ rd, truncatedSince: Infinity });
    return rd;
  }

  advance(rd: Ready): void {
    assert.ok(this.outstanding.length > 0 && this.outstanding[0].rd === rd, 'advance() must acknowledge the oldest outstanding Ready');
    const o = this.outstanding.shift()!;
    if (rd.records.length > 0) {
      // Records are durable now (with every earlier Ready's), except any that a truncation since ready() replaced.
      const last = rd.records[rd.records.length - 1].position;
      const upTo = Math.min(last, o.truncatedSince - 1, this.lastIndex());
      if (upTo > this.durableIndex) this.durableIndex = upTo;
    }
    if (this.state === State.Leader) this.maybeCommit();
  }

  // ---------------------------------------------------------------- messages

  private requestVote(to: number, term: number, preVote: boolean): RequestVote {
    return { type: MsgType.RequestVote, from: this.cfg.id, to, term, lastIndex: this.lastIndex(), lastTerm: this.lastTerm(), preVote };
  }

  private voteMsg(to: number, term: number, granted: boolean, preVote: boolean): Vote {
    return { type: MsgType.Vote, from: this.cfg.id, to, term, granted, preVote };
  }

  private appendResult(to: number, success: boolean, index: number, hintTerm: number): AppendResult {
    return { type: MsgType.AppendResult, from: this.cfg.id, to, term: this.term, success, index, hintTerm };
  }

  private readIndexReply(to: number, readId: number, index: number, ok: boolean): ReadIndexReply {
    return { type: MsgType.ReadIndexReply, from: this.cfg.id, to, readId, index, ok };
  }

  // ---------------------------------------------------------------- introspection

  status(): Status {
    return {
      id: this.cfg.id,
      protocol: 'raft',
      role: this.state === State.Leader ? 'leader' : this.state === State.Follower ? 'follower' : 'candidate',
      leader: this.leader,
      ballot: this.term,
      chosenPrefix: this.commitIndex + 1,
      appliedPrefix: this.appliedIndex + 1,
      holes: 0,
      inFlight: this.lastIndex() - this.commitIndex,
      pending: this.batcher.count,
      snapshotPrefix: this.snapIndex + 1,
      rejoining: this.rejoin !== Rejoin.Done,
    };
  }

  invariants(): void {
    const last = this.lastIndex();
    assert.ok(this.appliedIndex <= this.commitIndex, `applied ${this.appliedIndex} > commitIndex ${this.commitIndex}`);
    assert.ok(this.commitIndex <= last, `commitIndex ${this.commitIndex} > last index ${last}`);
    assert.ok(this.durableIndex <= last, `durableIndex ${this.durableIndex} > last index ${last}`);
    assert.ok(this.unstableFrom >= 1 && this.unstableFrom <= last + 1, `unstableFrom ${this.unstableFrom} out of 1..${last + 1}`);
    assert.ok(this.lastTerm() <= this.term, `last entry's term ${this.lastTerm()} > term ${this.term}`);
    assert.equal(this.recs.length, this.log.length, 'records and entries differ in length');
    if (this.log.length > 0) {
      assert.equal(this.log[0].index, this.snapIndex + 1, 'the log does not start after the snapshot');
      assert.equal(this.log[this.log.length - 1].index, last, 'the log has a gap');
      assert.ok(this.log[0].term >= this.snapTerm, 'an entry is older than the snapshot');
    }
    assert.ok(this.snapIndex <= this.appliedIndex, `snapshot at ${this.snapIndex} beyond applied ${this.appliedIndex}`);
    assert.ok(this.unstableFrom > this.snapIndex, `unstableFrom ${this.unstableFrom} inside the snapshot at ${this.snapIndex}`);
    assert.ok(this.snapTerm <= this.term, `snapshot term ${this.snapTerm} > term ${this.term}`);
    const snap = this.served.latest;
    if (snap === null) assert.equal(this.snapIndex, 0, 'a trimmed log without a snapshot');
    else assert.ok(snap.prefix === this.snapIndex + 1 && snap.ballot === this.snapTerm, 'the snapshot disagrees with the log offset');
    const t = this.transfer;
    if (t !== null) {
      assert.ok(t.received <= t.bytes.length && t.bytes.length <= SNAPSHOT_BYTES_MAX, 'transfer out of bounds');
      assert.ok(t.idleTicks < this.cfg.electionTicksMin, 'a stalled transfer was kept');
      assert.notEqual(this.state, State.Leader, 'a leader pulls no snapshot');
    }
    assert.ok(this.vote === 0 || this.cfg.peers.includes(this.vote), `vote for non-member ${this.vote}`);
    assert.ok(this.catchUpAnswered.size <= this.others.length && [...this.catchUpAnswered].every((p) => this.others.includes(p)),
      'catch-up answers from non-members');
    assert.ok(this.newClusterEmpty === null || (this.rejoin === Rejoin.Asking && [...this.newClusterEmpty].every((p) => this.catchUpAnswered.has(p))),
      'checking for a new cluster outside step 1, or counting a member that did not answer');
    if (this.rejoin !== Rejoin.Done) {
      assert.equal(this.state, State.Follower, 'a rejoining node is a follower');
      assert.ok(this.rejoin !== Rejoin.Asking || this.catchUpAnswered.size < this.others.length, 'asking with every answer in');
    }
    if (this.rejoin === Rejoin.CatchingUp) {
      assert.ok(this.term >= this.catchUpTermMax, `term ${this.term} below the reported ${this.catchUpTermMax}`);
      assert.ok(this.term > this.catchUpTermMax || this.vote !== 0, 'no vote recorded in the highest reported term');
      assert.ok(this.commitIndex < this.catchUpLastMax, 'caught up but still not voting');
    }
    if (this.state === State.Leader) {
      assert.equal(this.leader, this.cfg.id, 'a leader must know itself as leader');
      assert.equal(this.vote, this.cfg.id, 'a leader voted for itself');
      for (const [p, pr] of this.progress) {
        assert.ok(pr.match < pr.next && pr.next <= last + 1, `follower ${p}: match ${pr.match}, next ${pr.next}, last ${last}`);
        assert.ok(pr.inflight <= this.cfg.pipeline, `follower ${p}: ${pr.inflight} in flight`);
      }
    } else {
      assert.equal(this.progress.size, 0, 'only a leader tracks followers');
      assert.equal(this.leaderReads.length, 0, 'only a leader holds leader reads');
    }
    assert.ok(this.batcher.count <= this.cfg.pendingMax, 'pending commands beyond pendingMax');
    assert.ok(this.backoff >= 0 && this.backoff <= BACKOFF_MAX, `backoff ${this.backoff} out of bounds`);
    assert.ok(this.electionTimeout < this.cfg.electionTicksMax + this.cfg.electionTicksMin * BACKOFF_MAX, 'election timeout bounded');
  }
}

/** A non-negative safe integer, as every number in a message must be. */
const isCount = (n: number): boolean => Number.isSafeInteger(n) && n >= 0;
