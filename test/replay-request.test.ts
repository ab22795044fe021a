import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { replayWindow, type MessageRequestBody } from '../src/api/schemas.js';
import type { Channel } from '../src/pipeline/channels.js';
import { archivedEventCode } from '../src/pipeline/replay.js';
import { TEST_EVENT_CODE } from '../src/pipeline/test-message.js';
import { formDateTime, parseDipDateTime } from '../src/domain/time.js';
import { buildIF021 } from '../src/sim/messages.js';
import { ShiftableClock } from './helpers/clocks.js';
import { startTestDip, type TestDip, type TestParticipant } from './helpers/dip-harness.js';

type Json = Record<string, any>;

/**
 * What a replay or requeue request may ask: the window's end takes in the whole second it names (the
 * spec's "Date/time to" is a transaction time, written to the second), dates that do not exist are
 * refused rather than rolled over, and a continuation token sent to requeue is refused, not ignored.
 */
const FROM = '2000-01-01T00:00:00+00:00';
const TO = '2100-01-01T00:00:00+00:00';
const FILTER = { datetimeFrom: FROM, datetimeTo: TO };

describe('the replay window', () => {
  let t: TestDip;
  let sds: TestParticipant;
  let sup: TestParticipant;
  const clock = new ShiftableClock();
  beforeAll(async () => {
    t = await startTestDip({}, undefined, { clock });
    sds = await t.participant('2000000001', ['SDS']);
    sup = await t.participant('1000000001', ['SUP']);
  });
  afterAll(async () => t?.close());

  it('ends with the whole second datetimeTo names: from = to = a transactionTimestamp replays that message', async () => {
    // Received well inside a second (the DIP's clock moved to half past one), so its receipt (ms) is after
    // the second its timestamp names.
    clock.jump((1500 - (clock.now() % 1000)) % 1000);
    const sent = await sds.client.submit('IF-021', [buildIF021({ senderDipId: sds.dipId, senderRole: 'SDS', primaryRecipients: [sup.dipId], uniqueSuffix: 'window' })]);
    expect(sent.status).toBe(201);
    const id = sent.body.messageArray[0]!.transactionID!;
    const all = await sup.client.replay('IF-021', sup.dipId, FILTER);
    const stamp = ((all.body as Json[]).find((m) => m.originalTransactionID === id)!.originalTransactionWrapper as Json).transactionTimestamp as string;
    for (const window of [{ datetimeFrom: stamp, datetimeTo: stamp }, { datetimeFrom: FROM, datetimeTo: stamp }]) {
      const answer = await sup.client.replay('IF-021', sup.dipId, window);
      expect(answer.status, JSON.stringify(answer.body)).toBe(200);
      expect((answer.body as Json[]).map((m) => m.originalTransactionID)).toContain(id);
    }
    // The second after is a window without it.
    const next = new Date(Date.parse(stamp) + 1000).toISOString().slice(0, 19) + '+00:00';
    const after = await sup.client.replay('IF-021', sup.dipId, { datetimeFrom: next, datetimeTo: next });
    expect(after.status).toBe(400);
  });

  // A probe found "ActivePower" matched while "[activepower]" replayed nothing: event codes are written
  // "[ActivePower]" in the published API (DT-004N-EventCode), and a filter naming one differently is
  // still asking for that one.
  it('matches eventCode however the filter writes it: with or without brackets, in any case', async () => {
    const sent = await sds.client.submit('IF-021', [buildIF021({ senderDipId: sds.dipId, senderRole: 'SDS', primaryRecipients: [sup.dipId], uniqueSuffix: 'eventcase' })]);
    expect(sent.status, JSON.stringify(sent.body)).toBe(201);
    const id = sent.body.messageArray[0]!.transactionID!;
    for (const eventCode of ['[ActivePower]', 'ActivePower', '[activepower]', 'activepower', 'ACTIVEPOWER', '[ACTIVEPOWER]']) {
      const answer = await sup.client.replay('IF-021', sup.dipId, { ...FILTER, eventCode });
      expect(answer.status, `${eventCode}: ${JSON.stringify(answer.body)}`).toBe(200);
      expect((answer.body as Json[]).map((m) => m.originalTransactionID), eventCode).toContain(id);
    }
    for (const eventCode of ['[reactivepower]', 'ReactivePower']) expect((await sup.client.replay('IF-021', sup.dipId, { ...FILTER, eventCode })).status, eventCode).toBe(400);
    // A requeue takes the same filter.
    const requeued = await sup.client.call('POST', `/dip-channel/IF-021/requeue/${sup.dipId}`, JSON.stringify({ ...FILTER, eventCode: '[activepower]', MPAN: null, version: null }));
    expect(requeued.status).toBe(200);
    expect(requeued.body.messageArray[0]!.help).not.toMatch(/^0 message/);
  });

  it('refuses dates that do not exist (400 naming the field) on replay and requeue, instead of rolling them over', async () => {
    for (const action of ['replay', 'requeue'] as const) {
      for (const [field, value] of [
        ['datetimeFrom', '2026-02-30T00:00:00+00:00'],
        ['datetimeTo', '2026-11-31T00:00:00+00:00'],
        ['datetimeTo', '2026-02-29T12:00:00+00:00'],
      ] as const) {
        const body = { datetimeFrom: FROM, datetimeTo: TO, eventCode: null, MPAN: null, version: null, [field]: value };
        const answer = await sup.client.call('POST', `/dip-channel/IF-021/${action}/${sup.dipId}`, JSON.stringify(body));
        expect(answer.status, `${action} ${value}`).toBe(400);
        expect(answer.body.messageArray[0]!.message).toBe('MSG1001 - Schema Failure');
        expect(answer.body.messageArray[0]!.help).toContain(`${field} '${value}' is not a date-time`);
      }
    }
  });

  it('refuses a continuation token on requeue (400 naming the header) instead of starting a full requeue', async () => {
    const queue = { recipientDipId: sup.dipId, channel: 'IF-021' };
    const before = (await t.dip.backend.log.queueState(queue)).headSeq;
    expect(before).toBeGreaterThan(0); // there is something a requeue would append
    const body = JSON.stringify({ ...FILTER, eventCode: null, MPAN: null, version: null });
    const answer = await sup.client.call('POST', `/dip-channel/IF-021/requeue/${sup.dipId}`, body, { 'x-continuation-token': '0b8d6a52-3c1e-8f00-9a00-1234567890ab' });
    expect(answer.status).toBe(400);
    expect(answer.body.messageArray[0]!.message).toBe('MSG1001 - Schema Failure');
    expect(answer.body.messageArray[0]!.help).toMatch(/x-continuation-token continues a replay/);
    expect((await t.dip.backend.log.queueState(queue)).headSeq).toBe(before); // nothing was requeued
  });
});

