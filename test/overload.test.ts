import type { Socket } from 'node:net';
import * as tls from 'node:tls';
import { afterEach, describe, expect, it } from 'vitest';
import { EventLoopGauge } from '../src/adapters/event-loop-gauge.js';
import { senderKey } from '../src/api/overload.js';
import { isRefusal, OverloadGuard, type Admitted, type Refusal } from '../src/pipeline/overload.js';
import { buildIF021 } from '../src/sim/messages.js';
import { startTestDip, waitFor, type TestDip, type TestParticipant } from './helpers/dip-harness.js';
import { rawSignedRequest, tlsOf } from './hostile/helpers.js';

/**
 * Graceful overload: a DIP that cannot keep up answers submissions 503 with Retry-After at once, accepts
 * nothing of them, and takes them when it can again.
 */
describe('overload guard', () => {
  const limits = { maxEventLoopDelayMs: 500, delayCountsFromSubmissions: 2, maxSubmissionsInFlight: 10, maxBytesInFlight: 1_000_000, maxBytesArriving: 1 << 30, maxBytesArrivingPerSender: 1 << 30 };
  const from = (declaredBytes: number | null = 1_000, sender = 'a') => ({ declaredBytes, sender });
  /** Admitted at its headers (else the test fails), its body not yet arrived. */
  const admitted = (guard: OverloadGuard, arriving = from()): Admitted => {
    const verdict = guard.admit(arriving);
    if (isRefusal(verdict)) throw new Error(`refused: ${verdict.help}`);
    return verdict;
  };
  /** A submission admitted whose body has arrived. */
  const inHand = (guard: OverloadGuard, bytes = 1_000) => {
    const ticket = admitted(guard, from(bytes));
    expect(ticket.arrived(bytes)).toBeNull();
    return ticket;
  };
  /** Why a submission would be refused now, or null (and then it is let go again unanswered). */
  const refusal = (guard: OverloadGuard, arriving = from()): Refusal | null => {
    const verdict = guard.admit(arriving);
    if (isRefusal(verdict)) return verdict;
    verdict.done();
    return null;
  };

  it('refuses while the loop is late on average with a queue of submissions, with a Retry-After that grows with the delay', () => {
    let mean = 0;
    const guard = new OverloadGuard(limits, { delayMeanMs: () => mean });
    expect(refusal(guard)).toBeNull();
    mean = 501;
    // One submission in hand: a machine busy elsewhere, not a queue building up.
    const first = inHand(guard);
    expect(refusal(guard)).toBeNull();
    inHand(guard);
    expect(refusal(guard)).toMatchObject({ retryAfterSeconds: 2, help: expect.stringContaining('501 ms late with 2 submissions in hand, the limit is 500 ms') });
    mean = 40_000;
    expect(refusal(guard)!.retryAfterSeconds).toBe(30);
    first.done();
    mean = 10;
    inHand(guard);
    expect(refusal(guard)).toBeNull();
    expect(guard.stats().refused).toBe(2);
  });

  it('refuses while the submissions in hand reach the limit; each one counts from its arrival until it is answered, once', () => {
    const guard = new OverloadGuard({ ...limits, delayCountsFromSubmissions: 0, maxSubmissionsInFlight: 2 }, { delayMeanMs: () => 0 });
    const a = inHand(guard);
    const b = inHand(guard);
    expect(refusal(guard)).toMatchObject({ retryAfterSeconds: 1, help: expect.stringContaining('2 submissions in hand, the limit is 2') });
    a.done();
    a.done(); // a response closes once; a second call changes nothing
    expect(guard.stats().submissionsInFlight).toBe(1);
    expect(refusal(guard)).toBeNull();
    b.done();
    expect(guard.stats()).toMatchObject({ submissionsInFlight: 0, bytesInFlight: 0, bytesArriving: 0 });
  });

  it('counts no submission whose body is still arriving as work in hand: slow senders take nobody else\'s place', () => {
    const guard = new OverloadGuard({ ...limits, maxSubmissionsInFlight: 2, maxBytesInFlight: 1_000 }, { delayMeanMs: () => 0 });
    const uploading = Array.from({ length: 300 }, () => admitted(guard, from(100, 'trickler')));
    expect(refusal(guard, from(999, 'other'))).toBeNull();
    // Closed before its body arrived: nothing in hand to take back, its arriving bytes are.
    uploading[0]!.done();
    expect(guard.stats()).toMatchObject({ submissionsInFlight: 0, bytesInFlight: 0, bytesArriving: 29_900 });
    for (const u of uploading) u.done();
    expect(guard.stats().bytesArriving).toBe(0);
  });

  it('refuses 413 (no Retry-After: sent again it is refused again) an upload larger than a sender may have arriving at once, whether it declared its length or not', () => {
    // A body limit (50 kB) above the per-sender limit (4 kB): what is between them can never be taken.
    const roomy = new OverloadGuard({ ...limits, maxBytesArriving: 10_000, maxBytesArrivingPerSender: 4_000 }, { delayMeanMs: () => 0 }, 50_000);
    const why = 'the body (50000 bytes) is larger than the DIP takes arriving from one sender at once (overload.maxBytesArrivingPerSender, 4000 bytes): sent again it is refused again; nothing of this batch was accepted: send it in smaller batches';
    expect(refusal(roomy, from(50_000, 'a'))).toEqual({ retryAfterSeconds: null, help: why });
    // Declared no length (chunked): judged when its body has arrived.
    const chunked = admitted(roomy, from(null, 'b'));
    expect(chunked.arrived(50_000)).toEqual({ retryAfterSeconds: null, help: why });
    chunked.done();
    expect(roomy.stats()).toMatchObject({ bytesArriving: 0, bytesInFlight: 0 });
    // Up to the limit it is taken alone, as before.
    const most = admitted(roomy, from(4_000, 'a'));
    expect(most.arrived(4_000)).toBeNull();
    most.done();
  });

  it('bounds the bytes still arriving per sender and in all, by what each upload declared (the body limit when it declared none); one upload alone is always taken', () => {
    // One upload at a sender's limit (4 kB) alone is taken; with the limit in all at 4 kB too, it fills that.
    const roomy = new OverloadGuard({ ...limits, maxBytesArriving: 4_000, maxBytesArrivingPerSender: 4_000 }, { delayMeanMs: () => 0 }, 50_000);
    const huge = admitted(roomy, from(4_000, 'a'));
    expect(refusal(roomy, from(1, 'a'))).toMatchObject({ retryAfterSeconds: 1, help: expect.stringContaining('of your submissions are still arriving, the limit per sender is') });
    // Another sender is judged against everything arriving: 4 kB and one byte past the 4 kB of all.
    expect(refusal(roomy, from(1, 'b'))).toMatchObject({ help: expect.stringContaining('of submissions are still arriving, the limit is') });
    // Its body arrives: no longer arriving, in hand instead (and alone there, so taken).
    expect(huge.arrived(4_000)).toBeNull();
    expect(roomy.stats()).toMatchObject({ bytesArriving: 0, bytesInFlight: 4_000 });
    huge.done();
    const guard = new OverloadGuard({ ...limits, maxBytesArriving: 10_000, maxBytesArrivingPerSender: 4_000 }, { delayMeanMs: () => 0 }, 3_000);
    // Per sender: b fills its share, c still comes in; chunked uploads count as the body limit (3 kB).
    const b1 = admitted(guard, from(2_500, 'b'));
    expect(refusal(guard, from(1_501, 'b'))).not.toBeNull();
    const b2 = admitted(guard, from(1_500, 'b'));
    const c1 = admitted(guard, from(null, 'c'));
    expect(guard.stats().bytesArriving).toBe(7_000);
    expect(refusal(guard, from(null, 'c'))).not.toBeNull(); // 3 kB + 3 kB > c's 4 kB
    const d1 = admitted(guard, from(3_000, 'd')); // 10 kB of all: fits exactly
    expect(refusal(guard, from(1, 'e'))).toMatchObject({ help: expect.stringContaining('of submissions are still arriving, the limit is') });
    d1.done();
    // A Content-Length past the body limit (3 kB here) is never read (413): it counts as the limit.
    const huge2 = admitted(guard, from(1e15, 'e'));
    expect(guard.stats().bytesArriving).toBe(10_000);
    huge2.done();
    // A closed upload gives its share back, once.
    b1.done();
    b1.done();
    expect(guard.stats().bytesArriving).toBe(4_500);
    expect(refusal(guard, from(2_500, 'b'))).toBeNull();
    // What arrives is judged by its real size; its declared reservation is released either way.
    expect(c1.arrived(700)).toBeNull();
    expect(guard.stats()).toMatchObject({ bytesArriving: 1_500, bytesInFlight: 700 });
    b2.done();
    c1.done();
    expect(guard.stats()).toMatchObject({ bytesArriving: 0, bytesInFlight: 0, submissionsInFlight: 0 });
  });

  it('judges a submission again as its body arrives: of uploads that began together, those past the limit are refused then, not counted', () => {
    const guard = new OverloadGuard({ ...limits, maxBytesInFlight: 1_000_000 }, { delayMeanMs: () => 0 });
    // Five 450 kB uploads begin with nothing in hand: each is admitted at its headers.
    const uploads = Array.from({ length: 5 }, () => admitted(guard, from(450_000)));
    const arrivals = uploads.map((u) => u.arrived(450_000));
    expect(arrivals.filter((r) => r === null)).toHaveLength(2);
    expect(arrivals.slice(2).every((r) => r?.help.includes('MiB of submissions in hand'))).toBe(true);
    expect(guard.stats()).toMatchObject({ submissionsInFlight: 2, bytesInFlight: 900_000, bytesArriving: 0 });
    for (const u of uploads) u.done();
    expect(guard.stats()).toMatchObject({ submissionsInFlight: 0, bytesInFlight: 0 });
  });

  it('refuses a submission that would take the bytes in hand past the limit, but always takes one alone', () => {
    const guard = new OverloadGuard({ ...limits, maxBytesInFlight: 1_000_000 }, { delayMeanMs: () => 0 });
    // One batch larger than the limit, with nothing in hand: taken.
    const big = inHand(guard, 4_500_000);
    expect(refusal(guard, from(450))).toMatchObject({ retryAfterSeconds: 1, help: expect.stringContaining('4.3 MiB of submissions in hand, the limit is 1.0 MiB') });
    big.done();
    const most = inHand(guard, 900_000);
    expect(refusal(guard, from(99_999))).toBeNull();
    expect(refusal(guard, from(100_001))).not.toBeNull();
    most.done();
  });
});

