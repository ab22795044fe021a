import Database from 'better-sqlite3';
import { createServer, type Server } from 'node:http';
import { lookup as dnsLookup } from 'node:dns';
import { createServer as createNetServer, type LookupFunction, type Server as NetServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { buildIF021 } from '../src/sim/messages.js';
import { ShiftableClock } from './helpers/clocks.js';
import { startTestDip, waitFor, type TestDip, type TestParticipant } from './helpers/dip-harness.js';

type Json = Record<string, any>;
const ref = (m: unknown) => (m as Json).payload.CommonBlock.S1.senderUniqueReference as string;

describe('webhook delivery', () => {
  let t: TestDip | undefined;
  afterEach(async () => {
    await t?.close();
    t = undefined;
  });

  async function market(overrides: Parameters<typeof startTestDip>[0] = {}, clock?: ShiftableClock, start: { lookup?: LookupFunction } = {}) {
    t = await startTestDip(overrides, undefined, { ...(clock ? { clock } : {}), ...start });
    const sds = await t.participant('2000000001', ['SDS']);
    const sup = await t.participant('1000000001', ['SUP']);
    const ldso = await t.participant('3000000001', ['LDSO']);
    return { t, sds, sup, ldso };
  }
  let n = 0;
  const send = async (sds: TestParticipant, to: string[], count = 1) => {
    const items = Array.from({ length: count }, () => buildIF021({ senderDipId: sds.dipId, senderRole: 'SDS', primaryRecipients: to, uniqueSuffix: `d${n++}` }));
    const answer = await sds.client.submit('IF-021', items);
    expect(answer.status, JSON.stringify(answer.body.messageArray.map((e) => e.help))).toBe(201);
    return items.map((i) => i.payload.CommonBlock.S1.senderUniqueReference);
  };
  const closers: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const close of closers.splice(0).reverse()) await close();
  });
  /** The attempts recorded for one recipient's IF-021 queue, in order. */
  const recorded = (recipient: string) =>
    new Database(join(t!.config.dataDir, 'dip.db'), { readonly: true })
      .prepare("SELECT a.status, a.verdict, a.error, a.latency_ms AS latencyMs FROM delivery_attempts a JOIN queues q ON q.id = a.queue_id WHERE q.recipient_dip_id = ? AND q.channel = 'IF-021' ORDER BY a.id")
      .all(recipient) as Array<{ status: number | null; verdict: string; error: string | null; latencyMs: number }>;
  const attempts = (t: TestDip) =>
    new Database(join(t.config.dataDir, 'dip.db'), { readonly: true }).prepare('SELECT status, verdict, first_seq AS firstSeq, last_seq AS lastSeq FROM delivery_attempts ORDER BY id').all() as Array<{ status: number | null; verdict: string; firstSeq: number; lastSeq: number }>;

  it('retries 503 and 429 with backoff and keeps the order: nothing overtakes a failing message', async () => {
    const { t, sds, sup } = await market();
    const answers = [503, 429, 503];
    const r = await t.receiver(() => answers.shift() ?? 200);
    await sup.client.setWebhook('IF-021', sup.dipId, { callbackURL: r.url, maxMessageCount: 100 });
    const first = await send(sds, [sup.dipId]);
    const rest = await send(sds, [sup.dipId], 5);
    await waitFor(() => r.calls.flatMap((c) => c.messages).length >= 6, 10_000, 'delivery after retries');
    expect(r.calls.flatMap((c) => c.messages).map(ref)).toEqual([...first, ...rest]);
    // Attempts are recorded after the answer arrives: the receiver can see a call before the DIP logs it.
    await waitFor(() => attempts(t).at(-1)?.verdict === 'delivered', 5000, 'the delivered attempt to be recorded');
    const log = attempts(t);
    expect(log.slice(0, 3).map((a) => [a.status, a.verdict])).toEqual([
      [503, 'retry'],
      [429, 'retry'],
      [503, 'retry'],
    ]);
    expect(log.at(-1)!.verdict).toBe('delivered');
  });

  it('does not retry a 400: the batch is re-sent singly and only the refused message is set aside', async () => {
    const { t, sds, sup } = await market();
    const refs: string[] = [];
    let bad = '';
    // Refuses any call that carries the poisoned message; accepts everything else.
    const r = await t.receiver((call) => (call.messages.some((m) => ref(m) === bad) ? 400 : 200));
    bad = (await send(sds, [sup.dipId], 3))[1]!;
    // Sent before the webhook exists, so the queue holds all three and delivers them in one call.
    refs.push(...[0, 1, 2].map(() => ''));
    await sup.client.setWebhook('IF-021', sup.dipId, { callbackURL: r.url, maxMessageCount: 100 });
    await waitFor(() => r.calls.flatMap((c) => c.messages).length >= 2, 10_000, 'the two good messages');
    const delivered = r.calls.flatMap((c) => c.messages).map(ref);
    expect(delivered).not.toContain(bad);
    expect(delivered).toHaveLength(2);
    const db = new Database(join(t.config.dataDir, 'dip.db'), { readonly: true });
    expect(db.prepare('SELECT seq, status FROM dead_letters').all()).toEqual([{ seq: 2, status: 400 }]);
    expect(attempts(t).filter((a) => a.status === 400).map((a) => [a.firstSeq, a.lastSeq])).toEqual([
      [1, 3],
      [2, 2],
    ]);
  });

  it('a hanging recipient delays nobody else', async () => {
    // The hanging call outlasts the whole test unless its connection is cut: SUP's deliveries cannot have waited for it.
    const { t, sds, sup, ldso } = await market({ delivery: { timeoutMs: 60_000 } as never });
    // LDSO: a server that accepts the connection and never answers.
    let hung = 0;
    const hanging: Server = createServer(() => void (hung += 1));
    await new Promise<void>((res) => hanging.listen(0, '127.0.0.1', res));
    const port = (hanging.address() as { port: number }).port;
    await ldso.client.setWebhook('IF-021', ldso.dipId, { callbackURL: `http://127.0.0.1:${port}/` });
    const r = await t.receiver();
    await sup.client.setWebhook('IF-021', sup.dipId, { callbackURL: r.url });
    await send(sds, [sup.dipId, ldso.dipId], 10);
    await waitFor(() => r.calls.flatMap((c) => c.messages).length >= 10, 10_000, 'SUP deliveries');
    // An attempt is recorded once answered: LDSO's call is still hanging while SUP has all ten.
    await waitFor(() => hung > 0, 5000, 'the call to LDSO');
    expect(attempts(t).filter((a) => a.status === null)).toEqual([]);
    // Cut off, the hanging call fails and is retried later.
    hanging.closeAllConnections();
    await waitFor(() => attempts(t).some((a) => a.verdict === 'retry' && a.status === null), 5000, 'the cut call to be recorded');
    hanging.close();
  });

  it('ends each call to a stalling receiver by the delivery timeout, holds up no other recipient, and delivers once answered', async () => {
    // A fault campaign's three stalls: an https:// receiver that takes the TCP connection and never answers
    // (not even the TLS handshake), one that answers 200 headers and never ends the body, and one whose 2xx
    // comes after the timeout (answered once the DIP has given the call up, then promptly).
    const { t, sds, sup, ldso } = await market({ delivery: { timeoutMs: 500 } as never });
    const stalls = await t.participant('1000000002', ['SUP']);
    const late = await t.participant('1000000003', ['SUP']);
    const sockets: Socket[] = [];
    const listen = async (server: Server | NetServer) => {
      await new Promise<void>((res) => server.listen(0, '127.0.0.1', res));
      closers.push(() => {
        // Their connections never end by themselves: cut, so that close returns.
        for (const socket of sockets) socket.destroy();
        if ('closeAllConnections' in server) server.closeAllConnections();
        return new Promise<void>((res) => server.close(() => res()));
      });
      return (server.address() as { port: number }).port;
    };
    const silent = createNetServer((socket) => void sockets.push(socket));
    await ldso.client.setWebhook('IF-021', ldso.dipId, { callbackURL: `https://127.0.0.1:${await listen(silent)}/` });
    const stalling = createServer((req, res) => {
      req.resume();
      res.writeHead(200, { 'content-type': 'application/json' });
      res.flushHeaders(); // and never a byte of the body
      sockets.push(req.socket);
    });
    await stalls.client.setWebhook('IF-021', stalls.dipId, { callbackURL: `http://127.0.0.1:${await listen(stalling)}/` });
    const lateCalls: string[][] = [];
    const answerLate = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        lateCalls.push((JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown[]).map(ref));
        // The first call is answered 200 only after the DIP recorded it as failed; the next at once.
        if (lateCalls.length > 1) return void res.writeHead(200).end();
        void waitFor(() => recorded(late.dipId).some((a) => a.verdict === 'retry'), 10_000, 'the late call given up').then(() => res.writeHead(200).end(), () => res.destroy());
      });
    });
    await late.client.setWebhook('IF-021', late.dipId, { callbackURL: `http://127.0.0.1:${await listen(answerLate)}/` });
    const r = await t.receiver();
    await sup.client.setWebhook('IF-021', sup.dipId, { callbackURL: r.url });

    const refs = await send(sds, [sup.dipId, ldso.dipId, stalls.dipId, late.dipId], 3);
    await waitFor(() => r.calls.flatMap((c) => c.messages).length >= 3, 10_000, 'SUP deliveries');
    expect(r.calls.flatMap((c) => c.messages).map(ref)).toEqual(refs);
    // The headers were the answer: 200, delivered, the stalled body cut off at the timeout.
    await waitFor(() => recorded(stalls.dipId).some((a) => a.verdict === 'delivered'), 10_000, 'the stalled body to be cut off');
    expect(recorded(stalls.dipId).map((a) => [a.status, a.verdict])).toEqual([[200, 'delivered']]);
    // Given up at the timeout, answered late, sent again: delivered, and seen twice by that recipient.
    await waitFor(() => recorded(late.dipId).some((a) => a.verdict === 'delivered'), 10_000, 'the late recipient delivered');
    expect(lateCalls).toEqual([refs, refs]);
    // The silent receiver: each call ends by the timeout, named, and is retried on the backoff.
    await waitFor(() => recorded(ldso.dipId).filter((a) => a.verdict === 'retry').length >= 2, 10_000, 'two timed-out calls');
    for (const a of recorded(ldso.dipId)) {
      expect(a).toMatchObject({ status: null, verdict: 'retry', error: 'TIMEOUT: no answer within 500 ms: connecting, the TLS handshake or the answer\'s headers' });
      expect(a.latencyMs).toBeLessThan(2_000);
    }
  });

  it('names a webhook host that does not resolve and a closed port in each attempt, retries on the backoff, and sets the messages aside naming the last error', async () => {
    const clock = new ShiftableClock();
    // sup.example does not resolve (the lookup the DIP's connections make); the rest resolves as usual.
    const lookup = ((host: string, options: object, callback: (err: Error | null, address: string, family: number) => void) =>
      host === 'sup.example' ? callback(Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND' }), '', 0) : dnsLookup(host, options, callback)) as LookupFunction;
    const { t, sds, sup, ldso } = await market({ retentionDays: 1, allowShortRetention: true, delivery: { retryBaseMs: 60_000, retryCapMs: 120_000 } as never }, clock, { lookup });
    const closed = createNetServer();
    await new Promise<void>((res) => closed.listen(0, '127.0.0.1', res));
    const port = (closed.address() as { port: number }).port;
    await new Promise<void>((res) => closed.close(() => res())); // nothing listens there now
    await sup.client.setWebhook('IF-021', sup.dipId, { callbackURL: 'http://sup.example/hook' });
    await ldso.client.setWebhook('IF-021', ldso.dipId, { callbackURL: `http://127.0.0.1:${port}/` });
    await send(sds, [sup.dipId, ldso.dipId], 2);
    const worker = (dipId: string) => t.dip.delivery.status().find((w) => w.queue.recipientDipId === dipId)!;
    const backingOff = () => [sup.dipId, ldso.dipId].every((id) => recorded(id).length === 1 && worker(id).state === 'backoff');
    await waitFor(backingOff, 10_000, 'one failed call each, then a backoff');
    expect(recorded(sup.dipId)).toEqual([{ status: null, verdict: 'retry', error: 'ENOTFOUND: getaddrinfo ENOTFOUND sup.example', latencyMs: expect.any(Number) }]);
    expect(recorded(ldso.dipId)).toEqual([{ status: null, verdict: 'retry', error: `ECONNREFUSED: connect ECONNREFUSED 127.0.0.1:${port}`, latencyMs: expect.any(Number) }]);
    // No busy loop: the next call is at least retryBaseMs away on the DIP's clock.
    for (const id of [sup.dipId, ldso.dipId]) expect(worker(id).retryAt! - clock.now()).toBeGreaterThan(55_000);
    clock.jump(120_000);
    await waitFor(() => [sup.dipId, ldso.dipId].every((id) => recorded(id).length === 2 && worker(id).state === 'backoff'), 10_000, 'one more call each');
    // A day later the messages are set aside; the dead letter says why they could not be delivered.
    clock.jump(86_400_000);
    const dead = () => new Database(join(t.config.dataDir, 'dip.db'), { readonly: true }).prepare('SELECT q.recipient_dip_id AS recipient, d.reason, d.detail FROM dead_letters d JOIN queues q ON q.id = d.queue_id ORDER BY q.recipient_dip_id, d.seq').all() as Array<{ recipient: string; reason: string; detail: string }>;
    await waitFor(() => dead().length === 4, 10_000, 'the messages set aside');
    for (const d of dead()) {
      expect(d.reason).toBe('stale');
      // Its kind, not the raw error: the sender reads this detail, and must not learn the recipient's host, address or port.
      expect(d.detail).toMatch(d.recipient === sup.dipId ? /the last call failed: the webhook's host name did not resolve \(2 failed calls in a row\)$/ : /the last call failed: the connection was refused \(2 failed calls in a row\)$/);
      expect(d.detail).not.toMatch(/sup\.example|127\.0\.0\.1|ENOTFOUND|ECONNREFUSED/);
    }
  });

  it('sets aside messages that waited longer than the retention period for an offline recipient', async () => {
    const clock = new ShiftableClock();
    const { t, sds, sup } = await market({ retentionDays: 1, allowShortRetention: true }, clock);
    const [old] = await send(sds, [sup.dipId]);
    clock.jump(86_400_000 + 1000); // a day and a second later (the signature's own clock skew is not in play: sent before)
    const [fresh] = await send(sds, [sup.dipId]);
    const r = await t.receiver();
    await sup.client.setWebhook('IF-021', sup.dipId, { callbackURL: r.url });
    await waitFor(() => r.calls.length > 0, 5000, 'the fresh message');
    expect(r.calls.flatMap((c) => c.messages).map(ref)).toEqual([fresh]);
    const db = new Database(join(t.config.dataDir, 'dip.db'), { readonly: true });
    const setAside = db.prepare('SELECT d.seq, d.status, d.reason, m.sender_ref AS ref FROM dead_letters d JOIN messages m ON m.id = d.message_id').all();
    expect(setAside).toEqual([{ seq: 1, status: null, reason: 'stale', ref: old }]);
  });

  it('a queue backing off from a failing webhook tries a newly registered one at once', async () => {
    const { t, sds, sup } = await market({ delivery: { retryBaseMs: 20_000, retryCapMs: 60_000 } as never });
    const dead = await t.receiver(() => 503);
    await sup.client.setWebhook('IF-021', sup.dipId, { callbackURL: dead.url });
    const refs = await send(sds, [sup.dipId], 2);
    await waitFor(() => dead.calls.length > 0 || attempts(t).some((a) => a.verdict === 'retry'), 5000, 'the first failure');
    const live = await t.receiver();
    await sup.client.setWebhook('IF-021', sup.dipId, { callbackURL: live.url });
    // The backoff after the failure is at least half of retryBaseMs (10 s): delivery within 5 s was not its retry.
    await waitFor(() => live.calls.flatMap((c) => c.messages).length === 2, 5000, 'delivery to the new webhook');
    expect(live.calls.flatMap((c) => c.messages).map(ref)).toEqual(refs);
  });
});
