// The binary protocol of the `/client` WebSocket endpoint: the HTTP API's operations, pipelined
// with request ids. A WebSocket message carries one or more requests (or responses) back to back.
//
// Request (little-endian):
//   0 length u32 (whole request) | 4 id u32 | 8 op u8 | 9 readMode u8 | 10 keyLength u16 |
//   12 expectLength u32 | 16 key | expect | value (the rest, up to `length`)
// Response:
//   0 length u32 (whole response) | 4 id u32 | 8 status u16 (an HTTP status) | 10 reserved u16 |
//   12 body: the value for a GET that found it, a UTF-8 reason for an error, else empty
//
// Responses may come out of order; the id says which request each answers.

export const requestHeaderBytes = 16;
export const responseHeaderBytes = 12;

export const enum ClientOp {
  /** Write value at key. */
  Put = 1,
  /** Remove key. */
  Delete = 2,
  /** Write value at key if its value equals `expect`. */
  Cas = 3,
  /** Read key, in `readMode`. */
  Get = 4,
}

/** How a Get is served; `linearizable` lets the node choose (a lease read). */
export const readModes = ['linearizable', 'lease', 'quorum', 'local'] as const;
export type ClientReadMode = (typeof readModes)[number];

export interface ClientRequest {
  id: number;
  op: ClientOp;
  readMode: ClientReadMode;
  key: string;
  expect: Uint8Array;
  value: Uint8Array;
}

export interface ClientResponse {
  id: number;
  status: number;
  body: Uint8Array;
}

const utf8 = new TextEncoder();
const utf8Strict = new TextDecoder('utf-8', { fatal: true });

export function encodeRequest(r: Omit<ClientRequest, 'expect' | 'value' | 'readMode'> &
  Partial<Pick<ClientRequest, 'expect' | 'value' | 'readMode'>>): Uint8Array {
  const key = utf8.encode(r.key);
  const expect = r.expect ?? new Uint8Array(0);
  const value = r.value ?? new Uint8Array(0);
  const length = requestHeaderBytes + key.byteLength + expect.byteLength + value.byteLength;
  const out = new Uint8Array(length);
  const v = new DataView(out.buffer);
  v.setUint32(0, length, true);
  v.setUint32(4, r.id >>> 0, true);
  out[8] = r.op;
  out[9] = readModes.indexOf(r.readMode ?? 'linearizable');
  v.setUint16(10, key.byteLength, true);
  v.setUint32(12, expect.byteLength, true);
  out.set(key, 16);
  out.set(expect, 16 + key.byteLength);
  out.set(value, 16 + key.byteLength + expect.byteLength);
  return out;
}

/**
 * The requests in one WebSocket message. Values are views into `bytes` (copy before keeping).
 * A malformed request gives an error for its id (or id 0 if even the header is unreadable) and
 * stops the parse: the rest of the message cannot be framed.
 */
export function decodeRequests(bytes: Uint8Array): { requests: ClientRequest[]; error: { id: number; reason: string } | null } {
  const requests: ClientRequest[] = [];
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let at = 0;
  while (at < bytes.byteLength) {
    if (bytes.byteLength - at < requestHeaderBytes) return { requests, error: { id: 0, reason: 'request shorter than its header' } };
    const length = v.getUint32(at, true);
    const id = v.getUint32(at + 4, true);
    const op = bytes[at + 8];
    const mode = bytes[at + 9];
    const keyLength = v.getUint16(at + 10, true);
    const expectLength = v.getUint32(at + 12, true);
    const fail = (reason: string) => ({ requests, error: { id, reason } });
    if (length < requestHeaderBytes || length > bytes.byteLength - at) return fail(`request length ${length} does not fit the message`);
    if (op < ClientOp.Put || op > ClientOp.Get) return fail(`unknown op ${op}`);
    if (mode >= readModes.length) return fail(`unknown read mode ${mode}`);
    if (requestHeaderBytes + keyLength + expectLength > length) return fail('key and expect run past the request');
    let key: string;
    try {
      key = utf8Strict.decode(bytes.subarray(at + 16, at + 16 + keyLength));
    } catch {
      return fail('key is not UTF-8');
    }
    const e0 = at + 16 + keyLength;
    requests.push({
      id, op: op as ClientOp, readMode: readModes[mode], key,
      expect: bytes.subarray(e0, e0 + expectLength),
      value: bytes.subarray(e0 + expectLength, at + length),
    });
    at += length;
  }
  return { requests, error: null };
}

export function encodeResponse(id: number, status: number, body: Uint8Array | string = ''): Uint8Array {
  const b = typeof body === 'string' ? utf8.encode(body) : body;
  const out = new Uint8Array(responseHeaderBytes + b.byteLength);
  const v = new DataView(out.buffer);
  v.setUint32(0, out.byteLength, true);
  v.setUint32(4, id >>> 0, true);
  v.setUint16(8, status, true);
  out.set(b, responseHeaderBytes);
  return out;
}

/** The responses in one WebSocket message (bodies are copies), or an error for a malformed message. */
export function decodeResponses(bytes: Uint8Array): ClientResponse[] | { error: string } {
  const out: ClientResponse[] = [];
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let at = 0;
  while (at < bytes.byteLength) {
    if (bytes.byteLength - at < responseHeaderBytes) return { error: 'response shorter than its header' };
    const length = v.getUint32(at, true);
    if (length < responseHeaderBytes || length > bytes.byteLength - at) return { error: `response length ${length} does not fit` };
    out.push({ id: v.getUint32(at + 4, true), status: v.getUint16(at + 8, true), body: bytes.slice(at + responseHeaderBytes, at + length) });
    at += length;
  }
  return out;
}
