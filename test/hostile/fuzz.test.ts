/**
 * Property-based fuzzing of the ingest parser over real HTTPS (fast-check). Every body is correctly
 * signed by a registered sender, so it reaches parsing and validation. Whatever it is, the answer is
 * a StandardResponse, never a 5xx; a refusal stores nothing; an acceptance stores exactly its messages.
 * Reproduce a failure with the seed fast-check prints: FC_SEED=<seed> npx vitest run test/hostile/fuzz.test.ts
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectStandardResponse, expectStillServing, messageCount, startHostileDip, submit, validItem, type HostileDip } from './helpers.js';

let h: HostileDip;
beforeAll(async () => {
  h = await startHostileDip();
});
afterAll(async () => {
  await h?.close();
  const lines = [...outcomes].map(([k, v]) => `  ${k}: ${Object.entries(v).map(([s, n]) => `${s}×${n}`).join(', ')}`);
  process.stdout.write(`[fuzz] outcomes by property (status×count)\n${lines.join('\n')}\n`);
});

const seed = process.env.FC_SEED ? Number(process.env.FC_SEED) : undefined;
const params = (numRuns: number) => ({ numRuns, ...(seed !== undefined ? { seed } : {}) });
const outcomes = new Map<string, Record<number, number>>();

/** Sends one body; checks the answer and the database; returns the status. */
async function judge(property: string, body: string | Buffer, items: number): Promise<number> {
  const before = messageCount(h.t);
  const a = await submit(h, body);
  const tally = outcomes.get(property) ?? {};
  tally[a.status] = (tally[a.status] ?? 0) + 1;
  outcomes.set(property, tally);
  expect(a.status, a.text.slice(0, 400)).toBeLessThan(500);
  expectStandardResponse(a, property);
  const after = messageCount(h.t);
  if (a.status === 201) expect(after).toBe(before + items);
  else {
    expect(a.status).toBeGreaterThanOrEqual(400);
    expect(after, `a ${a.status} stored something`).toBe(before);
  }
  return a.status;
}

describe('fuzzing the ingest parser', () => {
  it('random JSON values, bare or as batch items, are refused with a 4xx', async () => {
    const value = fc.jsonValue({ maxDepth: 6 });
    const shapes = fc.oneof(
      value.map((v) => JSON.stringify(v)),
      fc.array(value, { minLength: 1, maxLength: 5 }).map((a) => JSON.stringify(a)),
      fc.array(value.map((v) => ({ payload: v })), { minLength: 1, maxLength: 3 }).map((a) => JSON.stringify(a)),
      fc.array(value.map((v) => ({ payload: { CommonBlock: v, CustomBlock: v } })), { minLength: 1, maxLength: 3 }).map((a) => JSON.stringify(a)),
    );
    await fc.assert(
      fc.asyncProperty(shapes, async (body) => {
        const status = await judge('random JSON', body, 0);
        expect(status).toBeGreaterThanOrEqual(400);
      }),
      params(150),
    );
  });

  it('random bytes and random text are refused with a 4xx', async () => {
    const bodies = fc.oneof(
      fc.uint8Array({ maxLength: 2_000 }).map((b) => Buffer.from(b)),
      fc.string({ unit: 'binary', maxLength: 500 }),
      fc.string({ unit: fc.constantFrom('[', ']', '{', '}', '"', ':', ',', '\\', 'a', '1', ' ', 'null', 'payload'), maxLength: 200 }),
    );
    await fc.assert(
      fc.asyncProperty(bodies, async (body) => {
        const status = await judge('random bytes', body, 0);
        expect(status).toBeGreaterThanOrEqual(400);
      }),
      params(100),
    );
  });

  it('random structural mutations of a valid IF-021: 201 (and stored) or 4xx (and nothing stored)', async () => {
    const op = fc.record({
      at: fc.nat(),
      kind: fc.constantFrom('delete', 'replace', 'retype', 'rename', 'recase', 'long', 'lookalike', 'extra', 'null'),
      value: fc.jsonValue({ maxDepth: 3 }),
      name: fc.string({ maxLength: 12 }),
    });
    await fc.assert(
      fc.asyncProperty(fc.array(op, { minLength: 1, maxLength: 3 }), async (ops) => {
        const item = structuredClone(validItem()) as unknown;
        for (const o of ops) mutate(item, o);
        await judge('structural mutation', JSON.stringify([item]), 1);
      }),
      params(200),
    );
  });

  it('random byte-level mutations of a valid IF-021 batch: 201 (and stored) or 4xx (and nothing stored)', async () => {
    const edit = fc.record({ at: fc.nat(), kind: fc.constantFrom('flip', 'insert', 'delete', 'duplicate'), byte: fc.integer({ min: 0, max: 255 }), len: fc.integer({ min: 1, max: 40 }) });
    await fc.assert(
      fc.asyncProperty(fc.array(edit, { minLength: 1, maxLength: 4 }), async (edits) => {
        let bytes = Buffer.from(JSON.stringify([validItem()]), 'utf8');
        for (const e of edits) {
          const i = e.at % bytes.length;
          if (e.kind === 'flip') bytes[i] = e.byte;
          else if (e.kind === 'insert') bytes = Buffer.concat([bytes.subarray(0, i), Buffer.from([e.byte]), bytes.subarray(i)]);
          else if (e.kind === 'delete') bytes = Buffer.concat([bytes.subarray(0, i), bytes.subarray(Math.min(bytes.length, i + e.len))]);
          else bytes = Buffer.concat([bytes.subarray(0, i + e.len), bytes.subarray(i)]);
        }
        await judge('byte mutation', bytes, 1);
      }),
      params(150),
    );
  });

  it('still accepts a valid message (201) after all that', async () => {
    await expectStillServing(h);
  });
});

