import Database from 'better-sqlite3';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { buildIF021 } from '../src/sim/messages.js';
import { ShiftableClock } from './helpers/clocks.js';
import { startTestDip, waitFor, type TestDip } from './helpers/dip-harness.js';

describe('archive retention', () => {
  let t: TestDip | undefined;
  afterAll(async () => {
    await t?.close();
  });

  it('purges settled messages past retention in batches, keeps what a queue still waits for, and sequence numbers carry on', async () => {
    const clock = new ShiftableClock();
    t = await startTestDip({ archiveRetentionDays: 1, purgeIntervalSeconds: 86_400 * 7 }, undefined, { clock });
    const sds = await t.participant('2000000001', ['SDS']);
    const sup = await t.participant('1000000001', ['SUP']);
    const ldso = await t.participant('3000000001', ['LDSO']);
    const r = await t.receiver();
    await sup.client.setWebhook('IF-021', sup.dipId, { callbackURL: r.url });
    const send = (to: string[], suffix: string) => sds.client.submit('IF-021', [buildIF021({ senderDipId: sds.dipId, senderRole: 'SDS', primaryRecipients: to, uniqueSuffix: suffix })]);
    for (let i = 0; i < 3; i++) expect((await send([sup.dipId], `r${i}`)).status).toBe(201);
    expect((await send([ldso.dipId], 'waiting')).status).toBe(201); // LDSO has no webhook: pending
    await waitFor(() => r.calls.flatMap((c) => c.messages).length === 3, 5000, 'deliveries to SUP');
    // Delivered is settled once the DIP has recorded it, a moment after the recipient answered.
    await waitFor(async () => (await t!.dip.backend.log.queueState({ recipientDipId: sup.dipId, channel: 'IF-021' })).ackedSeq === 3, 5000, 'the deliveries to be recorded');
    clock.jump(86_400_000 + 1000);

    const db = new Database(join(t.config.dataDir, 'dip.db'), { readonly: true });
    const count = (table: string) => (db.prepare(`SELECT count(*) AS n FROM ${table}`).get() as { n: number }).n;
    expect(count('messages')).toBe(4);
    expect(await t.dip.retention.runOnce()).toBe(3);
    expect(count('messages')).toBe(1); // the one LDSO has not had
    expect(count('batches')).toBe(1);
    expect(count('delivery_attempts')).toBe(0);

    // SUP's queue positions carry on from where they were, though its old entries are gone.
    expect((await send([sup.dipId], 'after')).status).toBe(201);
    await waitFor(() => r.calls.flatMap((c) => c.messages).length === 4, 5000, 'the next delivery');
    expect(r.calls.at(-1)!.firstSeq).toBe(4);
    await waitFor(async () => (await t!.dip.backend.log.queueState({ recipientDipId: sup.dipId, channel: 'IF-021' })).ackedSeq === 4, 5000, 'the delivery to be recorded');
    // And after a restart, with every entry of SUP's queue purged.
    clock.jump(86_400_000 + 1000);
    expect(await t.dip.retention.runOnce()).toBe(1);
    const dataDir = t.config.dataDir;
    await t.close();
    t = await startTestDip({}, dataDir);
    expect(await t.dip.backend.log.queueState({ recipientDipId: sup.dipId, channel: 'IF-021' })).toEqual({ ackedSeq: 4, headSeq: 4, pulledSeq: 0 });
  });

  it("keeps the delivery journal as long as the longest kept channel: a journey stays whole while its message is archived", async () => {
    await t?.close();
    const clock = new ShiftableClock();
    t = await startTestDip({ archiveRetentionDays: 1, purgeIntervalSeconds: 86_400 * 7, channels: { 'IF-021': { archiveRetentionDays: 5 } } }, undefined, { clock });
    const sds = await t.participant('2000000001', ['SDS']);
    const sup = await t.participant('1000000001', ['SUP']);
    const r = await t.receiver();
    await sup.client.setWebhook('IF-021', sup.dipId, { callbackURL: r.url });
    expect((await sds.client.submit('IF-021', [buildIF021({ senderDipId: sds.dipId, senderRole: 'SDS', primaryRecipients: [sup.dipId], uniqueSuffix: 'kept' })])).status).toBe(201);
    await waitFor(async () => (await t!.dip.backend.log.queueState({ recipientDipId: sup.dipId, channel: 'IF-021' })).ackedSeq === 1, 5000, 'the delivery to be recorded');
    const db = new Database(join(t.config.dataDir, 'dip.db'), { readonly: true });
    const count = (table: string) => (db.prepare(`SELECT count(*) AS n FROM ${table}`).get() as { n: number }).n;
    clock.jump(2 * 86_400_000);
    expect(await t.dip.retention.runOnce()).toBe(0);
    expect([count('messages'), count('delivery_attempts')]).toEqual([1, 1]);
    clock.jump(4 * 86_400_000);
    expect(await t.dip.retention.runOnce()).toBe(1);
    expect([count('messages'), count('delivery_attempts')]).toEqual([0, 0]);
  });
});
