// Peer links. Each node dials every other node (with `ws`, since uWS has no client) and sends its
// frames over that outbound link; it reads peers' frames from the links they dialed into its uWS
// App at /peer. So each link carries frames one way. That costs a second TCP connection per pair
// but needs no rule about who dials and no race between two links for the same pair; `ws` with
// bufferutil sends a whole turn's frames as one message, so the cost of its sends stays small.
//
// Frames to one peer within one turn of the event loop are concatenated and sent as one
// WebSocket message (the FrameReader on the other side splits them again). Every outbound link
// has a bound on buffered bytes: past it, frames are dropped and counted, which the protocols
// tolerate like any message loss, and the link's backlog drains by itself.

import assert from 'node:assert/strict';
import type { Logger } from 'pino';
import WebSocket from 'ws';
import type { Kernels } from '../kernels/types.js';
import { isDecodeError } from '../kernels/types.js';
import type { Message } from '../protocol/messages.js';
import type { UwsModule } from './uws.js';
import type * as Uws from '@trufflesuite/uws-js-unofficial';
import type { LinkFaults } from './faults.js';
import { checkProof, encodeChallenge, newNonce, newProof, readChallenge } from './handshake.js';
import { hostInUrl } from './addresses.js';

export interface PeerAddress {
  host: string;
  port: number;
}

export interface PeerTransportOptions {
  id: number;
  /** Every other member's peer address. */
  peers: Map<number, PeerAddress>;
  /** The cluster secret; '' runs without one (a loud warning is logged). */
  secret: string;
  /** The cluster's shape (handshake.ts clusterShape): links come up only between nodes started with the same. Default ''. */
  shape?: string;
  kernels: Kernels;
  logger: Logger;
  /** Called for every decoded message from an authenticated peer, addressed to this node. */
  onMessage: (m: Message) => void;
  /**
   * Called when a peer closes this node's link to it saying it is stopping (close code 1001, sent
   * by close() once the peer has stopped serving), after the link was up.
   */
  onPeerStopping?: (id: number) => void;
  /** Bytes buffered per outbound link at most; frames beyond are dropped. */
  linkBufferBytesMax?: number;
  /** A frame's size at most (the codec's bound); bigger frames close the link. */
  frameBytesMax?: number;
  /** Injected loss and delay on outbound frames (benchmarks), and test partitions both ways; none when absent. */
  faults?: LinkFaults;
  /** Dial peers over TLS (wss://), trusting `ca` (absent: the system's trust store); absent: plain ws://. */
  tls?: { ca?: Buffer };
  /** Reconnect backoff bounds, in milliseconds. */
  reconnectDelayMsMin?: number;
  reconnectDelayMsMax?: number;
  /** An inbound link that has not proven the secret this many milliseconds after it opened is closed. */
  handshakeTimeoutMs?: number;
  /** Inbound links not yet authenticated at most; upgrades beyond are refused with 503. */
  pendingHandshakesMax?: number;
  /**
   * A link that has heard nothing from its other end, not even a pong, for about this long is
   * closed (and an outbound one redialed). Pings keep a quiet link busy.
   */
  keepaliveMs?: number;
}

/** Counters for /metrics and /status. */
export interface PeerStats {
  framesSent: number;
  /** Bytes of frames handed to outbound links (WebSocket framing not counted). */
  bytesSent: number;
  framesDropped: number;
  framesReceived: number;
  decodeErrors: number;
  authFailures: number;
}

/** One outbound link: this node's frames to one peer. */
interface Outbound {
  /** The peer's id. */
  id: number;
  address: PeerAddress;
  /** The current connection; null while waiting to redial. */
  ws: WebSocket | null;
  /** True once the listener's challenge was answered; frames are only sent then. */
  ready: boolean;
  /** Encoded frames waiting for this turn's flush. Bounded by linkBufferBytesMax together with ws's buffer. */
  queue: Buffer[];
  /** Bytes in `queue`. Invariant: equals the sum of its lengths. */
  queueBytes: number;
  /** The next reconnect delay; doubles up to the max, reset once a link has stayed up for linkUpStableMs. */
  delayMs: number;
  /** When the current link sent its proof (performance.now()); 0 if it has not. */
  upSince: number;
  /** A refusal of our proof, or a bad challenge, was logged; further ones are not, until a link stays up. */
  refusalLogged: boolean;
  /** The peer's host did not resolve, and that was logged; again only once a link stayed up. */
  unresolvedLogged: boolean;
  /** The pending redial; null when connected or connecting. */
  timer: NodeJS.Timeout | null;
  /** When the current link last heard from the listener (performance.now()): a message or a pong; when dialed, before that. */
  heardMs: number;
}

