// Loads uWebSockets.js's native binary, and only that.
//
// The package's own entry point (src/uws.js) silently falls back to a pure-JS imitation when the
// binary does not fit this Node.js build. That fallback is slower by an order of magnitude and
// behaves differently under backpressure, so a benchmark on it would measure the wrong thing.
// We resolve the binary for this platform, architecture and ABI ourselves and refuse to start
// without it.

import { createRequire } from 'node:module';
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