// Security review (MEDIUM): the work in hand was shared whole, so one sender's large batches filled it and
// every other sender was refused until they were answered. While others send, one holds at most half.
describe('a fair share of the work in hand', () => {
  const limits = { maxEventLoopDelayMs: 500, delayCountsFromSubmissions: 100, maxSubmissionsInFlight: 8, maxBytesInFlight: 1_000_000, maxBytesArriving: 1 << 30, maxBytesArrivingPerSender: 1 << 30 };
  const take = (guard: OverloadGuard, sender: string, bytes: number): Admitted | Refusal => {
    const verdict = guard.admit({ declaredBytes: bytes, sender });
    if (isRefusal(verdict)) return verdict;
    const late = verdict.arrived(bytes);
    return late ?? verdict;
  };

  it('one sender alone may fill the work in hand; while another sends, it holds at most a third (by bytes, by count) and is refused past it, 503 with Retry-After 1', () => {
    const guard = new OverloadGuard(limits, { delayMeanMs: () => 0 });
    // Alone: 900 kB in three batches, past half, taken.
    const big = [take(guard, 'big', 300_000), take(guard, 'big', 300_000), take(guard, 'big', 300_000)];
    expect(big.some(isRefusal)).toBe(false);
    // Another sender comes: it is taken (its batch fits the whole), and the first one is now held to its half.
    const small = take(guard, 'small', 50_000);
    expect(isRefusal(small)).toBe(false);
    const refused = take(guard, 'big', 10_000);
    expect(refused).toMatchObject({ retryAfterSeconds: 1, help: expect.stringContaining('while 2 senders send, one may hold 1/3: 2 submissions, 0.3 MiB') });
    // The other sender is not held back by the first one's share.
    expect(isRefusal(take(guard, 'small', 20_000))).toBe(false);
    // As the first one's batches are answered it comes back under its third, and is taken again.
    (big[0] as Admitted).done();
    (big[1] as Admitted).done();
    expect(isRefusal(take(guard, 'big', 30_000))).toBe(false);
  });

  it('counts submissions too: at most a third of maxSubmissionsInFlight while another sender has one in hand or arriving', () => {
    const guard = new OverloadGuard(limits, { delayMeanMs: () => 0 });
    const other = guard.admit({ declaredBytes: 1_000, sender: 'other' });
    expect(isRefusal(other)).toBe(false);
    const mine = Array.from({ length: 5 }, () => take(guard, 'busy', 1_000));
    expect(mine.map(isRefusal)).toEqual([false, false, true, true, true]);
    // The other's upload gone: the busy sender is alone and may fill the rest.
    (other as Admitted).done();
    expect(isRefusal(take(guard, 'busy', 1_000))).toBe(false);
  });

  // Security review: held to half each, two senders filled the work in hand between them, and a third was
  // refused until one was answered (then lost the room to it: they are answered at once, it retries in 1 s).
  it('two greedy senders leave room for a third: while n send, each holds at most 1/(n + 1)', () => {
    const guard = new OverloadGuard(limits, { delayMeanMs: () => 0 });
    const greedy = (sender: string) => {
      let taken = 0;
      while (!isRefusal(take(guard, sender, 100_000))) taken += 1;
      return taken;
    };
    // a alone would fill it all: b first (one), then both take all they are given: a third each.
    take(guard, 'b', 100_000);
    expect([greedy('a'), greedy('b'), greedy('a')]).toEqual([2, 1, 0]);
    expect(guard.stats()).toMatchObject({ submissionsInFlight: 4, bytesInFlight: 400_000 });
    // The third is taken, and with it there the two are held to a quarter each.
    expect(isRefusal(take(guard, 'c', 100_000))).toBe(false);
    expect(isRefusal(take(guard, 'c', 100_000))).toBe(false);
    expect(take(guard, 'c', 100_000)).toMatchObject({ help: expect.stringContaining('while 3 senders send, one may hold 1/4: 2 submissions') });
  });

  // Security review: the share was keyed by the certificate's fingerprint, so a participant presenting its
  // current and its previous certificate (a rotation's overlap) held a share with each.
  it('two certificates of one participant hold one share: the sender is the DIP IDs its certificate names', () => {
    const socketWith = (ids: readonly string[], fingerprint: string) =>
      ({ getPeerX509Certificate: () => ({ subjectAltName: ids.map((id) => `URI:urn:dip:participant:${id}`).join(', '), fingerprint256: fingerprint, serialNumber: '01', issuer: 'CN=ca', validTo: 'Jan  1 00:00:00 2030 GMT' }) }) as unknown as Socket;
    const current = senderKey(socketWith(['2000000001', '2000000002'], 'AA:01'));
    const previous = senderKey(socketWith(['2000000002', '2000000001'], 'BB:02'));
    expect(current).toBe(previous);
    expect(senderKey(socketWith(['2000000003'], 'CC:03'))).not.toBe(current);
    // A certificate naming no participant is itself, no certificate its address.
    expect(senderKey(socketWith([], 'DD:04'))).toBe('c:DD04');
    expect(senderKey({ remoteAddress: '192.0.2.7' } as unknown as Socket)).toBe('a:192.0.2.7');

    const guard = new OverloadGuard(limits, { delayMeanMs: () => 0 });
    take(guard, 'other', 1_000);
    expect([take(guard, current, 1_000), take(guard, previous, 1_000), take(guard, previous, 1_000)].map(isRefusal)).toEqual([false, false, true]);
  });
});

