import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Catalogue, importCatalogue, MAX_COLLECTED_ERRORS, type ValidationResult } from '../src/catalogue/catalogue.js';
import { buildCatalogue, serialiseCatalogue } from '../src/catalogue/spec-import.js';
import { buildIF021, mpanCore } from '../src/sim/messages.js';
import { HAVE_REFERENCE, REFERENCE } from './helpers/reference.js';

const COMMITTED = fileURLToPath(new URL('../src/catalogue/generated/catalogue-2.1.0.json', import.meta.url));

const catalogue = Catalogue.load();

const SENDER = '1401234567';
function item(overrides: Partial<Parameters<typeof buildIF021>[0]> = {}) {
  return buildIF021({
    senderDipId: SENDER,
    senderRole: 'SDS',
    uniqueSuffix: 'abc123',
    primaryRecipients: ['2201234567'],
    settlementDate: '2026-01-01',
    now: new Date('2026-01-02T09:15:00Z'),
    ...overrides,
  });
}

/** A deep copy, loose enough to break on purpose. */
function mutable(value: unknown): any {
  return structuredClone(value);
}

function errorsOf(r: ValidationResult) {
  if (r.ok) throw new Error('expected the message to be rejected');
  return r.errors;
}

describe('generated catalogue', () => {
  it.skipIf(!HAVE_REFERENCE)('has a channel for every payload the published spec defines', () => {
    // Counted straight from the YAML text, not through the generator's resolver.
    const yaml = readFileSync(`${REFERENCE}/Interfaces-EventCodes-unresolved.yaml`, 'utf8');
    const inSpec = [...yaml.matchAll(/^ {4}((?:IF|REP)-\d{3}[A-Z]?)-Payload:/gm)].map((m) => m[1]);
    expect(inSpec.length).toBeGreaterThan(50);
    const ids = catalogue.channels().map((c) => c.interfaceId);
    expect([...ids].sort()).toEqual([...new Set(inSpec)].sort());
  });

  it.skipIf(!HAVE_REFERENCE)('regenerates byte for byte from the reference spec', () => {
    const { document } = buildCatalogue(REFERENCE);
    expect(serialiseCatalogue(document) === readFileSync(COMMITTED, 'utf8')).toBe(true);
  });

  it.skipIf(!HAVE_REFERENCE)('keeps the current roles when importing a spec without the sender/receiver table', async () => {
    const out = join(mkdtempSync(join(tmpdir(), 'opendip-catalogue-')), 'catalogue.json');
    const result = await importCatalogue(REFERENCE, out, { rolesTable: join(tmpdir(), 'no-such-table.md') });
    expect(result.warnings.some((w) => w.includes('no sender/receiver table'))).toBe(true);
    const imported = Catalogue.fromFile(out);
    const summary = (c: Catalogue) => c.channels().map((d) => [d.interfaceId, d.senderRoles, d.receiverRoles, d.routingModes]);
    expect(summary(imported)).toEqual(summary(catalogue));
  });

  it('describes IF-021 with its event codes, roles and routing', () => {
    const c = catalogue.channel('if-021');
    expect(c).toMatchObject({
      interfaceId: 'IF-021',
      publicationId: 'PUB-021',
      eventCodes: ['ActivePower', 'ReactivePower'],
      schemaVersions: ['011'],
      senderRoles: ['SDS', 'ADS', 'UMSDS'],
      receiverRoles: ['LSS', 'MDS', 'LDSO', 'SUP'],
    });
    expect(c?.routingModes).toEqual(expect.arrayContaining(['primary', 'secondary', 'always']));
    expect(catalogue.version).toBe('2.1.0');
  });

  it('returns undefined for an unknown channel and rejects messages on it', () => {
    expect(catalogue.channel('IF-999')).toBeUndefined();
    expect(errorsOf(catalogue.validate('IF-999', item()))[0]?.rule).toBe('channel');
  });

  it('compiles every channel schema, and rejects an empty payload on each', () => {
    for (const c of catalogue.channels()) {
      const errors = errorsOf(catalogue.validate(c.interfaceId, { payload: {} }));
      expect(errors.length, c.interfaceId).toBeGreaterThan(0);
      expect(errors.every((e) => e.path.startsWith('payload')), c.interfaceId).toBe(true);
    }
  });

  it('gives every channel roles, event codes and at least one routing mode', () => {
    for (const c of catalogue.channels()) {
      expect(c.eventCodes.length, c.interfaceId).toBeGreaterThan(0);
      expect(c.eventCodes.every((e) => !e.startsWith('[')), c.interfaceId).toBe(true);
      expect(c.senderRoles.length, c.interfaceId).toBeGreaterThan(0);
      expect(c.receiverRoles.length, c.interfaceId).toBeGreaterThan(0);
      expect(c.routingModes.length, c.interfaceId).toBeGreaterThan(0);
    }
  });
});

