#!/usr/bin/env node
// The `dip` command (npm link / npx / the published package): runs the compiled build in dist/ when
// there is one (npm run build; the published package ships only that), else the TypeScript sources
// through tsx, as `npm run dip` does (node --import tsx).
import { existsSync, readdirSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const compiled = new URL('../dist/cli/main.js', import.meta.url);
const sources = fileURLToPath(new URL('../src', import.meta.url));

if (existsSync(compiled)) {
  // In a working copy, a build older than the sources would run yesterday's code without a word.
  if (existsSync(sources) && newestMtime(sources) > statSync(compiled).mtimeMs) {
    process.stderr.write('dip: dist/ is older than src/; running it anyway (npm run build to refresh, or delete dist/)\n');
  }
  await import(compiled.href);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import('../src/cli/main.ts');
}

function newestMtime(dir) {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile() && entry.name.endsWith('.ts')) newest = Math.max(newest, statSync(`${entry.parentPath}/${entry.name}`).mtimeMs);
  }
  return newest;
}