/** Per-connection state of an inbound peer link (uWS user data). */
interface Inbound {
  /** The challenge sent on open; the dialer's proof must cover it. */
  nonce: Buffer;
  /** 0 until the dialer proved it knows the secret; then its id. */
  peerId: number;
  /** Splits the link's byte stream into frames; holds at most one partial frame. */
  reader: ReturnType<Kernels['newFrameReader']>;
  /** We ended the link (or uWS closed it): nothing more is read or sent on it. */
  closed: boolean;
  /** Closes the link if no proof came in time; null once authenticated or closed. */
  deadline: NodeJS.Timeout | null;
}

const linkBufferBytesDefault = 64 * 1024 * 1024;
/** A link up this long counts as healthy: its next drop redials quickly again. */
const linkUpStableMs = 2000;
/**
 * An inbound link refused at the handshake is logged at most once per this many ms (the count of
 * the others goes in the next line, and all are in stats.authFailures): anyone who can reach the
 * peer port can make them, and a line per dial grew the log by about 96 KiB a second.
 */
const refusalLogMs = 10_000;
const frameBytesDefault = 64 * 1024 * 1024;
/**
 * The most one WebSocket message on a peer link holds. Frames are a byte stream here: a sender
 * splits what it sends into messages of at most this, and the receiver's frame reader joins them.
 * Before its proof a link can make uWS buffer one whole message, so this, not frameBytesMax,
 * bounds what a stranger can park in memory: pendingHandshakesMax of these (8 MiB for 3 members),
 * where whole frames in one message made it 8 x 64 MiB.
 */
export const peerMessageBytesMax = 1024 * 1024;
/** A dialer answers the challenge in one round trip; one that does not within this is closed. */
const handshakeTimeoutMsDefault = 5000;
/**
 * Without it a link whose other end vanished without a FIN (a host that lost power) lived on until
 * TCP gave up retransmitting, about 15 minutes, and on the listener's side for ever; the peer's
 * restarted process was not redialed meanwhile.
 */
const keepaliveMsDefault = 10_000;
/** uWS checks idle links at a 4-second grain; its idleTimeout (seconds) is at least 8 here. */
const idleTimeoutSecondsMin = 8;
const zeroMask = (mask: Buffer): void => {
  mask.fill(0);
};

export class PeerTransport {
  readonly stats: PeerStats = { framesSent: 0, bytesSent: 0, framesDropped: 0, framesReceived: 0, decodeErrors: 0, authFailures: 0 };
  private readonly out = new Map<number, Outbound>();
  private readonly inbound = new Set<Uws.WebSocket<Inbound>>();
  private flushScheduled = false;
  private closed = false;
  private readonly linkBufferBytesMax: number;
  private readonly frameBytesMax: number;
  private readonly delayMsMin: number;
  private readonly delayMsMax: number;
  private readonly handshakeTimeoutMs: number;
  private readonly pendingHandshakesMax: number;
  /** Inbound links that have not proven the secret yet. Invariant: size <= pendingHandshakesMax. */
  private readonly pending = new Set<Uws.WebSocket<Inbound>>();
  /** When an inbound refusal was last logged (performance.now), and the refusals since, not logged. */
  private refusalLoggedMs = -Infinity;
  private refusalsUnlogged = 0;
  private readonly keepaliveMs: number;
  /** Pings every outbound link at half the keepalive and closes those that stopped answering. */
  private keepaliveTimer: NodeJS.Timeout | null = null;

