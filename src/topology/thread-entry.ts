import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';

/**
 * How to start a worker thread on the module `name` beside `base` (the caller's import.meta.url): the built
 * module (dist/) as it is; from source (tsx), a two-line bootstrap that registers tsx's loader in the new
 * thread first (a worker thread does not inherit the loader that `--import tsx` registered in the main thread).
 */
export function threadEntry(base: string, name: string): URL {
  if (!base.endsWith('.ts')) return new URL(`./${name}.js`, base);
  // tsx's package exports './esm/api' (import) as this file.
  const tsx = pathToFileURL(join(dirname(createRequire(base).resolve('tsx/package.json')), 'dist/esm/api/index.mjs')).href;
  const entry = new URL(`./${name}.ts`, base).href;
  return new URL(`data:text/javascript,${encodeURIComponent(`import { register } from ${JSON.stringify(tsx)};\nregister();\nawait import(${JSON.stringify(entry)});`)}`);
}
