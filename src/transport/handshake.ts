// The peer handshake: a dialing peer proves it knows the cluster secret before the listener reads
// any of its messages.
//
//   listener -> dialer   challenge: [magic 'PXC1'][listener id u16][nonce 32 bytes]
//   dialer -> listener   proof:     [magic 'PXP1'][dialer id u16][HMAC-SHA256 32 bytes]
//
// The HMAC key is the cluster secret; the HMAC covers a label, the cluster's shape (the protocol
// and every member's id, as each node was started with), the nonce and both ids, so a proof cannot
// be replayed to another listener, another connection or with another claimed id, and two nodes
// started with different member lists or protocols never link (a member list of itself alone
// would be a cluster of its own; Raft and Multi-Paxos messages are not each other's).
// Without a secret the key is empty: the handshake still runs (it checks ids), but anyone can
// pass it, and the node logs a loud warning at start.

import crypto from 'node:crypto';

export const nonceBytes = 32;
const macBytes = 32;
const challengeMagic = 0x31435850; // 'PXC1' little-endian
const proofMagic = 0x31505850; // 'PXP1' little-endian
export const challengeBytes = 4 + 2 + nonceBytes;
export const proofBytes = 4 + 2 + macBytes;

/** A fresh nonce for one inbound connection. */
export const newNonce = (): Buffer => crypto.randomBytes(nonceBytes);

export function encodeChallenge(listenerId: number, nonce: Buffer): Buffer {
  const frame = Buffer.allocUnsafe(challengeBytes);
  frame.writeUInt32LE(challengeMagic, 0);
  frame.writeUInt16LE(listenerId, 4);
  nonce.copy(frame, 6);
  return frame;
}

export function readChallenge(frame: Uint8Array): { listenerId: number; nonce: Buffer } | { error: string } {
  const b = Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength);
  if (b.byteLength !== challengeBytes || b.readUInt32LE(0) !== challengeMagic) {
    return { error: 'the first frame from the listener is not a paxlog challenge' };
  }
  return { listenerId: b.readUInt16LE(4), nonce: Buffer.from(b.subarray(6)) };
}

/** What leases and election timeouts count on being the same on every member. */
export interface ClusterTiming {
  tickMs: number;
  electionTicksMin: number;
  electionTicksMax: number;
  leaseTicks: number;
  leaseDriftTicks: number;
}

/**
 * The cluster's shape for the handshake ('' in transport tests): the protocol, the sorted member
 * ids and the timing. A lease is safe because a leader's lease (its ticks) ends before followers
 * that acked it stop refusing other candidates (their ticks): a leader ticking slower than its
 * followers, or with a longer lease than their election timeout allows, would serve reads after
 * they elected another and acknowledged a newer write. So members with another timing never link.
 */
export const clusterShape = (protocol: string, members: Iterable<number>, t: ClusterTiming): string =>
  `${protocol}:${[...members].sort((a, b) => a - b).join(',')}:` +
  `tick=${t.tickMs}ms,election=${t.electionTicksMin}..${t.electionTicksMax},lease=${t.leaseTicks}-${t.leaseDriftTicks}`;

function mac(secret: string, nonce: Uint8Array, dialerId: number, listenerId: number, shape: string): Buffer {
  const ids = Buffer.allocUnsafe(4);
  ids.writeUInt16LE(dialerId, 0);
  ids.writeUInt16LE(listenerId, 2);
  return crypto.createHmac('sha256', secret).update('paxlog-peer-v2\0').update(shape).update('\0').update(nonce).update(ids).digest();
}

export function newProof(secret: string, nonce: Uint8Array, dialerId: number, listenerId: number, shape = ''): Buffer {
  const frame = Buffer.allocUnsafe(proofBytes);
  frame.writeUInt32LE(proofMagic, 0);
  frame.writeUInt16LE(dialerId, 4);
  mac(secret, nonce, dialerId, listenerId, shape).copy(frame, 6);
  return frame;
}

/** The dialer's id if the proof is good; otherwise why it is refused. */
export function checkProof(
  secret: string, nonce: Uint8Array, listenerId: number, frame: Uint8Array, shape = '',
): { dialerId: number } | { error: string } {
  const b = Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength);
  if (b.byteLength !== proofBytes || b.readUInt32LE(0) !== proofMagic) return { error: 'not a paxlog proof frame' };
  const dialerId = b.readUInt16LE(4);
  const want = mac(secret, nonce, dialerId, listenerId, shape);
  if (!crypto.timingSafeEqual(want, b.subarray(6))) {
    return { error: `node ${dialerId} does not know the cluster secret, or was started with another protocol, member list or timing (--tick-ms, the election and lease ticks)` };
  }
  return { dialerId };
}
