import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Catalogue } from '../src/catalogue/catalogue.js';
import { schemaKeys, securityCategoryTable, suggestSecurityCategory } from '../src/catalogue/security-category.js';
import type { JsonSchema } from '../src/catalogue/types.js';
import { loadConfig } from '../src/config.js';
import { channelRouting, patternInForce } from '../src/pipeline/channels.js';
import { buildIF021 } from '../src/sim/messages.js';
import { startTestDip } from './helpers/dip-harness.js';

const catalogue = Catalogue.load();

/** A schema in the generated catalogue's shape: blocks in `definitions`, reached by `$ref`. */
const schema = (custom: Record<string, string[]>, common: string[] = ['M0']): JsonSchema => ({
  type: 'object',
  properties: {
    payload: {
      type: 'object',
      properties: {
        CommonBlock: { type: 'object', properties: Object.fromEntries(common.map((b) => [b, { $ref: `#/definitions/${b}` }])) },
        CustomBlock: { type: 'object', properties: Object.fromEntries(Object.keys(custom).map((b) => [b, { $ref: `#/definitions/${b}` }])) },
      },
    },
  },
  definitions: {
    M0: { type: 'object', properties: { MPANCore: { type: 'string' }, GSPGroupID: { type: 'string' } } },
    ...Object.fromEntries(Object.entries(custom).map(([b, keys]) => [b, { type: 'object', properties: Object.fromEntries(keys.map((k) => [k, { type: 'string' }])) }])),
  },
});

describe('suggested security categories (spec 5.2.2)', () => {
  it('follows $refs to every key the schema can carry', () => {
    expect([...schemaKeys(schema({ B1: ['addressLine1'] }))].sort()).toEqual(['B1', 'CommonBlock', 'CustomBlock', 'GSPGroupID', 'M0', 'MPANCore', 'addressLine1', 'payload']);
  });

  it('applies the rule, first match wins, naming the evidence', () => {
    expect(suggestSecurityCategory(schema({ B1: ['energisationStatus'] }))).toEqual({ category: 2, evidence: ['MPANCore (DI-063)'] });
    expect(suggestSecurityCategory(schema({ B1: ['meteringPointPostcode'] }))).toMatchObject({ category: 3, evidence: ['MPANCore (DI-063)', 'meteringPointPostcode (DI-010)'] });
    expect(suggestSecurityCategory(schema({ B1: ['addressLine3'] }, []))).toMatchObject({ category: 3 }); // personal data without an MPAN
    expect(suggestSecurityCategory(schema({ B1: ['v', 'addressLine1'] }))).toMatchObject({ category: 4 });
    // Consumption without an MPAN is an aggregate: public by the rule, listed for review.
    expect(suggestSecurityCategory(schema({ B1: ['totalUncorrectedVolume', 'v'] }, []))).toEqual({ category: 1, evidence: ['totalUncorrectedVolume (aggregated)'] });
    expect(suggestSecurityCategory(schema({ B1: ['publicationDate'] }, []))).toEqual({ category: 1, evidence: [] });
  });

  it.each([
    ['IF-021', 4],
    ['IF-041', 4],
    ['IF-001', 4],
    ['IF-033', 3],
    ['IF-031', 2],
    ['IF-037', 2],
    ['IF-022', 1],
    ['IF-047', 1],
    ['REP-002', 1],
  ] as const)('%s is suggested category %i', (id, category) => {
    expect(catalogue.suggestedSecurityCategory(id)?.category).toBe(category);
  });

  it('is shipped for review as docs/security-categories.md, generated from the committed catalogue', () => {
    const committed = readFileSync(new URL('../docs/security-categories.md', import.meta.url), 'utf8');
    expect(committed, 'docs/security-categories.md is out of date: npm run catalogue:categories').toBe(securityCategoryTable(catalogue));
    expect(committed.match(/^\| (?:IF|REP)-/gm)).toHaveLength(catalogue.channels().length);
  });
});

describe('the pattern in force', () => {
  const def = catalogue.channel('IF-021')!;

  it('stays pattern 1 unless the operator opts in; configuration beats the suggestion', () => {
    expect(channelRouting(def, undefined, 1).securityPattern).toBe(1);
    expect(channelRouting(def, undefined, 1, 4).securityPattern).toBe(2);
    expect(channelRouting(def, undefined, 1, 1).securityPattern).toBe(1);
    expect(channelRouting(def, { securityCategory: 1 }, 1, 4).securityPattern).toBe(1);
    expect(channelRouting(def, { securityPattern: 3 }, 1, 4).securityPattern).toBe(3);
  });

  it('runs pattern 0 ("no security action") as pattern 1: every call stays signed', () => {
    expect(patternInForce({ securityPattern: 0 })).toBe(1);
    expect(channelRouting(def, { securityPattern: 0 }, 1, 4).securityPattern).toBe(1);
  });

  it('is opted into with applySuggestedSecurityCategories (off by default)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'opendip-cat-'));
    expect(loadConfig({ DIP_DATA_DIR: dir }).applySuggestedSecurityCategories).toBe(false);
    writeFileSync(join(dir, 'dip.config.yaml'), 'applySuggestedSecurityCategories: true\n');
    expect(loadConfig({ DIP_DATA_DIR: dir }).applySuggestedSecurityCategories).toBe(true);
  });

  it('a DIP that opted in wants IF-021 (category 4) encrypted to it; one that did not takes it signed', async () => {
    for (const apply of [true, false]) {
      const t = await startTestDip({ applySuggestedSecurityCategories: apply });
      try {
        const sds = await t.participant('2000000001', ['SDS']);
        await t.participant('1000000001', ['SUP']);
        const a = await sds.client.submit('IF-021', [buildIF021({ senderDipId: sds.dipId, senderRole: 'SDS', primaryRecipients: ['1000000001'], uniqueSuffix: `opt${apply}` })]);
        if (apply) {
          expect(a.status).toBe(400);
          expect(a.body.messageArray[0]!.help).toMatch(/security pattern 2/);
        } else expect(a.status).toBe(201);
      } finally {
        await t.close();
      }
    }
  });
});
