import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SqliteActivityLog } from '../src/adapters/sqlite/activity-log.js';
import { systemClock } from '../src/adapters/clock.js';
import type { ChainedActivity } from '../src/domain/activity.js';
import { MSG, type MsgText } from '../src/domain/response-codes.js';
import { standardResponse } from '../src/domain/standard-response.js';
import { ActivityRecorder, type RequestRecord } from '../src/pipeline/activity-recorder.js';
import { journeyOf, REPORT_MESSAGE_LIMIT, Reports, toCsv, type ProcessStatus, type Viewer } from '../src/pipeline/reports.js';
import { returnToSender } from '../src/pipeline/return-to-sender.js';
import type { ActivityLogStore } from '../src/ports/activity-log.js';
import type { MessageTraces, TracedDelivery, TracedMessage } from '../src/ports/traces.js';
import { runSimulation } from '../src/sim/simulate.js';
import { buildIF021 } from '../src/sim/messages.js';
import { quietLogger, startTestDip, waitFor, type TestDip, type TestParticipant } from './helpers/dip-harness.js';
import { startSharedPkiDip } from './helpers/shared-pki.js';

const operator = (t: TestDip) => {
  const token = readFileSync(join(t.config.dataDir, 'admin-token'), 'utf8').trim();
  return async <T>(path: string, method = 'GET', body?: unknown): Promise<{ status: number; body: T; text: string; type: string | null }> => {
    const res = await fetch(`http://127.0.0.1:${t.dip.adminPort}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await res.text();
    return { status: res.status, text, type: res.headers.get('content-type'), body: (res.headers.get('content-type')?.includes('json') ? JSON.parse(text) : null) as T };
  };
};

describe('reports, traces and journeys (spec 5.11)', () => {
  let t: TestDip;
  let sds: TestParticipant;
  let supA: TestParticipant;
  let supB: TestParticipant;
  const mpan = '1200000000009';
  const other = '1300000000001';
  let txA: string;

  beforeAll(async () => {
    t = await startTestDip();
    sds = await t.participant('2000000001', ['SDS']);
    supA = await t.participant('1000000001', ['SUP']);
    supB = await t.participant('1000000002', ['SUP']);
    for (const p of [supA, supB]) {
      const r = await t.receiver();
      expect((await p.client.setWebhook('IF-021', p.dipId, { callbackURL: `${r.url}dip` })).status).toBe(201);
    }
    const admin = operator(t);
    const changes = [
      { mpan, slot: 'SUP', dipId: supA.dipId, effectiveFrom: '2020-01-01T00:00:00Z' },
      { mpan: other, slot: 'SUP', dipId: supB.dipId, effectiveFrom: '2020-01-01T00:00:00Z' },
    ];
    expect((await admin('/admin/mpan/changes', 'POST', changes)).status).toBe(200);
    const a = await sds.client.submit('IF-021', [buildIF021({ senderDipId: sds.dipId, senderRole: 'SDS', mpan, uniqueSuffix: 'rA' })]);
    const b = await sds.client.submit('IF-021', [buildIF021({ senderDipId: sds.dipId, senderRole: 'SDS', mpan: other, uniqueSuffix: 'rB' })]);
    expect([a.status, b.status]).toEqual([201, 201]);
    txA = a.body.messageArray[0]!.transactionID!;
    await waitFor(async () => {
      const j = await admin<{ rows: Array<{ event: string }> }>(`/admin/reports/journey/${txA}`);
      return j.status === 200 && j.body.rows.some((e) => e.event === 'delivered');
    }, 10_000, 'the delivery journalled');
  });
  afterAll(async () => {
    await t?.close();
  });

  it("refuses a supplier's MPAN trace of another supplier's MPAN, and answers its own", async () => {
    const refused = await supA.client.call<unknown>('GET', `/observability/reports/mpan/${other}?from=2020-01-01T00:00:00Z`, '');
    expect(refused.status).toBe(403);
    expect(JSON.stringify(refused.body)).toContain(`${supA.dipId} has never been responsible for MPAN ${other}`);
    const own = await supA.client.call<{ rows: Array<{ transactionId: string; deliveries: Array<{ recipient: string }> }> }>('GET', `/observability/reports/mpan/${mpan}?from=2020-01-01T00:00:00Z`, '');
    expect(own.status).toBe(200);
    expect(own.body.rows.map((r) => r.transactionId)).toEqual([txA]);
    // Its own copy only: not other recipients' deliveries.
    expect(own.body.rows[0]!.deliveries.map((d) => d.recipient)).toEqual([supA.dipId]);
    const all = await operator(t)<{ rows: unknown[] }>(`/admin/reports/mpan/${other}?from=2020-01-01T00:00:00Z`);
    expect(all.body.rows).toHaveLength(1);
  });

  it('shows the journey of a transaction: received, validated, archived, routed by the MPAN lookup, the call, delivered', async () => {
    const j = await operator(t)<{ rows: Array<{ event: string; recipient?: string; detail: string }> }>(`/admin/reports/journey/${txA}`);
    expect(j.body.rows.map((e) => e.event).slice(0, 3)).toEqual(['received', 'validated', 'archived']);
    expect(j.body.rows.find((e) => e.event === 'routed' && e.recipient === supA.dipId)?.detail).toContain('MPAN lookup (secondary)');
    expect(j.body.rows.find((e) => e.event === 'attempt' && e.recipient === supA.dipId)?.detail).toMatch(/webhook call: 200 \(delivered\) in \d+ ms/);
    expect(j.body.rows.some((e) => e.event === 'delivered' && e.recipient === supA.dipId)).toBe(true);
    // Supplier B did not receive it: no journey for it.
    expect((await supB.client.call('GET', `/observability/reports/journey/${txA}`, '')).status).toBe(404);
  });

  it('reports throughput and latency as JSON and CSV, and the sender audit', async () => {
    const admin = operator(t);
    const tp = await admin<{ granularity: string; rows: Array<{ bucket: string; in: number; out: number; errors: number; pending: number }> }>('/admin/reports/throughput?granularity=day&channel=IF-021');
    expect(tp.body.granularity).toBe('day');
    expect(tp.body.rows.reduce((s, r) => s + r.in, 0)).toBe(2);
    // Two copies, one to each supplier (B's may still be on its way: out or pending).
    expect(tp.body.rows.reduce((s, r) => s + r.out + r.pending, 0)).toBe(2);
    const csv = await admin('/admin/reports/latency?granularity=minute&format=csv');
    expect(csv.type).toContain('text/csv');
    const [header, first] = csv.text.trim().split('\r\n');
    expect(header).toBe('bucket,endToEnd.count,endToEnd.minMs,endToEnd.avgMs,endToEnd.maxMs,endToEnd.p50Ms,endToEnd.p90Ms,endToEnd.p99Ms,dipProcessing.count,dipProcessing.minMs,dipProcessing.avgMs,dipProcessing.maxMs,dipProcessing.p50Ms,dipProcessing.p90Ms,dipProcessing.p99Ms');
    expect(first).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:00\.000Z,\d+,/);
    const audit = await sds.client.call<{ rows: Array<{ transactionId: string; recipients: Array<{ state: string }> }> }>('GET', '/observability/reports/sender-audit', '');
    expect(audit.body.rows.map((r) => r.transactionId)).toContain(txA);
    // A supplier's own sender audit holds nothing it did not send.
    expect((await supA.client.call<{ rows: unknown[] }>('GET', '/observability/reports/sender-audit', '')).body.rows).toEqual([]);
    expect((await admin('/admin/reports/throughput?from=yesterday')).status).toBe(400);
    // A date-time without a zone would be read in the server host's own zone: refused, naming the field.
    // A date is midnight UTC, as the buckets are; an offset is honoured.
    const noZone = await admin<{ error: string }>('/admin/reports/throughput?from=2026-12-04T09:00:00&to=2026-12-05T00:00:00Z');
    expect(noZone.status).toBe(400);
    expect(noZone.body.error).toBe("from: '2026-12-04T09:00:00' has no time zone: add Z for UTC or an offset such as +01:00");
    expect((await admin<{ error: string }>('/admin/reports/throughput?to=12/05/2026')).body.error).toMatch(/^to: '12\/05\/2026' is not an ISO 8601 date/);
    // A day the month has not is refused, not rolled over to the next month (Date.parse read 2026-11-31 as 1 December).
    expect((await admin<{ error: string }>('/admin/reports/throughput?from=2026-11-31')).body.error).toBe("from: '2026-11-31' names no instant: 2026-11 has no day 31");
    const offset = await admin<{ from: string; to: string }>('/admin/reports/throughput?from=2026-12-04&to=2026-12-05T01:00:00%2B01:00');
    expect(offset.body).toMatchObject({ from: '2026-12-04T00:00:00.000Z', to: '2026-12-05T00:00:00.000Z' });
    // Refused for being the wrong way round, the answer gives both ends as read, "now" for a default.
    expect((await admin<{ error: string }>('/admin/reports/throughput?from=2100-01-01')).body.error).toMatch(/^from \(2100-01-01T00:00:00\.000Z\) must be before to \(\d{4}-.+Z, now\)$/);

    // By recipient (spec 5.11.1, "outgoing volumes by individual recipient"): that recipient's copies only.
    type Rows = { rows: Array<{ in: number; out: number; errors: number; pending: number }> };
    const sum = (r: Rows) => r.rows.reduce((a, x) => ({ in: a.in + x.in, copies: a.copies + x.out + x.errors + x.pending }), { in: 0, copies: 0 });
    expect(sum((await admin<Rows>(`/admin/reports/throughput?granularity=day&channel=IF-021&recipient=${supA.dipId}`)).body)).toEqual({ in: 1, copies: 1 });

    // Channels, senders and recipients are read in the catalogue's and the registry's case; several
    // channels at once (spec 5.11.1, "across multiple and individual message channels"); an ID that names
    // nothing is refused, naming it, rather than answered with no rows.
    const tp021 = sum((await admin<Rows>('/admin/reports/throughput?granularity=day&channel=IF-021')).body);
    expect(tp021.in).toBe(2);
    expect(sum((await admin<Rows>('/admin/reports/throughput?granularity=day&channel=if-021')).body)).toEqual(tp021);
    expect(sum((await admin<Rows>('/admin/reports/throughput?granularity=day&channel=IF-021,if-013')).body)).toEqual(tp021);
    expect(sum((await admin<Rows>(`/admin/reports/throughput?granularity=day&channel=IF-021&recipient=${supA.dipId.toLowerCase()}`)).body)).toEqual({ in: 1, copies: 1 });
    for (const [query, error] of [
      ['channel=IF-999', 'channel: IF-999 names no channel of the catalogue (interface IDs such as IF-021, comma-separated)'],
      ['channel=nonsense,IF-021,IF-998', 'channel: nonsense, IF-998 name no channel of the catalogue (interface IDs such as IF-021, comma-separated)'],
      ['channel=IF-021,', 'channel: an empty interface ID (interface IDs such as IF-021, comma-separated)'],
      ['sender=9999999999', 'sender: 9999999999 is no registered participant'],
      ['recipient=nobody', 'recipient: nobody is no registered participant'],
    ] as const) {
      const refused = await admin<{ error: string }>(`/admin/reports/throughput?granularity=day&${query}`);
      expect([refused.status, refused.body.error], query).toEqual([400, error]);
    }
    const own = await sds.client.call<{ error?: unknown }>('GET', '/observability/reports/throughput?channel=IF-999', '');
    expect([own.status, JSON.stringify(own.body)]).toEqual([400, expect.stringContaining('IF-999 names no channel of the catalogue')]);
    const chain = await admin<{ error: string }>('/admin/reports/processes?channels=IF-031,IF-999&linkBy=correlationID');
    expect([chain.status, chain.body.error]).toEqual([400, 'channels: IF-999 names no channel of the catalogue (interface IDs such as IF-021, comma-separated)']);

    // A replay the supplier asks for is not a message the sender sent again, nor the sender's to see.
    const replayed = await supA.client.replay('IF-021', supA.dipId, { transactionIDs: [txA] });
    expect(replayed.status).toBe(200);
    expect(sum((await admin<Rows>('/admin/reports/throughput?granularity=day&channel=IF-021')).body).in).toBe(2);
    const after = await sds.client.call<{ rows: Array<{ transactionId: string }> }>('GET', '/observability/reports/sender-audit', '');
    expect(after.body.rows.map((r) => r.transactionId.slice(0, 2))).toEqual(['T-', 'T-']);
  });

  it('counts a refused submission in the throughput report, JSON and CSV, for the operator and its sender only', async () => {
    const admin = operator(t);
    // A batch of two, the second item not an IF-021 message: refused whole, nothing stored.
    const refused = await sds.client.submit('IF-021', [buildIF021({ senderDipId: sds.dipId, senderRole: 'SDS', mpan, uniqueSuffix: 'rX' }), { payload: {} }]);
    expect(refused.status).toBe(400);
    type Row = { in: number; refused?: number; refusedMessages?: number; refusedCodes?: Record<string, number> };
    const total = (rows: Row[]) => rows.reduce<{ in: number; refused: number; messages: number }>((a, r) => ({ in: a.in + r.in, refused: a.refused + (r.refused ?? 0), messages: a.messages + (r.refusedMessages ?? 0) }), { in: 0, refused: 0, messages: 0 });
    // The activity log is written in batches, off the request path.
    await waitFor(async () => total((await admin<{ rows: Row[] }>('/admin/reports/throughput?granularity=day&channel=IF-021')).body.rows).refused > 0, 10_000, 'the refusal in the activity log');
    const rows = (await admin<{ rows: Row[] }>('/admin/reports/throughput?granularity=day&channel=IF-021')).body.rows;
    expect(total(rows)).toMatchObject({ refused: 1, messages: 2 });
    expect(rows.find((r) => r.refused === 1)?.refusedCodes).toEqual({ MSG1001: 1 });
    const asSender = await sds.client.call<{ rows: Row[] }>('GET', '/observability/reports/throughput?granularity=day', '');
    expect(total(asSender.body.rows)).toMatchObject({ refused: 1, messages: 2 });
    // Not the supplier's to see: it did not send it.
    expect(total((await supA.client.call<{ rows: Row[] }>('GET', '/observability/reports/throughput?granularity=day', '')).body.rows).refused).toBe(0);
    const csv = await admin('/admin/reports/throughput?granularity=day&channel=IF-021&format=csv');
    expect(csv.text.split('\r\n')[0]).toBe('bucket,in,out,errors,pending,refused,refusedMessages,refusedCodes.MSG1001');
  });

  it("shows an appointed participant only its own part of its MPAN's trace: not others' copies, not messages it had no part in", async () => {
    // The data service also sends about supA's MPAN to supB (primary); the lookup adds supA.
    const toB = await sds.client.submit('IF-021', [buildIF021({ senderDipId: sds.dipId, senderRole: 'SDS', mpan, primaryRecipients: [supB.dipId], uniqueSuffix: 'rC' })]);
    expect(toB.status).toBe(201);
    const txC = toB.body.messageArray[0]!.transactionID!;
    // A participant with no part in the MPAN's messages, appointed to it later as its distributor.
    const ldso = await t.participant('6000000009', ['LDSO']);
    expect((await operator(t)('/admin/mpan/changes', 'POST', [{ mpan, slot: 'LDSO', dipId: ldso.dipId, effectiveFrom: '2020-01-01T00:00:00Z' }])).status).toBe(200);
    const asA = await supA.client.call<{ rows: Array<{ transactionId: string; deliveries: Array<{ recipient: string }> }> }>('GET', `/observability/reports/mpan/${mpan}?from=2020-01-01T00:00:00Z`, '');
    expect(asA.body.rows.find((r) => r.transactionId === txC)?.deliveries.map((d) => d.recipient)).toEqual([supA.dipId]);
    const asLdso = await ldso.client.call<{ rows: unknown[] }>('GET', `/observability/reports/mpan/${mpan}?from=2020-01-01T00:00:00Z`, '');
    expect([asLdso.status, asLdso.body.rows]).toEqual([200, []]);
    const everything = await operator(t)<{ rows: Array<{ transactionId: string; deliveries: unknown[] }> }>(`/admin/reports/mpan/${mpan}?from=2020-01-01T00:00:00Z`);
    expect(everything.body.rows.find((r) => r.transactionId === txC)?.deliveries).toHaveLength(2);
  });
});

describe('business-process tracking of a dip simulate run', () => {
  it('links each change of supplier (IF-001 → IF-002 → IF-036) and each appointment workflow (IF-031 → … → IF-036/IF-037) by correlation ID as one process with its stages', async () => {
    const t = await startSharedPkiDip();
    try {
      const token = readFileSync(join(t.config.dataDir, 'admin-token'), 'utf8').trim();
      const r = await runSimulation({
        url: t.dip.url, caPem: t.dip.pki.ca.certPem, dataDir: t.config.dataDir, admin: { url: `http://127.0.0.1:${t.dip.adminPort}`, token },
        graceMs: 300, deliveryTimeoutMs: 15_000, idleTimeoutMs: 1500,
        suppliers: 2, mpans: 5, days: 2, switchPercent: 40, appointPercent: 100, seed: 'reports-processes',
      });
      expect(r.mismatches).toEqual([]);
      expect(r.switched).toBe(2);
      expect(r.appointments.requested).toBe(3);
      const res = await fetch(`http://127.0.0.1:${t.dip.adminPort}/admin/reports/processes?from=2020-01-01T00:00:00Z&to=2100-01-01T00:00:00Z`, { headers: { authorization: `Bearer ${token}` } });
      const rows = ((await res.json()) as { rows: ProcessStatus[] }).rows;
      // Nothing the simulator sent under a correlation ID is left outside a tracked flow.
      expect(rows.filter((p) => p.flow === null)).toEqual([]);

      const switches = rows.filter((p) => p.flow === 'change-of-supplier');
      expect(switches).toHaveLength(r.switched);
      for (const p of switches) {
        expect(p.process).toBe('Change of supplier');
        expect(p.correlationId).toMatch(/^COS-/);
        expect(p.stages.map((s) => `${s.channel} ${s.eventCode}`)).toEqual(['IF-001 [ChangeOfSupplier]', 'IF-002 [GainMPANInfo]', 'IF-036 [DSAppActive]']);
        expect(new Set(p.stages.map((s) => s.transactionId)).size).toBe(3);
        // Each stage with its copies, every one delivered (IF-001: both suppliers, the distributor, MDS).
        expect(p.stages[0]!.deliveries.length).toBeGreaterThanOrEqual(4);
        for (const s of p.stages) expect(s.deliveries.every((d) => d.state === 'delivered'), `${s.channel} ${JSON.stringify(s.deliveries)}`).toBe(true);
        expect(p).toMatchObject({ current: 'IF-036', state: 'complete', reason: null });
      }

      const processes = rows.filter((p) => p.flow === 'service-appointment');
      expect(processes).toHaveLength(3);
      for (const p of processes) {
        const channels = p.stages.map((s) => s.channel);
        expect(channels.slice(0, 5)).toEqual(['IF-031', 'IF-032', 'IF-033', 'IF-034', 'IF-035']);
        expect(p.state, JSON.stringify(p.stages.map((s) => `${s.channel}:${s.eventCode}`))).toBe('complete');
        expect(new Set(p.stages.map((s) => s.transactionId)).size).toBe(p.stages.length);
      }
      expect(processes.filter((p) => p.current === 'IF-037')).toHaveLength(r.appointments.accepted);
      expect(processes.filter((p) => p.current === 'IF-035')).toHaveLength(r.appointments.rejected);
    } finally {
      await t.close();
    }
  });
});

