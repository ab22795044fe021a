import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DipClient } from '../src/client/dip-client.js';
import { attemptIdTime } from '../src/domain/attempt-id.js';
import { hiddenPaths, obfuscate } from '../src/domain/obfuscation.js';
import { DEFAULTS } from '../src/config.js';
import { MSG } from '../src/domain/response-codes.js';
import { dipDateTime, yyyymmdd } from '../src/domain/time.js';
import type { DeadLetterEvent } from '../src/pipeline/delivery.js';
import { STATUS_CHANNEL } from '../src/pipeline/status.js';
import { buildIF021, type IF021Item } from '../src/sim/messages.js';
import { queueSettled, waitFor, type TestDip, type TestParticipant } from './helpers/dip-harness.js';
import { startSharedPkiDip, type SharedPkiDip } from './helpers/shared-pki.js';

type Json = Record<string, any>;
type Receiver = Awaited<ReturnType<TestDip['receiver']>>;

const SDS = '2000000001';
const SUP = '1000000001';
const LDSO = '3000000001';
const MDS = '4000000001';
const LSS = '5000000001';
/** The DIP's own ID (the default configuration: ten zeros, the published DIP ID type's length). */
const DIP_ID = '0000000000';

let unique = 0;
const item = (to: string[] | undefined, extra: Partial<Parameters<typeof buildIF021>[0]> = {}): IF021Item =>
  buildIF021({ senderDipId: SDS, senderRole: 'SDS', primaryRecipients: to, uniqueSuffix: `ff${process.pid}x${unique++}`, ...extra });
const delivered = (r: Receiver): Json[] => r.calls.flatMap((c) => c.messages as Json[]);
const d0 = (m: Json): Json => m.payload.CommonBlock.D0;
const txOf = (m: unknown): string => d0(m as Json).transactionID as string;

async function submitOk(sds: TestParticipant, items: IF021Item[]) {
  const answer = await sds.client.submit('IF-021', items);
  expect(answer.status, JSON.stringify(answer.body)).toBe(201);
  return answer.body.messageArray;
}

async function withWebhook(t: TestDip, p: TestParticipant, respond?: Parameters<TestDip['receiver']>[0]): Promise<Receiver> {
  const r = await t.receiver(respond);
  const answer = await p.client.setWebhook('IF-021', p.dipId, { callbackURL: r.url, maxMessageCount: 100 });
  expect(answer.status).toBe(201);
  return r;
}

async function withStatusWebhook(t: TestDip, p: TestParticipant): Promise<Receiver> {
  const r = await t.receiver();
  const answer = await p.client.setStatusWebhook(p.dipId, { callbackURL: r.url });
  expect(answer.status).toBe(201);
  return r;
}

/** The operator's API on the loopback interface, with (by default) the token from the data directory. */
function admin(t: TestDip) {
  const token = readFileSync(join(t.config.dataDir, 'admin-token'), 'utf8').trim();
  const base = `http://127.0.0.1:${t.dip.adminPort}`;
  return async (method: 'GET' | 'POST', path: string, body?: object, authorization: string | null = `Bearer ${token}`) => {
    const res = await fetch(`${base}${path}`, {
      method,
      headers: { ...(body ? { 'content-type': 'application/json' } : {}), ...(authorization === null ? {} : { authorization }) },
      body: body ? JSON.stringify(body) : undefined,
    });
    return { status: res.status, body: (await res.json()) };
  };
}

// ---------------------------------------------------------------------------------------------------------

describe('workflow correlation IDs (spec 5.5.5)', () => {
  let starter: SharedPkiDip;
  let plain: SharedPkiDip;
  const at: Record<string, { p: TestParticipant; r: Receiver }> = {};
  let sds: TestParticipant;

  beforeAll(async () => {
    starter = await startSharedPkiDip({ channels: { 'IF-021': { workflowStarter: true } } });
    plain = await startSharedPkiDip();
    sds = await starter.join(SDS, ['SDS']);
    for (const [id, role] of [
      [SUP, 'SUP'],
      [LDSO, 'LDSO'],
      [MDS, 'MDS'],
    ] as const) {
      const p = await starter.join(id, [role]);
      at[role] = { p, r: await withWebhook(starter, p) };
    }
  });
  afterAll(async () => {
    await starter?.close();
    await plain?.close();
  });

  const copiesOf = async (transactionId: string): Promise<Json[]> => {
    const copies: Json[] = [];
    for (const role of ['SUP', 'LDSO', 'MDS']) {
      const { r } = at[role]!;
      await waitFor(() => delivered(r).some((m) => txOf(m) === transactionId), 5000, `${transactionId} at ${role}`);
      copies.push(delivered(r).find((m) => txOf(m) === transactionId)!);
    }
    return copies;
  };

  it('generates a CI- ID for a workflow starter without one, answers it in the 201 and stamps it at every recipient', async () => {
    const first = item([SUP, LDSO]);
    expect(first.payload.CommonBlock.S1.senderCorrelationID).toBeNull();
    const [entry] = await submitOk(sds, [first]);
    const ci = entry!.correlationID!;
    expect(ci).toMatch(new RegExp(`^CI-${yyyymmdd(new Date())}-[0-9A-F]{24}$`));
    expect(ci.length).toBeLessThanOrEqual(60);
    const copies = await copiesOf(entry!.transactionID!);
    expect(copies).toHaveLength(3); // SUP and LDSO targeted, MDS always
    for (const copy of copies) expect(d0(copy).initialCorrelationID).toBe(ci);

    // Each workflow gets its own ID.
    const [other] = await submitOk(sds, [item([SUP])]);
    expect(other!.correlationID).toMatch(/^CI-\d{8}-/);
    expect(other!.correlationID).not.toBe(ci);

  });

  it('does not take a correlation ID of the sender\'s own on a workflow starter: the DIP assigns a new one and says so', async () => {
    // Spec 5.5.5: on the channels that start a workflow "the DIP will generate the Workflow Correlation
    // ID"; S1.senderCorrelationID (DI-985) is the one the sender was given, "returned by Sender" on the
    // workflow's later messages, which travel on other channels (a request is answered on another). Kept
    // before, so a sender could open a workflow under another workflow's ID, or one of its own making.
    const [opened] = await submitOk(sds, [item([SUP])]);
    for (const given of [opened!.correlationID!, 'CI-20240101-MINE']) {
      const reused = item([SUP, LDSO]);
      reused.payload.CommonBlock.S1.senderCorrelationID = given;
      const [entry] = await submitOk(sds, [reused]);
      expect(entry!.correlationID).toMatch(/^CI-\d{8}-/);
      expect(entry!.correlationID).not.toBe(given);
      expect(entry!.message).toBe('MSG0000 - Success');
      expect(entry!.help).toBe(`S1.senderCorrelationID ${given} was not taken: IF-021 starts a workflow, and the DIP assigned it correlationID ${entry!.correlationID} (spec 5.5.5); carry that in S1.senderCorrelationID on the workflow's later messages`);
      const copies = await copiesOf(entry!.transactionID!);
      expect(copies.length).toBeGreaterThan(0);
      for (const copy of copies) {
        expect(d0(copy).initialCorrelationID).toBe(entry!.correlationID);
        // Not the sender's ID (another workflow's, here): its recipients get what a sender giving none sends.
        expect(copy.payload.CommonBlock.S1.senderCorrelationID).toBeNull();
      }
    }
  });

  it('answers a resend of a workflow\'s first message (a lost 201) with the ID generated for it, beside the original transaction ID', async () => {
    // The 201 is the only place the sender learns the generated ID (5.5.5); a sender whose 201 was lost
    // resends, and the MSG1006 answer is then its only chance to learn it.
    const first = item([SUP]);
    const [entry] = await submitOk(sds, [first]);
    const resent = await sds.client.submit('IF-021', [first]);
    expect(resent.status).toBe(400);
    expect(resent.body.messageArray[0]).toMatchObject({
      message: 'MSG1006 - Sender Unique Reference Duplicated',
      transactionID: entry!.transactionID,
      correlationID: entry!.correlationID,
    });
    expect(entry!.correlationID).toMatch(/^CI-/);
    // Beside a new item in the batch: the new one is refused with the batch and generated nothing.
    const mixed = await sds.client.submit('IF-021', [item([SUP]), first]);
    expect(mixed.status).toBe(400);
    expect(mixed.body.messageArray.map((e: Json) => e.correlationID)).toEqual([null, entry!.correlationID]);
  });

  it('generates nothing on a channel that does not start workflows (IF-021 by default)', async () => {
    const sender = await plain.join(SDS, ['SDS']);
    const sup = await plain.join(SUP, ['SUP']);
    const r = await withWebhook(plain, sup);
    const [entry] = await submitOk(sender, [item([SUP])]);
    expect(entry!.correlationID).toBeNull();
    const carried = item([SUP]);
    carried.payload.CommonBlock.S1.senderCorrelationID = 'CI-20240101-CARRIED';
    const [second] = await submitOk(sender, [carried]);
    expect(second!.correlationID).toBe('CI-20240101-CARRIED');
    await waitFor(() => delivered(r).length >= 2, 5000, 'both messages at SUP');
    expect(delivered(r).map((m) => d0(m).initialCorrelationID)).toEqual([null, 'CI-20240101-CARRIED']);
  });
});

