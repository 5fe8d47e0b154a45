// The peer list as users write it: `1=127.0.0.1:7001,2=127.0.0.1:7002,3=127.0.0.1:7003` (IPv6: `1=[::1]:7001`).

import net from 'node:net';
import type { PeerAddress } from './peers.js';

/** The characters of a host name (or IPv4 address) as peers and listen hosts are written: none that a URL reads as syntax. */
const hostNameChars = '[A-Za-z0-9._-]';

/** A host as a URL's authority writes it: an IPv6 address in brackets. */
export const hostInUrl = (host: string): string => (host.includes(':') ? `[${host}]` : host);

/** A peer list that does not parse; the message says which entry and why. */
export class PeerListError extends Error {
  override name = 'PeerListError';
}

/** ID=HOST:PORT, HOST a host name, an IPv4 address, or an IPv6 address in brackets. */
const peerPattern = new RegExp(`^(\\d+)=(?:\\[([0-9A-Fa-f:.]+)\\]|(${hostNameChars}+)):(\\d+)$`);

/** Every member's id and peer address; throws PeerListError on anything malformed. */
export function parsePeers(text: string): Map<number, PeerAddress> {
  const peers = new Map<number, PeerAddress>();
  for (const part of text.split(',').map((p) => p.trim()).filter((p) => p !== '')) {
    // A host name, an IPv4 address, or an IPv6 address in brackets: the host goes into a ws:// URL
    // (hostInUrl), where '/', '@', '?' or '#' would name another host, port or path than the one written.
    const m = peerPattern.exec(part);
    if (m === null) throw new PeerListError(`"${part}" is not ID=HOST:PORT (e.g. 1=127.0.0.1:7001, or 1=[::1]:7001)`);
    if (m[2] !== undefined && !net.isIPv6(m[2])) throw new PeerListError(`"${part}": [${m[2]}] is not an IPv6 address`);
    const id = Number(m[1]);
    const port = Number(m[4]);
    if (!Number.isInteger(id) || id < 1 || id > 65535) throw new PeerListError(`node id ${m[1]} is not in 1..65535`);
    if (port < 1 || port > 65535) throw new PeerListError(`port ${m[4]} is not in 1..65535`);
    if (peers.has(id)) throw new PeerListError(`node id ${id} appears twice`);
    const host = m[2] ?? m[3];
    // Two members at one address: each dials itself for the other, and no link ever comes up.
    const twin = [...peers].find(([, a]) => a.port === port && a.host.toLowerCase() === host.toLowerCase());
    if (twin !== undefined) throw new PeerListError(`nodes ${twin[0]} and ${id} have the same address ${part.slice(part.indexOf('=') + 1)}`);
    peers.set(id, { host, port });
  }
  if (peers.size === 0) throw new PeerListError('no peers given');
  // The slot window's ack bitsets cover 32 members.
  if (peers.size > 32) throw new PeerListError(`${peers.size} peers; at most 32`);
  return peers;
}

/** A host name (or IPv4 address) to listen on: at most 253 characters, as DNS allows. */
const listenHostPattern = new RegExp(`^${hostNameChars}{1,253}$`);

/**
 * Whether `host` is an address a node may listen on: an IPv4 or IPv6 address (no brackets; '0.0.0.0'
 * or '::' for every interface) or a host name, as a peer address's host is written.
 */
export const isListenHost = (host: unknown): host is string =>
  typeof host === 'string' && (net.isIP(host) !== 0 || listenHostPattern.test(host));