describe('a dead letter in a journey', () => {
  const at = Date.parse('2026-12-01T09:00:00Z');
  const journey = (deadLetter: TracedDelivery['deadLetter']): string[] => {
    const m: TracedMessage = {
      transactionId: 'T-IF-021-1', channel: 'IF-021', eventCode: '[ActivePower]', sender: '2000000001', senderRole: 'SDS', senderUniqueReference: null,
      correlationId: null, receivedAt: at, replayOf: null,
      deliveries: [{ recipient: '1000000001', seq: 1, state: 'dead', deliveredAt: null, firstAttemptAt: null, attempts: [], deadLetter }],
    };
    return journeyOf(m).filter((e) => e.event === 'dead-lettered').map((e) => e.detail);
  };

  it('says its reason once, also where the detail starts with it (a stale one)', () => {
    expect(journey({ reason: 'stale', status: null, detail: 'stale: not delivered to 1000000001 within 1 hours', at })).toEqual(['stale: not delivered to 1000000001 within 1 hours']);
    expect(journey({ reason: 'rejected', status: 400, detail: '1000000001 refused the message: HTTP 400', at })).toEqual(['rejected: 1000000001 refused the message: HTTP 400']);
  });

  it('shows a requeue and its outcome: requeued, then delivered (the operator\'s requeue), or requeued (the recipient\'s copy) without "the operator"', () => {
    const events = (state: TracedDelivery['state']) =>
      journeyOf({
        transactionId: 'T-IF-021-1', channel: 'IF-021', eventCode: '[ActivePower]', sender: '2000000001', senderRole: 'SDS', senderUniqueReference: null, correlationId: null, receivedAt: at, replayOf: null,
        deliveries: [{ recipient: '1000000001', seq: 1, state, deliveredAt: state === 'delivered' ? at + 5_000 : null, firstAttemptAt: null, attempts: [], deadLetter: { reason: 'stale', status: null, detail: 'stale: not delivered in time', at: at + 1_000 } }],
      }).map((e) => `${e.event}: ${e.detail}`);
    expect(events('delivered').slice(-3)).toEqual(['dead-lettered: stale: not delivered in time', 'requeued: requeued by the operator, then delivered', 'delivered: delivered to 1000000001']);
    const requeued = events('requeued');
    expect(requeued.at(-1)).toMatch(/^requeued: .*by the recipient as a copy under an R- transaction ID/);
  });
});

