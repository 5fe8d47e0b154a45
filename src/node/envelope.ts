// Every client command travels in an envelope that names the node holding the client's request,
// so that when the command is applied (on every node) exactly that node answers the client.
//
//   [origin node id u16][incarnation u32][request seq u32][command ...]
//
// `incarnation` is drawn at random when a node process starts, so a command proposed before a
// restart can never answer a request made after it. A server builds each command with
// envelopeBytes of room in front (see PaxlogNode.proposeEnveloped), so it is never copied to be
// wrapped.

export const envelopeBytes = 10;

/** Fill in the envelope in the first envelopeBytes of `b` (the command follows them). */
export function seal(b: Uint8Array, origin: number, incarnation: number, seq: number): void {
  b[0] = origin;
  b[1] = origin >>> 8;
  writeU32(b, 2, incarnation);
  writeU32(b, 6, seq);
}

/** The envelope's fields; call only on bytes at least envelopeBytes long. */
export function envelopeOrigin(b: Uint8Array, at = 0): number {
  return b[at] | (b[at + 1] << 8);
}

export function envelopeIncarnation(b: Uint8Array, at = 0): number {
  return readU32(b, at + 2);
}

export function envelopeSeq(b: Uint8Array, at = 0): number {
  return readU32(b, at + 6);
}

function writeU32(b: Uint8Array, at: number, v: number): void {
  b[at] = v;
  b[at + 1] = v >>> 8;
  b[at + 2] = v >>> 16;
  b[at + 3] = v >>> 24;
}

function readU32(b: Uint8Array, at: number): number {
  return (b[at] | (b[at + 1] << 8) | (b[at + 2] << 16) | (b[at + 3] << 24)) >>> 0;
}
