// A ready-made KV server: a paxlog node with the KV state machine and the client API on its
// uWS App, listening on the peer port and on the client HTTP port.

import type { Logger } from 'pino';
import { KvStore, type KvResult } from '../kv/store.js';
import { PaxlogNode, type NodeOptions } from '../node/node.js';
import { attachApi } from './http.js';

export interface KvServerOptions extends Omit<NodeOptions<KvResult>, 'stateMachine'> {
  /** The client HTTP port (default: the peer port + 1000). */
  httpPort?: number;
  /** When set, every HTTP request and /client upgrade needs `Authorization: Bearer <clientToken>`. Never logged. */
  clientToken?: string;
}

export interface KvServer {
  node: PaxlogNode<KvResult>;
  kv: KvStore;
  httpPort: number;
  stop(): Promise<void>;
}

export async function startKvServer(opts: KvServerOptions, log: Logger): Promise<KvServer> {
  const self = opts.peers.get(opts.id);
  const httpPort = opts.httpPort ?? (self !== undefined ? self.port + 1000 : 0);
  // Past 65535 the listen would wrap the port (66000 listens on 464) and say the number asked for.
  if (self !== undefined && !(Number.isInteger(httpPort) && httpPort >= 1 && httpPort <= 65535)) {
    throw new Error(`the client HTTP port ${httpPort} is not in 1..65535` +
      (opts.httpPort === undefined ? ` (peer port ${self.port} + 1000); give one (serve --http-port)` : ''));
  }
  const kv = new KvStore();
  const { clientToken, ...nodeOpts } = opts;
  const node = PaxlogNode.open<KvResult>({ ...nodeOpts, stateMachine: kv });
  attachApi(node, kv, { clientToken });
  await node.start([httpPort]);
  const scheme = opts.tls !== undefined ? 'https' : 'http';
  log.info({ http: `${scheme}://${self!.host}:${httpPort}`, peer: `${self!.host}:${self!.port}`, tls: opts.tls !== undefined,
    clientAuth: clientToken !== undefined && clientToken !== '' ? 'bearer token' : 'none' }, 'KV server ready');
  return { node, kv, httpPort, stop: () => node.stop() };
}
