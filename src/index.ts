// paxlog as a library: embed a replicated log with your own state machine, or run the KV server.
//
//   const node = await createNode({ id: 1, peers: '1=127.0.0.1:7001,2=...', dataDir, stateMachine });
//   const result = await node.propose(bytes);   // applied on a majority's log, then here
//   await node.read();                          // linearizable barrier: then read your state
//   node.on('applied', ({ slot, command, result }) => { ... });

import { pino, type Logger } from 'pino';
import { parsePeers } from './transport/addresses.js';
import { PaxlogNode, type NodeOptions } from './node/node.js';
import type { PeerAddress } from './transport/peers.js';

export { FatalError, PaxlogNode, RequestError } from './node/node.js';
export type { Applied, NodeOptions, NodeStatus } from './node/node.js';
export type { StateMachine } from './node/state-machine.js';
export { KvStore } from './kv/store.js';
export type { KvResult } from './kv/store.js';
export { startKvServer } from './api/server.js';
export type { KvServer, KvServerOptions } from './api/server.js';
export { PaxlogClient } from './api/client.js';
export type { ClientAnswer } from './api/client.js';
export type { ClientReadMode } from './api/client-protocol.js';
export type { PeerAddress } from './transport/peers.js';
export { parsePeers, PeerListError } from './transport/addresses.js';
export type { ProtocolName, ReadMode } from './protocol/types.js';

export interface CreateNodeOptions<R> extends Omit<NodeOptions<R>, 'peers' | 'logger'> {
  /** Every member's peer address, this node's included: a map, or '1=127.0.0.1:7001,2=...'. */
  peers: Map<number, PeerAddress> | string;
  /** Default: pino at level 'warn' on stdout. */
  logger?: Logger;
}

/**
 * Open (recovering from dataDir), listen on this node's peer port, dial the others; resolves once
 * the state machine has applied everything the log held as chosen (PaxlogNode.replayed()).
 */
export async function createNode<R>(opts: CreateNodeOptions<R>): Promise<PaxlogNode<R>> {
  const peers = typeof opts.peers === 'string' ? parsePeers(opts.peers) : opts.peers;
  const logger = opts.logger ?? pino({ level: 'warn', base: { node: opts.id } });
  const node = PaxlogNode.open<R>({ ...opts, peers, logger });
  await node.start();
  await node.replayed();
  return node;
}
