#!/usr/bin/env -S node --initial-old-space-size=256
// The paxlog command; the code is built to dist/ by `npm run build`. The flag on the #! line is
// src/node/v8-flags.ts's serveNodeFlags (a `serve` started without it logs a warning).
import { main } from '../dist/src/cli.js';

await main(process.argv);
