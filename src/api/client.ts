// A client of the binary /client WebSocket protocol: pipelined requests, each answered by id.

import WebSocket from 'ws';
import { ClientOp, decodeResponses, encodeRequest, readModes, type ClientReadMode } from './client-protocol.js';

export interface ClientAnswer {
  /** An HTTP status: 200, 404, 412, 400, 413, 503, 504. */
  status: number;
  /** The value for a GET that found it; a UTF-8 reason for an error. */
  body: Uint8Array;
}

export class PaxlogClient {
  private nextId = 1;
  /** Requests sent and not answered. Bounded by what the caller awaits; the node caps it per connection. */
  private readonly waiting = new Map<number, (a: ClientAnswer) => void>();

  private constructor(private readonly ws: WebSocket) {
    ws.on('message', (data: Buffer) => {
      const rs = decodeResponses(data);
      if ('error' in rs) {
        ws.terminate();
        return;
      }
      for (const r of rs) {
        const done = this.waiting.get(r.id);
        this.waiting.delete(r.id);
        done?.({ status: r.status, body: r.body });
      }
    });
    ws.on('close', () => {
      for (const [, done] of this.waiting) done({ status: 504, body: new TextEncoder().encode('connection closed; outcome unknown') });
      this.waiting.clear();
    });
  }

  /**
   * Connect to a node's /client endpoint, e.g. ws://127.0.0.1:8001/client (wss:// for a node
   * with TLS). `token` is the node's client token, if it has one; `ca` the PEM CA that signed a
   * TLS node's certificate (default: the system's trust store).
   */
  static connect(url: string, o: { token?: string; ca?: Buffer | string } = {}): Promise<PaxlogClient> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, {
        perMessageDeflate: false,
        ...(o.token !== undefined ? { headers: { authorization: `Bearer ${o.token}` } } : {}),
        ...(o.ca !== undefined ? { ca: o.ca } : {}),
      });
      ws.binaryType = 'nodebuffer';
      ws.once('open', () => resolve(new PaxlogClient(ws)));
      // A refusal for want of the node's client token says so (ws says only "Unexpected server response: 401").
      ws.once('unexpected-response', (_req, res) => {
        ws.terminate();
        reject(new Error(res.statusCode === 401
          ? `${url} refused the connection (401): ${o.token === undefined ? 'the node requires a client token; pass { token }' : 'the token is not the node\'s client token'}`
          : `${url} refused the connection (${res.statusCode} ${res.statusMessage ?? ''})`.trimEnd()));
      });
      ws.once('error', reject);
    });
  }

  put(key: string, value: Uint8Array): Promise<ClientAnswer> {
    return this.request(ClientOp.Put, key, { value });
  }

  get(key: string, readMode: ClientReadMode = 'linearizable'): Promise<ClientAnswer> {
    if (!(readModes as readonly string[]).includes(readMode)) return Promise.reject(new RangeError(`read mode ${JSON.stringify(readMode)} is not one of ${readModes.join(', ')}`));
    return this.request(ClientOp.Get, key, { readMode });
  }

  delete(key: string): Promise<ClientAnswer> {
    return this.request(ClientOp.Delete, key, {});
  }

  cas(key: string, expect: Uint8Array, value: Uint8Array): Promise<ClientAnswer> {
    return this.request(ClientOp.Cas, key, { expect, value });
  }

  /** Send raw bytes (tests of malformed input). */
  sendRaw(bytes: Uint8Array): void {
    this.ws.send(bytes);
  }

  close(): void {
    this.ws.close();
  }

  private request(op: ClientOp, key: string, o: { value?: Uint8Array; expect?: Uint8Array; readMode?: ClientReadMode }): Promise<ClientAnswer> {
    // ws drops a send on a closing or closed socket without a word, and 'close' (which answers
    // what is waiting) has fired already: the promise would never settle.
    if (this.ws.readyState !== WebSocket.OPEN) return Promise.reject(new Error('the connection is closed; the request was not sent'));
    const id = this.nextId;
    this.nextId = (this.nextId % 0xffffffff) + 1;
    return new Promise((resolve) => {
      this.waiting.set(id, resolve);
      this.ws.send(encodeRequest({ id, op, key, ...o }));
    });
  }
}