describe('event-loop gauge (real measurement)', () => {
  it('a loop kept busy reads late; only lower bounds are asserted (a busy machine only adds delay)', async () => {
    const gauge = new EventLoopGauge(100, 10);
    gauge.start();
    try {
      // Keeps the loop busy in 40 ms slices for 700 ms: every sampling timer fires up to 40 ms late.
      const end = Date.now() + 700;
      while (Date.now() < end) {
        const slice = Date.now() + 40;
        while (Date.now() < slice);
        await new Promise((r) => setImmediate(r));
      }
      expect(gauge.delayMeanMs()).toBeGreaterThan(5);
    } finally {
      gauge.stop();
    }
  });

  it('one stall of the loop counts in recentWorstMs as soon as the loop runs again (what a message buffered through it waited), though not in the mean', async () => {
    const gauge = new EventLoopGauge(100, 10);
    gauge.start();
    try {
      await waitFor(() => gauge.recentWorstMs() > 0, 2_000, 'the gauge sampling', 10);
      const end = Date.now() + 300;
      while (Date.now() < end);
      // The sampler's timer runs once the loop is free again; a lower bound only (a busy machine only adds delay).
      await waitFor(() => gauge.recentWorstMs() > 250, 2_000, 'the stall to be sampled', 10);
      expect(gauge.recentWorstMs()).toBeGreaterThan(250);
    } finally {
      gauge.stop();
    }
  });
});