// A copy held back for its recipient's revoked certificate, gone stale: the dead letter's detail names the
// certificate and why it was revoked. Its sender (the status message, its reports) must not learn of the
// recipient's key compromise; the operator and the recipient read the detail whole.
describe('a dead letter held back for a revoked certificate, as each viewer reads it', () => {
  const at = Date.parse('2026-12-01T09:00:00Z');
  const revoked = 'stale: not delivered to 1000000001 within 1 hours; held back: the certificate registered for 1000000001 (serial 0A1B2C) was revoked: keyCompromise';
  const traces: MessageTraces = {
    trace: async () => [{
      transactionId: 'T-IF-021-1', channel: 'IF-021', eventCode: '', sender: '2000000001', senderRole: 'SDS', senderUniqueReference: null, correlationId: null, receivedAt: at, replayOf: null,
      deliveries: [{ recipient: '1000000001', seq: 1, state: 'dead', deliveredAt: null, firstAttemptAt: null, attempts: [], deadLetter: { reason: 'stale', status: null, detail: revoked, at: at + 1000 } }],
    }],
  };
  const reports = new Reports(traces, { history: async () => [] }, () => at + 60_000, '0000000000');
  const deadLettered = async (viewer: Viewer) => {
    const j = await reports.journey(viewer, 'T-IF-021-1');
    if (!j.ok) throw new Error(j.help);
    return j.value.events.filter((e) => e.event === 'dead-lettered').map((e) => e.detail);
  };

  it('its sender reads a fixed text; the operator and the recipient the detail', async () => {
    expect(await deadLettered({ kind: 'participant', dipId: '2000000001' })).toEqual(['stale: not delivered to 1000000001 within 1 hours; held: the recipient could not be reached securely']);
    expect(await deadLettered({ kind: 'operator' })).toEqual([revoked]);
    expect(await deadLettered({ kind: 'participant', dipId: '1000000001' })).toEqual([revoked]);
  });

  it('Return to Sender tells the sender the fixed text only', async () => {
    const told: string[] = [];
    const notices = returnToSender({ fromDip: async (items) => void told.push(...items.map((i) => i.help)) });
    const entry = { seq: 1, messageId: 1, transactionId: 'T-IF-021-1', receivedAt: at, outbound: '{}', capacity: null, securityPattern: null };
    await notices([{ queue: { recipientDipId: '1000000001', channel: 'IF-021' }, entry, reason: 'stale', status: null, detail: revoked, answer: null }]);
    expect(told).toEqual(['stale: not delivered to 1000000001 within 1 hours; held: the recipient could not be reached securely']);
  });
});