describe('IF-021 validation', () => {
  it('accepts what buildIF021 builds, both event codes, with and without A0', () => {
    for (const eventCode of ['ActivePower', 'ReactivePower'] as const) {
      for (const primaryRecipients of [['2201234567'], undefined]) {
        const m = item({ eventCode, primaryRecipients });
        const r = catalogue.validate('IF-021', m);
        expect(r.ok ? [] : r.errors).toEqual([]);
        expect(r).toMatchObject({ ok: true, eventCode, schemaVersion: '011' });
        if (r.ok) expect(r.message).toBe(m); // already exact: passed through untouched
      }
    }
    const m = item();
    const periods = m.payload.CustomBlock.B900.settlementDayConsumptionPeriods[0]?.consumptionPeriods ?? [];
    expect(periods).toHaveLength(48);
    expect(periods[47]?.sp).toBe('2026-01-02T00:00:00+00:00');
    expect(m.payload.CommonBlock.S1.senderTimestamp).toBe('2026-01-02T09:15:00+00:00');
    expect(m.payload.CommonBlock.S1.senderUniqueReference).toBe(`S-IF-021-${SENDER}-SDS-20260102-abc123`);
  });

  it('accepts field names in any case and returns them in the spec case', () => {
    const exact = item();
    const lower = JSON.parse(JSON.stringify(exact).replace(/"([A-Z0-9]+)":/gi, (_m, k: string) => `"${k.toLowerCase()}":`));
    expect(lower.payload.commonblock.s1.senderdipid).toBe(SENDER);
    const r = catalogue.validate('IF-021', lower);
    expect(r.ok).toBe(true);
    if (r.ok) expect(JSON.stringify(r.message)).toBe(JSON.stringify(exact));

    const mixed = mutable(exact);
    mixed.Payload = mixed.payload;
    delete mixed.payload;
    mixed.Payload.commonBLOCK = mixed.Payload.CommonBlock;
    delete mixed.Payload.CommonBlock;
    const r2 = catalogue.validate('IF-021', mixed);
    expect(r2.ok).toBe(true);
    if (r2.ok) expect(r2.message).toEqual(exact);
  });

  it('returns an exact message itself, and any mix of cases (at any key, in any position) in the spec case and order', () => {
    const exact = item();
    const r = catalogue.validate('IF-021', exact);
    expect(r.ok && r.message).toBe(exact); // nothing to rewrite: not even a copy
    const text = JSON.stringify(exact);
    const keys = [...text.matchAll(/"[a-z0-9]+":/gi)].length;
    fc.assert(
      fc.property(fc.array(fc.constantFrom('keep', 'lower', 'upper'), { minLength: keys, maxLength: keys }), (cases) => {
        let k = 0;
        const scrambled = text.replace(/"([a-z0-9]+)":/gi, (_m, key: string) => {
          const c = cases[k++];
          return `"${c === 'lower' ? key.toLowerCase() : c === 'upper' ? key.toUpperCase() : key}":`;
        });
        const v = catalogue.validate('IF-021', JSON.parse(scrambled));
        expect(v.ok).toBe(true);
        if (v.ok) expect(JSON.stringify(v.message)).toBe(text);
      }),
      { numRuns: 200 },
    );
  });

  it('rejects a field given twice in different cases', () => {
    const m = mutable(item());
    m.payload.CommonBlock.M0.mpancore = m.payload.CommonBlock.M0.MPANCore;
    expect(errorsOf(catalogue.validate('IF-021', m))).toContainEqual(
      expect.objectContaining({ path: 'payload.CommonBlock.M0.MPANCore', rule: 'duplicateKey' }),
    );
  });

  it('names a missing required block', () => {
    const m = mutable(item());
    delete m.payload.CustomBlock.B900;
    delete m.payload.CommonBlock.M0;
    const errors = errorsOf(catalogue.validate('IF-021', m));
    expect(errors).toContainEqual(expect.objectContaining({ path: 'payload.CustomBlock.B900', rule: 'required' }));
    expect(errors).toContainEqual(expect.objectContaining({ path: 'payload.CommonBlock.M0', rule: 'required' }));
    expect(errors.find((e) => e.path === 'payload.CustomBlock.B900')?.message).toMatch(/payload\.CustomBlock\.B900.*required/);
  });

  it('names the field whose pattern fails', () => {
    const m = mutable(item());
    m.payload.CommonBlock.S1.senderUniqueReference = 'S-IF-021-not-hex-SDS-20260102-x';
    const errors = errorsOf(catalogue.validate('IF-021', m));
    expect(errors).toEqual([expect.objectContaining({ path: 'payload.CommonBlock.S1.senderUniqueReference', rule: 'pattern' })]);
    expect(errors[0]?.message).toContain('payload.CommonBlock.S1.senderUniqueReference must match pattern ^S-');
  });

  it('rejects extra fields with their path', () => {
    const m = mutable(item());
    m.payload.CommonBlock.S1.colour = 'blue';
    m.payload.CustomBlock.B900.settlementDayConsumptionPeriods[0].consumptionPeriods[5].extra = 1;
    const errors = errorsOf(catalogue.validate('IF-021', m));
    expect(errors).toContainEqual(expect.objectContaining({ path: 'payload.CommonBlock.S1.colour', rule: 'additionalProperties' }));
    expect(errors).toContainEqual(
      expect.objectContaining({
        path: 'payload.CustomBlock.B900.settlementDayConsumptionPeriods[0].consumptionPeriods[5].extra',
        rule: 'additionalProperties',
      }),
    );
  });

  it('rejects values outside an enum, and event codes of another channel', () => {
    const m = mutable(item());
    m.payload.CommonBlock.M0.GSPGroupID = '_Z';
    m.payload.CommonBlock.S1.environmentTag = 'PROD';
    const errors = errorsOf(catalogue.validate('IF-021', m));
    expect(errors).toContainEqual(expect.objectContaining({ path: 'payload.CommonBlock.M0.GSPGroupID', rule: 'enum' }));
    expect(errors).toContainEqual(expect.objectContaining({ path: 'payload.CommonBlock.S1.environmentTag', rule: 'enum' }));

    const wrongCode = mutable(item());
    wrongCode.payload.CommonBlock.S0.eventCode = '[LSSPeriodData]';
    expect(errorsOf(catalogue.validate('IF-021', wrongCode))).toContainEqual(
      expect.objectContaining({ path: 'payload.CommonBlock.S0.eventCode', rule: 'enum' }),
    );
    const unbracketed = mutable(item());
    unbracketed.payload.CommonBlock.S0.eventCode = 'ActivePower';
    expect(catalogue.validate('IF-021', unbracketed).ok).toBe(false);
  });

  it('rejects an interfaceID that is not the channel it was sent on', () => {
    const m = mutable(item());
    m.payload.CommonBlock.S0.interfaceID = 'IF-022';
    const errors = errorsOf(catalogue.validate('IF-021', m));
    expect(errors).toContainEqual(expect.objectContaining({ path: 'payload.CommonBlock.S0.interfaceID', rule: 'enum' }));
    expect(errors.find((e) => e.path === 'payload.CommonBlock.S0.interfaceID')?.message).toContain('IF-021');
    // The same, seen from the other side: a good IF-021 posted to IF-022.
    expect(errorsOf(catalogue.validate('IF-022', item()))).toContainEqual(
      expect.objectContaining({ path: 'payload.CommonBlock.S0.interfaceID', rule: 'enum' }),
    );
  });

  it('checks types, lengths and nullability, and caps the error list', () => {
    const m = mutable(item());
    m.payload.CommonBlock.S1.senderTimestamp = '2026-01-02T09:15:00Z';
    m.payload.CommonBlock.S1.subText = null; // nullable
    m.payload.CommonBlock.S1.senderDIPID = null; // not nullable
    for (const p of m.payload.CustomBlock.B900.settlementDayConsumptionPeriods[0].consumptionPeriods) p.v = 1.5;
    const errors = errorsOf(catalogue.validate('IF-021', m));
    expect(errors.length).toBeLessThanOrEqual(10);
    expect(errors).toContainEqual(expect.objectContaining({ path: 'payload.CommonBlock.S1.senderTimestamp', rule: 'minLength' }));
    expect(errors).toContainEqual(expect.objectContaining({ path: 'payload.CommonBlock.S1.senderDIPID', rule: 'type' }));
    expect(errors.some((e) => e.path === 'payload.CommonBlock.S1.subText')).toBe(false);
    expect(new Set(errors.map((e) => `${e.path}|${e.rule}`)).size).toBe(errors.length);
  });

  it('keeps an envelope problem when more than ten deeper problems are found (shallowest first, then cut)', () => {
    const m = mutable(item());
    m.payload.CommonBlock.S1.senderTimestamp = '2026-01-02T09:15:00Z';
    // Eleven distinct problems in the CustomBlock, each deeper than the CommonBlock's.
    const period = m.payload.CustomBlock.B900.settlementDayConsumptionPeriods[0].consumptionPeriods[0];
    for (let i = 0; i < 11; i++) period[`extra${i}`] = i;
    const errors = errorsOf(catalogue.validate('IF-021', m));
    expect(errors).toHaveLength(10);
    expect(errors[0]).toEqual(expect.objectContaining({ path: 'payload.CommonBlock.S1.senderTimestamp', rule: 'minLength' }));
    // The rest in the order the validator found them.
    expect(errors.slice(1).map((e) => e.path.split('.').pop())).toEqual([...Array(9).keys()].map((i) => `extra${i}`));
  });

  it('keeps the shallowest of more than ten fields given twice, wherever it was sent', () => {
    const m = mutable(item());
    // CustomBlock sent before CommonBlock, so its problems are found first.
    m.payload = { CustomBlock: m.payload.CustomBlock, CommonBlock: m.payload.CommonBlock };
    const periods: Array<Record<string, unknown>> = m.payload.CustomBlock.B900.settlementDayConsumptionPeriods[0].consumptionPeriods;
    for (const p of periods.slice(0, 11)) p['SP'] = p['sp'];
    m.payload.CommonBlock.S1.SENDERDIPID = m.payload.CommonBlock.S1.senderDIPID;
    const errors = errorsOf(catalogue.validate('IF-021', m));
    expect(errors).toHaveLength(10);
    expect(errors[0]).toEqual(expect.objectContaining({ path: 'payload.CommonBlock.S1.senderDIPID', rule: 'duplicateKey' }));
    expect(errors[1]?.path).toBe('payload.CustomBlock.B900.settlementDayConsumptionPeriods[0].consumptionPeriods[0].sp');
  });

  it('reports the payload shape when the item is not an object', () => {
    expect(errorsOf(catalogue.validate('IF-021', 'hello'))[0]?.rule).toBe('type');
    expect(errorsOf(catalogue.validate('IF-021', {}))).toEqual([expect.objectContaining({ path: 'payload', rule: 'required' })]);
  });
});