describe('a DIP under overload', () => {
  let t: TestDip | undefined;
  afterEach(async () => {
    await t?.close();
    t = undefined;
  });

  /** The store holds the next batch's commit until `release`: that batch stays in hand. */
  const holdNextAppend = (dip: TestDip): { inHand: () => boolean; release: () => void } => {
    const log = dip.dip.backend.log;
    const append = log.append.bind(log);
    let release = (): void => {};
    const held = new Promise<void>((resolve) => (release = resolve));
    let waiting = false;
    log.append = async (b) => {
      log.append = append;
      waiting = true;
      await held;
      return append(b);
    };
    return { inHand: () => waiting, release: () => release() };
  };

  let n = 0;
  const batch = (sds: TestParticipant, to: string, count: number) => Array.from({ length: count }, () => buildIF021({ senderDipId: sds.dipId, senderRole: 'SDS', primaryRecipients: [to], uniqueSuffix: `o${n++}` }));

  it('answers 503 with Retry-After while measured late, stores nothing of the refused batch, and takes it again afterwards', async () => {
    let mean = 0;
    t = await startTestDip({ overload: { maxEventLoopDelayMs: 500, delayCountsFromSubmissions: 0, maxSubmissionsInFlight: 256, maxBytesInFlight: 32 << 20, maxBytesArriving: 128 << 20, maxBytesArrivingPerSender: 32 << 20 } }, undefined, { load: { delayMeanMs: () => mean } });
    const sds = await t.participant('2000000001', ['SDS']);
    const sup = await t.participant('1000000001', ['SUP']);
    const r = await t.receiver();
    await sup.client.setWebhook('IF-021', sup.dipId, { callbackURL: r.url, maxMessageCount: 100 });
    const before = batch(sds, sup.dipId, 3);
    expect((await sds.client.submit('IF-021', before)).status).toBe(201);

    mean = 900; // the event loop runs 0.9 s late on average: the DIP is behind
    const refusedBatch = batch(sds, sup.dipId, 5);
    const refused = await sds.client.submit('IF-021', refusedBatch);
    expect(refused.status).toBe(503);
    expect(refused.headers['retry-after']).toBe('2');
    expect(refused.body.messageArray[0]).toMatchObject({ message: 'MSG1000 - Message Processing Failed', help: expect.stringContaining('overloaded') });
    // What was accepted before goes on being delivered: overload refuses new work, it drops nothing.
    await waitFor(() => r.calls.flatMap((c) => c.messages).length === 3, 10_000, 'the accepted messages');

    mean = 0;
    // Nothing of the refused batch was stored: the same batch, sent again, is accepted (not a duplicate).
    const again = await sds.client.submit('IF-021', refusedBatch);
    expect(again.status, JSON.stringify(again.body)).toBe(201);
    await waitFor(() => r.calls.flatMap((c) => c.messages).length === 8, 10_000, 'the resent batch');
  });

  it('counts a submission as in hand from its arrival to its answer, by its bytes: the next is refused while one waits for its commit', async () => {
    t = await startTestDip({ overload: { maxEventLoopDelayMs: 500, delayCountsFromSubmissions: 100, maxSubmissionsInFlight: 256, maxBytesInFlight: 1_000, maxBytesArriving: 128 << 20, maxBytesArrivingPerSender: 32 << 20 } });
    const sds = await t.participant('2000000001', ['SDS']);
    const sup = await t.participant('1000000001', ['SUP']);
    // The store holds the first batch's commit until the test lets it go.
    const { inHand, release } = holdNextAppend(t);
    const first = sds.client.submit('IF-021', batch(sds, sup.dipId, 1));
    await waitFor(inHand, 10_000, 'the first batch in hand');
    const second = await sds.client.submit('IF-021', batch(sds, sup.dipId, 1));
    expect([second.status, second.body.messageArray[0]!.help]).toEqual([503, expect.stringMatching(/MiB of submissions in hand, the limit is 0\.0 MiB/)]);
    release();
    expect((await first).status).toBe(201);
    expect((await sds.client.submit('IF-021', batch(sds, sup.dipId, 1))).status).toBe(201);
  });

  it('judges an upload again when its body has arrived: admitted with nothing in hand, it is refused 503 if another batch came in meanwhile', async () => {
    t = await startTestDip({ overload: { maxEventLoopDelayMs: 500, delayCountsFromSubmissions: 100, maxSubmissionsInFlight: 256, maxBytesInFlight: 1_000, maxBytesArriving: 128 << 20, maxBytesArrivingPerSender: 32 << 20 } });
    const sds = await t.participant('2000000001', ['SDS']);
    const sup = await t.participant('1000000001', ['SUP']);
    // A: its head and most of its body sent first, with nothing in hand (admitted), the rest held back.
    // Spelled as Node's parser takes it, not only as the RFC writes it.
    const raw = await rawSignedRequest(t, sds, { path: '/dip-channel/IF-021', body: JSON.stringify(batch(sds, sup.dipId, 3)), extraHeaderLines: ['Expect: 100-Continue'] });
    const socket = tls.connect({ host: '127.0.0.1', port: t.dip.port, servername: 'localhost', ca: t.dip.pki.ca.certPem, ...tlsOf(sds) });
    let answer = '';
    socket.on('data', (d: Buffer) => (answer += d.toString()));
    await new Promise<void>((resolve) => socket.once('secureConnect', () => resolve()));
    const head = raw.indexOf('\r\n\r\n') + 4;
    socket.write(raw.slice(0, head));
    // The DIP has read A's head (and so judged it) once it says to go on.
    await waitFor(() => answer.includes('100 Continue'), 10_000, 'the 100 Continue');
    socket.write(raw.slice(head, raw.length - 1));
    // B arrives whole and waits at its commit: it is in hand.
    const { inHand, release } = holdNextAppend(t);
    const b = sds.client.submit('IF-021', batch(sds, sup.dipId, 3));
    await waitFor(inHand, 10_000, 'B in hand');
    // A's last byte: it has arrived, and no longer fits.
    socket.write(raw.slice(raw.length - 1));
    await waitFor(() => /HTTP\/1\.1 503/.test(answer), 10_000, "A's answer");
    expect(answer).toContain('MiB of submissions in hand');
    socket.destroy();
    release();
    expect((await b).status).toBe(201);
  });

  it('answers 413 without Retry-After a submission larger than a sender may have arriving at once', async () => {
    t = await startTestDip({ overload: { maxEventLoopDelayMs: 500, delayCountsFromSubmissions: 100, maxSubmissionsInFlight: 256, maxBytesInFlight: 32 << 20, maxBytesArriving: 128 << 20, maxBytesArrivingPerSender: 2_000 } });
    const sds = await t.participant('2000000001', ['SDS']);
    const sup = await t.participant('1000000001', ['SUP']);
    const refused = await sds.client.submit('IF-021', batch(sds, sup.dipId, 1));
    expect([refused.status, refused.headers['retry-after'], refused.body.messageArray[0]!.message, refused.body.messageArray[0]!.help]).toEqual([413, undefined, expect.stringMatching(/^MSG1000/), expect.stringMatching(/^the body \(\d+ bytes\) is larger than the DIP takes arriving from one sender at once \(overload\.maxBytesArrivingPerSender, 2000 bytes\)/)]);
  });

  it('bounds what is still arriving per sender: one participant holding large uploads open is refused at its next headers, another participant is not', async () => {
    t = await startTestDip({ overload: { maxEventLoopDelayMs: 500, delayCountsFromSubmissions: 100, maxSubmissionsInFlight: 256, maxBytesInFlight: 32 << 20, maxBytesArriving: 128 << 20, maxBytesArrivingPerSender: 1 << 20 } });
    const sds = await t.participant('2000000001', ['SDS']);
    const other = await t.participant('2000000002', ['SDS']);
    const sup = await t.participant('1000000001', ['SUP']);
    // As an operator's Prometheus reads it.
    const arriving = async () => (await t!.dip.metrics.registry.getSingleMetric('dip_overload_bytes_arriving')!.get()).values[0]?.value;
    // The first sender declares 1,048,000 bytes (just under its 1 MiB share) and sends its head and a few bytes: admitted, still arriving.
    const socket = tls.connect({ host: '127.0.0.1', port: t.dip.port, servername: 'localhost', ca: t.dip.pki.ca.certPem, ...tlsOf(sds) });
    let answer = '';
    socket.on('data', (d: Buffer) => (answer += d.toString()));
    await new Promise<void>((resolve) => socket.once('secureConnect', () => resolve()));
    socket.write(`POST /dip-channel/IF-021 HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 1048000\r\n\r\n[`);
    await waitFor(async () => (await arriving()) === 1_048_000, 10_000, 'the upload counted as arriving');
    // Its next submission (4.5 kB) would take it past its 1 MiB share: refused before its body is read.
    try {
      const refused = await sds.client.submit('IF-021', batch(sds, sup.dipId, 1));
      expect([refused.status, refused.headers['retry-after'], refused.body.messageArray[0]!.help]).toEqual([503, '1', expect.stringContaining('of your submissions are still arriving, the limit per sender is 1.0 MiB')]);
      // Another participant is not held by it.
      expect((await other.client.submit('IF-021', batch(other, sup.dipId, 1))).status).toBe(201);
      // A sender asking first (Expect: 100-continue) is refused before it sends a byte of its body.
      const asking = tls.connect({ host: '127.0.0.1', port: t.dip.port, servername: 'localhost', ca: t.dip.pki.ca.certPem, ...tlsOf(sds) });
      let heard = '';
      asking.on('data', (d: Buffer) => (heard += d.toString()));
      await new Promise<void>((resolve) => asking.once('secureConnect', () => resolve()));
      asking.write(`POST /dip-channel/IF-021 HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 4500\r\nExpect: 100-continue\r\n\r\n`);
      await waitFor(() => heard.includes('\r\n\r\n{'), 10_000, 'the answer to the head');
      asking.destroy();
      expect(heard).toMatch(/^HTTP\/1\.1 503 /);
      expect(heard).not.toContain('100 Continue');
    } finally {
      // Hung up: its share is given back, and its next submission is taken.
      socket.destroy();
    }
    await waitFor(async () => (await arriving()) === 0, 10_000, 'the share given back');
    expect(answer).toBe('');
    expect((await sds.client.submit('IF-021', batch(sds, sup.dipId, 1))).status).toBe(201);
  });

  it('gives back what a pipelined upload reserved when its connection ends before its turn (its answer never comes, nor its close)', async () => {
    t = await startTestDip();
    const sds = await t.participant('2000000001', ['SDS']);
    const sup = await t.participant('1000000001', ['SUP']);
    const arriving = async () => (await t!.dip.metrics.registry.getSingleMetric('dip_overload_bytes_arriving')!.get()).values[0]?.value;
    const { inHand, release } = holdNextAppend(t);
    const socket = tls.connect({ host: '127.0.0.1', port: t.dip.port, servername: 'localhost', ca: t.dip.pki.ca.certPem, ...tlsOf(sds) });
    await new Promise<void>((resolve) => socket.once('secureConnect', () => resolve()));
    // A whole submission (held at its commit), then on the same connection the head of another.
    socket.write(await rawSignedRequest(t, sds, { path: '/dip-channel/IF-021', body: JSON.stringify(batch(sds, sup.dipId, 1)), connection: 'keep-alive' }));
    await waitFor(inHand, 10_000, 'the first submission at its commit');
    socket.write('POST /dip-channel/IF-021 HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 5000\r\n\r\n[');
    await waitFor(async () => (await arriving()) === 5000, 10_000, 'the pipelined upload counted as arriving');
    socket.destroy();
    await waitFor(async () => (await arriving()) === 0, 10_000, 'its reservation given back');
    release();
  });

  it('a loop truly kept busy (real gauge) is refused, and recovers once the work stops', async () => {
    t = await startTestDip({ overload: { maxEventLoopDelayMs: 15, delayCountsFromSubmissions: 0, maxSubmissionsInFlight: 256, maxBytesInFlight: 32 << 20, maxBytesArriving: 128 << 20, maxBytesArrivingPerSender: 32 << 20 } });
    const sds = await t.participant('2000000001', ['SDS']);
    await t.participant('1000000001', ['SUP']);
    // Busy slices of 60 ms on the DIP's own thread (the test shares it) until a submission is refused.
    let busy = true;
    const burn = (async () => {
      while (busy) {
        const slice = Date.now() + 60;
        while (Date.now() < slice);
        await new Promise((r) => setImmediate(r));
      }
    })();
    let status = 0;
    try {
      await waitFor(async () => (status = (await sds.client.submit('IF-021', batch(sds, '1000000001', 1))).status) === 503, 20_000, 'a 503 while the loop is busy');
    } finally {
      busy = false;
      await burn;
    }
    expect(status).toBe(503);
    await waitFor(async () => (await sds.client.submit('IF-021', batch(sds, '1000000001', 1))).status === 201, 20_000, 'a 201 once the loop is free');
  });
});
