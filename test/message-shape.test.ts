/**
 * Item 3 of issue 14: where a channel's published schema leaves a block untyped (many leave
 * `CommonBlock` without `type: object`), nothing the DIP reads may assume its shape. Property tests over
 * every channel, with valid messages generated from the channel's own schema: replacing a header block
 * with any other JSON value gives a refusal naming that block, never an exception (a 500).
 * Reproduce a failure with the seed fast-check prints: FC_SEED=<seed> npx vitest run test/message-shape.test.ts
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Catalogue } from '../src/catalogue/catalogue.js';
import { readHeader, type DipMessage } from '../src/domain/message.js';
import { arbitraryOf } from './helpers/schema-arbitrary.js';

const catalogue = Catalogue.load();
const seed = process.env.FC_SEED ? Number(process.env.FC_SEED) : undefined;
const params = (numRuns: number) => ({ numRuns, ...(seed !== undefined ? { seed } : {}) });

type Json = Record<string, any>;
const nonObject = fc.oneof(fc.constant(null), fc.boolean(), fc.integer(), fc.string({ maxLength: 8 }), fc.array(fc.jsonValue({ maxDepth: 2 }), { maxLength: 3 }));

/** A message the channel's schema accepts. */
function valid(id: string): fc.Arbitrary<Json> {
  return arbitraryOf(catalogue.schema(id)!).filter((m) => catalogue.validate(id, m).ok) as fc.Arbitrary<Json>;
}
const ids = catalogue.channels().map((c) => c.interfaceId);
/** A channel and a valid message on it. */
const anyChannel = fc.constantFrom(...ids).chain((id) => valid(id).map((m) => ({ id, m })));

describe('header blocks of any shape (every channel)', () => {
  it('the generated messages are valid to begin with, and their header reads back', () => {
    for (const id of ids) {
      const [m] = fc.sample(valid(id), { numRuns: 1, ...(seed !== undefined ? { seed } : {}) });
      const r = catalogue.validate(id, m);
      expect(r.ok, id).toBe(true);
      expect(readHeader(m as DipMessage).interfaceId, id).toBe(id);
    }
  });

  it.each(['CommonBlock', 'CommonBlock.S0', 'CommonBlock.S1'])('%s as null, a boolean, a number, a string or an array is a refusal naming it', (where) => {
    const steps = where.split('.');
    fc.assert(
      fc.property(anyChannel, nonObject, ({ id, m }, junk) => {
        let parent: Json = m.payload;
        for (const s of steps.slice(0, -1)) parent = parent[s];
        parent[steps.at(-1)!] = junk;
        const r = catalogue.validate(id, m);
        expect(r.ok).toBe(false);
        if (!r.ok) expect(r.errors.map((e) => e.path)).toContain(`payload.${where}`);
      }),
      params(150),
    );
  });

  it('any JSON value in place of any CommonBlock block never throws; what passes reads as strings', () => {
    fc.assert(
      fc.property(anyChannel, fc.constantFrom('S0', 'S1', 'A0', 'D0', 'M0', 'M1'), fc.jsonValue({ maxDepth: 3 }), ({ id, m }, block, junk) => {
        m.payload.CommonBlock[block] = junk;
        const r = catalogue.validate(id, m);
        if (r.ok) {
          const h = readHeader(r.message as DipMessage);
          for (const v of [h.eventCode, h.senderDipId, h.senderUniqueReference, h.environmentTag]) expect(typeof v).toBe('string');
        } else {
          expect(r.errors.length).toBeGreaterThan(0);
        }
      }),
      params(300),
    );
  });

  it('readHeader is total: whatever it is given, it returns a header of strings', () => {
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 5 }), (v) => {
        const h = readHeader(v as unknown as DipMessage);
        expect(typeof h.senderDipId).toBe('string');
        expect(Array.isArray(h.primaryRecipients)).toBe(true);
      }),
      params(300),
    );
    expect(readHeader({ payload: { CommonBlock: null } } as unknown as DipMessage).senderDipId).toBe('');
  });
});
