// The soak's flag defaults, in one place: `paxlog soak` (src/cli.ts) shows them in its help, and
// parseSoakArgs (main.ts) applies them. Kept apart from main.ts so the CLI need not load the soak.

import { defaultConfig } from '../protocol/types.js';

/** The nodes' tick in the soak (serve --tick-ms). */
export const soakTickMs = 20;
/** The core's default electionTicksMax, in ms at soakTickMs. */
export const soakElectionTimeoutMs = defaultConfig(1, [1]).electionTicksMax * soakTickMs;

/** Each flag's default, as its text. */
export const soakDefaults = {
  minutes: '1',
  protocol: 'multipaxos',
  nodes: '3',
  seed: '1',
  'base-port': '23700',
  'snapshot-slots': '500',
  'recovery-bound-ms': String(2 * soakElectionTimeoutMs),
} as const;
