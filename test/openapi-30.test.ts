/**
 * The participant document's schemas in OpenAPI 3.0's dialect (src/api/openapi-30.ts): each rewrite keeps
 * the meaning, and a construct 3.0 cannot say is refused rather than dropped.
 */
import { describe, expect, it } from 'vitest';
import { schemaIn30 } from '../src/api/openapi-30.js';

/** `allOf: [code ∈ all, {if: code ∈ each[i], then: …}]`, the catalogue's per-event-code rule. */
const byCode = (all: string[], each: string[][], extra: object = {}) => ({
  allOf: [
    { type: 'object', required: ['code'], properties: { code: { enum: all } } },
    ...each.map((codes, i) => ({ if: { type: 'object', required: ['code'], properties: { code: { enum: codes } } }, then: { required: [`f${i}`] }, ...extra })),
  ],
});

describe('a schema in OpenAPI 3.0', () => {
  it('says nullable and union types, const, examples and numeric exclusive bounds in 3.0 words', () => {
    expect(schemaIn30({ type: ['string', 'null'], maxLength: 3 })).toEqual({ type: 'string', nullable: true, maxLength: 3 });
    expect(schemaIn30({ type: ['string', 'integer', 'null'] })).toEqual({ anyOf: [{ type: 'string' }, { type: 'integer' }, { type: 'object', nullable: true, enum: [null] }] });
    expect(schemaIn30({ const: 'IF-021', examples: ['a', 'b'], exclusiveMinimum: 0, $schema: 'http://json-schema.org/draft-07/schema#' })).toEqual({ enum: ['IF-021'], example: 'a', minimum: 0, exclusiveMinimum: true });
    // A property's name is no keyword, and a value is data.
    expect(schemaIn30({ properties: { if: { type: ['integer', 'null'] }, const: { type: 'string' } }, enum: [{ type: ['x'] }] })).toEqual({ properties: { if: { type: 'integer', nullable: true }, const: { type: 'string' } }, enum: [{ type: ['x'] }] });
  });

  it('rewrites if/then choosing by disjoint event codes, their union pinned, as a oneOf of allOf[if, then]', () => {
    const rule = byCode(['A', 'B', 'C'], [['A'], ['B', 'C']]);
    const [base, a, b] = rule.allOf as [object, { if: object; then: object }, { if: object; then: object }];
    expect(schemaIn30(rule)).toEqual({ allOf: [base, { oneOf: [{ allOf: [a.if, a.then] }, { allOf: [b.if, b.then] }] }] });
  });

  it('refuses what it cannot say with the same meaning, naming where', () => {
    expect(() => schemaIn30(byCode(['A', 'B'], [['A', 'B'], ['B']]))).toThrow(/allOf at #: its if\/then choices overlap/);
    expect(() => schemaIn30(byCode(['A', 'B', 'C'], [['A'], ['B']]))).toThrow(/choices are not the only values allowed of code/);
    expect(() => schemaIn30(byCode(['A', 'B'], [['A'], ['B']], { else: { required: ['g'] } }))).toThrow(/OpenAPI 3.0 has no 'else'/);
    expect(() => schemaIn30({ properties: { p: { if: { required: ['a'] }, then: { required: ['b'] } } } })).toThrow(/no 'if'\/'then' \(at #\/properties\/p\)/);
    expect(() => schemaIn30({ type: 'object', patternProperties: { '^x': {} } })).toThrow(/no 'patternProperties'/);
  });
});