describe('throughput over messages the DIP made itself', () => {
  const at = Date.parse('2026-12-04T22:35:00Z');
  const message = (transactionId: string, channel: string, sender: string, recipient: string, state: TracedDelivery['state']): TracedMessage => ({
    transactionId, channel, eventCode: '', sender, senderRole: sender === '0000000000' ? 'STS' : 'SDS', senderUniqueReference: null, correlationId: null, receivedAt: at, replayOf: null,
    deliveries: [{ recipient, seq: 1, state, deliveredAt: state === 'delivered' ? at + 500 : null, firstAttemptAt: null, attempts: [], deadLetter: state === 'dead' ? { reason: 'rejected', status: 400, detail: '', at: at + 600 } : null }],
  });
  // One message a data service sent, dead-lettered for its recipient; the DIP's status message telling the
  // sender, waiting in its STATUS queue.
  const traces: MessageTraces = {
    trace: async () => [message('T-IF-021-1', 'IF-021', '2000000001', '1000000002', 'dead'), message('T-STATUS-1', 'STATUS', '0000000000', '2000000001', 'pending')],
  };
  const reports = new Reports(traces, { history: async () => [] }, () => at + 60_000, '0000000000');

  it('counts in only what participants sent: the status message is the DIP telling of an error, its copy out', async () => {
    const rows = await reports.throughput({ kind: 'operator' }, { fromMs: at - 3_600_000, toMs: at + 60_000, granularity: 'hour' });
    expect(rows).toEqual([{ bucket: '2026-12-04T22:00:00.000Z', in: 1, out: 0, errors: 1, pending: 1 }]);
  });
});

