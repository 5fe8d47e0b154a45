// Loads uWebSockets.js's native binary, and only that.
//
// The package's own entry point (src/uws.js) silently falls back to a pure-JS imitation when the
// binary does not fit this Node.js build. That fallback is slower by an order of magnitude and
// behaves differently under backpressure, so a benchmark on it would measure the wrong thing.
// We resolve the binary for this platform, architecture and ABI ourselves and refuse to start
// without it.

import fs from 'node:fs';
import { createRequire } from 'node:module';
import tls from 'node:tls';
import type * as Uws from '@trufflesuite/uws-js-unofficial';

export type UwsModule = typeof Uws;

/** uWS's native binary is missing or does not load: the node must not start. */
export class UwsUnavailableError extends Error {
  override name = 'UwsUnavailableError';
}

export interface UwsTarget {
  platform: string;
  arch: string;
  /** Node's ABI version (process.versions.modules). */
  modules: string;
}

const require = createRequire(import.meta.url);
let loaded: UwsModule | null = null;

/** The native uWS module for `target` (default: this process); throws UwsUnavailableError. */
export function loadNativeUws(target?: Partial<UwsTarget>): UwsModule {
  const t: UwsTarget = {
    platform: target?.platform ?? process.platform,
    arch: target?.arch ?? process.arch,
    modules: target?.modules ?? process.versions.modules,
  };
  const isThisProcess = t.platform === process.platform && t.arch === process.arch &&
    t.modules === process.versions.modules;
  if (isThisProcess && loaded !== null) return loaded;
  const name = `@trufflesuite/uws-js-unofficial/binaries/uws_${t.platform}_${t.arch}_${t.modules}.node`;
  let mod: UwsModule;
  try {
    mod = require(require.resolve(name)) as UwsModule;
  } catch (err) {
    throw new UwsUnavailableError(
      `uWebSockets.js has no native binary for ${t.platform}-${t.arch} with Node ABI ${t.modules} ` +
      `(${name}: ${(err as Error).message.split('\n')[0]}). paxlog refuses to run on the package's ` +
      `JavaScript fallback; use a Node.js version the package ships a binary for (18, 20).`,
    );
  }
  if (typeof mod.App !== 'function') {
    throw new UwsUnavailableError(`${name} loaded but exports no App: not a uWebSockets.js binary`);
  }
  if (isThisProcess) loaded = mod;
  return mod;
}

/** TLS for the node's uWS App (peers and clients) and for its outbound peer links. */
export interface TlsFiles {
  /** PEM certificate (chain) this node presents; it must name the host in --peers (an IP SAN for an address). */
  certFile: string;
  /** PEM private key of certFile. */
  keyFile: string;
  /** PEM CA certificate(s) that outbound links trust for peers; absent: the system's trust store. */
  caFile?: string;
}

/** The TLS files are missing, unreadable, or do not make a certificate and matching key. */
export class TlsConfigError extends Error {
  override name = 'TlsConfigError';
}

/**
 * Read and check the TLS files before anything listens: uWS's SSLApp does not say why a bad file
 * failed, so Node's TLS parses them first and a mistake gets a clear message. Returns the CA bytes.
 */
export function checkTlsFiles(t: TlsFiles): { ca?: Buffer } {
  const read = (what: string, file: string): Buffer => {
    try {
      return fs.readFileSync(file);
    } catch (e) {
      throw new TlsConfigError(`cannot read the TLS ${what} ${file}: ${(e as Error).message}`);
    }
  };
  const cert = read('certificate', t.certFile);
  const key = read('key', t.keyFile);
  const ca = t.caFile !== undefined ? read('CA', t.caFile) : undefined;
  try {
    tls.createSecureContext({ cert, key, ca });
  } catch (e) {
    // The message names what failed (a bad PEM, a key that does not match), never the key itself.
    throw new TlsConfigError(`the TLS files do not work together (${t.certFile}, ${t.keyFile}${t.caFile ? `, ${t.caFile}` : ''}): ${(e as Error).message}`);
  }
  return { ca };
}

/** A plain uWS App, or an SSLApp when TLS files are given (checked with checkTlsFiles first). */
export function createApp(uws: UwsModule, t?: TlsFiles): Uws.TemplatedApp {
  if (t === undefined) return uws.App();
  return uws.SSLApp({ cert_file_name: t.certFile, key_file_name: t.keyFile });
}