  constructor(private readonly opts: PeerTransportOptions) {
    this.linkBufferBytesMax = opts.linkBufferBytesMax ?? linkBufferBytesDefault;
    this.frameBytesMax = opts.frameBytesMax ?? frameBytesDefault;
    this.delayMsMin = opts.reconnectDelayMsMin ?? 50;
    this.delayMsMax = opts.reconnectDelayMsMax ?? 1000;
    this.handshakeTimeoutMs = opts.handshakeTimeoutMs ?? handshakeTimeoutMsDefault;
    // Before its proof, a link may make uWS buffer one message (peerMessageBytesMax): bound how
    // many such links there are, with room for every member to redial at once.
    this.pendingHandshakesMax = opts.pendingHandshakesMax ?? Math.max(8, 2 * opts.peers.size);
    this.keepaliveMs = opts.keepaliveMs ?? keepaliveMsDefault;
    for (const [id, address] of opts.peers) {
      if (id === opts.id) continue;
      this.out.set(id, {
        id, address, ws: null, ready: false, queue: [], queueBytes: 0, delayMs: this.delayMsMin, upSince: 0, refusalLogged: false, unresolvedLogged: false, timer: null, heardMs: 0,
      });
    }
  }

  /** Frames dropped by injected loss (0 without faults). */
  get faultFramesDropped(): number {
    return this.opts.faults?.framesDropped ?? 0;
  }

  /** Peers whose outbound link is up (handshake done). */
  get connected(): number[] {
    return [...this.out.values()].filter((o) => o.ready).map((o) => o.id);
  }

  /** Serve inbound peer links at /peer on the node's uWS App. */
  attach(app: Uws.TemplatedApp, uws: UwsModule): void {
    app.ws<Inbound>('/peer', {
      compression: uws.DISABLED,
      maxPayloadLength: peerMessageBytesMax,
      maxBackpressure: 1024 * 1024,
      // A dialer sends only when it has something to say: uWS pings a link idle this long, and
      // closes it when the next such wait passes with nothing heard, not even the pong.
      idleTimeout: Math.max(idleTimeoutSecondsMin, Math.ceil(this.keepaliveMs / 1000)),
      sendPingsAutomatically: true,
      upgrade: (res, req, context) => {
        // Full: the oldest unproven link makes room. Refusing the newcomer instead let anyone who
        // redials every few seconds, without the secret, hold every slot and shut the members out;
        // a member proves itself within a round trip of its dial, so to keep it out now a stranger
        // must dial pendingHandshakesMax times within that round trip.
        if (this.pending.size >= this.pendingHandshakesMax) this.closeUnproven(this.pending.values().next().value!, 'handshake slot taken by a newer dial');
        const nonce = newNonce();
        const data: Inbound = { nonce, peerId: 0, reader: this.opts.kernels.newFrameReader(this.frameBytesMax), closed: false, deadline: null };
        res.upgrade(data, req.getHeader('sec-websocket-key'), req.getHeader('sec-websocket-protocol'),
          req.getHeader('sec-websocket-extensions'), context);
      },
      open: (ws) => {
        const data = ws.getUserData();
        this.inbound.add(ws);
        this.pending.add(ws);
        data.deadline = setTimeout(() => {
          data.deadline = null;
          if (data.closed || data.peerId !== 0) return;
          this.logRefusal({ ms: this.handshakeTimeoutMs }, 'peer refused at handshake: no proof in time');
          this.closeUnproven(ws, 'handshake timeout');
        }, this.handshakeTimeoutMs);
        ws.send(encodeChallenge(this.opts.id, data.nonce), true);
      },
      message: (ws, message) => this.onInbound(ws, message),
      close: (ws) => {
        const data = ws.getUserData();
        data.closed = true;
        if (data.deadline !== null) clearTimeout(data.deadline);
        data.deadline = null;
        this.inbound.delete(ws);
        this.pending.delete(ws);
      },
    });
  }

  /** Log an inbound refusal, at most once per refusalLogMs. */
  private logRefusal(fields: Record<string, unknown>, msg: string): void {
    const now = performance.now();
    if (now - this.refusalLoggedMs < refusalLogMs) {
      this.refusalsUnlogged++;
      return;
    }
    this.opts.logger.warn({ ...fields, refusalsSinceLastLine: this.refusalsUnlogged }, msg);
    this.refusalLoggedMs = now;
    this.refusalsUnlogged = 0;
  }

