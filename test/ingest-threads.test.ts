/**
 * Ingest threads (src/topology/ingest-threads.ts): POST /dip-channel/{id}'s pipeline runs in worker
 * threads while the listeners' thread keeps the one writer. Shown here over real mTLS with real worker
 * threads: submissions spread over the threads and are delivered once each, in order; a duplicate sent
 * to two threads at once is accepted once; the same signed request sent again, to any thread, is answered
 * MSG1006 for what it carries (not refused as a replay: a retry after a lost answer learns it was taken); an
 * operator's change applies to the very next request whichever thread takes it.
 */
import Database from 'better-sqlite3';
import { join } from 'node:path';
import { X509Certificate } from 'node:crypto';
import type { Worker } from 'node:worker_threads';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pkiDir } from '../src/app.js';
import { rotateEncryptionKey } from '../src/security/dip-encryption-key.js';
import { certificateThumbprint, encryptTo } from '../src/security/payload-encryption.js';
import { DipClient } from '../src/client/dip-client.js';
import { Signer } from '../src/security/signature.js';
import { buildIF021 } from '../src/sim/messages.js';
import { adminApi } from './helpers/admin.js';
import { startTestDip, waitFor, type TestDip, type TestParticipant } from './helpers/dip-harness.js';

type Json = Record<string, any>;

