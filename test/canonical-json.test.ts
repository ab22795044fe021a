/**
 * The outbound copy reuses the sender's text of a CustomBlock only when it is byte for byte what
 * JSON.stringify would write (src/domain/canonical-json.ts). Property tests against JSON.stringify itself:
 * random values written canonically or with the variations a sender may use (whitespace, escapes, number
 * spellings, key order, a key given twice, malformed UTF-8): whatever span the scan answers must
 * stringify back to itself, and plain canonical text must be found (else the reuse never happens).
 * Reproduce a failure with the seed fast-check prints: FC_SEED=<seed> npx vitest run test/canonical-json.test.ts
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { canonicalCustomBlocks, stringifyWithCustomBlock } from '../src/domain/canonical-json.js';
import { serialiseOutbound, stampWrapper, type DipMessage } from '../src/domain/message.js';

const seed = process.env.FC_SEED ? Number(process.env.FC_SEED) : undefined;
const params = (numRuns: number) => ({ numRuns, ...(seed !== undefined ? { seed } : {}) });

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

/** Writes `v` as JSON, departing from JSON.stringify wherever `vary()` says so; records whether it did. */
function writer(choices: number[]): { write(v: Json): string; varied: boolean } {
  let at = 0;
  const state = { varied: false, write };
  /** 1 in 12 decisions departs from canonical. */
  const vary = (): number => {
    const c = choices[at++ % choices.length]!;
    if (c % 12 !== 0) return 0;
    state.varied = true;
    return 1 + (Math.floor(c / 12) % 7);
  };
  const ws = (): string => (vary() ? ' \n\t'.slice(0, 1 + (at % 3)) : '');
  function str(s: string): string {
    const canonical = JSON.stringify(s);
    const how = vary();
    if (how === 0) return canonical;
    // An escape stringify does not write: \uXXXX for a character (lower or upper hex), or \/.
    let out = '"';
    for (const ch of s) {
      const code = ch.charCodeAt(0);
      if (ch === '/') out += '\\/';
      else if (ch.length === 1 && code >= 0x20 && ch !== '"' && ch !== '\\' && how % 2 === 0) out += `\\u${code.toString(16).padStart(4, '0')}`;
      else if (ch.length === 1 && code >= 0x20 && ch !== '"' && ch !== '\\') out += `\\u${code.toString(16).toUpperCase().padStart(4, '0')}`;
      else out += JSON.stringify(ch).slice(1, -1);
    }
    return `${out}"`;
  }
  function num(n: number): string {
    switch (vary()) {
      case 1:
        return n.toExponential();
      case 2:
        if (String(n).includes('e')) return String(n).replace('e+', 'e');
        return Number.isInteger(n) ? `${n}.0` : `${n}0`;
      case 3:
        if (n === 0) return '-0';
        return String(n).includes('e') ? String(n).replace('e', 'E') : `${n}e0`;
      case 4:
        return n.toFixed(3);
      default:
        return String(n);
    }
  }
  function write(v: Json): string {
    if (v === null || typeof v === 'boolean') return `${ws()}${String(v)}${ws()}`;
    if (typeof v === 'number') return `${ws()}${num(v)}${ws()}`;
    if (typeof v === 'string') return `${ws()}${str(v)}${ws()}`;
    if (Array.isArray(v)) return `[${ws()}${v.map(write).join(',')}${ws()}]`;
    let keys = Object.keys(v);
    const how = vary();
    if (how === 1) keys = keys.reverse(); // JSON.parse puts array-index keys first whatever the order
    const fields = keys.map((k) => `${str(k)}:${write(v[k]!)}`);
    if (how === 2 && keys.length > 0) fields.unshift(`${str(keys[0]!)}:0`); // the key twice: the parse keeps the last
    return `{${ws()}${fields.join(',')}${ws()}}`;
  }
  return state;
}