describe('a period holding more messages than one report counts', () => {
  const at = Date.parse('2026-12-04T00:00:00Z');
  // A store as the real ones read it: the period from its start, in arrival order, cut at the limit asked.
  const held = REPORT_MESSAGE_LIMIT + 5;
  const traces: MessageTraces = {
    trace: async (q) =>
      Array.from({ length: Math.min(held, q.limit) }, (_, i): TracedMessage => ({
        transactionId: `T-${i}`, channel: 'IF-021', eventCode: '', sender: '2000000001', senderRole: 'SDS', senderUniqueReference: null, correlationId: null, receivedAt: at + i, replayOf: null, deliveries: [],
      })),
  };
  const reports = new Reports(traces, { history: async () => [] }, () => at + 86_400_000, '0000000000');

  it('is refused, saying how to ask, rather than counted short (its last messages left out)', async () => {
    const asked = reports.throughput({ kind: 'operator' }, { fromMs: at, toMs: at + 86_400_000, granularity: 'day' });
    await expect(asked).rejects.toThrow('2026-12-04T00:00:00.000Z to 2026-12-05T00:00:00.000Z holds more than 200,000 messages, the most one report counts: ask for it in parts (a shorter from/to, or one channel, sender or recipient)');
  });
});

describe("a participant's report on a DIP busier than one report counts", () => {
  const at = Date.parse('2026-12-04T00:00:00Z');
  const [busy, me, other] = ['2000000001', '1000000001', '1000000002'];
  const message = (i: number, sender: string, recipient: string): TracedMessage => ({
    transactionId: `T-${sender}-${i}`, channel: 'IF-021', eventCode: '', sender, senderRole: 'SDS', senderUniqueReference: null, correlationId: null, receivedAt: at + i, replayOf: null,
    deliveries: [{ recipient, state: 'delivered', deliveredAt: at + i + 5, attempts: [], deadLetter: null } as unknown as TracedMessage['deliveries'][number]],
  });
  // The whole DIP: more than one report counts between others, 3 sent by the participant, 2 sent to it.
  const all = [
    ...Array.from({ length: REPORT_MESSAGE_LIMIT + 5 }, (_, i) => message(i, busy, other)),
    ...[1, 2, 3].map((i) => message(i, me, other)),
    ...[4, 5].map((i) => message(i, busy, me)),
  ];
  // A store as the real ones read it: filtered by sender and recipient, cut at the limit asked.
  const traces: MessageTraces = {
    trace: async (q) => all.filter((m) => (q.sender === undefined || m.sender === q.sender) && (q.recipient === undefined || m.deliveries.some((d) => d.recipient === q.recipient))).slice(0, q.limit),
  };
  const reports = new Reports(traces, { history: async () => [] }, () => at + 86_400_000, '0000000000');

  it('counts its own messages, not the whole DIP\'s, against the limit, and is answered', async () => {
    const rows = await reports.throughput({ kind: 'participant', dipId: me }, { fromMs: at, toMs: at + 86_400_000, granularity: 'day' });
    expect(rows.map((r) => [r.in, r.out])).toEqual([[5, 5]]);
  });
});