// ---------------------------------------------------------------------------------------------------------

describe('obfuscation by receiving role (spec 5.5.6, the worked example of 5.5.12 on IF-021)', () => {
  const SUP_HIDES = ['CustomBlock.B067.connectionTypeIndicator', 'CustomBlock.B067.connectionTypeEffectiveFromDate', 'CustomBlock.B044'];
  const LSS_MASKS = ['CustomBlock.B900.settlementDayConsumptionPeriods[].consumptionPeriods[].q=x', 'CustomBlock.B067.connectionTypeIndicator=x'];

  describe('hiddenPaths and obfuscate', () => {
    const rules = { SUP: ['a.b', 'a.c', 'd'], LDSO: ['a.c'], LSS: ['a.c', 'd'] };

    it('hides for a set of roles only what every one of them hides (least restrictive)', () => {
      expect(hiddenPaths(rules, ['SUP'])).toEqual(['a.b', 'a.c', 'd']);
      expect(hiddenPaths(rules, ['SUP', 'LDSO'])).toEqual(['a.c']);
      expect(hiddenPaths(rules, ['SUP', 'LSS'])).toEqual(['a.c', 'd']);
      expect(hiddenPaths(rules, ['SUP', 'MDS'])).toEqual([]); // MDS has no rule: it sees everything
      expect(hiddenPaths(rules, ['MDS'])).toEqual([]);
      expect(hiddenPaths(rules, [])).toEqual([]);
      expect(hiddenPaths({}, ['SUP'])).toEqual([]);
    });

    it('removes or masks paths under payload, stepping into every array element with []', () => {
      const message = {
        payload: {
          CommonBlock: { S0: { interfaceID: 'IF-021' } },
          CustomBlock: {
            B044: { issuingDataServiceDIPID: SDS },
            B067: { connectionTypeIndicator: 'W', connectionTypeEffectiveFromDate: '2024-01-01T00:00:00+00:00' },
            days: [
              { day: 1, periods: [{ v: '1.000', q: 'A' }, { v: '2.000', q: 'E' }] },
              { day: 2, periods: [{ v: '3.000', q: 'A' }] },
            ],
          },
        },
      };
      const before = structuredClone(message);
      const out = obfuscate(message, ['CustomBlock.B044', 'CustomBlock.B067.connectionTypeIndicator', 'CustomBlock.days[].periods[].v', 'CustomBlock.days[].day=x']);
      expect(message).toEqual(before); // the input is not changed
      expect(out.payload.CustomBlock).toEqual({
        B067: { connectionTypeEffectiveFromDate: '2024-01-01T00:00:00+00:00' },
        days: [
          { day: 'x', periods: [{ q: 'A' }, { q: 'E' }] },
          { day: 'x', periods: [{ q: 'A' }] },
        ],
      });
      expect(out.payload.CommonBlock).toEqual(before.payload.CommonBlock);
      // Masking keeps the field with the value 'x'.
      expect(obfuscate(message, ['CustomBlock.days[].periods[].q=x']).payload.CustomBlock.days.flatMap((d) => d.periods.map((p) => p.q))).toEqual(['x', 'x', 'x']);
      // Paths that are absent, or step with [] into something that is not an array, change nothing.
      expect(obfuscate(message, ['CustomBlock.nothing.here', 'CustomBlock.B044[].x', 'Missing', 'CustomBlock.days.periods'])).toEqual(before);
      expect(obfuscate({ other: 1 }, ['CustomBlock.B044'])).toEqual({ other: 1 });
    });

    it('takes out (or masks element by element) a whole array named last with [], and matches names in any case', () => {
      const message = { payload: { CustomBlock: { list: [1, 2, 3], B044: { issuingDataServiceDIPID: SDS }, keep: true } } };
      expect(obfuscate(message, ['CustomBlock.list[]']).payload.CustomBlock).toEqual({ B044: { issuingDataServiceDIPID: SDS }, keep: true });
      expect(obfuscate(message, ['CustomBlock.list[]=x']).payload.CustomBlock.list).toEqual(['x', 'x', 'x']);
      expect(obfuscate(message, ['customblock.b044.issuingdataservicedipid']).payload.CustomBlock).toEqual({ list: [1, 2, 3], B044: {}, keep: true });
      // Inherited names are not fields of the message.
      expect(obfuscate(message, ['CustomBlock.toString', 'CustomBlock.constructor=x'])).toEqual(message);
    });
  });

  describe('over the wire', () => {
    let t: SharedPkiDip;
    let sds: TestParticipant;
    let original: IF021Item;
    let transactionId: string;
    const rx: Record<string, Receiver> = {};
    let puller: TestParticipant;

    beforeAll(async () => {
      t = await startSharedPkiDip({ channels: { 'IF-021': { obfuscation: { SUP: SUP_HIDES, LSS: LSS_MASKS } } } });
      sds = await t.join(SDS, ['SDS']);
      puller = await t.join('1000000003', ['SUP']); // no webhook: pulls
      for (const [id, roles] of [
        [LDSO, ['LDSO']],
        [SUP, ['SUP']],
        ['1000000002', ['SUP', 'LDSO']],
        [MDS, ['MDS']],
        [LSS, ['LSS']],
      ] as const) {
        rx[id] = await withWebhook(t, await t.join(id, [...roles]));
      }
      original = item([LDSO, SUP, '1000000002', '1000000003']);
      transactionId = (await submitOk(sds, [original]))[0]!.transactionID!;
      for (const [id, r] of Object.entries(rx)) await waitFor(() => delivered(r).length > 0, 5000, `delivery to ${id}`);
    });
    afterAll(async () => {
      await t?.close();
    });

    const copyAt = (id: string): Json => {
      const r = rx[id]!;
      expect(r.calls[0]!.signature.ok).toBe(true); // the obfuscated copy is what the DIP signed
      const m = delivered(r)[0]!;
      expect(txOf(m)).toBe(transactionId);
      return m;
    };
    const withoutSupItems = (): Json => {
      const c = structuredClone(original.payload.CustomBlock) as Json;
      delete c.B044;
      delete c.B067.connectionTypeIndicator;
      delete c.B067.connectionTypeEffectiveFromDate;
      return c;
    };

    it('sends the targeted LDSO the full message', () => {
      expect(copyAt(LDSO).payload.CustomBlock).toEqual(original.payload.CustomBlock);
    });

    it('sends SUP recipients the message without exactly the three items, the rest untouched', () => {
      const sup = copyAt(SUP);
      expect(sup.payload.CustomBlock).toEqual(withoutSupItems());
      expect(sup.payload.CustomBlock.B067).toEqual({});
      expect(sup.payload.CommonBlock).toEqual(copyAt(LDSO).payload.CommonBlock);
    });

    it('sends everything to a participant holding both SUP and LDSO, and to roles with no rule (MDS)', () => {
      expect(copyAt('1000000002').payload.CustomBlock).toEqual(original.payload.CustomBlock);
      expect(copyAt(MDS).payload.CustomBlock).toEqual(original.payload.CustomBlock);
    });

    it("masks '=x' rules with the value 'x'", () => {
      const lss = copyAt(LSS).payload.CustomBlock;
      const expected = structuredClone(original.payload.CustomBlock) as Json;
      expected.B067.connectionTypeIndicator = 'x';
      for (const day of expected.B900.settlementDayConsumptionPeriods) for (const p of day.consumptionPeriods) p.q = 'x';
      expect(lss).toEqual(expected);
      expect(lss.B900.settlementDayConsumptionPeriods[0].consumptionPeriods).toHaveLength(48);
    });

    it('returns the obfuscated copy on pull too', async () => {
      const pulled = await puller.client.pull('IF-021', puller.dipId);
      expect(pulled.status).toBe(200);
      expect(pulled.body).toHaveLength(1);
      const m = pulled.body[0] as Json;
      expect(txOf(m)).toBe(transactionId);
      expect(m.payload.CustomBlock).toEqual(withoutSupItems());
    });
  });
});

// ---------------------------------------------------------------------------------------------------------

