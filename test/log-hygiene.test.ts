/**
 * No log line, at any level, carries an API key, a private key, a payload or an MPAN (spec 8: logs are
 * kept and shipped to places with wider access than the archive). A real DIP logs through its own
 * production logger (defaultLogger: pino with the redaction paths) at `trace` into a capture, through a
 * realistic day: onboarding, sending, delivery with retries, refusals at ingest, a recipient refusing
 * (dead letter and status message), an unreachable webhook, replay and requeue, operator actions.
 * Then every line is scanned for every secret the run used.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultLogger } from '../src/app.js';
import { buildIF021, mpanCore } from '../src/sim/messages.js';
import { startTestDip, waitFor, type TestDip, type TestParticipant } from './helpers/dip-harness.js';
import { freePort } from './helpers/dip-process.js';

const SDS = '2000000001';
const SUP = '1000000001';
const LDSO = '3000000001';
const MDS = '4000000001';
const FILTER = { datetimeFrom: '2000-01-01T00:00:00+00:00', datetimeTo: '2100-01-01T00:00:00+00:00' };
// A webhook URL may carry a secret of the recipient's own (a token in the query is common).
const HOOK_SECRET = 'hooksecret-5f1c9a7e2b4d4c0e8a6b';

describe('log hygiene: a realistic run at trace level', () => {
  const lines: string[] = [];
  let t: TestDip;
  let sds: TestParticipant;
  const participants: TestParticipant[] = [];
  const mpans: string[] = [];
  const payloadValues = new Set<string>();
  const servers: Server[] = [];
  let adminToken = '';

  const admin = async (method: 'GET' | 'POST', path: string, body?: unknown) => {
    const res = await request(`http://127.0.0.1:${t.dip.adminPort}${path}`, {
      method,
      headers: { authorization: `Bearer ${adminToken}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: res.statusCode, body: (await res.body.json()) };
  };

  /** A message from the data service with an MPAN of its own; its payload's text values are remembered. */
  const message = (to: string[], n: number) => {
    const mpan = mpanCore(`log-hygiene-${n}`);
    mpans.push(mpan);
    const m = buildIF021({ senderDipId: SDS, senderRole: 'SDS', mpan, primaryRecipients: to, uniqueSuffix: `loghyg${n}` });
    collectStrings(m.payload.CustomBlock, payloadValues);
    return m;
  };

  beforeAll(async () => {
    const logger = defaultLogger({ write: (s: string) => void lines.push(...s.split('\n').filter((l) => l !== '')) }, 'trace');
    t = await startTestDip({}, undefined, { logger });
    adminToken = readFileSync(join(t.config.dataDir, 'admin-token'), 'utf8').trim();
    sds = await t.participant(SDS, ['SDS']);
    const sup = await t.participant(SUP, ['SUP']);
    const ldso = await t.participant(LDSO, ['LDSO']);
    const mds = await t.participant(MDS, ['MDS']);
    participants.push(sds, sup, ldso, mds);

    // SUP answers 503 twice, then takes everything: retries are logged.
    let refusals = 2;
    const supRx = await t.receiver(() => (refusals-- > 0 ? 503 : 200));
    expect((await sup.client.setWebhook('IF-021', SUP, { callbackURL: `${supRx.url}?token=${HOOK_SECRET}` })).status).toBe(201);
    // LDSO refuses with a StandardResponse quoting the message back (MPAN, payload): dead letter, status message.
    const ldsoHook = await refusingHook();
    servers.push(ldsoHook.server);
    expect((await ldso.client.setWebhook('IF-021', LDSO, { callbackURL: `${ldsoHook.url}?token=${HOOK_SECRET}` })).status).toBe(201);
    // MDS's webhook is down (nothing listens): transport errors are logged.
    expect((await mds.client.setWebhook('IF-021', MDS, { callbackURL: `http://127.0.0.1:${await freePort()}/hook?token=${HOOK_SECRET}` })).status).toBe(201);
    const statusRx = await t.receiver();
    expect((await sds.client.setStatusWebhook(SDS, { callbackURL: statusRx.url })).status).toBe(201);

    // Sending: accepted batches, then refusals at ingest (schema, duplicate, wrong API key).
    const toSup = [message([SUP], 1), message([SUP], 2)];
    expect((await sds.client.submit('IF-021', toSup)).status).toBe(201);
    expect((await sds.client.submit('IF-021', [message([LDSO], 3)])).status).toBe(201);
    expect((await sds.client.submit('IF-021', [message([MDS], 4)])).status).toBe(201);
    const broken = message([SUP], 5);
    (broken.payload.CommonBlock.M0 as Record<string, unknown>)['MPANCore'] = `${mpans.at(-1)}X`;
    expect((await sds.client.submit('IF-021', [broken])).status).toBe(400);
    expect((await sds.client.submit('IF-021', [toSup[0]])).status).toBe(400);
    const { DipClient } = await import('../src/client/dip-client.js');
    const impostor = new DipClient({ baseUrl: t.dip.url, apiKey: `${sds.apiKey.slice(0, -4)}AAAA`, keyPem: sds.credentials.keyPem, certPem: sds.credentials.certPem, caPem: t.dip.pki.ca.certPem });
    expect((await impostor.submit('IF-021', [message([SUP], 6)])).status).toBe(401);
    await impostor.close();

    await waitFor(() => supRx.calls.filter((c) => c.messages.length > 0).length >= 1 && lines.some((l) => l.includes('message dead-lettered')), 15_000, 'delivery to SUP and the dead letter for LDSO');
    await waitFor(() => statusRx.calls.length >= 1, 10_000, 'the status message to the sender');
    await waitFor(() => lines.filter((l) => l.includes('delivery will be retried')).length >= 3, 15_000, 'retries towards SUP and MDS');

    // Replay and requeue (the recipient's API), the operator's dead letters, lookup and keys.
    expect((await sup.client.replay('IF-021', SUP, FILTER)).status).toBe(200);
    expect((await sup.client.requeue('IF-021', SUP, FILTER)).status).toBeLessThan(300);
    expect((await admin('POST', '/admin/dead-letters/requeue', { recipientDipId: LDSO, channel: 'IF-021' })).status).toBe(200);
    await waitFor(() => lines.filter((l) => l.includes('message dead-lettered')).length >= 2, 10_000, 'the requeued message refused again');
    expect((await admin('POST', '/admin/dead-letters/discard', { recipientDipId: LDSO, channel: 'IF-021', seqs: [1] })).status).toBe(200);
    const mpanChange = { kind: 'appoint', mpan: mpans[0], slot: 'SUP', dipId: SUP, effectiveFrom: '2020-01-01T00:00:00Z' };
    expect((await admin('POST', '/admin/mpan/changes', [mpanChange])).status).toBe(200);
    expect((await admin('GET', `/admin/mpan/${mpans[0]}`)).status).toBe(200);
    expect((await admin('POST', '/admin/keys/rotate')).status).toBe(200);
  }, 90_000);

  afterAll(async () => {
    for (const s of servers) s.close();
    await t?.close();
  });

  it('logged the run (the scan below looks at something)', () => {
    const messages = lines.map((l) => (JSON.parse(l) as { msg?: string }).msg);
    for (const expected of ['OpenDIP listening', 'delivery will be retried', 'message dead-lettered', 'operator requeued dead letters', 'operator discarded dead letters', 'MPAN lookup changed by the operator', 'at-rest data key rotated']) {
      expect(messages, expected).toContain(expected);
    }
    // A transport failure towards MDS is among the retries, with its error text.
    expect(lines.some((l) => l.includes('delivery will be retried') && l.includes('ECONNREFUSED'))).toBe(true);
  });

  it('no line carries an API key, a private key, the operator token or a webhook secret', () => {
    const secrets = new Map<string, string>();
    for (const p of participants) {
      secrets.set(`API key of ${p.dipId}`, p.apiKey);
      for (const [i, chunk] of pemChunks(p.credentials.keyPem).entries()) secrets.set(`private key of ${p.dipId} (line ${i})`, chunk);
    }
    const pki = join(t.config.dataDir, 'pki');
    for (const f of readdirSync(pki).filter((f) => f.endsWith('.key.pem'))) {
      for (const [i, chunk] of pemChunks(readFileSync(join(pki, f), 'utf8')).entries()) secrets.set(`DIP key ${f} (line ${i})`, chunk);
    }
    const kek = readFileSync(join(t.config.dataDir, 'keys', 'kek.key'));
    secrets.set('key-encryption key (base64)', kek.toString('base64').slice(0, 24));
    secrets.set('key-encryption key (hex)', kek.toString('hex').slice(0, 24));
    secrets.set('operator token', adminToken);
    secrets.set('webhook secret', HOOK_SECRET);
    expect(secrets.size).toBeGreaterThan(20);
    const found = [...secrets].flatMap(([what, value]) => lines.filter((l) => l.includes(value)).map((l) => `${what}: ${l}`));
    expect(found).toEqual([]);
    expect(lines.filter((l) => /PRIVATE KEY|dip_[\w-]{32}/.test(l))).toEqual([]);
  });

  it('no line carries an MPAN or a payload', () => {
    expect(mpans).toHaveLength(6);
    expect(payloadValues.size).toBeGreaterThan(3);
    // DIP IDs appear in the payload too (B044), but they are routing identifiers logs rightly carry.
    for (const p of participants) payloadValues.delete(p.dipId);
    const found: string[] = [];
    for (const line of lines) {
      // pino's own epoch-milliseconds `time` is thirteen digits too: judged without it.
      const { time: _time, ...rest } = JSON.parse(line) as Record<string, unknown>;
      const text = JSON.stringify(rest);
      // A transaction ID's 16 hex characters (src/domain/transaction-id.ts) are now and then 13 decimal
      // digits in a row (…-2909199979906E6E): an identifier logs rightly carry, judged without it.
      const withoutIds = text.replace(/\b[TR]-[A-Z]+-\d{3}-\w+-\w+-\d{8}-[0-9A-F]{16}\b/g, 'T-…');
      if (/(?<!\d)\d{13}(?!\d)/.test(withoutIds)) found.push(`13-digit number (MPAN?): ${line}`);
      for (const m of mpans) if (text.includes(m)) found.push(`MPAN ${m}: ${line}`);
      for (const v of payloadValues) if (text.includes(v)) found.push(`payload value ${v}: ${line}`);
      if (/CustomBlock|CommonBlock|settlementDayConsumptionPeriods|RCP1001/.test(text)) found.push(`message content: ${line}`);
    }
    expect(found).toEqual([]);
  });
});

/** A recipient that refuses every call with a StandardResponse quoting the message back. */
async function refusingHook(): Promise<{ server: Server; url: string }> {
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const quoted = Buffer.concat(chunks).toString('utf8').slice(0, 2000);
      res.writeHead(400, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ messageArray: [{ message: 'RCP1001 - Schema Failure', help: `we could not read ${quoted}` }] }));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, url: `http://127.0.0.1:${(server.address() as { port: number }).port}/hook` };
}

/** Chunks of a PEM key's base64 body: any of them in a log line would be a leak. */
function pemChunks(pem: string): string[] {
  return pem
    .split('\n')
    .filter((l) => l !== '' && !l.startsWith('-----'))
    .map((l) => l.slice(0, 32))
    .filter((l) => l.length >= 16);
}

/** The distinctive text in a payload: its strings of six characters or more (dates, times, codes). */
function collectStrings(v: unknown, out: Set<string>): void {
  if (typeof v === 'string' && v.length >= 6) out.add(v);
  else if (Array.isArray(v)) for (const x of v) collectStrings(x, out);
  else if (typeof v === 'object' && v !== null) for (const x of Object.values(v)) collectStrings(x, out);
}