// ---------------------------------------------------------------------------------------------

type Path = Array<string | number>;
type Container = Record<string, unknown> | unknown[];

function paths(v: unknown, prefix: Path = [], out: Path[] = []): Path[] {
  if (typeof v !== 'object' || v === null) return out;
  for (const [k, child] of Object.entries(v)) {
    const p = [...prefix, Array.isArray(v) ? Number(k) : k];
    out.push(p);
    paths(child, p, out);
  }
  return out;
}

function parentOf(root: unknown, p: Path): Container | undefined {
  let cur: unknown = root;
  for (const seg of p.slice(0, -1)) {
    if (typeof cur !== 'object' || cur === null) return undefined;
    cur = (cur as Record<string | number, unknown>)[seg];
  }
  return typeof cur === 'object' && cur !== null ? (cur as Container) : undefined;
}

const LOOKALIKE: Record<string, string> = { A: '\u0410', E: '\u0415', I: '\u0406', O: '\u041E', S: '\u0405', '0': '\uFF10', '1': '\uFF11', '-': '\u2011' };

function mutate(root: unknown, o: { at: number; kind: string; value: unknown; name: string }): void {
  const all = paths(root);
  if (all.length === 0) return;
  const p = all[o.at % all.length]!;
  const parent = parentOf(root, p);
  if (!parent) return;
  const key = p[p.length - 1]!;
  const obj = parent as Record<string | number, unknown>;
  const current = obj[key];
  switch (o.kind) {
    case 'delete':
      if (Array.isArray(parent)) parent.splice(Number(key), 1);
      else delete obj[key];
      break;
    case 'replace':
      obj[key] = o.value;
      break;
    case 'null':
      obj[key] = null;
      break;
    case 'retype':
      obj[key] =
        typeof current === 'string' ? Number(current) || 0 : typeof current === 'number' ? String(current) : Array.isArray(current) ? { ...current } : current && typeof current === 'object' ? Object.values(current) : {};
      break;
    case 'rename':
      if (!Array.isArray(parent)) {
        delete obj[key];
        obj[o.name] = current;
      }
      break;
    case 'recase':
      if (!Array.isArray(parent) && typeof key === 'string') {
        delete obj[key];
        obj[key.length % 2 ? key.toLowerCase() : key.toUpperCase()] = current;
      }
      break;
    case 'long':
      obj[key] = typeof current === 'string' ? current.repeat(1 + Math.floor(5_000 / Math.max(1, current.length))) : 'x'.repeat(5_000);
      break;
    case 'lookalike':
      if (typeof current === 'string') obj[key] = current.replace(/[AEIOS01-]/, (c) => LOOKALIKE[c] ?? c);
      else if (!Array.isArray(parent) && typeof key === 'string' && /[AEIOS]/.test(key)) {
        delete obj[key];
        obj[key.replace(/[AEIOS]/, (c) => LOOKALIKE[c] ?? c)] = current;
      }
      break;
    case 'extra':
      if (current && typeof current === 'object' && !Array.isArray(current)) (current as Record<string, unknown>)[o.name || 'extra'] = o.value;
      else if (Array.isArray(current)) current.push(o.value);
      break;
  }
}
