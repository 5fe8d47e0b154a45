// Directories for data and results, made without Node's recursive mkdirSync.

import fs from 'node:fs';
import path from 'node:path';

/**
 * Make a directory and any missing parents, failing with the first mkdir's error. Node 20's
 * recursive mkdirSync spins for ever where a parent cannot hold directories (under /proc).
 * Returns the directories it made, outermost first.
 */
export function makeDirs(dir: string): string[] {
  const missing: string[] = [];
  for (let d = path.resolve(dir); !fs.existsSync(d); d = path.dirname(d)) {
    missing.push(d);
    if (path.dirname(d) === d) break;
  }
  const made: string[] = [];
  for (const d of missing.reverse()) {
    try {
      fs.mkdirSync(d);
      made.push(d);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || !fs.statSync(d).isDirectory()) throw err;
    }
  }
  return made;
}
