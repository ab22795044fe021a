/**
 * Regenerates the committed interface catalogue from the published DIP API.
 *   npm run catalogue:generate [-- <spec-dir> [<out-file>]]
 * The spec directory defaults to ../shared/reference/dip-api-2.1.0; the third-party sender/receiver
 * table is read from beside it when present.
 */
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { importCatalogue } from '../src/catalogue/spec-import.js';

const specDir = resolve(process.argv[2] ?? '../shared/reference/dip-api-2.1.0');
const outFile = resolve(process.argv[3] ?? fileURLToPath(new URL('../src/catalogue/generated/catalogue-2.1.0.json', import.meta.url)));

const result = await importCatalogue(specDir, outFile);
for (const w of result.warnings) console.warn(`warning: ${w}`);
const { apiVersion, channels } = result.document;
console.log(`catalogue ${apiVersion}: ${channels.length} channels, ${result.bytes} bytes → ${result.outFile}`);
