// Runs every scenario file under test/testdata/<protocol>/ against that protocol, for every
// protocol in the registry. PAXLOG_REWRITE=1 rewrites the expected outputs instead of checking.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { protocols } from '../src/sim/protocols.js';
import { runScenarioFile } from '../src/sim/scenario.js';

// dist/test/scenario.test.js -> <repo>/test/testdata
const testdata = fileURLToPath(new URL('../../test/testdata/', import.meta.url));
const rewrite = process.env.PAXLOG_REWRITE === '1';

for (const name of Object.keys(protocols)) {
  const dir = join(testdata, name);
  if (!existsSync(dir)) continue;
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.txt')).sort()) {
    test(`${name} scenario ${file} prints what its file expects`, () => {
      const { file: f, actual } = runScenarioFile(join(dir, file), name, rewrite);
      if (rewrite) return;
      f.blocks.forEach((b, i) => {
        assert.equal(actual[i], b.expected, `${file}:${b.line}: "${b.command}" printed differently`);
      });
    });
  }
}