describe('ingest threads', () => {
  let t: TestDip;
  let sds: TestParticipant;
  let sds2: TestParticipant;
  let sup: TestParticipant;
  let toSup: Awaited<ReturnType<TestDip['receiver']>>;
  let n = 0;
  const if021 = (sender: TestParticipant, suffix = `it${(n += 1)}`) =>
    buildIF021({ senderDipId: sender.dipId, senderRole: 'SDS', primaryRecipients: [sup.dipId], uniqueSuffix: suffix });
  const refOf = (m: Json): string => m.payload.CommonBlock.S1.senderUniqueReference;
  const delivered = (): Json[] => toSup.calls.flatMap((c) => c.messages) as Json[];

  beforeAll(async () => {
    t = await startTestDip({ ingestThreads: 2 });
    sds = await t.participant('2000000001', ['SDS']);
    sds2 = await t.participant('2000000002', ['SDS']);
    sup = await t.participant('1000000001', ['SUP']);
    toSup = await t.receiver();
    expect((await sup.client.setWebhook('IF-021', sup.dipId, { callbackURL: toSup.url })).status).toBe(201);
    await waitFor(() => t.dip.ingestThreads!.threads().every((th) => th.state === 'ready'), 60_000, 'both ingest threads ready');
  }, 90_000);
  afterAll(async () => {
    await t?.close();
  });

  it('spreads submissions over the threads; every message is delivered once, in the order accepted', async () => {
    const batches = Array.from({ length: 24 }, (_, i) => ({ sender: i % 2 === 0 ? sds : sds2, items: [if021(i % 2 === 0 ? sds : sds2), if021(i % 2 === 0 ? sds : sds2)] }));
    const answers = await Promise.all(batches.map((b) => b.sender.client.submit('IF-021', b.items)));
    expect(answers.map((a) => a.status)).toEqual(batches.map(() => 201));
    const views = t.dip.ingestThreads!.threads();
    expect(views.map((v) => v.handled).every((h) => h > 0), JSON.stringify(views)).toBe(true);

    const accepted = answers.flatMap((a) => a.body.messageArray.map((e) => e.senderUniqueReference));
    await waitFor(() => delivered().length >= accepted.length, 20_000, 'every message at the supplier');
    const refs = delivered().map(refOf);
    expect(new Set(refs).size).toBe(refs.length);
    expect([...refs].sort()).toEqual([...accepted].sort());
    // FIFO per queue: the order of delivery is the order of the transaction IDs' queue positions, i.e. of
    // acceptance; a batch's own two messages arrive together and in batch order.
    for (const b of batches) {
      const [first, second] = b.items.map((m) => refs.indexOf(refOf(m as Json)));
      expect(second).toBe(first! + 1);
    }
  });

  it('accepts a message sent to two threads at once only once', async () => {
    const item = if021(sds, 'twice');
    // Two different requests (the same request twice would be a replay), both carrying the message.
    const [a, b] = await Promise.all([sds.client.submit('IF-021', [item]), sds.client.submit('IF-021', [item, if021(sds)])]);
    expect([a.status, b.status].sort()).toEqual([201, 400]);
    const refused = a.status === 400 ? a : b;
    expect(refused.body.messageArray[0]!.message).toMatch(/^MSG1006/);
    await waitFor(() => delivered().some((m) => refOf(m) === refOf(item)), 10_000, 'the message delivered');
    expect(delivered().filter((m) => refOf(m) === refOf(item as Json))).toHaveLength(1);
  });

  it('answers the very same signed request sent again, whichever thread sees it, for what it carries: MSG1006, delivered once', async () => {
    const item = if021(sds);
    const body = JSON.stringify([item]);
    const path = '/dip-channel/IF-021';
    const headers: Record<string, string> = { ...(await new Signer(sds.credentials.keyPem, sds.credentials.certPem).sign('POST', `${t.dip.url}${path}`, body)) };
    const first = await sds.client.call('POST', path, body, headers);
    expect(first.status, JSON.stringify(first.body)).toBe(201);
    // Several at once, so the threads (the least busy takes each) all see it: a sender retrying after a
    // lost 201 learns the message was stored (it was refused 401 as a replay, which told it nothing).
    const again = await Promise.all([1, 2, 3].map(() => sds.client.call('POST', path, body, headers)));
    for (const r of again) expect([r.status, (r.body as Json).messageArray[0].message]).toEqual([400, expect.stringMatching(/^MSG1006/)]);
    await waitFor(() => delivered().some((m) => refOf(m) === refOf(item)), 10_000, 'the message delivered');
    expect(delivered().filter((m) => refOf(m) === refOf(item as Json))).toHaveLength(1);
  });

  it('answers the same signed request refused before with the same refusal, not as a replay', async () => {
    // An environment this DIP is not: refused 400 after authentication, so nothing is appended.
    const item = if021(sds) as Json;
    item.payload.CommonBlock.S1.environmentTag = 'PRD';
    const body = JSON.stringify([item]);
    const path = '/dip-channel/IF-021';
    const headers: Record<string, string> = { ...(await new Signer(sds.credentials.keyPem, sds.credentials.certPem).sign('POST', `${t.dip.url}${path}`, body)) };
    const first = await sds.client.call('POST', path, body, headers);
    expect(first.status, JSON.stringify(first.body)).toBe(400);
    const again = await Promise.all([1, 2, 3].map(() => sds.client.call('POST', path, body, headers)));
    for (const r of again) expect(r.body).toMatchObject({ messageArray: [{ message: (first.body as Json).messageArray[0].message, help: (first.body as Json).messageArray[0].help }] });
  });

  it('answers an accepted submission from the writer once its batch is durable; a thread sends a result only for what it refuses', async () => {
    const slots = (t.dip.ingestThreads! as unknown as { slots: Array<{ worker: Worker | null }> }).slots;
    const results: unknown[] = [];
    const count = (m: { t: string }) => void (m.t === 'result' && results.push(m));
    for (const s of slots) s.worker!.on('message', count);
    try {
      const items = Array.from({ length: 6 }, () => if021(sds));
      const accepted = await Promise.all(items.map((m) => sds.client.submit('IF-021', [m])));
      expect(accepted.map((a) => a.status)).toEqual(items.map(() => 201));
      // The 201 the writer sends is the pipeline's own: every message's transaction ID and reference.
      for (const [i, a] of accepted.entries()) expect(a.body.messageArray).toMatchObject([{ senderUniqueReference: refOf(items[i] as Json), transactionID: expect.stringMatching(/^T-IF-021-/), message: 'MSG0000 - Success' }]);
      expect(results).toHaveLength(0);
      // A duplicate is refused by the thread (it names the original), so that one crosses back.
      const dup = await sds.client.submit('IF-021', [items[0]!]);
      expect(dup.status).toBe(400);
      expect(dup.body.messageArray[0]!.message).toMatch(/^MSG1006/);
      expect(results).toHaveLength(1);
    } finally {
      for (const s of slots) s.worker?.off('message', count);
    }
  });

  it('answers 503 with Retry-After for what a dying thread held, carries on without it, and restarts it', async () => {
    const threads = t.dip.ingestThreads!;
    const slots = (threads as unknown as { slots: Array<{ worker: Worker | null }> }).slots;
    // A large batch, so that the thread is still validating it when it is ended.
    const batch = Array.from({ length: 1000 }, () => if021(sds));
    const answer = sds.client.submit('IF-021', batch);
    await waitFor(() => threads.threads().some((v) => v.inHand === 1), 10_000, 'the batch in a thread');
    const dying = threads.threads().find((v) => v.inHand === 1)!.index;
    await slots[dying]!.worker!.terminate();
    const refused = await answer;
    expect(refused.status).toBe(503);
    expect(refused.headers['retry-after']).toBe('5');
    expect(refused.body.messageArray[0]!.help).toMatch(/send it again unchanged/);
    // Meanwhile the other thread (or the listeners' thread) takes submissions.
    expect((await sds.client.submit('IF-021', [if021(sds)])).status).toBe(201);
    await waitFor(() => threads.threads()[dying]!.state === 'ready', 60_000, 'the thread restarted');
    expect(threads.threads()[dying]!.restarts).toBe(1);
    // Sent again unchanged, the batch is accepted once: whole now, or refused as duplicates had it been stored.
    const again = await sds.client.submit('IF-021', batch);
    expect([201, 400]).toContain(again.status);
    if (again.status === 400) expect(again.body.messageArray[0]!.message).toMatch(/^MSG1006/);
    const refs = new Set(batch.map((m) => refOf(m)));
    await waitFor(() => delivered().filter((m) => refs.has(refOf(m))).length === 1000, 30_000, 'the batch delivered');
  });

  it('seals what a thread appends under the data key in force, also right after a rotation', async () => {
    const db = new Database(join(t.config.dataDir, 'dip.db'), { readonly: true });
    const keyOf = (ref: string): number => {
      const row = db.prepare('SELECT outbound, (SELECT raw FROM batches WHERE id = batch_id) AS raw FROM messages WHERE sender_ref = ?').get(ref) as { outbound: Buffer; raw: Buffer };
      // Sealed layout: version (1 byte), data key id (4 bytes), IV, tag, ciphertext.
      expect(row.raw.readUInt32BE(1)).toBe(row.outbound.readUInt32BE(1));
      return row.outbound.readUInt32BE(1);
    };
    try {
      const before = if021(sds);
      expect((await sds.client.submit('IF-021', [before])).status).toBe(201);
      const rotated = await adminApi(t)('POST', '/admin/keys/rotate');
      expect(rotated.status).toBe(200);
      const after = [if021(sds), if021(sds2)];
      const answers = await Promise.all([sds.client.submit('IF-021', [after[0]!]), sds2.client.submit('IF-021', [after[1]!])]);
      expect(answers.map((a) => a.status)).toEqual([201, 201]);
      expect(keyOf(refOf(before))).toBeLessThan(rotated.body.dataKeyId);
      for (const m of after) expect(keyOf(refOf(m))).toBe(rotated.body.dataKeyId);
    } finally {
      db.close();
    }
  });

  it("applies an operator's pause to the next request at once, whichever thread takes it", async () => {
    const created = await adminApi(t)('POST', '/admin/operators', { name: 'olly', role: 'operator', automation: true });
    const olly = adminApi(t, created.body.token);
    expect((await olly('POST', '/admin/channels/IF-021/pause', { note: 'maintenance' })).status).toBe(200);
    const during = await Promise.all([sds.client.submit('IF-021', [if021(sds)]), sds2.client.submit('IF-021', [if021(sds2)])]);
    expect(during.map((r) => r.status)).toEqual([503, 503]);
    expect(during[0].body.messageArray[0]!.help).toMatch(/paused/);
    // The same signed request, sent unchanged as the 503 says: taken once the channel resumes, and once
    // only (sent again, its message is a duplicate).
    const unchanged = JSON.stringify([if021(sds)]);
    const signed = await new Signer(sds.credentials.keyPem, sds.credentials.certPem).sign('POST', `${t.dip.url}/dip-channel/IF-021`, unchanged);
    const sendUnchanged = () => sds.client.call('POST', '/dip-channel/IF-021', unchanged, { ...signed });
    expect((await sendUnchanged()).status).toBe(503);
    expect((await olly('POST', '/admin/channels/IF-021/resume', {})).status).toBe(200);
    const after = await Promise.all([sds.client.submit('IF-021', [if021(sds)]), sds2.client.submit('IF-021', [if021(sds2)])]);
    expect(after.map((r) => r.status)).toEqual([201, 201]);
    expect((await sendUnchanged()).status).toBe(201);
    expect((await sendUnchanged()).body.messageArray[0]!.message).toMatch(/^MSG1006/);
  });

  it("tells the main thread's clock check of the signature dates they check: dip-clock is raised on their refusals and resolved on their accepted answers", async () => {
    const sds3 = await t.participant('2000000003', ['SDS']);
    const senders = [sds, sds2, sds3];
    // Their clocks 10 min ahead of the DIP's (the DIP's is the system's here: ingest threads take no injected clock).
    const ahead = senders.map((p) => new DipClient({ baseUrl: t.dip.url, apiKey: p.apiKey, keyPem: p.credentials.keyPem, certPem: p.credentials.certPem, caPem: t.dip.pki.ca.certPem, now: () => new Date(Date.now() + 600_000) }));
    const handled = () => t.dip.ingestThreads!.threads().reduce((sum, th) => sum + th.handled, 0);
    // The 4th participant heard from, its signature verified within this test: the one in beforeAll may be
    // older than the clock check's window (CLOCK_WINDOW_MS) by the time this test runs.
    expect((await sup.client.setWebhook('IF-021', sup.dipId, { callbackURL: toSup.url })).status).toBeLessThan(300);
    try {
      const before = handled();
      const refused = await Promise.all(ahead.map((c, i) => c.submit('IF-021', [if021(senders[i]!)])));
      expect(refused.map((r) => r.status)).toEqual([401, 401, 401]);
      // Refused on the threads, not on the main thread.
      expect(handled() - before).toBe(3);
      await t.dip.alarms!.evaluate();
      const raised = t.dip.alarms!.current().filter((a) => a.rule === 'dip-clock');
      expect(raised.map((a) => a.summary)).toEqual([expect.stringMatching(/^this DIP's clock appears about 600 s \(10\.0 min\) behind its participants': the signatures of 3 of the 4 participants .* dated ahead of it/)]);
    } finally {
      for (const c of ahead) await c.close();
    }
    // Accepted on the threads (the main thread answers those itself, with the thread's accepted answer).
    const accepted = await Promise.all(senders.map((p) => p.client.submit('IF-021', [if021(p)])));
    expect(accepted.map((r) => r.status)).toEqual([201, 201, 201]);
    await t.dip.alarms!.evaluate();
    expect(t.dip.alarms!.current().filter((a) => a.rule === 'dip-clock')).toEqual([]);
  });
});

