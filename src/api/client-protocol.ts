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
// ignoreBOM: a key's leading U+FEFF is part of the key (the store keeps its bytes as they are).
const utf8Strict = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

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
 * One request of a message, read in place: where its parts lie in the message. The same object
 * is reused for every request of a message, and the message dies with its callback.
 */
export interface RequestView {
  id: number;
  op: ClientOp;
  readMode: ClientReadMode;
  /** The whole message. The request's key, expect and value lie back to back in it. */
  bytes: Buffer;
  /** Where the key starts; its bytes are UTF-8 unchecked here (the server answers a bad key with 400 and goes on). */
  keyStart: number;
  keyLength: number;
  expectLength: number;
  /** Where the request, and so its value, ends. */
  end: number;
}

/**
 * Visit the requests of one WebSocket message in order, without copying. A request that cannot
 * be framed gives an error for its id (or id 0 if even the header is unreadable) and ends the
 * visit: the rest of the message cannot be framed either.
 */
export function forEachRequest(bytes: Uint8Array, visit: (r: RequestView) => void): { id: number; reason: string } | null {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const r: RequestView = { id: 0, op: ClientOp.Put, readMode: 'linearizable', bytes: b, keyStart: 0, keyLength: 0, expectLength: 0, end: 0 };
  let at = 0;
  while (at < b.byteLength) {
    if (b.byteLength - at < requestHeaderBytes) return { id: 0, reason: 'request shorter than its header' };
    const length = b.readUInt32LE(at);
    const id = b.readUInt32LE(at + 4);
    const op = b[at + 8];
    const mode = b[at + 9];
    const keyLength = b.readUInt16LE(at + 10);
    const expectLength = b.readUInt32LE(at + 12);
    if (length < requestHeaderBytes || length > b.byteLength - at) return { id, reason: `request length ${length} does not fit the message` };
    if (op < ClientOp.Put || op > ClientOp.Get) return { id, reason: `unknown op ${op}` };
    if (mode >= readModes.length) return { id, reason: `unknown read mode ${mode}` };
    if (requestHeaderBytes + keyLength + expectLength > length) return { id, reason: 'key and expect run past the request' };
    r.id = id;
    r.op = op as ClientOp;
    r.readMode = readModes[mode];
    r.keyStart = at + requestHeaderBytes;
    r.keyLength = keyLength;
    r.expectLength = expectLength;
    r.end = at + length;
    visit(r);
    at += length;
  }
  return null;
}

/**
 * The requests in one WebSocket message, keys decoded. Values are views into `bytes` (copy before
 * keeping). A key that is not UTF-8 also ends the parse, with an error for its id.
 */
export function decodeRequests(bytes: Uint8Array): { requests: ClientRequest[]; error: { id: number; reason: string } | null } {
  const requests: ClientRequest[] = [];
  let badKey: { id: number; reason: string } | null = null;
  const error = forEachRequest(bytes, (r) => {
    if (badKey !== null) return;
    const keyEnd = r.keyStart + r.keyLength;
    let key: string;
    try {
      key = utf8Strict.decode(r.bytes.subarray(r.keyStart, keyEnd));
    } catch {
      badKey = { id: r.id, reason: 'key is not UTF-8' };
      return;
    }
    const e = keyEnd + r.expectLength;
    requests.push({ id: r.id, op: r.op, readMode: r.readMode, key, expect: r.bytes.subarray(keyEnd, e), value: r.bytes.subarray(e, r.end) });
  });
  return { requests, error: badKey ?? error };
}

/** Responses encoded back to back into one reused buffer, sent as one message per turn. */
export class ResponseWriter {
  /** Holds `length` bytes of responses. Grows to fit; replaced by one of the first size when taken above responseBufferBytesMax. */
  private buf = Buffer.allocUnsafeSlow(responseBufferBytes);
  /** Bytes written since the last take(). */
  length = 0;

  write(id: number, status: number, body: Uint8Array | string): void {
    const size = responseBytes(body);
    if (this.length + size > this.buf.byteLength) {
      const grown = Buffer.allocUnsafeSlow(Math.max(2 * this.buf.byteLength, this.length + size));
      this.buf.copy(grown, 0, 0, this.length);
      this.buf = grown;
    }
    putResponse(this.buf, this.length, size, id, status, body);
    this.length += size;
  }

  /** The bytes written since the last take(); valid until the next write(). */
  take(): Buffer {
    const out = this.buf.subarray(0, this.length);
    this.length = 0;
    // A burst of large values grew the buffer: let it go (`out` keeps it alive until sent).
    if (this.buf.byteLength > responseBufferBytesMax) this.buf = Buffer.allocUnsafeSlow(responseBufferBytes);
    return out;
  }
}

/** A ResponseWriter's first size (small: a server may hold many quiet connections), and the size above which it is replaced after each take(). */
const responseBufferBytes = 4 * 1024;
const responseBufferBytesMax = 1024 * 1024;

export function encodeResponse(id: number, status: number, body: Uint8Array | string = ''): Uint8Array {
  const size = responseBytes(body);
  const out = Buffer.allocUnsafe(size);
  putResponse(out, 0, size, id, status, body);
  return out;
}

/** A response's size: its header and its body (a string as UTF-8). */
function responseBytes(body: Uint8Array | string): number {
  return responseHeaderBytes + (typeof body === 'string' ? Buffer.byteLength(body, 'utf8') : body.byteLength);
}

/** Write one response of `size` (responseBytes(body)) bytes at `at`. */
function putResponse(out: Buffer, at: number, size: number, id: number, status: number, body: Uint8Array | string): void {
  out.writeUInt32LE(size, at);
  out.writeUInt32LE(id >>> 0, at + 4);
  out.writeUInt16LE(status, at + 8);
  out.writeUInt16LE(0, at + 10);
  // Most answers (a write's 200) have no body: skip the call into C++.
  if (size === responseHeaderBytes) return;
  if (typeof body === 'string') out.write(body, at + responseHeaderBytes, 'utf8');
  else out.set(body, at + responseHeaderBytes);
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