  /** Close an inbound link that has not proven the secret (refused, too slow, or its slot taken), counted as a failed handshake. */
  private closeUnproven(ws: Uws.WebSocket<Inbound>, reason: string): void {
    const data = ws.getUserData();
    assert.ok(data.peerId === 0 && !data.closed, 'only an open, unproven link is closed as unproven');
    this.stats.authFailures++;
    data.closed = true;
    if (data.deadline !== null) clearTimeout(data.deadline);
    data.deadline = null;
    this.pending.delete(ws);
    ws.end(4001, reason);
  }

  /** Dial every peer (and keep redialing until close()). */
  start(): void {
    for (const o of this.out.values()) this.dial(o);
    this.keepaliveTimer = setInterval(() => this.keepalive(), this.keepaliveMs / 2);
    this.keepaliveTimer.unref();
  }

  /** Queue a message; frames to one peer from one turn go out together. */
  send(m: Message): void {
    const o = this.out.get(m.to);
    if (o === undefined) {
      this.opts.logger.warn({ to: m.to, type: m.type }, 'message to a node that is not a peer dropped');
      return;
    }
    if (!o.ready || o.ws === null) {
      this.stats.framesDropped++;
      return;
    }
    if (this.opts.faults !== undefined && (this.opts.faults.isCut(m.to) || this.opts.faults.dropFrame(m.to))) return;
    const frame = this.opts.kernels.encode(m);
    if (o.queueBytes + o.ws.bufferedAmount + frame.byteLength > this.linkBufferBytesMax) {
      this.stats.framesDropped++;
      return;
    }
    // encode()'s view is valid only until its next call: copy it.
    o.queue.push(Buffer.from(frame));
    o.queueBytes += frame.byteLength;
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => {
        this.flushScheduled = false;
        this.flush();
      });
    }
  }

  /** Close every link and stop redialing. */
  close(): void {
    this.closed = true;
    if (this.keepaliveTimer !== null) clearInterval(this.keepaliveTimer);
    this.keepaliveTimer = null;
    for (const o of this.out.values()) {
      if (o.timer !== null) clearTimeout(o.timer);
      o.timer = null;
      o.ws?.terminate();
      o.ws = null;
      o.ready = false;
    }
    // Closed with a close frame, 1001: the dialer tells a node that stops from a link that failed.
    for (const ws of this.inbound) {
      if (!ws.getUserData().closed) ws.end(1001, 'the node is stopping');
    }
    this.inbound.clear();
    this.pending.clear();
  }

  /**
   * Send the queued frames now, one message per peer. Runs by itself at the end of the turn that
   * queued them; the node calls it before it blocks on a disk sync, so that peers do not wait for it.
   */
  flush(): void {
    for (const o of this.out.values()) {
      if (o.queue.length === 0) continue;
      const count = o.queue.length;
      const data = count === 1 ? o.queue[0] : Buffer.concat(o.queue, o.queueBytes);
      o.queue = [];
      o.queueBytes = 0;
      if (!o.ready || o.ws === null || o.ws.readyState !== WebSocket.OPEN) {
        this.stats.framesDropped += count;
        continue;
      }
      const ws = o.ws;
      if (this.opts.faults === undefined) sendInMessages(ws, data);
      else if (!this.opts.faults.deliver(data.byteLength, () => ws.readyState === WebSocket.OPEN && sendInMessages(ws, data))) {
        this.stats.framesDropped += count;
        continue;
      }
      this.stats.framesSent += count;
      this.stats.bytesSent += data.byteLength;
    }
  }

  private onInbound(ws: Uws.WebSocket<Inbound>, message: ArrayBuffer): void {
    const data = ws.getUserData();
    // A link this side closed (refused, superseded, its slot taken) is read no further.
    if (data.closed) return;
    // The ArrayBuffer is only valid during this callback: everything below decodes or copies now.
    const bytes = new Uint8Array(message);
    if (data.peerId === 0) {
      const proof = checkProof(this.opts.secret, data.nonce, this.opts.id, bytes, this.opts.shape);
      const known = 'dialerId' in proof && this.opts.peers.has(proof.dialerId) && proof.dialerId !== this.opts.id;
      if (!known) {
        const reason = 'error' in proof ? proof.error : `node ${proof.dialerId} is not a member`;
        this.logRefusal({ reason }, 'peer refused at handshake');
        this.closeUnproven(ws, 'handshake refused');
        return;
      }
      data.peerId = proof.dialerId;
      this.pending.delete(ws);
      if (data.deadline !== null) clearTimeout(data.deadline);
      data.deadline = null;
      // One link in per peer: its dialer gave up on an older one (or restarted), whose unread tail
      // was sent before this link's frames and must not be read after or between them.
      for (const other of this.inbound) {
        const d = other.getUserData();
        if (other === ws || d.peerId !== data.peerId || d.closed) continue;
        d.closed = true;
        other.end(4003, 'superseded by a newer link from the same peer');
      }
      this.opts.logger.info({ peer: data.peerId }, 'peer link in: authenticated');
      // The peer is up (it proved the secret just now): a link out to it that waits for its redial
      // (backing off up to reconnectDelayMsMax while the peer was down) is dialed now. Left to the
      // timer, a restarted peer heard nothing from its leader for up to that long, and campaigned.
      const o = this.out.get(data.peerId);
      if (o !== undefined && o.timer !== null && !this.closed) {
        clearTimeout(o.timer);
        o.delayMs = this.delayMsMin;
        this.dial(o);
      }
      return;
    }
    data.reader.push(bytes);
    for (;;) {
      const frame = data.reader.next();
      if (frame === null) break;
      const m = isDecodeError(frame) ? frame : this.opts.kernels.decode(frame);
      if (isDecodeError(m)) return this.refuse(ws, `bad frame: ${m.error}`);
      if (m.from !== data.peerId || m.to !== this.opts.id) {
        return this.refuse(ws, `frame from ${m.from} to ${m.to} on the link of node ${data.peerId}`);
      }
      this.stats.framesReceived++;
      // A test partition drops what a cut peer sends before the core sees it (the link stays up).
      if (this.opts.faults?.isCut(m.from) === true) continue;
      this.opts.onMessage(m);
      if (data.closed) return;
    }
  }

  private refuse(ws: Uws.WebSocket<Inbound>, reason: string): void {
    const data = ws.getUserData();
    this.stats.decodeErrors++;
    this.opts.logger.warn({ peer: data.peerId, reason }, 'peer link closed: it sent a frame that does not decode');
    data.closed = true;
    ws.end(4002, reason.slice(0, 100));
  }

  private dial(o: Outbound): void {
    if (this.closed) return;
    o.timer = null;
    const tls = this.opts.tls;
    const ws = new WebSocket(`${tls !== undefined ? 'wss' : 'ws'}://${hostInUrl(o.address.host)}:${o.address.port}/peer`, {
      perMessageDeflate: false,
      maxPayload: 1024,
      handshakeTimeout: 2000,
      // A zero mask, so ws sends our frames as they are instead of XOR-copying every byte. Masking
      // keeps a browser's script from steering what an intermediary proxy caches; a peer link
      // is one node dialing another with the cluster secret, with no such script or proxy.
      generateMask: zeroMask,
      ...(tls?.ca !== undefined ? { ca: tls.ca } : {}),
    });
    o.ws = ws;
    o.heardMs = performance.now();
    ws.binaryType = 'nodebuffer';
    ws.on('message', (data: Buffer) => {
      if (o.ready) return; // the listener sends nothing after its challenge
      const c = readChallenge(data);
      if ('error' in c || c.listenerId !== o.id) {
        const reason = 'error' in c ? c.error : `listener says it is node ${c.listenerId}, expected ${o.id}`;
        // Once until a link stays up, as a refusal: a wrong address is redialed for as long as it lasts.
        if (!o.refusalLogged) this.opts.logger.warn({ peer: o.id, reason }, 'peer link out: bad challenge (is the peer address right?)');
        o.refusalLogged = true;
        ws.terminate();
        return;
      }
      ws.send(newProof(this.opts.secret, c.nonce, this.opts.id, o.id, this.opts.shape));
      o.ready = true;
      o.upSince = performance.now();
      o.heardMs = o.upSince;
      this.opts.logger.info({ peer: o.id }, 'peer link out: up');
    });
    ws.on('pong', () => {
      if (o.ws === ws) o.heardMs = performance.now();
    });
    ws.on('close', (code: number, reason: Buffer) => {
      if (o.ws !== ws) return;
      // Only a link that stayed up resets the backoff: a listener that refuses our proof at once
      // (a wrong secret) is redialed ever more slowly, and its refusal is logged once.
      const stable = o.upSince > 0 && performance.now() - o.upSince >= linkUpStableMs;
      if (stable) {
        o.delayMs = this.delayMsMin;
        o.refusalLogged = false;
        o.unresolvedLogged = false;
      }
      if (code === 4001) {
        if (!o.refusalLogged) {
          this.opts.logger.warn({ peer: o.id, code, reason: reason.toString() }, 'peer link out: refused (were both nodes started with the same cluster secret, protocol and member ids?)');
        }
        o.refusalLogged = true;
      } else if (o.ready && code === 1001) {
        this.opts.logger.info({ peer: o.id, code, reason: reason.toString() }, 'peer link out: closed, the peer is stopping');
        this.opts.onPeerStopping?.(o.id);
      } else if (o.ready) {
        this.opts.logger.warn({ peer: o.id, code, reason: reason.toString() }, 'peer link out: closed');
      }
      o.ws = null;
      o.ready = false;
      o.upSince = 0;
      this.redial(o);
    });
    ws.on('error', (err: Error & { code?: string }) => {
      // 'close' follows and redials; an unreachable peer is normal while it restarts. A certificate
      // this node does not trust is not: say so once (until a link stays up).
      if (tls !== undefined && /CERT|SELF_SIGNED|VERIFY|ISSUER|ERR_TLS|ERR_SSL|EPROTO/.test(err.code ?? '') && !o.refusalLogged) {
        o.refusalLogged = true;
        this.opts.logger.warn({ peer: o.id, reason: err.message }, 'peer link out: TLS refused the peer (is --tls-ca the CA that signed its certificate?)');
      }
      // Nor is a host name that does not resolve (a typo in --peers, or DNS down): said once.
      if ((err.code === 'ENOTFOUND' || err.code === 'EAI_AGAIN') && !o.unresolvedLogged) {
        o.unresolvedLogged = true;
        this.opts.logger.warn({ peer: o.id, host: o.address.host, reason: err.message }, 'peer link out: the peer\'s host name does not resolve (check --peers); redialing');
      }
    });
  }

  /**
   * Close the outbound links that heard nothing for keepaliveMs (their 'close' redials), a link
   * still waiting for its challenge too; ping the links that are up.
   */
  private keepalive(): void {
    const now = performance.now();
    for (const o of this.out.values()) {
      if (o.ws === null) continue;
      if (now - o.heardMs > this.keepaliveMs) {
        this.opts.logger.warn({ peer: o.id, ms: Math.round(now - o.heardMs), up: o.ready },
          o.ready ? 'peer link out: nothing heard, not even a pong; closing it to redial' : 'peer link out: no challenge from the listener; closing it to redial');
        o.ws.terminate();
      } else if (o.ready) {
        o.ws.ping();
      }
    }
  }

  private redial(o: Outbound): void {
    if (this.closed || o.timer !== null) return;
    const delay = o.delayMs * (0.5 + Math.random() / 2);
    o.delayMs = Math.min(o.delayMs * 2, this.delayMsMax);
    o.timer = setTimeout(() => this.dial(o), delay);
  }
}

/** Send bytes of the frame stream as messages of at most peerMessageBytesMax (the receiver joins them). */
function sendInMessages(ws: WebSocket, data: Buffer): void {
  for (let at = 0; at < data.byteLength; at += peerMessageBytesMax) {
    ws.send(data.subarray(at, Math.min(at + peerMessageBytesMax, data.byteLength)), { binary: true });
  }
}
