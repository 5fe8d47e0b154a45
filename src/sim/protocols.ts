// The protocols the scenario runner and the simulator can drive, by name. Each entry builds a
// core from ProtocolOptions; the Raft engineer adds 'raft' here.

import type { Protocol, ProtocolName, ProtocolOptions } from '../protocol/types.js';
import { MultiPaxos } from '../protocol/multipaxos/index.js';
import { Raft } from '../protocol/raft/index.js';

export type ProtocolFactory = (o: ProtocolOptions) => Protocol;

export const protocols: Partial<Record<ProtocolName, ProtocolFactory>> = {
  multipaxos: (o) => new MultiPaxos(o),
  raft: (o) => new Raft(o),
};

/** The factory for `name`, or a clear error naming the protocols there are. */
export const protocolFactory = (name: string): ProtocolFactory => {
  const f = (protocols as Record<string, ProtocolFactory | undefined>)[name];
  if (!f) throw new Error(`unknown protocol ${JSON.stringify(name)}: expected one of ${Object.keys(protocols).join(', ')}`);
  return f;
};
