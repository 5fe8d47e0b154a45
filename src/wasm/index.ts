// The WASM face of the kernels (see kernels.ts); loadKernels('wasm') in src/kernels builds one.
export { WasmKernels, createWasmKernels } from './kernels.js';
export { WasmHeap, paxlogModule, HEAP_BYTES_MAX } from './heap.js';
