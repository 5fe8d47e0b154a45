// A test state machine: the journal of every command applied, as text.

import type { StateMachine } from '../src/index.js';

/** Appends every command (as text) to a list; apply returns the list's new length. */
export class Journal implements StateMachine<number> {
  /** Every applied command, in apply order. */
  lines: string[] = [];
  /** How many times restore() ran. */
  restores = 0;

  apply(command: Uint8Array): number {
    this.lines.push(new TextDecoder().decode(command));
    return this.lines.length;
  }

  snapshot(): Uint8Array {
    return new TextEncoder().encode(JSON.stringify(this.lines));
  }

  restore(bytes: Uint8Array): void {
    this.lines = JSON.parse(new TextDecoder().decode(bytes)) as string[];
    this.restores++;
  }
}
