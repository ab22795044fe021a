/**
 * Writes docs/security-categories.md: the security category OpenDIP suggests for every interface of the
 * committed catalogue (spec 5.2.2), with the data items that decided it, for the operator to review.
 *   npm run catalogue:categories
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Catalogue } from '../src/catalogue/catalogue.js';
import { securityCategoryTable } from '../src/catalogue/security-category.js';

const out = fileURLToPath(new URL('../docs/security-categories.md', import.meta.url));
mkdirSync(dirname(out), { recursive: true });
writeFileSync(out, securityCategoryTable(Catalogue.load()));
console.log(`wrote ${out}`);
