// A ready-made KV server: a paxlog node with the KV state machine and the client API on its
// uWS App, listening on the peer port and on the client HTTP port.

import { pino, type Logger } from 'pino';
import { KvStore, type KvResult } from '../kv/store.js';
import { PaxlogNode, type NodeOptions } from '../node/node.js';
import { hostInUrl, parsePeers } from '../transport/addresses.js';
import type { PeerAddress } from '../transport/peers.js';
import { attachApi } from './http.js';

export interface KvServerOptions extends Omit<NodeOptions<KvResult>, 'stateMachine' | 'peers' | 'logger'> {
  /** Every member's peer address, this node's included: a map, or '1=127.0.0.1:7001,2=...' (as createNode). */
  peers: Map<number, PeerAddress> | string;
  /** Default: pino at level 'warn' on stdout (as createNode). */
  logger?: Logger;
  /** The client HTTP port (default: the peer port + 1000). */
  httpPort?: number;
  /** When set, every HTTP request and /client upgrade needs `Authorization: Bearer <clientToken>`. Never logged. */
  clientToken?: string;
  /** Open /client connections at most (default 1024); an upgrade past it gets 503 with Retry-After. */
  clientConnectionsMax?: number;
  /** Unread /client answer bytes over all connections at most (default 256 MiB); see README, "Client HTTP API". */
  clientBufferedBytesMax?: number;
}

export interface KvServer {
  node: PaxlogNode<KvResult>;
  kv: KvStore;
  httpPort: number;
  stop(): Promise<void>;
}

/**
 * Why a node's client HTTP port (given, else its peer port + 1000) cannot be listened on, or null.
 * Past 65535 the listen would wrap the port (66000 listens on 464) and say the number asked for.
 */
export function httpPortProblem(httpPort: number | undefined, peerPort: number): string | null {
  const port = httpPort ?? peerPort + 1000;
  if (Number.isInteger(port) && port >= 1 && port <= 65535) return null;
  return `the client HTTP port ${port} is not in 1..65535` + (httpPort === undefined ? ` (peer port ${peerPort} + 1000); give one (serve --http-port)` : '');
}

/** Open a node with the key-value store as its state machine, and serve the client API (HTTP and /client) on its client port. */
export async function startKvServer(options: KvServerOptions, log?: Logger): Promise<KvServer> {
  const peers = typeof options.peers === 'string' ? parsePeers(options.peers) : options.peers;
  const logger = options.logger ?? log ?? pino({ level: 'warn', base: { node: options.id } });
  const opts = { ...options, peers, logger };
  const self = opts.peers.get(opts.id);
  const httpPort = opts.httpPort ?? (self !== undefined ? self.port + 1000 : 0);
  const problem = self !== undefined ? httpPortProblem(opts.httpPort, self.port) : null;
  if (problem !== null) throw new Error(problem);
  for (const name of ['clientConnectionsMax', 'clientBufferedBytesMax'] as const) {
    const v = opts[name];
    if (v !== undefined && !(Number.isSafeInteger(v) && v >= 1)) throw new RangeError(`KvServerOptions.${name} ${v} is not a whole number >= 1`);
  }
  const kv = new KvStore();
  const { clientToken, clientConnectionsMax, clientBufferedBytesMax, ...nodeOpts } = opts;
  const node = PaxlogNode.open<KvResult>({ ...nodeOpts, stateMachine: kv });
  attachApi(node, kv, { clientToken, clientConnectionsMax, clientBufferedBytesMax });
  await node.start([httpPort]);
  const scheme = opts.tls !== undefined ? 'https' : 'http';
  (log ?? logger).info({ http: `${scheme}://${hostInUrl(self!.host)}:${httpPort}`, peer: `${hostInUrl(self!.host)}:${self!.port}`, tls: opts.tls !== undefined,
    clientAuth: clientToken !== undefined && clientToken !== '' ? 'bearer token' : 'none' }, 'KV server ready');
  return { node, kv, httpPort, stop: () => node.stop() };
}
