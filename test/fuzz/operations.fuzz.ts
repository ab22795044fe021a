/**
 * Dynamic testing of every operation the DIP serves (issue 15, item 3; spec 8.6). The operations are
 * the ones a real DIP's listeners registered (RunningDip.operations, recorded from Fastify's onRoute),
 * so a route added tomorrow is fuzzed tomorrow with nothing to change here. For each operation,
 * fast-check generates requests from the route's own schemas (path parameters by name, querystring,
 * body; a channel's published message schema where the pipeline validates the body), sent over real
 * mutual TLS by registered participants, correctly signed or not (unsigned, badly signed, stale,
 * another's key, no or a wrong API key), and to the operator listener with and without its token.
 *
 * Properties, for every request:
 *  - it is answered within FUZZ_ANSWER_MS (5 s: a loaded CI machine), and never with a 5xx;
 *  - a refusal is a specific 4xx: a StandardResponse whose entries say why (participant listener), or
 *    `{"error": "<why>"}` (operator listener);
 *  - a refusal stores and changes nothing: every table row and data-directory file digested before and after;
 *  - a caller that is not authenticated is refused (4xx), except on the documented public probes and API references;
 *  - an authenticated participant never reaches another participant's data: a path naming another
 *    registered participant is refused;
 * and after every operation both listeners still report healthy and a valid message is still accepted.
 *
 * Budget: FUZZ_RUNS requests per operation (default 20). A failure prints the seed;
 * reproduce with FC_SEED=<seed> npm run test:fuzz (FUZZ_RUNS as in the failing run). The methods a
 * path does not take (405) get FUZZ_RUNS / 10; routes differing only in literal channel and event
 * segments (/validate/IF-021/ActivePower …) share one budget.
 */