describe('refused submissions in the throughput report (spec 5.11.1, "error messages"), from the API activity log', () => {
  const at = Date.parse('2026-12-04T10:00:00Z');
  const hour = 3_600_000;
  const [sds, sup, cp] = ['2000000001', '1000000001', 'CP00000001'];
  const accepted: TracedMessage = {
    transactionId: 'T-IF-021-1', channel: 'IF-021', eventCode: '', sender: sds, senderRole: 'SDS', senderUniqueReference: null, correlationId: null, receivedAt: at + 1000, replayOf: null,
    deliveries: [{ recipient: sup, seq: 1, state: 'delivered', deliveredAt: at + 1500, firstAttemptAt: at + 1100, attempts: [], deadLetter: null }],
  };
  // The archive as the stores read it: by period, channel, sender and recipient.
  const traces: MessageTraces = {
    trace: async (q) =>
      [accepted].filter((m) => m.receivedAt >= q.fromMs && m.receivedAt < q.toMs && (!q.channels?.length || q.channels.includes(m.channel)) && (q.sender === undefined || q.sender === m.sender) && (q.recipient === undefined || m.deliveries.some((d) => d.recipient === q.recipient))),
  };
  const answer = (...messages: string[]) => JSON.stringify(standardResponse(new Date(at), '0000000000', sds, messages.map((message) => ({ message: message as MsgText, help: 'why' }))));
  const request = (ms: number, caller: string | null, url: string, status: number, rawBody: string, actingFor: string | null = null): RequestRecord => ({
    requestId: `r-${ms}-${url}`, at: ms, listener: 'participant', caller, actingFor, remote: '127.0.0.1', method: 'POST', url, status, durationMs: 1, rawBody,
  });
  let store: SqliteActivityLog;
  let reports: Reports;

  beforeAll(async () => {
    store = new SqliteActivityLog(join(mkdtempSync(join(tmpdir(), 'opendip-refusals-')), 'activity.db'));
    // Answers longer than 4 kB are kept as a note: the 50-item refusal below.
    const recorder = new ActivityRecorder(store, { label: 'test', flushIntervalMs: 1000, maxBatch: 100, maxBodyBytes: 4096, maxPending: 1000 }, systemClock, quietLogger);
    for (const r of [
      // A batch of three refused for its second item's schema: three messages, MSG1001.
      request(at + 2000, sds, '/dip-channel/IF-021', 400, answer(MSG.processingFailed, MSG.schemaFailure, MSG.processingFailed)),
      // The store down: the batch refused whole, one entry; the URL in another case, as ingress takes it.
      request(at + 3000, sds, '/DIP-Channel/if-021', 503, answer(MSG.processingFailed)),
      // Accepted: not a refusal.
      request(at + 4000, sds, '/dip-channel/IF-021', 201, answer(MSG.success)),
      // A channel's sub-route (a webhook's configuration), not a submission.
      request(at + 5000, sds, '/dip-channel/IF-021/pubconfig/2000000001', 400, answer(MSG.schemaFailure)),
      // Fifty duplicates: an answer too long to keep, counted from its note.
      request(at + 6000, sds, '/dip-channel/IF-021', 400, answer(...Array.from({ length: 50 }, () => MSG.duplicateReference))),
      // No caller known, and an answer that is not a StandardResponse: its HTTP status instead of a code.
      request(at + 7000, null, '/dip-channel/IF-021', 401, '{"error":"no such API key"}'),
      // A connection provider for the supplier, an hour later, on another channel.
      request(at + hour + 5, cp, '/dip-channel/IF-031', 403, answer(MSG.senderRoleInvalid), sup),
      // Outside the period: before `from`, and at `to` (not included).
      request(at - 1, sds, '/dip-channel/IF-021', 400, answer(MSG.schemaFailure)),
      request(at + 2 * hour, sds, '/dip-channel/IF-021', 400, answer(MSG.schemaFailure)),
    ])
      recorder.record(r);
    await recorder.flush();
    reports = new Reports(traces, { history: async () => [] }, () => at + 3 * hour, '0000000000', store);
  });
  afterAll(async () => {
    await store?.close();
  });

  const period = { fromMs: at, toMs: at + 2 * hour, granularity: 'hour' as const };
  const code = (m: string) => m.slice(0, 7);

  it("counts each refused submission, its messages and its MSG code in its arrival's bucket, beside what was accepted (operator)", async () => {
    expect(await reports.throughput({ kind: 'operator' }, period)).toEqual([
      { bucket: '2026-12-04T10:00:00.000Z', in: 1, out: 1, errors: 0, pending: 0, refused: 4, refusedMessages: 55, refusedCodes: { [code(MSG.schemaFailure)]: 1, [code(MSG.processingFailed)]: 1, [code(MSG.duplicateReference)]: 1, 'HTTP 401': 1 } },
      { bucket: '2026-12-04T11:00:00.000Z', in: 0, out: 0, errors: 0, pending: 0, refused: 1, refusedMessages: 1, refusedCodes: { [code(MSG.senderRoleInvalid)]: 1 } },
    ]);
  });

  it('filters them by channel (any case) and by sender (the caller, or the participant a provider called for)', async () => {
    const only = async (f: { channels?: string[]; sender?: string }) => (await reports.throughput({ kind: 'operator' }, { ...period, ...f })).map((r) => [r.bucket.slice(11, 13), r.in, r.refused, r.refusedMessages]);
    expect(await only({ channels: ['IF-031'] })).toEqual([['11', 0, 1, 1]]);
    expect(await only({ sender: sds })).toEqual([['10', 1, 3, 54]]);
    expect(await only({ sender: sup })).toEqual([['11', 0, 1, 1]]);
    expect(await only({ sender: cp })).toEqual([['11', 0, 1, 1]]);
  });

  it('shows a participant its own refused submissions only, and those its provider made for it', async () => {
    const as = async (dipId: string) => (await reports.throughput({ kind: 'participant', dipId }, period)).map((r) => [r.bucket.slice(11, 13), r.in, r.out, r.refused, r.refusedMessages]);
    expect(await as(sds)).toEqual([['10', 1, 1, 3, 54]]);
    expect(await as(sup)).toEqual([['10', 1, 1, 0, 0], ['11', 0, 0, 1, 1]]);
    expect(await as('1000000009')).toEqual([]);
  });

  it('does not count them with a recipient named (a refused submission went to no one): no refusal columns', async () => {
    expect(await reports.throughput({ kind: 'operator' }, { ...period, recipient: sup })).toEqual([{ bucket: '2026-12-04T10:00:00.000Z', in: 1, out: 1, errors: 0, pending: 0 }]);
  });

  it('gives them as CSV columns, a column per MSG code', async () => {
    const [header] = toCsv(await reports.throughput({ kind: 'operator' }, period)).split('\r\n');
    expect(header).toBe(`bucket,in,out,errors,pending,refused,refusedMessages,refusedCodes.${code(MSG.schemaFailure)},refusedCodes.${code(MSG.processingFailed)},refusedCodes.${code(MSG.duplicateReference)},refusedCodes.HTTP 401,refusedCodes.${code(MSG.senderRoleInvalid)}`);
  });

  it('refuses a period holding more refused submissions than one report counts, rather than count it short', async () => {
    const flood: Pick<ActivityLogStore, 'refusedSubmissions'> = {
      refusedSubmissions: async (q) => {
        const start = q.after ? q.after.seq : 0;
        const n = Math.max(0, Math.min(q.limit, REPORT_MESSAGE_LIMIT + 5 - start));
        return Array.from({ length: n }, (_, i): ChainedActivity => ({ requestId: '', at, listener: 'participant', caller: sds, remote: null, method: 'POST', url: '/dip-channel/IF-021', status: 400, durationMs: 1, responseBody: null, chain: 'c', seq: start + i + 1, prevHash: '', hash: '' }));
      },
    };
    const flooded = new Reports(traces, { history: async () => [] }, () => at, '0000000000', flood);
    await expect(flooded.throughput({ kind: 'operator' }, period)).rejects.toThrow('2026-12-04T10:00:00.000Z to 2026-12-04T12:00:00.000Z holds more than 200,000 refused submissions, the most one report counts: ask for it in parts (a shorter from/to, or one sender)');
  });
});

