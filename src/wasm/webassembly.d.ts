// The part of the WebAssembly JavaScript API this project uses, as Node 20 provides it. The
// compiler loads no DOM types (tsconfig.json's lib is ES2022 alone): those declare browser globals
// such as `name` that do not exist in Node, and a stray `name` once type-checked and broke every
// node's start. @types/node 20 declares no WebAssembly, so these few lines do.

declare namespace WebAssembly {
  interface ModuleImportDescriptor {
    module: string;
    name: string;
    kind: 'function' | 'table' | 'memory' | 'global';
  }
  class Module {
    constructor(bytes: Uint8Array);
    static imports(module: Module): ModuleImportDescriptor[];
  }
  class Memory {
    constructor(descriptor: { initial: number; maximum?: number });
    readonly buffer: ArrayBuffer;
    /** Grows by `delta` pages of 64 KiB; returns the old size in pages; throws a RangeError past the maximum. */
    grow(delta: number): number;
  }
  type ExportValue = Function | Memory;
  type Exports = Record<string, ExportValue>;
  type ImportValue = Function | Memory | number;
  type Imports = Record<string, Record<string, ImportValue>>;
  class Instance {
    constructor(module: Module, imports?: Imports);
    readonly exports: Exports;
  }
}
