#!/usr/bin/env node
// The paxlog command; the code is built to dist/ by `npm run build`.
import { main } from '../dist/src/cli.js';

await main(process.argv);