describe("ingest threads and the DIP's encryption key (pattern 2)", () => {
  let t: TestDip;
  let sds: TestParticipant;

  beforeAll(async () => {
    // The threads' own polls (workerPollMs, 30 s) only back the main thread's push up.
    t = await startTestDip({ ingestThreads: 2, channels: { 'IF-021': { securityPattern: 2 } }, signingKeyPollMs: 50 });
    sds = await t.participant('2000000001', ['SDS']);
    await t.participant('1000000001', ['SUP']);
    await waitFor(() => t.dip.ingestThreads!.threads().every((th) => th.state === 'ready'), 60_000, 'both ingest threads ready');
  });
  afterAll(async () => {
    await t?.close();
  });

  it('take a payload encrypted to the new certificate as soon as the DIP serves it after dip pki rotate-encryption', async () => {
    const rotated = await rotateEncryptionKey(pkiDir(t.config), t.dip.pki.ca);
    await waitFor(async () => (await sds.client.call<{ encryption: string }>('GET', '/certificates/dip', '')).body.encryption === rotated.current.certPem, 10_000, 'the new certificate served');
    let n = 0;
    const sealed = async () => {
      const item = buildIF021({ senderDipId: sds.dipId, senderRole: 'SDS', primaryRecipients: ['1000000001'], uniqueSuffix: `rk${(n += 1)}` });
      const { CustomBlock, ...payload } = item.payload;
      const jwe = await encryptTo({ key: new X509Certificate(rotated.current.certPem).publicKey, thumbprint: certificateThumbprint(rotated.current.certPem) }, JSON.stringify(CustomBlock));
      return { payload: { ...payload, EncryptedCustomBlock: jwe } };
    };
    // Both threads: a few submissions within a couple of seconds, far less than their own poll.
    const started = Date.now();
    for (let i = 0; i < 4; i++) {
      let status = 0;
      await waitFor(async () => (status = (await sds.client.submit('IF-021', [await sealed()])).status) === 201, 3000, `submission ${i} to the new certificate accepted (last ${status})`, 100);
    }
    expect(Date.now() - started).toBeLessThan(10_000);
  });
});
