// Every client command travels in an envelope that names the node holding the client's request,
// so that when the command is applied (on every node) exactly that node answers the client.
//
//   [origin node id u16][incarnation u32][request seq u32][command ...]
//
// `incarnation` is drawn at random when a node process starts, so a command proposed before a
// restart can never answer a request made after it.

export const envelopeBytes = 10;

export function wrap(origin: number, incarnation: number, seq: number, command: Uint8Array): Uint8Array {
  const out = new Uint8Array(envelopeBytes + command.byteLength);
  const v = new DataView(out.buffer);
  v.setUint16(0, origin, true);
  v.setUint32(2, incarnation >>> 0, true);
  v.setUint32(6, seq >>> 0, true);
  out.set(command, envelopeBytes);
  return out;
}

export interface Unwrapped {
  origin: number;
  incarnation: number;
  seq: number;
  /** A view into the wrapped bytes. */
  command: Uint8Array;
}

/** Null for bytes too short to hold an envelope (every node then skips the command alike). */
export function unwrap(b: Uint8Array): Unwrapped | null {
  if (b.byteLength < envelopeBytes) return null;
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  return { origin: v.getUint16(0, true), incarnation: v.getUint32(2, true), seq: v.getUint32(6, true), command: b.subarray(envelopeBytes) };
}
