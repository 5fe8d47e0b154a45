// Peer messages of both protocols, as plain objects. The protocols produce and consume these;
// the codec (src/kernels) turns them into frames and back. This file is the contract between
// the protocol cores, the codec, the transport and the simulator.
//
// Every number is a non-negative safe integer (<= 2^53 - 1). Ballots are `round * 65536 + nodeId`
// (see src/kernels/ballot). Node ids are 1..65535; 0 means "none".
//
// On the wire every frame has the same fixed header and an optional list of entries
// (position u64, ballot-or-term u64, value bytes); see src/kernels/codec for the layout.
// Each message type below names which header field carries which of its numbers.

export const enum MsgType {
  // Multi-Paxos. `ballot` is the sender's ballot (for Promise/Accepted/Nack: the ballot
  // being answered, or for Nack the higher ballot the acceptor has promised).
  /** Phase 1a: the sender asks for a promise at `ballot` for every slot >= fromSlot. */
  Prepare = 1,
  /** Phase 1b: the acceptor promised `ballot`; `entries` are its accepted slots >= fromSlot. */
  Promise = 2,
  /** Phase 2a: accept `entries` (slots, each with value) at `ballot`; carries the leader's chosen prefix. */
  Accept = 3,
  /** Phase 2b: the acceptor accepted slots [firstSlot, firstSlot+count) at `ballot`. */
  Accepted = 4,
  /** Refusal: the acceptor has promised `ballot`, which is higher than the one it was asked for. */
  Nack = 5,
  /** Slots [firstSlot, firstSlot+count) were chosen with the values accepted at `ballot`. */
  Commit = 6,
  /** Leader liveness, its chosen prefix, and a sequence number echoed by HeartbeatAck. */
  Heartbeat = 7,
  /** Reply to Heartbeat: `seq` echoed; `chosenPrefix` is the replier's own. */
  HeartbeatAck = 8,
  /** A learner asks for chosen values of slots [firstSlot, firstSlot+count). */
  LearnRequest = 9,
  /** Chosen values; each entry's ballot is the ballot the sender accepted it at (informational). */
  LearnReply = 10,

  // Shared by both protocols.
  /** A follower forwards client commands (entry values) to the leader it knows. */
  Propose = 11,
  /** A follower asks the leader for a read index for read `readId`. Raft also sends it from the
   *  leader to its followers as a leadership-confirmation round (odd readIds; followers' requests
   *  use even ones), which a follower of that leader echoes in a ReadIndexReply. */
  ReadIndex = 12,
  /** The leader's answer: `index` is the position the reader must apply through; ok=false if not leader. */
  ReadIndexReply = 13,
  /** Asks the receiver for bytes from `offset` of its snapshot at `prefix` (see SnapshotChunk). */
  SnapshotRequest = 14,
  /** Bytes [offset, offset + values[0].length) of the sender's snapshot at `prefix`, `total` bytes in
   *  all; `ballot` is the snapshot's (Raft: the term of entry prefix - 1; Multi-Paxos: 0). Sent in
   *  answer to a SnapshotRequest, or unasked at offset 0 as an offer to a peer that needs positions
   *  the sender has trimmed. The receiver pulls the rest one chunk at a time, so it sets the pace and
   *  a lost chunk costs one retried request; the sender keeps no per-peer transfer state. */
  SnapshotChunk = 15,

  // Raft. `term` travels in the header's ballot field.
  /** Candidate (or pre-candidate when preVote) asks for a vote. */
  RequestVote = 16,
  /** Vote granted or refused. */
  Vote = 17,
  /** Leader replicates entries after (prevIndex, prevTerm); carries commitIndex. */
  AppendEntries = 18,
  /** Follower's answer: success with matchIndex, or a rejection with a backtracking hint. */
  AppendResult = 19,

  // Shared by both protocols: rejoining without voting (see Restored.rejoining).
  /** A rejoining node asks every other member what it holds; `nonce` is drawn once per life. */
  CatchUpRequest = 20,
  /** The answer, whatever the replier's role: `ballot` its promised ballot (Raft: its term),
   *  `lastPosition` its highest accepted slot (Raft: its last log index), `chosenPrefix` its chosen
   *  prefix (Raft: commitIndex + 1), `nonce` the request's: an answer to an earlier life of the
   *  asker (delayed in the network) is told apart and ignored, since it may predate what the asker
   *  forgot. */
  CatchUpReply = 21,

  // Multi-Paxos's pre-vote, as Raft's: a node whose election timeout fired asks first, changing
  // nothing at either end, so that one cut off (or behind a slow link) does not raise its promise
  // alone and come back Nacking a healthy leader.
  /** Would the receiver take part in an election now (it hears no live leader and is not rejoining)? `ballot` names the round. */
  PrePrepare = 22,
  /** The answer: `granted` if it would; `promised` its promised ballot, so the campaign that follows goes above it. */
  PrePromise = 23,
}

/** An accepted slot as Promise and Accept and LearnReply carry it. */
export interface SlotEntry {
  slot: number;
  ballot: number;
  /** An encoded batch (src/kernels/batch). A no-op is an empty batch. */
  value: Uint8Array;
}

/** A Raft log entry. */
export interface RaftEntry {
  index: number;
  term: number;
  value: Uint8Array;
}

interface Base {
  from: number;
  to: number;
}

