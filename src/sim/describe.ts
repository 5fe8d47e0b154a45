// Readable one-line descriptions of messages, node status and log values, shared by the
// scenario runner and the simulator so both protocols print alike.

import { MsgType, type Message } from '../protocol/messages.js';
import type { ProtocolName, Status } from '../protocol/types.js';
import type { Kernels } from '../kernels/types.js';

const TYPE_NAMES: Record<number, string> = {
  [MsgType.Prepare]: 'Prepare', [MsgType.Promise]: 'Promise', [MsgType.Accept]: 'Accept',
  [MsgType.Accepted]: 'Accepted', [MsgType.Nack]: 'Nack', [MsgType.Commit]: 'Commit',
  [MsgType.Heartbeat]: 'Heartbeat', [MsgType.HeartbeatAck]: 'HeartbeatAck',
  [MsgType.LearnRequest]: 'LearnRequest', [MsgType.LearnReply]: 'LearnReply', [MsgType.Propose]: 'Propose',
  [MsgType.ReadIndex]: 'ReadIndex', [MsgType.ReadIndexReply]: 'ReadIndexReply',
  [MsgType.SnapshotRequest]: 'SnapshotRequest', [MsgType.SnapshotChunk]: 'SnapshotChunk',
  [MsgType.CatchUpRequest]: 'CatchUpRequest', [MsgType.CatchUpReply]: 'CatchUpReply',
  [MsgType.RequestVote]: 'RequestVote', [MsgType.Vote]: 'Vote', [MsgType.AppendEntries]: 'AppendEntries',
  [MsgType.AppendResult]: 'AppendResult', [MsgType.PrePrepare]: 'PrePrepare', [MsgType.PrePromise]: 'PrePromise',
};

/** A ballot as round.node (1.2 is round 1 of node 2); Raft terms print as plain numbers. */
export const ballotText = (b: number): string => (b === 0 ? '0' : `${Math.floor(b / 65536)}.${b % 65536}`);

const utf8 = new TextDecoder();

/** An encoded batch as its commands joined by spaces, "noop" for the empty batch. */
export const valueText = (k: Kernels, value: Uint8Array): string => {
  const cmds = k.decodeBatch(value);
  if (!Array.isArray(cmds)) return `<bad batch: ${cmds.error}>`;
  if (cmds.length === 0) return 'noop';
  return cmds.map((c) => utf8.decode(c)).join(' ');
};

/**
 * One line: "1->2 Accept ballot=1.1 chosenPrefix=1 entries=[1@1.1:x]". A message both protocols
 * send (CatchUpReply, say) carries Raft's term in its `ballot`: given the protocol, it prints as
 * "term=1" there, not as a ballot.
 */
export const describeMessage = (k: Kernels, m: Message, protocol?: ProtocolName): string => {
  const isRaft = protocol === 'raft' || (m.type >= MsgType.RequestVote && m.type <= MsgType.AppendResult);
  const parts = [`${m.from}->${m.to} ${TYPE_NAMES[m.type] ?? `type${m.type}`}`];
  for (const [key, v] of Object.entries(m)) {
    if (key === 'from' || key === 'to' || key === 'type') continue;
    if (key === 'entries') {
      const es = v as { slot?: number; index?: number; ballot?: number; term?: number; value: Uint8Array }[];
      parts.push(`entries=[${es.map((e) => `${e.slot ?? e.index}@${e.ballot !== undefined ? ballotText(e.ballot) : e.term}:${valueText(k, e.value)}`).join(', ')}]`);
    } else if (key === 'values' && m.type === MsgType.SnapshotChunk) {
      parts.push(`bytes=${(v as Uint8Array[]).map((c) => c.length).join(',')}`);
    } else if (key === 'values') {
      parts.push(`values=[${(v as Uint8Array[]).map((c) => utf8.decode(c)).join(' ')}]`);
    } else if (key === 'ballot' && !isRaft && m.type !== MsgType.SnapshotChunk) parts.push(`ballot=${ballotText(v as number)}`);
    else if (key === 'ballot' && protocol === 'raft') parts.push(`term=${String(v)}`);
    else parts.push(`${key}=${String(v)}`);
  }
  return parts.join(' ');
};

/** One line per node, the same for every protocol. */
export const describeStatus = (s: Status): string => {
  const ballot = s.protocol === 'multipaxos' ? `ballot=${ballotText(s.ballot)}` : `term=${s.ballot}`;
  return `${s.id}: ${s.role} leader=${s.leader} ${ballot} chosen<${s.chosenPrefix} applied<${s.appliedPrefix} ` +
    `holes=${s.holes} inflight=${s.inFlight} pending=${s.pending}`;
};