describe('archivedEventCode: the event code a filter names, as the archive holds it', () => {
  const channel = { definition: { eventCodes: ['ActivePower', 'ReactivePower'] } } as unknown as Channel;
  it("is the channel's code, bracketed as on the wire, whatever the filter's brackets and case; the test message's stays bare", () => {
    for (const given of ['ActivePower', '[ActivePower]', 'activepower', '[ACTIVEPOWER]']) expect(archivedEventCode(given, channel), given).toBe('[ActivePower]');
    expect(archivedEventCode('[reactivePOWER]', channel)).toBe('[ReactivePower]');
    // Not the channel's: bracketed as given (matches exactly what carries it, nothing else).
    expect(archivedEventCode('Unheard', channel)).toBe('[Unheard]');
    // "Send a test message" stores its code bare: found however it is written.
    for (const given of ['OpenDIPTest', 'opendiptest', '[OpenDIPTest]']) expect(archivedEventCode(given, channel), given).toBe(TEST_EVENT_CODE);
  });
});

describe('replayWindow and parseDipDateTime', () => {
  const body = (from: string | null, to: string | null): MessageRequestBody => ({ datetimeFrom: from, datetimeTo: to, eventCode: null, MPAN: null, version: null });

  it('takes in the whole second datetimeTo names; from = to is a one-second window', () => {
    const at = Date.parse('2026-12-03T13:07:55+00:00');
    expect(replayWindow(body('2026-12-03T13:07:55+00:00', '2026-12-03T13:07:55+00:00'))).toEqual({ fromMs: at, toMs: at + 999 });
    expect(replayWindow(body('2026-12-03T14:07:55+01:00', null))).toEqual({ fromMs: at, toMs: Number.MAX_SAFE_INTEGER });
    expect(replayWindow(body('2026-12-03T13:07:56+00:00', '2026-12-03T13:07:55+00:00'))).toEqual({ problem: expect.stringMatching(/is after datetimeTo/) });
  });

  it('refuses impossible calendar dates, times and offsets, saying why', () => {
    expect(parseDipDateTime('2026-02-30T00:00:00+00:00')).toEqual({ problem: '2026-02 has no day 30' });
    expect(parseDipDateTime('2026-02-29T00:00:00+00:00')).toEqual({ problem: '2026-02 has no day 29' });
    expect(parseDipDateTime('2026-11-31T00:00:00+00:00')).toEqual({ problem: '2026-11 has no day 31' });
    expect(parseDipDateTime('2026-13-01T00:00:00+00:00')).toEqual({ problem: 'there is no month 13' });
    expect(parseDipDateTime('2026-01-01T24:00:00+00:00')).toEqual({ problem: '24:00:00 is not a time of day' });
    expect(parseDipDateTime('2026-01-01T00:00:60+00:00')).toEqual({ problem: '00:00:60 is not a time of day' });
    expect(parseDipDateTime('2026-01-01T00:00:00+00:60')).toEqual({ problem: '+00:60 is not a UTC offset' });
    expect(parseDipDateTime('2028-02-29T00:00:00+00:00')).toEqual({ ms: Date.parse('2028-02-29T00:00:00Z') });
    expect(parseDipDateTime('2026-01-01T00:00:00-05:30')).toEqual({ ms: Date.parse('2026-01-01T05:30:00Z') });
    expect(parseDipDateTime('0050-01-01T00:00:00+00:00')).toEqual({ ms: Date.parse('0050-01-01T00:00:00Z') });
    expect(replayWindow(body('2026-02-30T00:00:00+00:00', null))).toEqual({ problem: "datetimeFrom '2026-02-30T00:00:00+00:00' is not a date-time like 2022-03-21T19:05:00+00:00 (2026-02 has no day 30)" });
  });
});

describe("a portal form's date-time (formDateTime)", () => {
  it('covers the whole minute or second it names, in UTC unless it names an offset, and refuses days that do not exist', () => {
    expect(formDateTime('2026-03-21T19:05')).toEqual({ ms: Date.UTC(2026, 2, 21, 19, 5), lastMs: Date.UTC(2026, 2, 21, 19, 5, 59, 999) });
    expect(formDateTime('2026-03-21T19:05:07')).toEqual({ ms: Date.UTC(2026, 2, 21, 19, 5, 7), lastMs: Date.UTC(2026, 2, 21, 19, 5, 7, 999) });
    expect(formDateTime('2026-03-21T19:05:07+01:00')?.ms).toBe(Date.UTC(2026, 2, 21, 18, 5, 7));
    expect(formDateTime('2026-03-21T19:05Z')?.ms).toBe(Date.UTC(2026, 2, 21, 19, 5));
    for (const bad of ['2026-02-30T10:00', '2026-02-29T10:00', '2026-03-21T24:00', '', 'yesterday', '2026-03-21']) expect(formDateTime(bad), bad).toBeNull();
  });
});
