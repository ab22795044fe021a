import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dipDateTime, yyyymmdd } from '../src/domain/time.js';
import { consumptionReplayRecipient } from '../src/pipeline/consumption-replay.js';
import { buildIF021, mpanCore } from '../src/sim/messages.js';
import { queueSettled, startTestDip, waitFor, type TestDip, type TestParticipant } from './helpers/dip-harness.js';

type Json = any; // delivered messages, read field by field

const ids = { newAds: '2000000001', oldAds: '2000000002', sup: '1000000001', ldso: '3000000001' };
const mpan = mpanCore('replay-flow');
const empty = mpanCore('replay-flow-empty');

let serial = 0;
/** IF-015 as an ADS sends it: the published schema has no CustomBlock, the MPAN (M0) is the request. */
function buildIF015(senderDipId: string, forMpan: string, primaryRecipients?: string[]): unknown {
  const now = new Date();
  return {
    payload: {
      CommonBlock: {
        S0: { interfaceID: 'IF-015', schemaVersion: '011', eventCode: '[ConsumptionReplay]' },
        S1: {
          environmentTag: 'DEV',
          subText: null,
          senderUniqueReference: `S-IF-015-${senderDipId}-ADS-${yyyymmdd(now)}-replay${++serial}`,
          senderTimestamp: dipDateTime(now),
          senderDIPID: senderDipId,
          senderRoleID: 'ADS',
          senderCorrelationID: null,
          DIPConnectionProviderID: null,
        },
        ...(primaryRecipients ? { A0: { primaryRecipients, secondaryRecipients: [], always: [] } } : {}),
        M0: { MPANCore: forMpan, distributorDIPID: ids.ldso, GSPGroupID: '_A' },
      },
    },
  };
}