describe('dead letters, return to sender and requeue after recovery (spec 5.5.8, 5.5.9)', () => {
  let t: SharedPkiDip;
  let sds: TestParticipant;
  let sup: TestParticipant;
  let supRx: Receiver;
  let statusRx: Receiver;
  let supUp = false;
  const events: DeadLetterEvent[] = [];
  let sent: Array<{ transactionID: string; ref: string }> = [];

  beforeAll(async () => {
    t = await startSharedPkiDip({ channels: { 'IF-021': { staleAfterMinutes: 0.02, allowShortRetention: true } } }); // 1.2 s
    t.dip.events.on('dead-letter', (e: DeadLetterEvent) => events.push(e));
    sds = await t.join(SDS, ['SDS']);
    sup = await t.join(SUP, ['SUP']);
    supRx = await withWebhook(t, sup, () => (supUp ? 200 : 503));
    statusRx = await withStatusWebhook(t, sds);
  });
  afterAll(async () => {
    await t?.close();
  });

  it('refuses the admin API without the operator token (401)', async () => {
    const call = admin(t);
    expect((await call('GET', '/admin/dead-letters', undefined, null)).status).toBe(401);
    expect((await call('GET', '/admin/dead-letters', undefined, 'Bearer wrong')).status).toBe(401);
    expect((await call('GET', '/admin/dead-letters', undefined, `Bearer ${'A'.repeat(43)}`)).status).toBe(401);
    expect((await call('POST', '/admin/dead-letters/requeue', { recipientDipId: SUP, channel: 'IF-021' }, 'Bearer nope')).status).toBe(401);
    expect((await call('POST', '/admin/dead-letters/discard', { recipientDipId: SUP, channel: 'IF-021', seqs: [1] }, null)).status).toBe(401);
    const ok = await call('GET', '/admin/dead-letters');
    expect(ok.status).toBe(200);
    expect(ok.body).toEqual([]);
  });

  it('dead-letters messages a failing recipient did not take in time, and tells the sender once per message', async () => {
    const items = Array.from({ length: 5 }, () => item([SUP]));
    const entries = await submitOk(sds, items);
    sent = entries.map((e, i) => ({ transactionID: e.transactionID!, ref: items[i]!.payload.CommonBlock.S1.senderUniqueReference }));

    await waitFor(() => events.length >= 5, 8000, 'five dead-letter events');
    const call = admin(t);
    const listed = await call('GET', `/admin/dead-letters?recipient=${SUP}&channel=IF-021`);
    expect(listed.status).toBe(200);
    expect(listed.body).toHaveLength(5);
    expect(listed.body.map((d: Json) => d.transactionId)).toEqual(sent.map((s) => s.transactionID));
    for (const [i, d] of (listed.body as Json[]).entries()) {
      expect(d).toMatchObject({
        queue: { recipientDipId: SUP, channel: 'IF-021' },
        seq: i + 1,
        senderDipId: SDS,
        senderUniqueReference: sent[i]!.ref,
        reason: 'stale',
        status: null,
        state: 'dead',
      });
      expect(d.detail).toContain('stale');
    }
    expect(events.map((e) => [e.reason, e.queue.recipientDipId, e.entry.transactionId])).toEqual(sent.map((s) => ['stale', SUP, s.transactionID]));
    expect(supRx.calls).toHaveLength(0);

    await waitFor(() => delivered(statusRx).length >= 5, 5000, 'five status messages at the sender');
    // And no more than five: each notice is appended with its dead letter, all five are (the events fired),
    // and the sender's status queue is settled with five entries in it.
    const statusQueue = { recipientDipId: SDS, channel: STATUS_CHANNEL };
    await waitFor(() => queueSettled(t.dip, statusQueue), 5000, 'the status queue settled');
    expect((await t.dip.backend.log.queueState(statusQueue)).headSeq).toBe(5);
    const statuses = delivered(statusRx);
    expect(statuses).toHaveLength(5);
    expect(statusRx.calls.every((c) => c.signature.ok)).toBe(true);
    expect(statuses.map((s) => s.transactionID).sort()).toEqual(sent.map((s) => s.transactionID).sort());
    for (const s of statuses) {
      expect(Object.keys(s).sort()).toEqual(['DIPConnectionProviderID', 'correlationID', 'help', 'message', 'recipientID', 'senderID', 'senderUniqueReference', 'sentTimestamp', 'serviceTicketURL', 'transactionID'].sort());
      expect(s.recipientID).toBe(SDS);
      expect(s.senderID).toBe(DIP_ID);
      // The sender's own reference comes back with the report, so its system can match it at once.
      expect(s.senderUniqueReference).toBe(sent.find((x) => x.transactionID === s.transactionID)!.ref);
      expect(s.message).toMatch(/^MSG1000 - /);
      expect(s.help).toMatch(/stale/);
      expect(s.help).toContain(SUP);
      expect(s.sentTimestamp).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00$/);
    }
  });

  // A requeued dead letter's staleness clock starts at its requeue, so it is not set aside again at once.
  it('requeues them after the recipient recovers: all five, in the original order, under the original transaction IDs', async () => {
    supUp = true;
    const call = admin(t);
    // A misspelt or unknown field is refused, not dropped: dropped, the body had no seqs and meant "all".
    for (const body of [{ recipientDipId: SUP, channel: 'IF-021', seq: [1] }, { recipientDipId: SUP, channel: 'IF-021', foo: 1 }]) {
      const refused = await call('POST', '/admin/dead-letters/requeue', body);
      expect(refused.status, JSON.stringify(refused.body)).toBe(400);
      expect(refused.body.error).toMatch(/^body must NOT have additional property '(seq|foo)'/);
    }
    expect((await call('GET', `/admin/dead-letters?recipient=${SUP}&channel=IF-021`)).body).toHaveLength(5);
    expect(supRx.calls).toHaveLength(0);
    const requeue = await call('POST', '/admin/dead-letters/requeue', { recipientDipId: SUP, channel: 'IF-021' });
    expect(requeue).toEqual({ status: 200, body: { requeued: 5, skipped: [] } });
    await waitFor(() => delivered(supRx).length >= 5 || events.length > 5, 5000, 'the requeued messages at SUP');
    expect(events.slice(5).map((e) => `${e.reason}: ${e.detail}`), 'requeued messages were dead-lettered again').toEqual([]);
    const got = delivered(supRx);
    expect(got.map(txOf)).toEqual(sent.map((s) => s.transactionID));
    expect(got.map((m) => m.payload.CommonBlock.S1.senderUniqueReference)).toEqual(sent.map((s) => s.ref));
    expect(got.every((m) => d0(m).replayIndicator === false)).toBe(true);
    // Requeued after the originals: new queue positions 6..10.
    expect(supRx.calls.flatMap((c) => [c.firstSeq, c.lastSeq])).toContain(6);

    expect((await call('GET', `/admin/dead-letters?recipient=${SUP}`)).body).toEqual([]);
    expect((await call('GET', `/admin/dead-letters?recipient=${SUP}&state=requeued`)).body).toHaveLength(5);
    // Requeueing again finds nothing dead; no further dead letters or status messages were raised.
    expect((await call('POST', '/admin/dead-letters/requeue', { recipientDipId: SUP, channel: 'IF-021' })).body).toEqual({ requeued: 0, skipped: [] });
    // Named positions that are not dead letters (any more) are each said, with why; nothing is done.
    expect((await call('POST', '/admin/dead-letters/requeue', { recipientDipId: SUP, channel: 'IF-021', seqs: [999999, 1] })).body).toEqual({
      requeued: 0,
      skipped: [
        { seq: 1, reason: 'already requeued' },
        { seq: 999999, reason: 'no dead letter at this position' },
      ],
    });
    expect((await call('POST', '/admin/dead-letters/discard', { recipientDipId: SUP, channel: 'IF-021', seqs: [2] })).body).toEqual({
      discarded: 0,
      skipped: [{ seq: 2, reason: 'requeued: it is back in the queue, not a dead letter to discard' }],
    });
    // A queue the store does not have (a mistyped DIP ID or channel) is 404 naming it, not "0 requeued".
    for (const op of ['requeue', 'discard'] as const) {
      for (const body of [{ recipientDipId: '9999999999', channel: 'IF-021', seqs: [1] }, { recipientDipId: SUP, channel: 'IF-999', seqs: [1] }]) {
        const missing = await call('POST', `/admin/dead-letters/${op}`, body);
        expect(missing.status, JSON.stringify(missing.body)).toBe(404);
        expect(missing.body.error).toMatch(new RegExp(`^no queue ${body.recipientDipId}/${body.channel}: nothing was ever enqueued for recipient ${body.recipientDipId} on channel ${body.channel} `));
      }
    }
    expect((await call('POST', '/admin/dead-letters/requeue', { recipientDipId: '9999999999', channel: 'IF-999' })).status).toBe(404);
    expect(events).toHaveLength(5);
    expect(delivered(statusRx)).toHaveLength(5);
  });
});

