// What an application plugs into a paxlog node: a deterministic state machine.

/**
 * Every node calls `apply` with the same commands in the same order (slot order, then the
 * order inside each slot's batch), exactly once per command since the last `restore`.
 * `apply` must be deterministic: the result may depend only on the state and the command.
 */
export interface StateMachine<R = unknown> {
  /** Apply one command; the result goes back to the client that proposed it. Must not throw on bad bytes. */
  apply(command: Uint8Array, slot: number): R;
  /**
   * Optional, for speed: the n commands bytes[starts[i], ends[i]) in order, exactly as n calls of
   * apply(bytes.subarray(starts[i], ends[i]), slot) would, their results in results[0..n). A node
   * calls it once per slot when present (no view and no call per command).
   */
  applyMany?(bytes: Uint8Array, starts: Uint32Array, ends: Uint32Array, n: number, slot: number, results: R[]): void;
  /** The whole state as bytes; `restore(snapshot())` must give an equal state. */
  snapshot(): Uint8Array;
  /**
   * Optional: the same bytes, of the state at the moment of the call, serialized without holding
   * up the event loop for long (applies go on meanwhile). A node uses it when present: a big
   * state serialized in one go stalls the node for as long, and its peers may take it for dead.
   */
  snapshotAsync?(): Promise<Uint8Array>;
  /** Replace the whole state; throw on bytes it cannot read. */
  restore(bytes: Uint8Array): void;
}