describe('reports computed at once', () => {
  // A store whose reads end only when the test says: reports still running hold their slots meanwhile.
  const at = Date.parse('2026-12-05T00:00:00Z');
  const waiting: Array<() => void> = [];
  const traces: MessageTraces = { trace: () => new Promise((resolve) => waiting.push(() => resolve([]))) };
  const reports = new Reports(traces, { history: async () => [] }, () => at, '0000000000', null, { maxRunning: 2, maxWaiting: 1 });
  const f = { fromMs: at - 86_400_000, toMs: at, granularity: 'hour' } as const;

  it('computes so many at once, lets one more wait for a slot, refuses the next with 429 at once', async () => {
    // Before: every report ran, each holding a store connection (PostgreSQL) for as long as it took.
    const reads = async (n: number) => {
      for (let i = 0; i < 100 && waiting.length < n; i++) await Promise.resolve();
      expect(waiting).toHaveLength(n);
    };
    const operator = { kind: 'operator' } as const;
    const first = reports.senderAudit(operator, f);
    const second = reports.trace(operator, { correlationId: 'CI-1' }, f.fromMs, f.toMs);
    await reads(2);
    const third = reports.throughput(operator, f);
    await expect(reports.latency(operator, f)).rejects.toMatchObject({ status: 429, message: expect.stringContaining('2 reports are being computed and 1 more are waiting') });
    // The third has not started: it waits for a slot, and takes the first's when it ends.
    await reads(2);
    waiting.shift()!();
    await first;
    await reads(2);
    for (const end of waiting.splice(0)) end();
    await Promise.all([second, third]);
  });
});
