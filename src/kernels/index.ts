// The kernels' entry point. Everything above the kernels imports `loadKernels` from here and
// codes against the `Kernels` interface, never against one face.

import type { KernelKind, Kernels } from './types.js';
import { createJsKernels } from './js/index.js';
import { createWasmKernels } from '../wasm/kernels.js';

export * from './types.js';
export { FRAME_BYTES_MAX, HEADER_BYTES, RECORD_HEADER_BYTES } from './layout.js';

/**
 * New kernels of the given kind, synchronously. 'wasm' (the default) instantiates the module
 * (compiled once per process from build/paxlog.wasm) with its own memory; 'js' is the TypeScript
 * twin. Each call returns an independent object: views it returns (encode, encodeRecord) are
 * only overwritten by calls on the same object.
 */
export const loadKernels = (kind: KernelKind = 'wasm'): Kernels => {
  if (kind === 'wasm') return createWasmKernels();
  if (kind === 'js') return createJsKernels();
  throw new Error(`unknown kernels kind ${JSON.stringify(kind)}: expected "wasm" or "js"`);
};