export interface Prepare extends Base { type: MsgType.Prepare; ballot: number; fromSlot: number }
export interface Promise extends Base {
  type: MsgType.Promise; ballot: number; fromSlot: number;
  /** The acceptor's chosen prefix: it knows every slot below it is chosen. */
  chosenPrefix: number;
  /**
   * A Promise comes in parts, each within a frame's bound: this one reports every slot accepted
   * from coverFrom through its last entry, or, when it is the last (!more), through the end.
   */
  coverFrom: number;
  more: boolean;
  entries: SlotEntry[];
}
export interface Accept extends Base {
  type: MsgType.Accept; ballot: number;
  /** The leader's chosen prefix (a Commit riding on the Accept). */
  chosenPrefix: number;
  /** Every entry's ballot equals the message ballot. */
  entries: SlotEntry[];
}
export interface Accepted extends Base { type: MsgType.Accepted; ballot: number; firstSlot: number; count: number }
export interface Nack extends Base { type: MsgType.Nack; ballot: number; slot: number }
export interface Commit extends Base { type: MsgType.Commit; ballot: number; firstSlot: number; count: number; chosenPrefix: number }
export interface Heartbeat extends Base { type: MsgType.Heartbeat; ballot: number; chosenPrefix: number; seq: number }
export interface HeartbeatAck extends Base { type: MsgType.HeartbeatAck; ballot: number; chosenPrefix: number; seq: number }
export interface LearnRequest extends Base { type: MsgType.LearnRequest; firstSlot: number; count: number }
export interface LearnReply extends Base { type: MsgType.LearnReply; chosenPrefix: number; entries: SlotEntry[] }

export interface Propose extends Base {
  type: MsgType.Propose;
  /**
   * The reign it is for, as the sender knows it (Multi-Paxos: the leader's ballot; Raft: the
   * term). A leader takes only its own reign's: a duplicate from an earlier reign, or delivered
   * after the leader restarted (its dedup memory gone with it), is dropped.
   */
  ballot: number;
  /**
   * The sending core's instance (different at every start) and the Propose's number in it,
   * increasing: a leader drops a Propose of an instance whose number it saw already (a duplicate,
   * which would choose the same commands twice, or one overtaken, whose requests then time out).
   */
  incarnation: number;
  seq: number;
  values: Uint8Array[];
}
export interface ReadIndex extends Base { type: MsgType.ReadIndex; readId: number }
export interface ReadIndexReply extends Base { type: MsgType.ReadIndexReply; readId: number; index: number; ok: boolean }
export interface SnapshotRequest extends Base { type: MsgType.SnapshotRequest; prefix: number; offset: number }
export interface SnapshotChunk extends Base {
  type: MsgType.SnapshotChunk; ballot: number; prefix: number; offset: number; total: number;
  /** Exactly one value: the chunk's bytes (at most Config.snapshotChunkBytes). Anything else is dropped. */
  values: Uint8Array[];
}

export interface RequestVote extends Base { type: MsgType.RequestVote; term: number; lastIndex: number; lastTerm: number; preVote: boolean }
export interface Vote extends Base { type: MsgType.Vote; term: number; granted: boolean; preVote: boolean }
export interface AppendEntries extends Base {
  type: MsgType.AppendEntries; term: number; prevIndex: number; prevTerm: number; commitIndex: number;
  entries: RaftEntry[];
}
export interface AppendResult extends Base {
  type: MsgType.AppendResult; term: number; success: boolean;
  /** On success: the follower's last index matching the leader. On rejection: the index to retry from. */
  index: number;
  /** On rejection: the term of the conflicting entry (0 if the follower's log is too short). */
  hintTerm: number;
}

export interface CatchUpRequest extends Base { type: MsgType.CatchUpRequest; nonce: number }
export interface CatchUpReply extends Base { type: MsgType.CatchUpReply; ballot: number; lastPosition: number; chosenPrefix: number; nonce: number }

export interface PrePrepare extends Base { type: MsgType.PrePrepare; ballot: number }
export interface PrePromise extends Base { type: MsgType.PrePromise; ballot: number; promised: number; granted: boolean }

export type PaxosMessage = Prepare | Promise | Accept | Accepted | Nack | Commit | Heartbeat | HeartbeatAck |
  LearnRequest | LearnReply | PrePrepare | PrePromise;
export type SharedMessage = Propose | ReadIndex | ReadIndexReply | SnapshotRequest | SnapshotChunk | CatchUpRequest | CatchUpReply;
export type RaftMessage = RequestVote | Vote | AppendEntries | AppendResult;
export type Message = PaxosMessage | SharedMessage | RaftMessage;

/** Per member, its latest instances (oldest first) and the newest Propose number seen from each. */
export type ProposesSeen = Map<number, { incarnation: number; seq: number }[]>;
/**
 * Instances remembered per member. A duplicate delayed across more restarts of its sender than
 * this, within one reign, would be taken again (peer links are TCP, which does not duplicate).
 */
const proposeIncarnationsMax = 8;

/**
 * Whether a leader takes a Propose: not when its sender's instance sent one with this number or a
 * later one already. Notes it in `seen`. Dropping is always safe: those requests time out as
 * unknown, never applied; taking one twice would choose its commands twice.
 */
export function proposeIsNew(seen: ProposesSeen, m: Propose): boolean {
  let list = seen.get(m.from);
  if (list === undefined) seen.set(m.from, (list = []));
  const last = list.find((e) => e.incarnation === m.incarnation);
  if (last !== undefined) {
    if (m.seq <= last.seq) return false;
    last.seq = m.seq;
    return true;
  }
  if (list.length >= proposeIncarnationsMax) list.shift();
  list.push({ incarnation: m.incarnation, seq: m.seq });
  return true;
}