const block = fc.dictionary(fc.string({ unit: 'grapheme', maxLength: 6 }), fc.jsonValue({ maxDepth: 3 }) as fc.Arbitrary<Json>, { maxKeys: 5 });
const withNumbers = fc.dictionary(fc.string({ maxLength: 3 }), fc.oneof(fc.double({ noNaN: true, noDefaultInfinity: true }), fc.integer(), fc.constant(-0)), { maxKeys: 5 });
const choices = fc.array(fc.nat(), { minLength: 1, maxLength: 64 });

function batch(blocks: string[]): Buffer {
  return Buffer.from(`[${blocks.map((b) => `{"payload":{"CommonBlock":{"S0":{"interfaceID":"IF-021"}},"CustomBlock":${b}}}`).join(',')}]`);
}

/** Whether some object in `v` has a key starting with a digit (which the scan refuses, conservatively). */
function digitKey(v: unknown): boolean {
  if (typeof v !== 'object' || v === null) return false;
  if (Array.isArray(v)) return v.some(digitKey);
  return Object.entries(v).some(([k, x]) => /^\d/.test(k) || digitKey(x));
}

/** The property: every span found stringifies back to itself; canonical text is found. */
function check(blocks: Json[], texts: string[], varied: boolean[]): void {
  const body = batch(texts);
  const parsed = JSON.parse(body.toString('utf8')) as Array<{ payload: { CustomBlock: unknown } }>;
  const spans = canonicalCustomBlocks(body);
  expect(spans).toHaveLength(blocks.length);
  spans.forEach((span, i) => {
    const stringified = JSON.stringify(parsed[i]!.payload.CustomBlock);
    if (span) expect(body.toString('utf8', span.start, span.end)).toBe(stringified);
    const plain = !varied[i] && !stringified.includes('\\u') && !digitKey(parsed[i]!.payload.CustomBlock);
    if (plain) expect(span, `canonical text refused: ${texts[i]}`).not.toBeNull();
  });
}

describe('canonical CustomBlocks', () => {
  it('a span is found only where the sender wrote what JSON.stringify writes (random values and spellings)', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.oneof(block, withNumbers), choices), { minLength: 1, maxLength: 4 }), (items) => {
        const texts: string[] = [];
        const varied: boolean[] = [];
        for (const [v, c] of items) {
          const w = writer(c);
          texts.push(w.write(v));
          varied.push(w.varied);
        }
        check(
          items.map(([v]) => v),
          texts,
          varied,
        );
      }),
      params(2000),
    );
  });

  it.each([
    ['whitespace', '{"a": 1}'],
    ['a newline before the end', '{"a":1\n}'],
    ['1.0', '{"a":1.0}'],
    ['1e3', '{"a":1e3}'],
    ['-0', '{"a":-0}'],
    ['0.10', '{"a":0.10}'],
    ['a 17-digit integer', '{"a":12345678901234567}'],
    ['\\u0041', '{"a":"\\u0041"}'],
    ['\\u001F (stringify writes \\u001f)', '{"a":"\\u001F"}'],
    ['\\/', '{"a":"a\\/b"}'],
    ['a key twice', '{"a":1,"b":2,"a":3}'],
    ['a key twice, nested', '{"x":[{"a":1,"a":1}]}'],
    ['an array-index key after another', '{"b":1,"0":2}'],
  ])('falls back on %s', (_what, text) => {
    expect(canonicalCustomBlocks(batch([text]))).toEqual([null]);
  });

  it.each([
    ['short escapes', '{"a":"\\"\\\\\\b\\f\\n\\r\\t"}'],
    ['numbers stringify keeps', '{"a":[0,-1,0.137,1e+21,1.5e-7,123456789012345]}'],
    ['non-ASCII text', '{"naïve":"日本 ☃ 😀"}'],
    ['the same key in sibling objects', '{"x":[{"a":1},{"a":2}],"y":{"a":3}}'],
    ['empty containers and literals', '{"a":{},"b":[],"c":true,"d":false,"e":null,"f":""}'],
  ])('reuses %s', (_what, text) => {
    const body = batch([text]);
    const [span] = canonicalCustomBlocks(body);
    expect(span).not.toBeNull();
    expect(body.toString('utf8', span!.start, span!.end)).toBe(text);
  });

  it('malformed UTF-8 in a string: the span decodes to what the parse read (U+FFFD), which stringify writes back', () => {
    const body = Buffer.concat([Buffer.from('[{"payload":{"CustomBlock":{"a":"x'), Buffer.from([0xff, 0xc3, 0xe2, 0x82]), Buffer.from('y"}}}]')]);
    const [span] = canonicalCustomBlocks(body);
    const parsed = JSON.parse(body.toString('utf8')) as Array<{ payload: { CustomBlock: unknown } }>;
    expect(span).not.toBeNull();
    expect(body.toString('utf8', span!.start, span!.end)).toBe(JSON.stringify(parsed[0]!.payload.CustomBlock));
  });

  it('no span where payload or CustomBlock is spelt in another case, given twice, or not an object', () => {
    const spans = canonicalCustomBlocks(
      Buffer.from(
        '[{"Payload":{"CustomBlock":{}}},{"payload":{"customblock":{}}},{"payload":{"CustomBlock":{},"CustomBlock":{}}},{"payload":{"CustomBlock":{}},"payload":{"CustomBlock":{}}},"x",{"payload":[]},{"payload":{"CustomBlock":{"a":1}}}]',
      ),
    );
    expect(spans.map((s) => s !== null)).toEqual([false, false, false, false, false, false, true]);
  });

  it('whitespace around the envelope does not matter, only inside the block', () => {
    const body = Buffer.from('[ {\n "payload" : { "CommonBlock" : {} , "CustomBlock" : {"a":[1,2]} } } ,\n{"payload":{"CustomBlock":{"a": 1}}} ]');
    expect(canonicalCustomBlocks(body).map((s) => s && body.toString('utf8', s.start, s.end))).toEqual(['{"a":[1,2]}', null]);
  });
});