describe('DIP Replay Service: IF-015 answered with IF-016 (end to end)', () => {
  let t: TestDip;
  const p: Record<string, TestParticipant> = {};
  let oldAdsCalls: Array<{ messages: unknown[] }>;

  beforeAll(async () => {
    t = await startTestDip();
    p.newAds = await t.participant(ids.newAds, ['ADS']);
    p.oldAds = await t.participant(ids.oldAds, ['ADS']);
    p.sup = await t.participant(ids.sup, ['SUP']);
    p.ldso = await t.participant(ids.ldso, ['LDSO']);
    const r = await t.receiver();
    oldAdsCalls = r.calls;
    expect((await p.oldAds.client.setWebhook('IF-016', ids.oldAds, { callbackURL: `${r.url}IF-016` })).status).toBe(201);
    // The old ADS served the site until yesterday; the new one is its data service now.
    const token = readFileSync(join(t.config.dataDir, 'admin-token'), 'utf8').trim();
    const yesterday = new Date(Date.now() - 86_400_000).toISOString();
    const load = await request(`http://127.0.0.1:${t.dip.adminPort}/admin/mpan/changes`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify([
        ...[mpan, empty].flatMap((m) => [
          { mpan: m, slot: 'SUP', dipId: ids.sup, effectiveFrom: '2020-01-01T00:00:00Z' },
          { mpan: m, slot: 'LDSO', dipId: ids.ldso, effectiveFrom: '2000-01-01T00:00:00Z' },
          { mpan: m, slot: 'DS', dipId: ids.oldAds, effectiveFrom: '2020-01-01T00:00:00Z' },
          { mpan: m, slot: 'DS', dipId: ids.newAds, effectiveFrom: yesterday },
        ]),
      ]),
    });
    expect(load.statusCode).toBe(200);
  });
  afterAll(async () => t?.close());

  /** Pulls the new ADS's IF-016 queue until `n` messages came, acknowledging each page. */
  async function pullReplays(n: number): Promise<Json[]> {
    const got: Json[] = [];
    await waitFor(async () => {
      const page = await p.newAds!.client.pull('IF-016', ids.newAds);
      expect(page.status).toBe(200);
      got.push(...(page.body as Json[]));
      if (page.lastSeq !== null) await p.newAds!.client.ack('IF-016', ids.newAds, page.lastSeq);
      return got.length >= n;
    }, 10_000, `${n} IF-016 messages`, 50);
    return got;
  }

  it('replays the archived IF-021s of the MPAN the data service sent, not its predecessor\'s, marked as replays and in the request\'s workflow', async () => {
    const predecessors = buildIF021({ senderDipId: ids.oldAds, senderRole: 'ADS', mpan, settlementDate: '2026-10-31', uniqueSuffix: 'p' });
    const active = buildIF021({ senderDipId: ids.newAds, senderRole: 'ADS', mpan, settlementDate: '2026-11-01', uniqueSuffix: 'a' });
    const reactive = buildIF021({ senderDipId: ids.newAds, senderRole: 'ADS', mpan, eventCode: 'ReactivePower', settlementDate: '2026-11-01', uniqueSuffix: 'r' });
    const otherSite = buildIF021({ senderDipId: ids.oldAds, senderRole: 'ADS', mpan: mpanCore('replay-flow-other'), uniqueSuffix: 'o' });
    // The predecessor's goes to the supplier and the LDSO, not to the new data service: not its to view (spec 5.5.11).
    expect((await p.oldAds!.client.submit('IF-021', [predecessors])).status).toBe(201);
    expect((await p.newAds!.client.submit('IF-021', [active, reactive])).status).toBe(201);
    // Another MPAN nobody is responsible for would be refused (MSG1038): the archive holds only this MPAN's.
    expect((await p.oldAds!.client.submit('IF-021', [otherSite])).status).toBe(400);

    const asked = await p.newAds!.client.submit('IF-015', [buildIF015(ids.newAds, mpan)]);
    expect(asked.status).toBe(201);
    const entry = asked.body.messageArray[0]!;
    expect(entry.correlationID).toMatch(/^CI-/);

    const replays = await pullReplays(2);
    expect(replays).toHaveLength(2);
    expect(replays.map((m) => m.payload.CommonBlock.S0.eventCode)).toEqual(['[ActivePower]', '[ReactivePower]']);
    for (const [m, original] of [[replays[0], active], [replays[1], reactive]] as const) {
      const cb = m.payload.CommonBlock;
      expect(cb.S0.interfaceID).toBe('IF-016');
      expect(cb.S1).toMatchObject({ senderDIPID: t.config.dipId, senderRoleID: 'DIP', senderCorrelationID: entry.correlationID });
      expect(cb.S2).toEqual(original.payload.CommonBlock.S1);
      expect(cb.M0).toEqual(original.payload.CommonBlock.M0);
      expect(cb.R1).toEqual({ responseCode: 'A', responseMessages: [] });
      expect(cb.A0).toEqual({ primaryRecipients: [ids.newAds], secondaryRecipients: [], always: [] });
      expect(cb.D0).toMatchObject({ replayIndicator: true, initialCorrelationID: entry.correlationID, publicationID: 'PUB-016' });
      expect(cb.D0.transactionID).toMatch(/^R-IF-016-/);
      expect(m.payload.CustomBlock).toEqual(original.payload.CustomBlock);
    }
    // The DIP consumed the request itself, from the requester's own queue: settled, and no participant got the IF-015.
    const requests = { recipientDipId: consumptionReplayRecipient(ids.newAds), channel: 'IF-015' };
    await waitFor(() => queueSettled(t.dip, requests), 5000, 'the replay queue settled');
    expect((await t.dip.backend.log.queueState(requests)).headSeq).toBeGreaterThan(0);
    for (const id of Object.values(ids)) expect((await t.dip.backend.log.queueState({ recipientDipId: id, channel: 'IF-015' })).headSeq).toBe(0);
    // The two, and not the predecessor's third.
    expect((await t.dip.backend.log.queueState({ recipientDipId: ids.newAds, channel: 'IF-016' })).headSeq).toBe(2);
  });

  it('refuses an IF-015 while IF-016, its answer\'s channel, is withdrawn (rather than taking it and leaving it unanswered)', async () => {
    const token = readFileSync(join(t.config.dataDir, 'admin-token'), 'utf8').trim();
    const admin = (path: string) =>
      request(`http://127.0.0.1:${t.dip.adminPort}/admin/channels/IF-016/${path}`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify({ note: 'replay test' }) });
    expect((await admin('withdraw')).statusCode).toBe(200);
    try {
      const refused = await p.newAds!.client.submit('IF-015', [buildIF015(ids.newAds, mpan)]);
      expect(refused.status).toBe(404);
      expect(refused.body.messageArray[0]!.help).toContain('answered by the DIP on IF-016, which was withdrawn');
    } finally {
      expect((await admin('resume')).statusCode).toBe(200);
    }
  });

  it('rejects a request with nothing archived for the MPAN ([ConsumptionRequestRejected], R1 saying why)', async () => {
    expect((await p.newAds!.client.submit('IF-015', [buildIF015(ids.newAds, empty)])).status).toBe(201);
    const [answer] = await pullReplays(1);
    const cb = answer.payload.CommonBlock;
    expect(cb.S0.eventCode).toBe('[ConsumptionRequestRejected]');
    expect(cb.M0.MPANCore).toBe(empty);
    expect(cb.R1.responseCode).toBe('R');
    expect(cb.R1.responseMessages[0]).toMatch(/^no consumption .* is archived/);
    expect(cb.D0.replayIndicator).toBe(false);
    expect(answer.payload.CustomBlock).toBeUndefined();
  });

  it('rejects a request from a data service no longer appointed to the MPAN, by webhook', async () => {
    expect((await p.oldAds!.client.submit('IF-015', [buildIF015(ids.oldAds, mpan)])).status).toBe(201);
    await waitFor(() => oldAdsCalls.some((c) => c.messages.length > 0), 10_000, 'the old ADS\'s IF-016');
    const answers = oldAdsCalls.flatMap((c) => c.messages as Json[]);
    expect(answers).toHaveLength(1);
    expect(answers[0].payload.CommonBlock.S0.eventCode).toBe('[ConsumptionRequestRejected]');
    expect(answers[0].payload.CommonBlock.R1.responseMessages[0]).toContain(`${ids.oldAds} is not the data service appointed to MPAN ${mpan}`);
    // Not who is: the appointed data service's DIP ID is the operator's log's, not any asker's.
    expect(JSON.stringify(answers[0])).not.toContain(ids.newAds);
  });

  it('refuses an IF-015 addressed to another participant, and one from a role that may not send it', async () => {
    const addressed = await p.newAds!.client.submit('IF-015', [buildIF015(ids.newAds, mpan, [ids.sup])]);
    expect(addressed.status).toBe(400);
    expect(addressed.body.messageArray[0]!.help).toContain('is answered by the DIP');
    const fromSupplier = await p.sup!.client.submit('IF-015', [{ ...(buildIF015(ids.sup, mpan) as Json) }]);
    expect(fromSupplier.status).toBe(403);
  });
});