// ---------------------------------------------------------------------------------------------------------

/** A plain HTTP webhook that answers every call with a fixed status and body, recording what it got. */
async function fixedAnswer(status: number, body: string): Promise<{ url: string; bodies: Json[][]; server: Server }> {
  const bodies: Json[][] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      bodies.push(JSON.parse(Buffer.concat(chunks).toString('utf8')) as Json[]);
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(body);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`, bodies, server };
}

describe('a recipient that refuses a message synchronously (spec 5.5.13 D)', () => {
  let t: SharedPkiDip;
  const servers: Server[] = [];
  afterAll(async () => {
    for (const s of servers) {
      s.closeAllConnections();
      s.close();
    }
    await t?.close();
  });

  it("relays the recipient's own StandardResponse code to the sender; the operator can discard the dead letter", async () => {
    t = await startSharedPkiDip();
    const sds = await t.join(SDS, ['SDS']);
    const ldso = await t.join(LDSO, ['LDSO']);
    const sup = await t.join(SUP, ['SUP']);
    const statusRx = await withStatusWebhook(t, sds);
    const refusal = {
      timestamp: dipDateTime(new Date()),
      senderID: LDSO,
      recipientID: DIP_ID,
      messageArray: [
        {
          transactionID: null,
          senderUniqueReference: null,
          correlationID: null,
          sentTimestamp: dipDateTime(new Date()),
          senderID: LDSO,
          recipientID: DIP_ID,
          DIPConnectionProviderID: null,
          message: 'RCP1001 - Schema Failure',
          help: 'B900.settlementDayConsumptionPeriods is not what we expected',
          serviceTicketURL: null,
        },
      ],
    };
    const ldsoHook = await fixedAnswer(400, JSON.stringify(refusal));
    const supHook = await fixedAnswer(400, 'no'); // refuses without a StandardResponse
    servers.push(ldsoHook.server, supHook.server);
    expect((await ldso.client.setWebhook('IF-021', LDSO, { callbackURL: ldsoHook.url })).status).toBe(201);
    expect((await sup.client.setWebhook('IF-021', SUP, { callbackURL: supHook.url })).status).toBe(201);

    const [toLdso] = await submitOk(sds, [item([LDSO])]);
    await waitFor(() => delivered(statusRx).length >= 1, 5000, 'the relayed refusal');
    const relayed = delivered(statusRx)[0]!;
    expect(ldsoHook.bodies.flat().map(txOf)).toEqual([toLdso!.transactionID]); // a 400 is not retried
    expect(relayed).toMatchObject({ transactionID: toLdso!.transactionID, senderID: DIP_ID, recipientID: SDS, message: 'RCP1001 - Schema Failure' });
    expect(relayed.help).toContain('HTTP 400');
    expect(relayed.help).toContain('B900.settlementDayConsumptionPeriods is not what we expected');

    // Without a StandardResponse body, the DIP's own code stands in.
    const [toSup] = await submitOk(sds, [item([SUP])]);
    await waitFor(() => delivered(statusRx).length >= 2, 5000, 'the second refusal');
    expect(delivered(statusRx)[1]).toMatchObject({ transactionID: toSup!.transactionID, recipientID: SDS, message: 'MSG1000 - Message Processing Failed' });

    const call = admin(t);
    const dead = await call('GET', `/admin/dead-letters?recipient=${LDSO}&channel=IF-021`);
    expect(dead.body).toEqual([expect.objectContaining({ seq: 1, reason: 'rejected', status: 400, transactionId: toLdso!.transactionID, state: 'dead' })]);
    expect((await call('POST', '/admin/dead-letters/discard', { recipientDipId: LDSO, channel: 'IF-021' })).status).toBe(400); // seqs required
    expect((await call('POST', '/admin/dead-letters/discard', { recipientDipId: LDSO, channel: 'IF-021', seqs: [1] })).body).toEqual({ discarded: 1, skipped: [] });
    expect((await call('POST', '/admin/dead-letters/discard', { recipientDipId: LDSO, channel: 'IF-021', seqs: [1] })).body).toEqual({ discarded: 0, skipped: [{ seq: 1, reason: 'already discarded' }] });
    expect((await call('GET', `/admin/dead-letters?recipient=${LDSO}`)).body).toEqual([]);
    expect((await call('GET', `/admin/dead-letters?recipient=${LDSO}&state=discarded`)).body).toHaveLength(1);
    // A discarded letter cannot be requeued.
    expect((await call('POST', '/admin/dead-letters/requeue', { recipientDipId: LDSO, channel: 'IF-021', seqs: [1] })).body).toEqual({ requeued: 0, skipped: [{ seq: 1, reason: 'discarded: a discarded dead letter is not requeued' }] });
    expect((await call('GET', `/admin/dead-letters?recipient=${SUP}`)).body).toHaveLength(1);
  });
});

// ---------------------------------------------------------------------------------------------------------

// Spec 5.5.9: return to sender "only reports when a processing thread terminates due to data or processing
// problems" of a message. A status message is that report: one its recipient refuses is set aside for the
// operator, and no status about it is raised, to the DIP's own ID or to a participant that posted it, where
// an automated answer to it would start a status back and forth between the two.
describe('a status message its recipient refuses: set aside, and no status message about it (spec 5.5.9)', () => {
  let t: SharedPkiDip;
  const servers: Server[] = [];
  const events: DeadLetterEvent[] = [];
  afterAll(async () => {
    for (const s of servers) {
      s.closeAllConnections();
      s.close();
    }
    await t?.close();
  });

  it('whether the DIP raised it or a recipient posted it', async () => {
    t = await startSharedPkiDip();
    t.dip.events.on('dead-letter', (e: DeadLetterEvent) => events.push(e));
    const sds = await t.join(SDS, ['SDS']);
    const sup = await t.join(SUP, ['SUP']);
    const ldso = await t.join(LDSO, ['LDSO']);
    const refuses = await fixedAnswer(400, 'no');
    servers.push(refuses.server);
    // SDS refuses every status message; LDSO every message; SUP takes them, and would see any status.
    expect((await sds.client.setStatusWebhook(SDS, { callbackURL: refuses.url })).status).toBe(201);
    expect((await ldso.client.setWebhook('IF-021', LDSO, { callbackURL: refuses.url })).status).toBe(201);
    const supRx = await withWebhook(t, sup);
    const supStatusRx = await withStatusWebhook(t, sup);
    const statusQueue = (recipientDipId: string) => ({ recipientDipId, channel: STATUS_CHANNEL });

    // The DIP's own status message (LDSO refused the message) refused in turn.
    const [toLdso] = await submitOk(sds, [item([LDSO])]);
    await waitFor(() => events.length >= 2, 10_000, 'the message and its status message set aside');
    // A status about a dead letter is appended in the settlement that sets it aside: had one been raised
    // about the status message, it would be in a queue by now.
    expect(events.map((e) => [e.queue.recipientDipId, e.queue.channel, e.reason])).toEqual([
      [LDSO, 'IF-021', 'rejected'],
      [SDS, STATUS_CHANNEL, 'rejected'],
    ]);
    expect((await t.dip.backend.log.queueState(statusQueue(DIP_ID))).headSeq).toBe(0);
    expect((await t.dip.backend.log.queueState(statusQueue(SDS))).headSeq).toBe(1);

    // A status SUP posted about a message it received, refused by its recipient (SDS).
    const [toSup] = await submitOk(sds, [item([SUP])]);
    await waitFor(() => delivered(supRx).length > 0, 10_000, 'the message at SUP');
    const posted = await sup.client.statusMessage([
      { transactionID: toSup!.transactionID, senderUniqueReference: null, correlationID: null, sentTimestamp: dipDateTime(new Date()), senderID: SUP, recipientID: null, DIPConnectionProviderID: null, message: 'RCP1061 - MPAN Invalid or Unknown', help: null, serviceTicketURL: null },
    ]);
    expect(posted.status, JSON.stringify(posted.body)).toBe(201);
    await waitFor(() => events.length >= 3, 10_000, "SUP's status message set aside");
    expect(events.slice(2).map((e) => [e.queue.recipientDipId, e.queue.channel, e.reason])).toEqual([[SDS, STATUS_CHANNEL, 'rejected']]);
    expect((await t.dip.backend.log.queueState(statusQueue(SUP))).headSeq).toBe(0);
    expect(supStatusRx.calls).toHaveLength(0);

    // Both are where the operator sees dead letters, each once.
    const dead = await admin(t)('GET', `/admin/dead-letters?recipient=${SDS}&channel=${STATUS_CHANNEL}`);
    expect(dead.body.map((d: Json) => [d.seq, d.reason, d.status, d.state])).toEqual([
      [1, 'rejected', 400, 'dead'],
      [2, 'rejected', 400, 'dead'],
    ]);
    expect(refuses.bodies.flat().map((b) => (b.transactionID as string | undefined) ?? txOf(b))).toEqual([toLdso!.transactionID, toLdso!.transactionID, toSup!.transactionID]);
  });
});

// ---------------------------------------------------------------------------------------------------------

describe('a recipient reporting a problem later, with POST /statusmessage (spec 5.5.13 E)', () => {
  let t: SharedPkiDip;
  let sds: TestParticipant;
  let sup: TestParticipant;
  let ldso: TestParticipant;
  let statusRx: Receiver;
  let transactionId: string;
  let ref: string;

  beforeAll(async () => {
    t = await startSharedPkiDip();
    sds = await t.join(SDS, ['SDS']);
    sup = await t.join(SUP, ['SUP']);
    ldso = await t.join(LDSO, ['LDSO']);
    const supRx = await withWebhook(t, sup);
    statusRx = await withStatusWebhook(t, sds);
    const sentItem = item([SUP]);
    ref = sentItem.payload.CommonBlock.S1.senderUniqueReference;
    transactionId = (await submitOk(sds, [sentItem]))[0]!.transactionID!;
    await waitFor(() => delivered(supRx).length > 0, 5000, 'the message at SUP');
  });
  afterAll(async () => {
    await t?.close();
  });

  const entry = (over: Json = {}): Json => ({
    transactionID: transactionId,
    senderUniqueReference: ref,
    correlationID: null,
    sentTimestamp: dipDateTime(new Date()),
    senderID: SUP,
    recipientID: null,
    DIPConnectionProviderID: null,
    message: 'RCP1061 - MPAN Invalid or Unknown',
    help: 'MPAN not known to this supplier',
    serviceTicketURL: null,
    ...over,
  });

  it('accepts a status about a message the caller received (201) and relays it to that message\'s sender', async () => {
    const sentEntry = entry();
    const answer = await sup.client.statusMessage([sentEntry]);
    expect(answer.status, JSON.stringify(answer.body)).toBe(201);
    expect(answer.body.messageArray[0]).toMatchObject({ transactionID: transactionId, senderUniqueReference: ref, message: 'MSG0000 - Success', recipientID: SUP });
    await waitFor(() => delivered(statusRx).length > 0, 5000, 'the status at the sender');
    expect(statusRx.calls[0]!.signature.ok).toBe(true);
    expect(delivered(statusRx)).toEqual([{ ...sentEntry, recipientID: SDS }]);
  });

  it("fills what the recipient left null from the transaction: the sender's own reference and its workflow's correlation ID", async () => {
    // The DIP knows both (its own status messages carry them); a recipient's report with them null would
    // otherwise reach the sender without the keys its system files a workflow's messages under.
    const supRx = await withWebhook(t, sup);
    const carried = item([SUP]);
    carried.payload.CommonBlock.S1.senderCorrelationID = 'CI-20240101-REPORTED';
    const [sentEntry] = await submitOk(sds, [carried]);
    await waitFor(() => delivered(supRx).some((m) => txOf(m) === sentEntry!.transactionID), 5000, 'the message at SUP');
    const before = delivered(statusRx).length;
    const answer = await sup.client.statusMessage([entry({ transactionID: sentEntry!.transactionID, senderUniqueReference: null, correlationID: null })]);
    expect(answer.status, JSON.stringify(answer.body)).toBe(201);
    await waitFor(() => delivered(statusRx).length > before, 5000, 'the status at the sender');
    expect(delivered(statusRx).at(-1)).toMatchObject({
      transactionID: sentEntry!.transactionID,
      senderUniqueReference: carried.payload.CommonBlock.S1.senderUniqueReference,
      correlationID: 'CI-20240101-REPORTED',
      recipientID: SDS,
    });
    // A workflow the recipient names is its own to give, and passed on as it said it. A reference is not: it
    // names the sender's message the status is about, so one that is not the transaction's (here the
    // recipient's own) is set right, and the caller's answer echoes its own and says so.
    const ownRef = `${ref}own`;
    const said = await sup.client.statusMessage([entry({ transactionID: sentEntry!.transactionID, senderUniqueReference: ownRef, correlationID: 'CI-OWN' })]);
    expect(said.status).toBe(201);
    expect(said.body.messageArray[0]).toMatchObject({ senderUniqueReference: ownRef, message: 'MSG0000 - Success' });
    expect(said.body.messageArray[0]!.help).toBe(`senderUniqueReference relayed to ${SDS} as ${sentEntry!.transactionID}'s own (${carried.payload.CommonBlock.S1.senderUniqueReference}), not '${ownRef}': it names the sender's message the status is about`);
    await waitFor(() => delivered(statusRx).length > before + 1, 5000, 'the second status at the sender');
    expect(delivered(statusRx).at(-1)).toMatchObject({ senderUniqueReference: carried.payload.CommonBlock.S1.senderUniqueReference, correlationID: 'CI-OWN' });
    // Another of the sender's own references would file the report under the wrong message: set right too.
    const [other] = await submitOk(sds, [item([SUP])]);
    const misfiled = await sup.client.statusMessage([entry({ transactionID: sentEntry!.transactionID, senderUniqueReference: other!.senderUniqueReference })]);
    expect(misfiled.status).toBe(201);
    await waitFor(() => delivered(statusRx).length > before + 2, 5000, 'the third status at the sender');
    expect(delivered(statusRx).at(-1)).toMatchObject({ transactionID: sentEntry!.transactionID, senderUniqueReference: carried.payload.CommonBlock.S1.senderUniqueReference });
  });

  it('refuses a caller that did not receive the transaction (400), whatever it claims', async () => {
    const notReceived = await ldso.client.statusMessage([entry({ senderID: LDSO })]);
    expect(notReceived.status).toBe(400);
    expect(notReceived.body.messageArray[0]!.help).toContain(`is not a message ${LDSO} received`);
    // Its own sender cannot report on it either, and an unknown transaction gets the same answer.
    expect((await sds.client.statusMessage([entry({ senderID: SDS })])).status).toBe(400);
    const unknown = await sup.client.statusMessage([entry({ transactionID: 'T-IF-021-2000000001-SDS-20240101-0000000000000000' })]);
    expect(unknown.status).toBe(400);
    expect(unknown.body.messageArray[0]!.help).toContain(`is not a message ${SUP} received`);
  });

  // Found by a black-box participant client (probe5): one status posted 1000 times in one batch was relayed
  // 1000 times. A batch of messages naming one senderUniqueReference twice is refused whole (400 MSG1006);
  // so is a batch of statuses carrying one twice. Two different statuses about one transaction are not the same.
  it('refuses a batch carrying the same status twice (400 MSG1006 naming the item), relaying none; two different ones pass', async () => {
    const before = delivered(statusRx).length;
    const once = entry();
    const twice = await sup.client.statusMessage([once, entry({ sentTimestamp: once.sentTimestamp }), entry({ help: 'another problem' }), entry()]);
    expect(twice.status).toBe(400);
    expect(twice.body.messageArray.map((e) => e.message)).toEqual([MSG.processingFailed, MSG.duplicateReference, MSG.processingFailed, MSG.duplicateReference]);
    expect(twice.body.messageArray[1]!.help).toBe(`item 1: the same status as item 0 (transactionID ${transactionId}, message RCP1061 - MPAN Invalid or Unknown): a batch carries each status once`);
    expect(twice.body.messageArray[3]!.help).toMatch(/^item 3: the same status as item 0 /);
    const different = await sup.client.statusMessage([once, entry({ help: 'another problem' })]);
    expect(different.status, JSON.stringify(different.body)).toBe(201);
    await waitFor(() => delivered(statusRx).length >= before + 2, 5000, 'both statuses at the sender');
    expect(delivered(statusRx)).toHaveLength(before + 2);
  });

  it('refuses a senderID that is not the caller (403)', async () => {
    const forged = await sup.client.statusMessage([entry({ senderID: MDS })]);
    expect(forged.status).toBe(403);
    expect(forged.body.messageArray[0]!.help).toContain(`senderID ${MDS} is not the caller ${SUP}`);
  });

  it('accepts what the published StandardResponseBodyType accepts: free message text, long references, extra fields (not passed on)', async () => {
    const before = delivered(statusRx).length;
    // The published type's own example message, help of 500 characters, and a senderUniqueReference of 200
    // characters (their maxima); the reference is relayed as the transaction's own (the test above).
    const longRef = `${ref}${'a'.repeat(200 - ref.length)}`;
    const help = `MPAN not known. ${'h'.repeat(500 - 16)}`;
    const accepted = await sup.client.statusMessage([entry({ message: 'MSG0101 Application 101 error message', help, senderUniqueReference: longRef, colour: 'blue' })]);
    expect(accepted.status, JSON.stringify(accepted.body)).toBe(201);
    expect(accepted.body.messageArray[0]!.senderUniqueReference).toBe(longRef);
    await waitFor(() => delivered(statusRx).length > before, 5000, 'the status at the sender');
    const relayed = delivered(statusRx).at(-1)!;
    expect(relayed).toMatchObject({ message: 'MSG0101 Application 101 error message', help, senderUniqueReference: ref });
    expect(relayed).not.toHaveProperty('colour');
  });

  it('refuses malformed entries with a 400 naming the field', async () => {
    const cases: Array<[object[] | string, string]> = [
      [[(({ message: _m, ...rest }) => rest)(entry())], 'message'],
      [[entry({ message: '' })], 'message'],
      [[entry({ message: 'm'.repeat(201) })], 'message'],
      [[entry({ sentTimestamp: '2024-01-01T00:00:00Z' })], 'sentTimestamp'],
      [[entry({ senderID: 'ABC' })], 'senderID'],
      [[entry({ senderID: '00000000000' })], 'senderID'],
      [[entry({ senderUniqueReference: `${ref}${'a'.repeat(201 - ref.length)}` })], 'senderUniqueReference'],
      [[entry({ correlationID: 'C'.repeat(61) })], 'correlationID'],
      [[entry({ transactionID: null })], 'transactionID'],
      [[entry({ help: 'h'.repeat(501) })], 'help'],
      // Free text is relayed to the sender's systems as text on one line: no control characters.
      [[entry({ message: 'RCP1061 - MPAN\nInvalid' })], 'message must not contain control characters (U+000A at character 15)'],
      [[entry({ help: 'see \u001b[31mhere' })], 'help must not contain control characters (U+001B at character 5)'],
      [[entry({ serviceTicketURL: 'https://tickets.example/1\u0085' })], 'serviceTicketURL must not contain control characters (U+0085'],
    ];
    for (const [body, field] of cases) {
      const answer = await sup.client.statusMessage(body as object[]);
      expect(answer.status, field).toBe(400);
      expect(answer.body.messageArray[0]!.help, field).toContain(field);
    }
    // Of the right length but no real date-time, or in the future: read as a message's senderTimestamp is.
    const future = dipDateTime(new Date(Date.now() + 3_600_000));
    for (const [sentTimestamp, why] of [
      ['2026-02-30T10:00:00+00:00', /item 0: sentTimestamp '2026-02-30T10:00:00\+00:00' is not a date-time .*has no day 30/],
      ['2026-01-01T24:00:00+00:00', /item 0: sentTimestamp .* is not a date-time .*is not a time of day/],
      [future, /item 0: sentTimestamp .* is in the future/],
    ] as const) {
      const answer = await sup.client.statusMessage([entry({ sentTimestamp })]);
      expect([answer.status, answer.body.messageArray[0]!.message], sentTimestamp).toEqual([400, MSG.senderTimestampInvalid]);
      expect(answer.body.messageArray[0]!.help).toMatch(why);
    }
    expect((await sup.client.statusMessage([])).status).toBe(400);
    expect((await sup.client.call('POST', '/statusmessage', '{not json')).status).toBe(400);
    // A batch with one bad entry is refused whole.
    const before = delivered(statusRx).length;
    expect((await sup.client.statusMessage([entry(), entry({ senderID: MDS })])).status).toBe(403);
    // A valid status after it goes down the same queue; the queue keeps order, so had anything of the
    // refused batch been kept it would arrive first.
    expect((await sup.client.statusMessage([entry({ message: 'MSG0000 - after the refused batch' })])).status).toBe(201);
    await waitFor(() => delivered(statusRx).length > before, 5000, 'the status sent after the refused batch');
    expect(delivered(statusRx).slice(before).map((m) => m.message)).toEqual(['MSG0000 - after the refused batch']);
  });

  describe('about a replayed copy (spec 5.5.11)', () => {
    let original: Json;
    let copyId: string;

    beforeAll(async () => {
      const carried = item([SUP, LDSO]);
      carried.payload.CommonBlock.S1.senderCorrelationID = 'CI-20240101-REPLAYED';
      original = (await submitOk(sds, [carried]))[0]!;
      // SUP replays it: its copy has a transaction ID of its own (R-…), which SDS never saw.
      const replayed = await sup.client.replay('IF-021', SUP, { transactionIDs: [original.transactionID] });
      expect(replayed.status, JSON.stringify(replayed.body)).toBe(200);
      copyId = txOf((replayed.body as Json[])[0]);
      expect(copyId).toMatch(/^R-/);
    });

    const about = (senderID: string, over: Json = {}): Json => entry({ transactionID: copyId, senderUniqueReference: null, senderID, ...over });

    it('reaches the sender naming the original transaction it sent, with the copy named in the help', async () => {
      // Before: relayed as transactionID R-…, an ID the sender never saw and cannot match to anything it sent.
      const before = delivered(statusRx).length;
      const answer = await sup.client.statusMessage([about(SUP, { correlationID: `R-${original.correlationID}` })]);
      expect(answer.status, JSON.stringify(answer.body)).toBe(201);
      await waitFor(() => delivered(statusRx).length > before, 5000, 'the status at the sender');
      expect(delivered(statusRx).at(-1)).toMatchObject({
        transactionID: original.transactionID,
        senderUniqueReference: original.senderUniqueReference,
        correlationID: 'CI-20240101-REPLAYED',
        senderID: SUP,
        recipientID: SDS,
        message: 'RCP1061 - MPAN Invalid or Unknown',
        help: `about the replayed copy ${copyId} of ${original.transactionID}: MPAN not known to this supplier`,
      });
    });

    it('is refused from another recipient of the original: the copy was replayed to SUP alone', async () => {
      // Before: 201, the archive giving the copy all of its original's recipients.
      const other = await ldso.client.statusMessage([about(LDSO)]);
      expect(other.status, JSON.stringify(other.body)).toBe(400);
      expect(other.body.messageArray[0]!.help).toContain(`transactionID ${copyId} is not a message ${LDSO} received`);
      // About the original itself, LDSO still may.
      expect((await ldso.client.statusMessage([about(LDSO, { transactionID: original.transactionID })])).status).toBe(201);
    });
  });
});

// ---------------------------------------------------------------------------------------------------------

describe('a pull answers at most delivery.maxPullAnswerKb, whatever maxPayloadSize asks', () => {
  let t: SharedPkiDip;
  afterAll(async () => {
    await t?.close();
  });

  it('accepts maxPayloadSize up to 1,048,576 KB and answers a page within the cap (here 8 KB); the rest follows the acknowledgement', async () => {
    t = await startSharedPkiDip({ delivery: { ...DEFAULTS.delivery, maxPullAnswerKb: 8 } });
    const sds = await t.join(SDS, ['SDS']);
    const sup = await t.join(SUP, ['SUP']);
    const sent = (await submitOk(sds, Array.from({ length: 5 }, () => item([SUP])))).map((e) => e.transactionID!);
    const page = await sup.client.call<unknown[]>('GET', `/dip-channel/IF-021/pull/${SUP}?maxMessageCount=10&maxPayloadSize=1048576`, '');
    expect(page.status).toBe(200);
    // Each IF-021 copy is some 4-5 kB: one or two fit in 8 KB, never all five.
    expect(page.body.length).toBeGreaterThanOrEqual(1);
    expect(page.body.length).toBeLessThan(5);
    if (page.body.length > 1) expect(Buffer.byteLength(JSON.stringify(page.body))).toBeLessThanOrEqual(8 * 1024);
    expect(page.body.map(txOf)).toEqual(sent.slice(0, page.body.length));
    expect((await sup.client.ack('IF-021', SUP, page.body.length)).status).toBe(200);
    const next = await sup.client.call<unknown[]>('GET', `/dip-channel/IF-021/pull/${SUP}?maxMessageCount=10&maxPayloadSize=1048576`, '');
    expect(next.body.map(txOf)).toEqual(sent.slice(page.body.length, page.body.length + next.body.length));
  });
});

describe('pull consumption (spec 5.4) and idempotent read', () => {
  let t: SharedPkiDip;
  let t2: SharedPkiDip | undefined;
  afterAll(async () => {
    await t2?.close();
    await t?.close();
  });

  it('pulls at least once until acknowledged, refuses bad acks, and keeps the position across a restart', async () => {
    t = await startSharedPkiDip();
    const sds = await t.join(SDS, ['SDS']);
    const sup = await t.join(SUP, ['SUP']);
    const ldso = await t.join(LDSO, ['LDSO']);
    /** Every pulled message by queue position: re-pulls must repeat, distinct positions must differ. */
    const bySeq = new Map<number, string>();
    const record = (answer: Awaited<ReturnType<DipClient['pull']>>) => {
      expect(answer.status).toBe(200);
      if (answer.body.length === 0) {
        expect(answer.firstSeq).toBeNull();
        return;
      }
      expect(answer.lastSeq! - answer.firstSeq! + 1).toBe(answer.body.length);
      answer.body.forEach((m, i) => {
        const seq = answer.firstSeq! + i;
        const known = bySeq.get(seq);
        if (known !== undefined) expect(txOf(m)).toBe(known);
        bySeq.set(seq, txOf(m));
      });
    };

    const sent = (await submitOk(sds, Array.from({ length: 5 }, () => item([SUP])))).map((e) => e.transactionID!);

    const first = await sup.client.pull('IF-021', SUP, 3);
    record(first);
    expect([first.firstSeq, first.lastSeq]).toEqual([1, 3]);
    expect(first.headers['x-opendip-sequence']).toBe('1-3');
    expect(first.headers['x-opendip-acknowledged']).toBe('0');
    expect(first.body.map(txOf)).toEqual(sent.slice(0, 3));

    // Not acknowledged: the same messages come back.
    const again = await sup.client.pull('IF-021', SUP, 3);
    record(again);
    expect(again.body).toEqual(first.body);

    expect((await sup.client.ack('IF-021', SUP, 2)).status).toBe(200);
    const next = await sup.client.pull('IF-021', SUP, 3);
    record(next);
    expect([next.firstSeq, next.lastSeq]).toEqual([3, 5]);
    expect(next.headers['x-opendip-acknowledged']).toBe('2');
    expect(next.body.map(txOf)).toEqual(sent.slice(2));
    // What is acknowledged is delivered, as reports and journeys tell it (the recipient read it); the rest is not yet.
    const journey = async (tx: string) => (await sup.client.call<{ rows: Array<{ event: string; detail: string }> }>('GET', `/observability/reports/journey/${tx}`, '')).body.rows;
    expect((await journey(sent[1]!)).filter((e) => ['attempt', 'delivered'].includes(e.event)).map((e) => e.detail)).toEqual([`pulled and acknowledged by ${SUP}`, `delivered to ${SUP}`]);
    expect((await journey(sent[2]!)).map((e) => e.event)).not.toContain('delivered');
    // The acknowledgement is journalled under an ID of its own, made when it was received.
    const [acked] = await t.dip.backend.archive.attempts({ recipientDipId: SUP, channel: 'IF-021' }, 10);
    expect([acked?.url, acked?.firstSeq, acked?.lastSeq]).toEqual(['pull', 1, 2]);
    expect(attemptIdTime(acked!.attemptId!)).toBe(acked!.startedAt);

    const beyond = await sup.client.ack('IF-021', SUP, 6);
    expect([beyond.status, beyond.body.messageArray[0]!.help]).toEqual([400, 'sequence 6 is past the last position a pull handed out (5): acknowledge only what was pulled (acknowledged so far: 2)']);
    // Behind the position (another puller of the same queue acknowledged further): nothing to do, and no error.
    const behind = await sup.client.ack('IF-021', SUP, 1);
    expect([behind.status, behind.body.messageArray[0]!.help]).toEqual([200, 'already acknowledged up to 2: nothing changed']);
    for (const [bad, why] of [[-1, 'sequence must be >= 0'], [2.5, 'sequence must be of type integer']] as const) {
      const answer = await sup.client.ack('IF-021', SUP, bad);
      expect(answer.status, String(bad)).toBe(400);
      expect(answer.body.messageArray[0]!.help).toBe(why);
    }
    expect((await sup.client.call('POST', `/dip-channel/IF-021/ack/${SUP}`, '{"sequence":"3"}')).status).toBe(400);
    expect((await sup.client.ack('IF-021', SUP, 2)).status).toBe(200); // acknowledging the same position again is harmless

    // A count or size that is not a whole number in range is refused, naming it (not bent into one).
    for (const [query, why] of [
      ['maxMessageCount=0', "maxMessageCount (query string) must be a whole number from 1 to 10,000, not '0'"],
      ['maxMessageCount=abc', "maxMessageCount (query string) must be a whole number from 1 to 10,000, not 'abc'"],
      ['maxMessageCount=2.5', "maxMessageCount (query string) must be a whole number from 1 to 10,000, not '2.5'"],
      ['maxPayloadSize=-1', "maxPayloadSize (query string) must be a whole number from 1 to 1,048,576, not '-1'"],
    ]) {
      const answer = await sup.client.call('GET', `/dip-channel/IF-021/pull/${SUP}?${query}`, '');
      expect([answer.status, answer.body.messageArray[0]!.help], query).toEqual([400, why]);
    }
    // Query names in any case, as URLs (the published API enforces no case on them): not ignored for the default.
    for (const query of ['MaxMessageCount=1', 'maxmessagecount=1&MAXPAYLOADSIZE=1024']) {
      const one = await sup.client.call<unknown[]>('GET', `/dip-channel/IF-021/pull/${SUP}?${query}`, '');
      expect([one.status, one.body.map(txOf), one.headers['x-opendip-sequence']], query).toEqual([200, [sent[2]], '3-3']);
    }
    const twice = await sup.client.call('GET', `/dip-channel/IF-021/pull/${SUP}?maxMessageCount=1&MaxMessageCount=2`, '');
    expect([twice.status, twice.body.messageArray[0]!.help]).toEqual([400, 'maxMessageCount (query string) is given 2 times (as maxMessageCount and MaxMessageCount; names are read in any case): give it once']);
    // As the publications routes answer (one rule, src/api/query.ts): repeated in one spelling is refused too, not read as '1,2'.
    const repeated = await sup.client.call('GET', `/dip-channel/IF-021/pull/${SUP}?maxMessageCount=1&maxMessageCount=2`, '');
    expect([repeated.status, repeated.body.messageArray[0]!.help]).toEqual([400, 'maxMessageCount (query string) is given 2 times: give it once']);

    // A recipient with an empty queue pulls nothing; acknowledging position 0 is a harmless no-op.
    const nothing = await ldso.client.pull('IF-021', LDSO);
    expect([nothing.status, nothing.body, nothing.headers['x-opendip-acknowledged']]).toEqual([200, [], '0']);
    expect((await ldso.client.ack('IF-021', LDSO, 0)).status).toBe(200);
    expect((await ldso.client.ack('IF-021', LDSO, 1)).status).toBe(400);

    // Only one's own queue, only on a channel one receives on, and not while messages are pushed.
    expect((await sup.client.pull('IF-021', LDSO)).status).toBe(403);
    expect((await sds.client.pull('IF-021', SDS)).status).toBe(403);
    const r = await t.receiver();
    expect((await ldso.client.setWebhook('IF-021', LDSO, { callbackURL: r.url })).status).toBe(201);
    const conflict = await ldso.client.pull('IF-021', LDSO);
    expect(conflict.status).toBe(409);
    expect(JSON.stringify(conflict.body)).toContain('pushed to your webhook');

    expect((await sup.client.ack('IF-021', SUP, 3)).status).toBe(200);

    // Restart on the same data directory: the position is durable.
    await t.dip.close();
    t2 = await startSharedPkiDip({}, t.config.dataDir);
    const client2 = t2.clientFor(sup); // the same credentials: the participant survived the restart
    const afterRestart = await client2.pull('IF-021', SUP);
    record(afterRestart);
    expect([afterRestart.firstSeq, afterRestart.lastSeq]).toEqual([4, 5]);
    expect(afterRestart.headers['x-opendip-acknowledged']).toBe('3');
    expect(afterRestart.body.map(txOf)).toEqual(sent.slice(3));

    expect((await client2.ack('IF-021', SUP, 5)).status).toBe(200);
    const empty = await client2.pull('IF-021', SUP);
    record(empty);
    expect(empty.body).toEqual([]);
    expect(empty.headers['x-opendip-sequence']).toBeUndefined();
    expect(empty.headers['x-opendip-acknowledged']).toBe('5');

    // New messages continue the sequence after the restart.
    const more = (await submitOk({ ...sds, client: t2.clientFor(sds) }, [item([SUP]), item([SUP])])).map((e) => e.transactionID!);
    const tail = await client2.pull('IF-021', SUP);
    record(tail);
    expect([tail.firstSeq, tail.lastSeq]).toEqual([6, 7]);
    expect(tail.body.map(txOf)).toEqual(more);

    // Idempotent read: positions 1..7 contiguous, one distinct transaction per position.
    const seqs = [...bySeq.keys()].sort((a, b) => a - b);
    expect(seqs).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(new Set(bySeq.values()).size).toBe(7);
  });
});

describe('a pull acknowledgement acknowledges only what pulls handed out', () => {
  let t: SharedPkiDip;
  afterAll(async () => {
    await t?.close();
  });

  it('refuses a sequence past the last position pulled (400, nothing moves), writes that position once per new range, and is not blocked by webhook deliveries', async () => {
    t = await startSharedPkiDip();
    const sds = await t.join(SDS, ['SDS']);
    const sup = await t.join(SUP, ['SUP']);
    const log = t.dip.backend.log;
    const queue = { recipientDipId: SUP, channel: 'IF-021' };
    // Every store write of a pulled position, by position.
    const marks: number[] = [];
    const markPulled = log.markPulled.bind(log);
    log.markPulled = async (q, upTo) => {
      marks.push(upTo);
      return markPulled(q, upTo);
    };
    const help = (answer: Awaited<ReturnType<DipClient['ack']>>) => [answer.status, answer.body.messageArray[0]!.help];
    await submitOk(sds, Array.from({ length: 5 }, () => item([SUP])));

    // Queued but never pulled: not acknowledgeable, and nothing is journalled or moved.
    expect(help(await sup.client.ack('IF-021', SUP, 3))).toEqual([400, 'sequence 3 is past the last position a pull handed out (0): acknowledge only what was pulled (acknowledged so far: 0)']);
    const first = await sup.client.pull('IF-021', SUP, 2);
    expect([first.firstSeq, first.lastSeq]).toEqual([1, 2]);
    expect(marks).toEqual([2]);
    // The same range pulled again hands out nothing new: no write.
    expect((await sup.client.pull('IF-021', SUP, 2)).lastSeq).toBe(2);
    expect(marks).toEqual([2]);
    expect(help(await sup.client.ack('IF-021', SUP, 5))).toEqual([400, 'sequence 5 is past the last position a pull handed out (2): acknowledge only what was pulled (acknowledged so far: 0)']);
    expect(await log.queueState(queue)).toEqual({ ackedSeq: 0, headSeq: 5, pulledSeq: 2 });
    expect(await t.dip.backend.archive.attempts(queue, 10)).toEqual([]);
    // Less than what was pulled (the recipient processed only part of it) is fine.
    expect(help(await sup.client.ack('IF-021', SUP, 1))).toEqual([200, 'acknowledged up to 1']);
    expect(help(await sup.client.ack('IF-021', SUP, 2))).toEqual([200, 'acknowledged up to 2']);
    // At or below the acknowledged position: nothing changes, nothing is journalled.
    expect(help(await sup.client.ack('IF-021', SUP, 2))).toEqual([200, 'already acknowledged up to 2: nothing changed']);
    expect((await t.dip.backend.archive.attempts(queue, 10)).map((a) => [a.firstSeq, a.lastSeq])).toEqual([
      [2, 2],
      [1, 1],
    ]);

    // A webhook delivers the rest (and moves the acknowledged position past the pulled one); back to pulling,
    // the delivered positions are no barrier, and what arrives after is pulled and acknowledged as before.
    const r = await withWebhook(t, sup);
    await waitFor(() => queueSettled(t.dip, queue), 5000, 'the webhook deliveries settled');
    expect(delivered(r).map(txOf).length).toBe(3);
    expect((await sup.client.deleteWebhook('IF-021', SUP)).status).toBe(204);
    expect(help(await sup.client.ack('IF-021', SUP, 5))).toEqual([200, 'already acknowledged up to 5: nothing changed']);
    await submitOk(sds, [item([SUP]), item([SUP])]);
    expect(help(await sup.client.ack('IF-021', SUP, 6))).toEqual([400, 'sequence 6 is past the last position a pull handed out (5): acknowledge only what was pulled (acknowledged so far: 5)']);
    const after = await sup.client.pull('IF-021', SUP);
    expect([after.firstSeq, after.lastSeq]).toEqual([6, 7]);
    expect(marks).toEqual([2, 7]);
    // An empty pull writes nothing either.
    expect(help(await sup.client.ack('IF-021', SUP, 7))).toEqual([200, 'acknowledged up to 7']);
    expect((await sup.client.pull('IF-021', SUP)).body).toEqual([]);
    expect(marks).toEqual([2, 7]);
  });
});

describe('a HEAD of a pull route hands nothing out', () => {
  let t: SharedPkiDip;
  afterAll(async () => {
    await t?.close();
  });

  it('is refused 405 (GET only): answered without a body, it marked the messages handed out, and an acknowledgement then marked delivered what nobody read', async () => {
    t = await startSharedPkiDip();
    const sds = await t.join(SDS, ['SDS']);
    const sup = await t.join(SUP, ['SUP']);
    const queue = { recipientDipId: SUP, channel: 'IF-021' };
    await submitOk(sds, Array.from({ length: 3 }, () => item([SUP])));
    for (const path of [`/dip-channel/IF-021/pull/${SUP}`, `/statusmessage/pull/${SUP}`]) {
      const head = await sup.client.call('HEAD', path, '');
      expect([head.status, head.headers['allow']], path).toEqual([405, 'GET']);
    }
    expect(await t.dip.backend.log.queueState(queue)).toEqual({ ackedSeq: 0, headSeq: 3, pulledSeq: 0 });
    const ack = await sup.client.ack('IF-021', SUP, 3);
    expect([ack.status, ack.body.messageArray[0]!.help]).toEqual([400, 'sequence 3 is past the last position a pull handed out (0): acknowledge only what was pulled (acknowledged so far: 0)']);
    // A misspelt parameter is refused naming it (it gave the default page), handing nothing out.
    for (const path of [`/dip-channel/IF-021/pull/${SUP}`, `/statusmessage/pull/${SUP}`]) {
      const typo = await sup.client.call<{ messageArray: Array<{ help: string }> }>('GET', `${path}?maxMesageCount=1`, '');
      expect([typo.status, typo.body.messageArray[0]!.help], path).toEqual([400, 'maxMesageCount is not a parameter of a pull (query string): the names are maxMessageCount, maxPayloadSize']);
    }
    expect(await t.dip.backend.log.queueState(queue)).toMatchObject({ pulledSeq: 0 });
    // A GET still hands them out.
    expect((await sup.client.pull('IF-021', SUP)).lastSeq).toBe(3);
  });
});

describe('status messages pulled by a sender with no status-message webhook (spec 5.5.8)', () => {
  let t: SharedPkiDip;
  afterAll(async () => {
    await t?.close();
  });

  it('pulls them from /statusmessage/pull until acknowledged; only the participant itself; 409 once it has a webhook', async () => {
    t = await startSharedPkiDip();
    const sds = await t.join(SDS, ['SDS']);
    const sup = await t.join(SUP, ['SUP']);
    const supRx = await withWebhook(t, sup);
    const sent = item([SUP]);
    const transactionId = (await submitOk(sds, [sent]))[0]!.transactionID!;
    await waitFor(() => delivered(supRx).length > 0, 5000, 'the message at SUP');
    const status = { transactionID: transactionId, senderUniqueReference: sent.payload.CommonBlock.S1.senderUniqueReference, correlationID: null, sentTimestamp: dipDateTime(new Date()), senderID: SUP, recipientID: null, DIPConnectionProviderID: null, message: 'RCP1061 - MPAN Invalid or Unknown', help: 'not ours', serviceTicketURL: null };
    expect((await sup.client.statusMessage([status])).status).toBe(201);

    const pull = () => sds.client.call<Json[]>('GET', `/statusmessage/pull/${SDS}`, '');
    await waitFor(async () => (await pull()).body.length === 1, 5000, 'the status message in the pull queue');
    const first = await pull();
    expect(first.headers['x-opendip-sequence']).toBe('1-1');
    expect(first.body).toEqual([{ ...status, recipientID: SDS }]);
    // Another participant may not read it.
    expect((await sup.client.call('GET', `/statusmessage/pull/${SDS}`, '')).status).toBe(403);
    expect((await sds.client.call('POST', `/statusmessage/ack/${SDS}`, '{"sequence":1}')).status).toBe(200);
    expect((await pull()).body).toEqual([]);
    // With a status-message webhook, they are pushed there instead.
    await withStatusWebhook(t, sds);
    const pushed = await pull();
    expect([pushed.status, (pushed.body as unknown as { messageArray: Array<{ help: string }> }).messageArray[0]!.help]).toEqual([409, expect.stringContaining('pushed to your status-message webhook')]);
  });
});