describe('per-event-code variants', () => {
  it('validates each IF-020 event code against its own variant (as the /validate endpoints do)', () => {
    const payload = catalogue.schema('IF-020')?.['properties'] as { payload: { allOf: Array<Record<string, any>> } };
    const branches = payload.payload.allOf.filter((b) => b['if']);
    const codesOf = (b: Record<string, any>): string[] => b['if'].properties.CommonBlock.properties.S0.properties.eventCode.enum;
    for (const code of ['[RelatedCreate]', '[RelatedAdd]', '[RelatedRemove]']) {
      expect(branches.filter((b) => codesOf(b).includes(code)), code).toHaveLength(1);
    }
  });

  it('rejects an event code no variant takes', () => {
    const m = { payload: { CommonBlock: { S0: { interfaceID: 'IF-020', schemaVersion: '011', eventCode: '[ActivePower]' } } } };
    expect(errorsOf(catalogue.validate('IF-020', m))).toContainEqual(
      expect.objectContaining({ path: 'payload.CommonBlock.S0.eventCode', rule: 'enum' }),
    );
  });
});

describe('MPAN cores', () => {
  // Written separately from the code under test: weights of the standard MPAN check digit.
  const weights = [3, 5, 7, 13, 17, 19, 23, 29, 31, 37, 41, 43];
  const checks = (core: string): boolean => {
    if (!/^\d{13}$/.test(core)) return false;
    const sum = weights.reduce((s, w, i) => s + w * Number(core.charAt(i)), 0);
    return (sum % 11) % 10 === Number(core.charAt(12));
  };

  it('generates cores an independent check accepts, and a corrupted digit fails it', () => {
    expect(checks('2000056535971')).toBe(true); // the spec's own example MPAN
    for (let seed = 0; seed < 300; seed++) {
      const core = mpanCore(seed);
      expect(checks(core), core).toBe(true);
      expect(mpanCore(seed)).toBe(core);
      const check = Number(core.charAt(12));
      expect(checks(core.slice(0, 12) + String((check + 1 + (seed % 9)) % 10))).toBe(false);
      // Any other digit in a body position: the weighted sum mod 11 moves, and only a 0↔10 move
      // survives the final mod 10, so at most one of the nine alternatives can slip through.
      const pos = seed % 12;
      const alternatives = [...'0123456789'].filter((d) => d !== core.charAt(pos));
      const passing = alternatives.filter((d) => checks(core.slice(0, pos) + d + core.slice(pos + 1)));
      expect(passing.length, core).toBeLessThanOrEqual(1);
    }
  });

  it('puts the MPAN in M0 with the GSP group of its distributor', () => {
    const core = '1234567890126';
    expect(checks(core)).toBe(true);
    const m = item({ mpan: core });
    expect(m.payload.CommonBlock.M0).toMatchObject({ MPANCore: core, GSPGroupID: '_C' });
    expect(catalogue.validate('IF-021', m).ok).toBe(true);
  });
});

