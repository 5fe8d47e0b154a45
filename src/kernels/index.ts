// The kernels' entry point. Everything above the kernels imports `loadKernels` from here and
// codes against the `Kernels` interface, never against one face.

import type { KernelKind, Kernels } from './types.js';
import { createJsKernels } from './js/index.js';

export * from './types.js';
export { FRAME_BYTES_MAX, HEADER_BYTES, RECORD_HEADER_BYTES } from './layout.js';

let wasmFactory: (() => Kernels) | null = null;

/** Called by src/wasm once its face exists; kept as a hook so this file never imports a missing module. */
export const registerWasmKernels = (factory: () => Kernels): void => {
  wasmFactory = factory;
};

/**
 * The kernels of the given kind. 'wasm' (the default) loads build/paxlog.wasm once per call site
 * that asks; 'js' is the TypeScript twin. Synchronous.
 */
export const loadKernels = (kind: KernelKind = 'wasm'): Kernels => {
  if (kind === 'js') return createJsKernels();
  if (kind === 'wasm') {
    if (wasmFactory === null) throw new Error('WASM kernels are not available yet: use loadKernels("js")');
    return wasmFactory();
  }
  throw new Error(`unknown kernels kind ${JSON.stringify(kind)}: expected "wasm" or "js"`);
};