describe('the outbound copy with the sender\'s CustomBlock spliced in', () => {
  const payloadKeys = fc.uniqueArray(fc.constantFrom('CustomBlock', 'Extra', '0', 'zz', 'EncryptedCustomBlock'), { maxLength: 4 });

  it('is JSON.stringify of the stamped message, byte for byte, whatever else the payload holds and in which order', () => {
    fc.assert(
      fc.property(block, payloadKeys, fc.jsonValue({ maxDepth: 2 }), (customBlock, keys, other) => {
        const payload: Record<string, unknown> = { CommonBlock: { S0: { interfaceID: 'IF-021' }, S1: {}, A0: { primaryRecipients: ['1'] }, M0: { MPANCore: '1' } } };
        for (const k of [...keys, 'CustomBlock']) payload[k] = k === 'CustomBlock' ? customBlock : other;
        const stamped = stampWrapper({ payload } as unknown as DipMessage, {
          transactionId: 'T-1',
          transactionTimestamp: '2026-12-01T14:00:00.000Z',
          publicationId: 'PUB-021',
          initialCorrelationId: null,
          replayIndicator: false,
          primaryRecipients: ['1'],
          secondaryRecipients: [],
          alwaysRecipients: [],
        });
        expect(stringifyWithCustomBlock(stamped, JSON.stringify(customBlock))).toBe(JSON.stringify(stamped));
        expect(serialiseOutbound(stamped, JSON.stringify(customBlock))).toBe(JSON.stringify(stamped));
        expect(serialiseOutbound(stamped, null)).toBe(JSON.stringify(stamped));
      }),
      params(500),
    );
  });

  it('leaves out an undefined field as JSON.stringify does', () => {
    const m = { payload: { CommonBlock: { S0: {} }, Gone: undefined, CustomBlock: { a: 1 } } };
    expect(stringifyWithCustomBlock(m, '{"a":1}')).toBe(JSON.stringify(m));
  });
});