describe('a message with very many faults', () => {
  it('is answered from the first MAX_COLLECTED_ERRORS of them, the rest counted: 5,000 extra fields are not all described', () => {
    const item = buildIF021({ senderDipId: '1000000001', senderRole: 'SDS', primaryRecipients: ['1000000002'], uniqueSuffix: 'manyfaults' }) as unknown as { payload: { CustomBlock: Record<string, unknown> } };
    // Five objects of 1,000 (the listener's per-object cap): the most a body that reaches validation can give one object.
    for (let i = 0; i < 5_000; i++) item.payload.CustomBlock[`extra${i}`] = 0;
    const v = Catalogue.load().validate('IF-021', item);
    expect(v.ok).toBe(false);
    if (v.ok) return;
    expect(v.errors).toHaveLength(10);
    expect(v.count).toBe(5_000);
    expect(v.paths.size).toBeLessThanOrEqual(MAX_COLLECTED_ERRORS);
    expect(v.errors[0]!.message).toBe('payload.CustomBlock.extra0 is not a field of payload.CustomBlock for event code ActivePower on IF-021; extra fields are not allowed');
  });
});

// A CustomBlock field of the channel that the message's event code does not allow was named "not a field of
// payload.CustomBlock on IF-001", though it is one for another event code: the help names the event code.
describe('a CustomBlock field not allowed for the message\'s event code', () => {
  it('the help names the event code', async () => {
    const { exampleMessage } = await import('../src/catalogue/examples.js');
    const schema = catalogue.schema('IF-001');
    if (!schema) throw new Error('no IF-001 schema');
    const message = exampleMessage(schema, 'InitialRegistration') as { payload: { CustomBlock: Record<string, unknown> } };
    message.payload.CustomBlock['B003'] = {};
    const r = catalogue.validate('IF-001', message);
    expect(r.ok).toBe(false);
    const about = r.ok ? [] : r.errors.filter((e) => e.path === 'payload.CustomBlock.B003').map((e) => e.message);
    expect(about).toEqual(['payload.CustomBlock.B003 is not a field of payload.CustomBlock for event code InitialRegistration on IF-001; extra fields are not allowed']);
  });
});