import fc from 'fast-check';
import { Agent, request } from 'undici';
import { afterAll, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { STATUS_CODES } from 'node:http';
import { adminTokenFile } from '../../src/api/admin.js';
import { isOperatorDocs } from '../../src/api/admin-schemas.js';
import type { Operation } from '../../src/api/operations.js';
import { DEFAULTS, type DipConfig } from '../../src/config.js';
import { answerOf, send, signerFor, startHostileDip, SDS_ID, SUP_ID, validItem, type Answer, type SendOptions } from '../hostile/helpers.js';
import { families, forCaller, requestsFor, type Known } from './requests.js';
import { StoreDigest } from './store-digest.js';

const SEED = process.env.FC_SEED ? Number(process.env.FC_SEED) : (Date.now() ^ (Math.random() * 0x7fffffff)) | 0;
const RUNS = Number(process.env.FUZZ_RUNS ?? 20);
/** Runs for the methods a path does not take (each answers 405 and nothing else): a smoke test. */
const RUNS_405 = Math.max(1, Math.round(RUNS / 10));
const ANSWER_MS = Number(process.env.FUZZ_ANSWER_MS ?? 5_000);
const OTHER_ID = '1000000002';
process.stdout.write(`[fuzz] seed ${SEED}, ${RUNS} runs per operation and identity: reproduce with FC_SEED=${SEED} FUZZ_RUNS=${RUNS} npm run test:fuzz\n`);

/**
 * Answer anyone holding a certificate of the environment: liveness and readiness probes for load
 * balancers, and the API's documentation (OpenAPI document and Swagger UI: the published API is public).
 */
const PUBLIC = new Set(['GET /health', 'HEAD /health', 'GET /ready', 'HEAD /ready']);
/** The API's documentation (OpenAPI, Swagger UI, AsyncAPI) and the data portal: public within the environment (spec 5.9). */
const PUBLIC_PREFIXES = ['/api/docs', '/api/asyncapi.json', '/catalogue'];
/** The operator API's reference (OpenAPI document, Swagger UI): public on that loopback listener (src/api/admin-docs.ts). */
const isOperatorPublic = (op: Operation): boolean => (op.method === 'GET' || op.method === 'HEAD') && isOperatorDocs(op.url);
const isPublic = (op: Operation): boolean => PUBLIC.has(`${op.method} ${op.url}`) || PUBLIC_PREFIXES.some((p) => op.url === p || op.url.startsWith(`${p}/`));
/**
 * Operations that fetch from another server answer 502 Bad Gateway when that server fails or cannot be
 * reached (nothing applied): the fault is upstream, not the DIP's nor the caller's.
 */
const UPSTREAM = new Set(['POST /admin/register/pull']);
/** Name another participant in their path on purpose: its published encryption certificate. */
const ABOUT_OTHERS = new Set(['GET /certificates/participant/:dipId', 'HEAD /certificates/participant/:dipId']);
/** Path parameters that name whose data an operation reaches. */
const OWNER_PARAM = /recipient|participant|dipid|owner/i;

// ---------------------------------------------------------------------------------------------
// A real DIP: a data service, two suppliers, one archived message; delivery stopped, so only requests write.

// Shedding load (503 with Retry-After while the event loop runs late) is tested on its own; on a busy CI
// machine it would answer the fuzzer's requests for reasons that are not theirs.
const h = await startHostileDip({
  overload: { maxEventLoopDelayMs: 60_000, delayCountsFromSubmissions: 100_000, maxSubmissionsInFlight: 100_000, maxBytesInFlight: 2 ** 40, maxBytesArriving: 2 ** 40, maxBytesArrivingPerSender: 2 ** 40 },
  // The fuzzer's operator credential is the bootstrap token, as break-glass: fuzzed calls create admin
  // accounts and disable accounts, and the fuzzer must go on calling whatever they did.
  operators: { ...DEFAULTS.operators, bootstrapBreakGlass: true },
  // Every refusal's StandardResponse is read for its specific help, /validate's too: its default answer (the
  // published JSON string, api.validateAnswer 'text') is checked in test/validate-endpoints.test.ts.
  api: { ...DEFAULTS.api, validateAnswer: 'standard-response' },
  // The anonymous listener (public publications) too, without its fair-use limit.
  publications: { anonymous: { enabled: true, host: '127.0.0.1', port: 0, rateLimit: { requestsPerSecond: 0, burst: 1 } } } as DipConfig['publications'],
});
const other = await h.t.participant(OTHER_ID, ['SUP']);
// Asks the participant listener's /health between properties: a participant the fuzzer never names, since
// the operator's fuzzed calls suspend and offboard the known ones (an offboarded participant's certificate
// is revoked, and a revoked certificate is answered 401 on every route, /health included).
const watcher = await h.t.participant('2000000007', ['SDS']);
await h.t.dip.delivery.stop();
const seeded = await send(h.t, h.sds, { path: '/dip-channel/IF-021', body: JSON.stringify([validItem()]) });
if (seeded.status !== 201) throw new Error(`the seed message was refused: ${seeded.text}`);
const known: Known = {
  dipIds: [SDS_ID, SUP_ID, OTHER_ID],
  transactionIds: (seeded.json as { messageArray: Array<{ transactionID: string }> }).messageArray.map((e) => e.transactionID),
  validBatch: () => [validItem()],
};
const participants = { sds: h.sds, sup: h.sup, other } as const;
type Who = keyof typeof participants;
const adminToken = readFileSync(adminTokenFile(h.t.config.dataDir), 'utf8').trim();
const adminOrigin = `http://127.0.0.1:${h.t.dip.adminPort}`;
const adminAgent = new Agent({ keepAliveTimeout: 10_000 });
const digest = new StoreDigest(h.t.config.dataDir);

const tally = new Map<string, Map<string, number>>();
let requests = 0;
const started = Date.now();
afterAll(async () => {
  digest.close();
  await adminAgent.close();
  await h.close();
  const lines = [...tally].map(([op, t]) => `  ${op}: ${[...t].map(([k, n]) => `${k}×${n}`).join(', ')}`);
  process.stdout.write(`[fuzz] ${requests} requests in ${((Date.now() - started) / 1000).toFixed(1)} s, seed ${SEED}\n${lines.join('\n')}\n`);
});

function count(op: string, what: string): void {
  const t = tally.get(op) ?? new Map<string, number>();
  t.set(what, (t.get(what) ?? 0) + 1);
  tally.set(op, t);
}

// ---------------------------------------------------------------------------------------------
// Identities

/** How a participant-listener request is (mis)authenticated. */
const PARTICIPANT_IDENTITIES = ['signed', 'unsigned', 'no API key', 'wrong API key', 'signed over another body', 'signed by another participant', 'stale signature'] as const;
type Identity = (typeof PARTICIPANT_IDENTITIES)[number];

function identityOptions(identity: Identity, who: Who): Partial<SendOptions> {
  switch (identity) {
    case 'signed':
      return {};
    case 'unsigned':
      return { headers: { 'x-dip-content-hash': undefined, 'x-dip-signature-date': undefined, 'x-dip-signature': undefined, 'x-dip-signature-certificate': undefined } };
    case 'no API key':
      return { apiKey: null };
    case 'wrong API key':
      return { apiKey: `dip_${'A'.repeat(32)}` };
    case 'signed over another body':
      return { signedBody: '[{"tampered":true}]' };
    case 'signed by another participant':
      return { signer: signerFor(participants[who === 'sds' ? 'sup' : 'sds']) };
    case 'stale signature':
      return { signedAt: new Date(Date.now() - 3_600_000) };
  }
}

// ---------------------------------------------------------------------------------------------
// Checks

interface Entry {
  message: string;
  help: string | null;
}

function expectSpecificStandardResponse(op: string, a: Answer): void {
  const body = a.json as { messageArray?: Entry[]; timestamp?: string } | undefined;
  expect(Array.isArray(body?.messageArray) && body.messageArray.length > 0, `${op} ${a.status} is not a StandardResponse: ${a.text.slice(0, 300)}`).toBe(true);
  expect(body!.timestamp, `${op}: StandardResponse without its timestamp`).toHaveLength(25);
  const help = body!.messageArray!.map((e) => e.help ?? '').join(' ');
  expect(help.trim().length, `${op} ${a.status} does not say why: ${a.text.slice(0, 300)}`).toBeGreaterThan(0);
}

function expectSpecificOperatorError(op: string, a: Answer): void {
  const error = (a.json as { error?: unknown } | undefined)?.error;
  // Not a bare reason phrase ("Bad Request"): which field, or what, and why.
  const specific = typeof error === 'string' && error.trim().length > 0 && error !== STATUS_CODES[a.status];
  expect(specific, `${op} ${a.status} is not {"error": "<what and why>"}: ${a.text.slice(0, 300)}`).toBe(true);
}

/** The properties every answer has; `refusalExpected` when the request must not succeed. */
async function judge(op: Operation, listener: 'participant' | 'operator', a: Answer, before: Map<string, string>, refusalExpected: string | null): Promise<void> {
  const name = `${op.method} ${op.url}`;
  count(`${listener} ${name}`, String(a.status));
  if (!(a.status === 502 && UPSTREAM.has(name))) expect(a.status, `${name} answered ${a.status}: ${a.text.slice(0, 400)}`).toBeLessThan(500);
  if (refusalExpected) expect(a.status, `${name}: ${refusalExpected}, yet it answered ${a.status}: ${a.text.slice(0, 300)}`).toBeGreaterThanOrEqual(400);
  if (a.status < 400) return;
  if (op.method !== 'HEAD') {
    // The data portal's pages are for browsers: their refusals are HTML pages saying what was not found.
    const page = isPublic(op) && String(a.headers['content-type'] ?? '').startsWith('text/html');
    if (listener === 'participant' && page) expect(a.text, `${name} ${a.status}: an empty page`).toMatch(/<title>[^<]+<\/title>/);
    else if (listener === 'participant') expectSpecificStandardResponse(name, a);
    else expectSpecificOperatorError(name, a);
  }
  const changed = StoreDigest.changed(before, digest.take());
  expect(changed, `${name}: a ${a.status} changed ${changed}`).toBe('');
}

/** Both listeners still say healthy. */
async function expectHealthy(): Promise<void> {
  const p = await send(h.t, watcher, { method: 'GET', path: '/health', timeoutMs: ANSWER_MS });
  expect(p.status, p.text).toBe(200);
  const o = await request(`${adminOrigin}/admin/health`, { headers: { authorization: `Bearer ${adminToken}` }, dispatcher: adminAgent, headersTimeout: ANSWER_MS, bodyTimeout: ANSWER_MS });
  const text = await o.body.text();
  expect(o.statusCode, text).toBe(200);
}

/** Each property its own seed derived from SEED (one seed for all would make them draw alike). */
const params = (name: string, runs: number) => ({ numRuns: runs, seed: seedOf(name), endOnFailure: true });
function seedOf(name: string): number {
  let x = SEED;
  for (const c of name) x = Math.imul(x ^ c.charCodeAt(0), 0x01000193);
  return x | 0;
}

// ---------------------------------------------------------------------------------------------

describe('every operation of the participant listener', () => {
  const operations = h.t.dip.operations.participant;
  it('registers the operations this suite expects at least', () => {
    const names = new Set(operations.map((o) => `${o.method} ${o.url}`));
    for (const expected of ['POST /dip-channel/:id', 'POST /dip-channel/:id/pubconfig/:recipientId', 'POST /statusmessage', 'GET /health', 'POST /validate/:id/:event']) expect(names).toContain(expected);
  });

  for (const [family, members] of families(operations)) {
    const title = members.length > 1 ? `${family} (${members.length} routes)` : family;
    it(`${title}: answered in time, never 5xx, specific refusals that store nothing, nobody reaches another's data`, async () => {
      // The listener answers every method a published path does not take with 405 (src/api/server.ts):
      // those get a smoke budget, the operations themselves the full one.
      const first = members[0]!;
      const sample = forCaller(fc.sample(requestsFor(first, known), { numRuns: 1, seed: seedOf(family) })[0]!, SUP_ID);
      const probe = await send(h.t, h.sup, { method: first.method, path: sample.path, body: sample.body, timeoutMs: ANSWER_MS });
      const runs = probe.status === 405 ? RUNS_405 : RUNS;
      const identity = fc.oneof(
        { weight: 3, arbitrary: fc.constant<Identity>('signed') },
        { weight: 2, arbitrary: fc.constantFrom<Identity>(...PARTICIPANT_IDENTITIES.filter((i) => i !== 'signed')) },
      );
      const member = fc.constantFrom(...members).chain((op) => requestsFor(op, known).map((generated) => ({ op, generated })));
      await fc.assert(
        fc.asyncProperty(fc.constantFrom<Who>('sds', 'sup', 'other'), identity, member, async (who, id, { op, generated }) => {
          requests++;
          const name = `${op.method} ${op.url}`;
          const req = forCaller(generated, participants[who].dipId);
          const before = digest.take();
          const options = identityOptions(id, who);
          const a = await send(h.t, participants[who], { method: op.method, path: req.path, body: req.body, timeoutMs: ANSWER_MS, ...options, headers: { ...options.headers, ...(req.contentType ? { 'content-type': req.contentType } : {}) } });
          count(`participant, ${id}`, `${a.status}`);
          let refusal: string | null = null;
          if (id !== 'signed' && !isPublic(op)) refusal = `a request ${id} must be refused`;
          const owner = Object.entries(req.params).find(([k, v]) => OWNER_PARAM.test(k) && known.dipIds.includes(v) && v !== participants[who].dipId);
          if (owner && !ABOUT_OTHERS.has(name)) refusal = `${participants[who].dipId} named ${owner[1]} in :${owner[0]}`;
          await judge(op, 'participant', a, before, refusal);
        }),
        params(`participant ${family}`, runs),
      );
      if (probe.status !== 405) await expectHealthy();
    });
  }

  it('still accepts a valid message after all that', async () => {
    // From a data service registered now: a correctly signed fuzzed call may have rotated the seeded
    // sender's API key with no overlap (overlapHours: 0 is the caller's right), so its old key is refused.
    const fresh = await h.t.participant('2000000009', ['SDS']);
    const a = await send(h.t, fresh, { path: '/dip-channel/IF-021', body: JSON.stringify([validItem(fresh.dipId)]), timeoutMs: ANSWER_MS });
    expect(a.status, a.text).toBe(201);
  });
});

describe('every operation of the operator listener', () => {
  const operations = h.t.dip.operations.operator;
  it('registers the operations this suite expects at least', () => {
    const names = new Set(operations.map((o) => `${o.method} ${o.url}`));
    for (const expected of ['GET /admin/health', 'POST /admin/dead-letters/requeue', 'POST /admin/mpan/changes']) expect(names).toContain(expected);
  });

  const TOKENS = ['valid', 'none', 'wrong', 'lower-case scheme'] as const;
  const authorization = (t: (typeof TOKENS)[number]): string | undefined =>
    t === 'valid' ? `Bearer ${adminToken}` : t === 'wrong' ? `Bearer ${'x'.repeat(adminToken.length)}` : t === 'lower-case scheme' ? `bearer ${adminToken}` : undefined;

  for (const op of operations) {
    const name = `${op.method} ${op.url}`;
    it(`${name}: answered in time, never 5xx, specific refusals that store nothing, the token required`, async () => {
      const token = fc.oneof({ weight: 3, arbitrary: fc.constant<(typeof TOKENS)[number]>('valid') }, { weight: 1, arbitrary: fc.constantFrom(...TOKENS.filter((t) => t !== 'valid')) });
      await fc.assert(
        fc.asyncProperty(token, requestsFor(op, known), async (t, generated) => {
          requests++;
          const req = forCaller(generated, SUP_ID);
          const before = digest.take();
          const auth = authorization(t);
          const res = await request(`${adminOrigin}${req.path}`, {
            method: op.method as 'GET',
            headers: { ...(auth ? { authorization: auth } : {}), ...(req.contentType ? { 'content-type': req.contentType } : {}) },
            body: req.body,
            dispatcher: adminAgent,
            headersTimeout: ANSWER_MS,
            bodyTimeout: ANSWER_MS,
          });
          const a = await answerOf(res);
          count(`operator, token ${t}`, `${a.status}`);
          await judge(op, 'operator', a, before, t === 'valid' || isOperatorPublic(op) ? null : `a request with token ${t} must be refused`);
        }),
        params(`operator ${name}`, RUNS),
      );
      await expectHealthy();
    });
  }
});

describe('every operation of the anonymous listener (public publications)', () => {
  const operations = h.t.dip.operations.anonymous;
  const anonymous = new Agent({ connect: { ca: h.t.dip.pki.ca.certPem }, keepAliveTimeout: 10_000 });
  afterAll(() => anonymous.close());
  it('is enabled and registers GET /publications at least', () => {
    expect(operations.map((o) => `${o.method} ${o.url}`)).toContain('GET /publications');
  });

  for (const op of operations) {
    const name = `${op.method} ${op.url}`;
    it(`${name}: answered in time without a client certificate, never 5xx, specific refusals that store nothing`, async () => {
      await fc.assert(
        fc.asyncProperty(requestsFor(op, known), async (generated) => {
          requests++;
          const req = forCaller(generated, SUP_ID);
          const before = digest.take();
          const res = await request(`https://localhost:${h.t.dip.publicPort}${req.path}`, {
            method: op.method as 'GET',
            headers: req.contentType ? { 'content-type': req.contentType } : {},
            body: req.body,
            dispatcher: anonymous,
            headersTimeout: ANSWER_MS,
            bodyTimeout: ANSWER_MS,
          });
          const a = await answerOf(res);
          count('anonymous', `${a.status}`);
          await judge(op, 'participant', a, before, null);
        }),
        params(`anonymous ${name}`, RUNS),
      );
      await expectHealthy();
    });
  }
});
