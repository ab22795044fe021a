import { API_VERSION_HEADER, DIP_API_VERSION } from '../src/domain/api-version.js';
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { ATTEMPT_ID, attemptIdTime } from '../src/domain/attempt-id.js';
import type { DeliveryAttempt } from '../src/ports/archive.js';
import { COMMIT_IN_DOUBT, StoreError } from '../src/ports/errors.js';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openSqliteBackend } from '../src/adapters/sqlite/index.js';
import { systemClock } from '../src/adapters/clock.js';
import { batch, message, sup } from './contract/fixtures.js';
import { workerDeps } from './helpers/worker-deps.js';
import { settingAsidePassed, type QueueEntry, type QueueRef, type QueueState, type SettleOutcome, type Settlement } from '../src/ports/message-log.js';
import type { WebhookCall, WebhookOutcome } from '../src/ports/webhook.js';
import { DEFAULT_CALLS_PAST_SETTLEMENT, QueueWorker, type DeadLetterEvent, type LocalConsumer, type WorkerDeps } from '../src/pipeline/queue-worker.js';
import { deliveryLatencyAlarms } from '../src/pipeline/alarm-sources.js';
import { CopyUnmakeable, CopyWithheld } from '../src/pipeline/recipient-copy.js';
import { FakeClock, settle, ShiftableClock } from './helpers/clocks.js';
import { waitFor } from './helpers/dip-harness.js';
import { monotonicClock } from '../src/adapters/clock.js';
import type { Clock } from '../src/ports/clock.js';
import { WallClockSteps } from '../src/pipeline/wall-clock-steps.js';

/**
 * The queue worker as a state machine, driven by a fake clock, a fake log and a scripted recipient: no
 * sockets, no disk, no sleeping. Each test names the transitions it walks.
 */
const queue: QueueRef = { recipientDipId: 'SUP0000001', channel: 'IF-021' };
const HOOK = { recipientDipId: queue.recipientDipId, channel: queue.channel, url: 'https://sup.example/dip', maxMessageCount: 10, maxPayloadKb: 1024, registeredBy: queue.recipientDipId };

class FakeLog {
  entries: QueueEntry[] = [];
  acked = 0;
  settlements: Settlement[] = [];
  /** Errors the next settle calls throw, in order. */
  settleFails: Error[] = [];
  readFails: Error[] = [];

  add(n: number, receivedAt: number): void {
    for (let i = 0; i < n; i++) {
      const seq = this.entries.length + 1;
      this.entries.push({ seq, messageId: seq, transactionId: `T-${seq}`, receivedAt, outbound: JSON.stringify({ seq }), capacity: null, securityPattern: null });
    }
  }

  async readQueue(_q: QueueRef, after: number, limit: number): Promise<QueueEntry[]> {
    const fail = this.readFails.shift();
    if (fail) throw fail;
    return this.entries.filter((e) => e.seq > after).slice(0, limit);
  }

  async queueState(): Promise<QueueState> {
    return { ackedSeq: this.acked, headSeq: this.entries.length, pulledSeq: 0 };
  }

  /** While true, each settle waits until release() (a slow group commit); how many were ever in flight at once. */
  hold = false;
  private held: Array<{ resolve(): void; reject(e: Error): void }> = [];
  private inFlight = 0;
  maxInFlight = 0;

  async settle(_q: QueueRef, s: Settlement): Promise<SettleOutcome> {
    this.inFlight += 1;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    try {
      if (this.hold) await new Promise<void>((resolve, reject) => this.held.push({ resolve, reject }));
      const fail = this.settleFails.shift();
      if (fail) throw fail;
      // As the stores do: a set-aside of a position already passed (acknowledged meanwhile) writes nothing.
      if (settingAsidePassed(s, this.acked)) return 'superseded';
      this.settlements.push(s);
      this.acked = Math.max(this.acked, s.upTo);
      return 'settled';
    } finally {
      this.inFlight -= 1;
    }
  }

  /** Lets the oldest held settle finish, or fail with `error`. */
  release(error?: Error): void {
    const h = this.held.shift()!;
    if (error) h.reject(error);
    else h.resolve();
  }
}

const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i);

function harness(answers: Array<number | 'down'>, options: { copyFor?: WorkerDeps['copyFor']; hook?: boolean; staleAfterMs?: number; url?: string; mayCall?: () => boolean; leaseEnded?: () => void; local?: LocalConsumer; gatherMs?: number; maxPayloadKb?: number; late?: { afterMs: number; windowMs: number }; withheld?: () => string | null; wall?: Clock; steps?: WallClockSteps; answerAfter?: (call: number) => Promise<void>; callsPastSettlement?: number; whileNotices?: () => Promise<void> } = {}) {
  const clock = new FakeClock();
  const log = new FakeLog();
  const calls: WebhookCall[] = [];
  const attempts: DeliveryAttempt[] = [];
  const deadLettered: DeadLetterEvent[] = [];
  const paused: QueueWorker[] = [];
  const halted: unknown[] = [];
  const deps: WorkerDeps = {
    log,
    archive: { recordAttempt: async (a) => void attempts.push(a) },
    webhook: () => (options.hook === false ? undefined : { ...HOOK, url: options.url ?? HOOK.url, maxPayloadKb: options.maxPayloadKb ?? HOOK.maxPayloadKb }),
    transport: {
      post: async (call): Promise<WebhookOutcome> => {
        calls.push(call);
        await options.answerAfter?.(calls.length);
        const a = answers.shift() ?? 200;
        return a === 'down' ? { kind: 'failed', error: 'connection refused', latencyMs: 1 } : { kind: 'answered', status: a, retryAfter: undefined, body: '', latencyMs: 1 };
      },
      close: async () => {},
    },
    signer: { sign: async () => ({ 'x-dip-signature': 'sig' }) },
    settings: { timeoutMs: 1000, retry: { baseMs: 100, capMs: 1000 }, sweepIntervalMs: 1000, gatherMs: options.gatherMs ?? 0, callsPastSettlement: options.callsPastSettlement ?? 1, ...(options.late ? { late: options.late } : {}) },
    clock: options.wall ?? clock,
    ...(options.steps ? { steps: options.steps } : {}),
    logger: { info() {}, warn() {}, error() {} },
    random: () => 1, // the longest wait the schedule allows: deterministic
    randomBytes,
    staleAfterMs: () => options.staleAfterMs ?? 86_400_000,
    copyFor: options.copyFor ?? ((_q, { outbound }) => outbound),
    localConsumer: () => options.local,
    notices: async (events) => (await options.whileNotices?.(), { channel: 'STATUS', senderDipId: 'DIP', receivedAt: 0, rawRequest: Buffer.alloc(0), signatureHeaders: '{}', messages: events.map((e) => ({ transactionId: `S-${e.entry.seq}`, channel: 'STATUS', eventCode: '', senderDipId: 'DIP', senderRole: 'STS', senderUniqueReference: null, correlationId: null, mpan: null, receivedAt: 0, outbound: '{}', recipients: ['SDS0000001'] })) }),
    deadLettered: (events) => void deadLettered.push(...events),
    storeUnavailable: (w) => void paused.push(w),
    halted: (_q, e) => void halted.push(e),
    ...(options.mayCall ? { mayCall: options.mayCall } : {}),
    ...(options.leaseEnded ? { leaseEnded: options.leaseEnded } : {}),
    ...(options.withheld ? { withheld: options.withheld } : {}),
  };
  const worker = new QueueWorker(queue, deps);
  const sent = () => calls.map((c) => (JSON.parse(c.body.toString()) as Array<{ seq: number }>).map((m) => m.seq));
  return { clock, log, worker, calls, attempts, deadLettered, paused, halted, sent };
}

/** `n` messages waiting, a worker kicked, and every settle held until released (a slow group commit). */
async function slowCommits(n: number, answers: Array<number | 'down'> = [], options: Parameters<typeof harness>[1] = {}): Promise<ReturnType<typeof harness>> {
  const h = harness(answers, options);
  h.log.add(n, h.clock.now());
  h.log.hold = true;
  h.worker.kick();
  await settle(10);
  return h;
}

/**
 * `n` messages, calls of 10, the first settlement held: the second call goes out meanwhile (no third), then
 * that settlement fails (disk full): paused, nothing recorded. Then the store recovers, the worker resumes and finishes.
 */
async function firstSettlementFails(n: number): Promise<ReturnType<typeof harness>> {
  const h = await slowCommits(n);
  expect(h.sent().flat()).toEqual(range(1, Math.min(n, 20)));
  h.log.release(new StoreError('unavailable', 'disk full', 'SQLITE_FULL'));
  await settle(10);
  expect(h.worker.state).toBe('paused');
  expect(h.log.acked).toBe(0);
  h.log.hold = false;
  h.worker.resume();
  await settle(20);
  expect(h.worker.state).toBe('idle');
  return h;
}

describe('queue worker', () => {
  it('a consumer in process that handles only the first entries settles that far, and is offered the rest at once', async () => {
    const offered: number[][] = [];
    const h = harness([], { local: async (entries) => {
      offered.push(entries.map((e) => e.seq));
      return entries.slice(0, 2).at(-1)!.seq;
    } });
    h.log.add(5, h.clock.now());
    h.worker.kick();
    await settle(20);
    expect(offered).toEqual([[1, 2, 3, 4, 5], [3, 4, 5], [5]]);
    expect(h.log.acked).toBe(5);
    expect(h.worker.state).toBe('idle');
    expect(h.calls).toEqual([]);
  });

  it('idle → working → idle: delivers everything in one call and settles it', async () => {
    const h = harness([200]);
    h.log.add(3, h.clock.now());
    h.worker.kick();
    expect(h.worker.state).toBe('working');
    await settle();
    expect(h.worker.state).toBe('idle');
    expect(h.sent()).toEqual([[1, 2, 3]]);
    expect(h.calls[0]!.headers['x-opendip-sequence']).toBe('1-3');
    expect(h.calls[0]!.headers['x-opendip-acknowledged']).toBe('0');
    // The recipient is told the DIP API version the call is made under, as every participant API answer says it.
    expect(h.calls[0]!.headers[API_VERSION_HEADER]).toBe(DIP_API_VERSION);
    expect(h.log.acked).toBe(3);
  });

  it('gathering: a call that would not be full starts gatherMs after the last began, with what arrived meanwhile; a full call, and the first after a quiet spell, go at once', async () => {
    const h = harness([], { gatherMs: 20 });
    h.log.add(1, h.clock.now());
    h.worker.kick();
    await settle();
    expect(h.sent()).toEqual([[1]]); // the first call: nothing to wait for
    await h.clock.advance(5);
    h.log.add(1, h.clock.now());
    h.worker.kick();
    await settle();
    expect(h.sent()).toEqual([[1]]);
    expect(h.worker.state).toBe('working');
    expect(h.clock.pending()).toEqual([15]); // 20 ms after the last call started
    h.log.add(2, h.clock.now());
    h.worker.kick();
    await h.clock.advance(14);
    expect(h.sent()).toEqual([[1]]);
    await h.clock.advance(1);
    expect(h.sent()).toEqual([[1], [2, 3, 4]]);
    expect(h.worker.state).toBe('idle');
    // A full call's worth (maxMessageCount 10) does not wait: the recipient would only get it later.
    h.log.add(12, h.clock.now());
    h.worker.kick();
    await settle();
    expect(h.sent().slice(2)).toEqual([range(5, 14)]);
    await h.clock.advance(20); // the remaining two wait their turn
    expect(h.sent().slice(3)).toEqual([[15, 16]]);
    // After a quiet spell longer than gatherMs, a lone message goes at once.
    await h.clock.advance(1000);
    h.log.add(1, h.clock.now());
    h.worker.kick();
    await settle();
    expect(h.sent().slice(4)).toEqual([[17]]);
    expect(h.log.acked).toBe(17);
  });

  it('gathering: a call full by size goes at once', async () => {
    const h = harness([], { gatherMs: 500, maxPayloadKb: 1 });
    h.log.add(1, h.clock.now());
    h.worker.kick();
    await settle();
    await h.clock.advance(5);
    // Two copies of 400 bytes: a third would pass the call's 1 KiB, so the call is as full as it gets.
    for (const seq of [2, 3]) h.log.entries.push({ seq, messageId: seq, transactionId: `T-${seq}`, receivedAt: h.clock.now(), outbound: JSON.stringify({ seq, pad: 'x'.repeat(380) }), capacity: null, securityPattern: null });
    h.worker.kick();
    await settle();
    expect(h.sent()).toEqual([[1], [2, 3]]);
    expect(h.log.acked).toBe(3);
  });

  it("a call's maxPayloadSize counts the copies as sent (a pattern 2 copy is larger than the stored message), not as stored", async () => {
    // Stored: three small messages, well within 1 KiB together. Sent: each copy 600 bytes (encrypted for its
    // recipient, say), so a call carries one: two would be 1,203 bytes.
    const h = harness([], { maxPayloadKb: 1, copyFor: (_q, { outbound }) => JSON.stringify({ ...(JSON.parse(outbound) as object), pad: 'x'.repeat(600 - outbound.length - 10) }) });
    h.log.add(3, h.clock.now());
    h.worker.kick();
    await settle(20);
    expect(h.sent()).toEqual([[1], [2], [3]]);
    for (const c of h.calls) expect(c.body.length).toBeLessThanOrEqual(1024);
    expect(h.log.acked).toBe(3);
  });

  it('gathering: a retry after its backoff goes at once, not gatherMs after the failed call', async () => {
    const h = harness([200, 503, 200], { gatherMs: 500 }); // longer than the first backoff (100 ms)
    h.log.add(1, h.clock.now());
    h.worker.kick();
    await settle();
    await h.clock.advance(5);
    h.log.add(1, h.clock.now());
    h.worker.kick();
    await h.clock.advance(495); // gathered, then sent: answered 503
    expect(h.sent()).toEqual([[1], [2]]);
    expect(h.worker.state).toBe('backoff');
    expect(h.clock.pending()).toEqual([100]);
    await h.clock.advance(100);
    expect(h.sent()).toEqual([[1], [2], [2]]);
    expect(h.log.acked).toBe(2);
  });

  it('gathering: stop() ends the wait at once, and nothing more is sent', async () => {
    const h = harness([], { gatherMs: 20 });
    h.log.add(1, h.clock.now());
    h.worker.kick();
    await settle();
    h.log.add(1, h.clock.now());
    h.worker.kick();
    await settle();
    expect(h.clock.pending()).toEqual([20]);
    await h.worker.stop(); // resolves without the clock moving
    expect(h.worker.state).toBe('stopped');
    expect(h.clock.pending()).toEqual([]);
    await h.clock.advance(100);
    expect(h.sent()).toEqual([[1]]);
  });

  it('working → backoff → working: a retryable answer waits its backoff, then the same call goes again, nothing overtakes', async () => {
    const h = harness([503, 'down', 200]);
    h.log.add(2, h.clock.now());
    h.worker.kick();
    await settle();
    expect(h.worker.state).toBe('backoff');
    expect(h.clock.pending()).toEqual([100]); // base 100 ms, random 1: the first wait is the base
    h.log.add(1, h.clock.now()); // arrives meanwhile: must not be sent first
    h.worker.kick();
    expect(h.worker.state).toBe('backoff'); // a kick does not cut a backoff short
    await h.clock.advance(100);
    expect(h.worker.state).toBe('backoff');
    expect(h.clock.pending()).toEqual([200]); // doubled
    await h.clock.advance(200);
    expect(h.worker.state).toBe('idle');
    // Each retry carries what waits from the first unsettled position on, in order: 3 never goes before 1 and 2.
    expect(h.sent()).toEqual([[1, 2], [1, 2, 3], [1, 2, 3]]);
    expect(h.attempts.map((a) => a.verdict)).toEqual(['retry', 'retry', 'delivered']);
    // Each call is an attempt of its own, its ID made when it started (a retried call is not the same attempt).
    expect(h.attempts.every((a) => ATTEMPT_ID.test(a.attemptId) && attemptIdTime(a.attemptId) === a.startedAt)).toBe(true);
    expect(new Set(h.attempts.map((a) => a.attemptId)).size).toBe(3);
  });

  it('journals each call at the URL requested (and signed), query values masked, not as the callback URL was registered', async () => {
    const h = harness([200], { url: 'https://Sup.Example:443/in box/./hook?api+key=s3cret&sig=a%2Fb&flag' });
    h.log.add(1, h.clock.now());
    h.worker.kick();
    await settle(20);
    expect(h.calls.map((c) => c.url)).toEqual(['https://sup.example/in%20box/hook?api+key=s3cret&sig=a%2Fb&flag']);
    // The names and separators byte for byte as requested ('api+key', not 'api%20key'); only the values hidden.
    expect(h.attempts.map((a) => a.url)).toEqual(['https://sup.example/in%20box/hook?api+key=…&sig=…&…']);
  });

  it('journals a bare query token (no "=") masked whole, keeping the separators: such a token is often the secret', async () => {
    const h = harness([200], { url: 'https://sup.example/hook?s3cr3tToken&&v=2&' });
    h.log.add(1, h.clock.now());
    h.worker.kick();
    await settle(20);
    expect(h.calls.map((c) => c.url)).toEqual(['https://sup.example/hook?s3cr3tToken&&v=2&']);
    expect(h.attempts.map((a) => a.url)).toEqual(['https://sup.example/hook?…&&v=…&']);
    expect(JSON.stringify(h.attempts)).not.toContain('s3cr3t');
  });

  it('a refused batch is resent singly; only the refused message is set aside, with its notice, in one settlement', async () => {
    const h = harness([400, 200, 400, 200]);
    h.log.add(3, h.clock.now());
    h.worker.kick();
    await settle(20);
    expect(h.sent()).toEqual([[1, 2, 3], [1], [2], [3]]);
    expect(h.deadLettered.map((e) => [e.entry.seq, e.reason, e.status])).toEqual([[2, 'rejected', 400]]);
    const withDead = h.log.settlements.find((s) => s.deadLetters?.length);
    expect(withDead).toMatchObject({ upTo: 2, deadLetters: [{ seq: 2, reason: 'rejected', status: 400 }], notices: { messages: [{ transactionId: 'S-2' }] } });
    expect(h.log.acked).toBe(3);
  });

  it('messages older than the staleness limit are set aside as stale, a leading run only, without calling the recipient', async () => {
    const h = harness([], { staleAfterMs: 1000 });
    h.log.add(2, h.clock.now());
    await h.clock.advance(2000);
    h.log.add(1, h.clock.now());
    h.worker.kick();
    await settle(10);
    expect(h.deadLettered.map((e) => [e.entry.seq, e.reason])).toEqual([[1, 'stale'], [2, 'stale']]);
    expect(h.sent()).toEqual([[3]]);
    // The call says what the DIP settled before it, as a pull answer does: positions 1-2 were set aside,
    // not lost (without it, a receiver whose last position was 0 took 3-3 for a gap).
    expect([h.calls[0]!.headers['x-opendip-sequence'], h.calls[0]!.headers['x-opendip-acknowledged']]).toEqual(['3-3', '2']);
  });

  it("holds messages whose copies are withheld (the recipient's certificate revoked): nothing sent, nothing set aside until stale, sent once released", async () => {
    let withheld: string | null = 'the certificate registered for SUP0000001 was revoked';
    const copyFor: WorkerDeps['copyFor'] = (_q, { outbound }) => {
      if (withheld !== null) throw new CopyWithheld(withheld);
      return outbound;
    };
    const h = harness([], { staleAfterMs: 1000, withheld: () => withheld, copyFor });
    h.log.add(2, h.clock.now());
    h.worker.kick();
    await settle(10);
    expect(h.calls).toEqual([]);
    expect(h.deadLettered).toEqual([]);
    expect(h.worker.status()).toMatchObject({ state: 'idle', withheld: 'the certificate registered for SUP0000001 was revoked' });

    await h.clock.advance(2000);
    h.log.add(1, h.clock.now());
    h.worker.kick();
    await settle(10);
    expect(h.deadLettered.map((e) => [e.entry.seq, e.reason])).toEqual([[1, 'stale'], [2, 'stale']]);
    expect(h.deadLettered[0]!.detail).toMatch(/^stale: not delivered to .* within 1 seconds; held back: the certificate registered for SUP0000001 was revoked$/);
    expect(h.calls).toEqual([]);

    withheld = null;
    h.worker.kick();
    await settle(10);
    expect(h.sent()).toEqual([[3]]);
    expect(h.worker.status().withheld).toBeNull();
  });

  it("holds by what each copy needs, not the channel's pattern: with the recipient's certificate revoked, a copy that needs it not (pattern 1 or 3) is sent, the one behind that does waits", async () => {
    const why = 'the certificate registered for SUP0000001 was revoked';
    // seq 1 was accepted under pattern 3 (the sender's copy), seq 2 and 3 are copies the DIP encrypts.
    const copyFor: WorkerDeps['copyFor'] = (_q, { outbound }) => {
      if ((JSON.parse(outbound) as { seq: number }).seq >= 2) throw new CopyWithheld(why);
      return outbound;
    };
    const h = harness([], { withheld: () => why, copyFor });
    h.log.add(3, h.clock.now());
    h.worker.kick();
    await settle(10);
    expect(h.sent()).toEqual([[1]]);
    expect(h.deadLettered).toEqual([]);
    expect(h.worker.status()).toMatchObject({ ackedSeq: 1, withheld: why });

    // A queue that is pulled says so too (GET /admin/queues, the copies-withheld alarm), whatever the channel runs now.
    const pulled = harness([], { hook: false, withheld: () => why, copyFor });
    pulled.log.add(3, pulled.clock.now());
    pulled.log.entries.shift();
    pulled.worker.kick();
    await settle(10);
    expect(pulled.worker.status()).toMatchObject({ ackedSeq: 0, withheld: why });
    expect(pulled.deadLettered).toEqual([]);
  });

  it('with no webhook, messages wait (nothing read past the first) until they go stale', async () => {
    const h = harness([], { hook: false, staleAfterMs: 5000 });
    h.log.add(3, h.clock.now());
    h.worker.kick();
    await settle();
    expect(h.worker.state).toBe('idle');
    expect(h.log.acked).toBe(0);
    await h.clock.advance(6000);
    h.worker.kick();
    await settle(10);
    expect(h.log.acked).toBe(3);
    expect(h.calls).toEqual([]);
  });

  it("with no webhook, messages the recipient acknowledges while their stale set-aside is prepared are not set aside, nor their senders told: the sweep goes on from the acknowledged position", async () => {
    let pulled = false;
    // The pull's acknowledgement of 1-2 lands while the sweep builds the first set-aside's notices (after it read the position).
    const h = harness([], {
      hook: false,
      staleAfterMs: 5000,
      whileNotices: async () => {
        if (pulled) return;
        pulled = true;
        h.log.acked = 2;
      },
    });
    h.log.add(3, h.clock.now());
    await h.clock.advance(6000);
    h.worker.kick();
    await settle(20);
    expect(pulled).toBe(true);
    // Only the one nobody acknowledged is dead-lettered, and only its sender told.
    expect(h.deadLettered.map((e) => [e.entry.seq, e.reason])).toEqual([[3, 'stale']]);
    expect(h.log.settlements.map((s) => [s.upTo, s.deadLetters?.map((d) => d.seq), s.notices?.messages.map((m) => m.transactionId)])).toEqual([[3, [3], ['S-3']]]);
    expect(h.log.acked).toBe(3);
    expect(h.worker.state).toBe('idle');
  });

  it('with no webhook, the oldest message no copy can be made of is set aside at once with its reason, so that a pull goes on past it', async () => {
    const unmakeable = (seq: number) => new CopyUnmakeable(`the message was accepted under security pattern 3 and its sender supplied no copy for SUP0000001 (seq ${seq})`);
    const h = harness([], { hook: false, copyFor: (_q, { outbound }) => {
      const { seq } = JSON.parse(outbound) as { seq: number };
      if (seq <= 2) throw unmakeable(seq);
      return outbound;
    } });
    h.log.add(3, h.clock.now());
    h.worker.kick();
    await settle(10);
    expect(h.log.acked).toBe(2);
    expect(h.deadLettered.map((e) => [e.entry.seq, e.reason, e.detail])).toEqual([
      [1, 'rejected', `could not prepare the copy for ${queue.recipientDipId}: ${unmakeable(1).message}`],
      [2, 'rejected', `could not prepare the copy for ${queue.recipientDipId}: ${unmakeable(2).message}`],
    ]);
    expect(h.calls).toEqual([]);
  });

  it('working → paused → working: a delivered call that cannot be recorded is recorded on resume, never sent again', async () => {
    const h = harness([200, 200]);
    h.log.add(2, h.clock.now());
    h.log.settleFails.push(new StoreError('unavailable', 'disk full', 'SQLITE_FULL'));
    h.worker.kick();
    await settle();
    expect(h.worker.state).toBe('paused');
    expect(h.paused).toEqual([h.worker]);
    expect(h.log.acked).toBe(0);
    h.log.add(1, h.clock.now());
    h.worker.kick(); // paused: a kick does not send anything
    await settle();
    expect(h.calls.length).toBe(1);
    h.worker.resume();
    await settle(10);
    expect(h.worker.state).toBe('idle');
    expect(h.sent()).toEqual([[1, 2], [3]]); // 1-2 not repeated
    expect(h.log.settlements.map((s) => s.upTo)).toEqual([2, 3]);
  });

  it('one call at most goes past a settlement being recorded: the next waits for it to land, and those answered meanwhile are recorded together after it, in order', async () => {
    const h = await slowCommits(35);
    // 1-10 answered; its settlement is still being recorded: 11-20 went out meanwhile, 21-30 waits for it.
    expect(h.sent()).toEqual([range(1, 10), range(11, 20)]);
    expect(h.log.acked).toBe(0);
    expect(h.worker.state).toBe('working'); // not idle while anything answered is not yet durable
    h.log.release();
    await settle(10);
    // 1-10 landed: 11-20's settlement is recorded while 21-30 goes; 31-35 waits for that one.
    expect(h.log.settlements.map((x) => x.upTo)).toEqual([10]);
    expect(h.sent()).toHaveLength(3);
    h.log.release();
    await settle(10);
    expect(h.sent()).toHaveLength(4);
    h.log.release();
    await settle(10);
    h.log.release();
    await settle(10);
    expect(h.worker.state).toBe('idle'); // idle only once the last settlement is durable
    expect(h.log.settlements.map((x) => x.upTo)).toEqual([10, 20, 30, 35]);
    expect(h.log.maxInFlight).toBe(1);
    expect(h.sent()).toEqual([range(1, 10), range(11, 20), range(21, 30), range(31, 35)]); // nothing sent twice
  });

  it('a settlement that never lands (its store stopped): no more than one call goes past it, however long it takes', async () => {
    const h = await slowCommits(200);
    await settle(50);
    // A death now repeats at most 1-10 (its settlement in flight) and 11-20 (answered after it).
    expect(h.sent()).toEqual([range(1, 10), range(11, 20)]);
  });

  it('at the shipped callsPastSettlement (4): at most 4 calls go past a settlement that never lands; with the next hanging too, at most 2 × 4 calls are answered and not recorded', async () => {
    expect(DEFAULT_CALLS_PAST_SETTLEMENT).toBe(4);
    const h = await slowCommits(200, [], { callsPastSettlement: DEFAULT_CALLS_PAST_SETTLEMENT });
    await settle(50);
    // 1-10 in flight, 11-50 answered past it (4 calls), no fifth.
    expect(h.sent()).toEqual([0, 1, 2, 3, 4].map((c) => range(c * 10 + 1, c * 10 + 10)));
    h.log.release();
    await settle(50);
    // 1-10 landed; 11-50 is recorded now and hangs: 4 more calls past it, then none.
    expect(h.log.acked).toBe(10);
    expect(h.sent()).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8].map((c) => range(c * 10 + 1, c * 10 + 10)));
    const answeredUpTo = await h.worker.quiet();
    expect(answeredUpTo).toBe(90);
    expect((answeredUpTo - h.log.acked) / 10).toBe(2 * DEFAULT_CALLS_PAST_SETTLEMENT); // the README's bound, reached
  });

  it('quiet() counts the settlement in flight: one call answered, its settlement hanging, nothing behind it, and the answered position is reported (the given-up warning)', async () => {
    const h = await slowCommits(10);
    expect(h.sent()).toEqual([range(1, 10)]);
    expect(h.log.acked).toBe(0);
    expect(await h.worker.quiet()).toBe(10);
  });

  it('a settlement that fails while the next call was answered: on resume both are recorded in one settlement, neither called again', async () => {
    const h = await firstSettlementFails(15);
    expect(h.sent()).toEqual([range(1, 10), range(11, 15)]);
    expect(h.calls.map((c) => c.headers['x-opendip-sequence'])).toEqual(['1-10', '11-15']);
    expect(h.log.settlements.map((x) => x.upTo)).toEqual([15]); // cumulative: 15 covers the failed 10
  });

  it('a settlement that fails while later calls wait: on resume the answered ones are recorded, the rest go from there, nothing repeated or skipped', async () => {
    const h = await firstSettlementFails(35);
    expect(h.log.acked).toBe(35);
    expect(h.log.settlements[0]!.upTo).toBe(20); // 1-10 (failed) and 11-20 (answered meanwhile), recorded first on resume
    expect(h.sent()).toEqual([range(1, 10), range(11, 20), range(21, 30), range(31, 35)]);
  });

  it('a settlement that fails while the next call is still out: the answer that comes after the failure is recorded on resume, not called again', async () => {
    let answer: (() => void) | null = null;
    const h = harness([], { answerAfter: (n) => (n === 2 ? new Promise<void>((r) => (answer = r)) : Promise.resolve()) });
    h.log.add(15, h.clock.now());
    h.log.hold = true;
    h.worker.kick();
    await settle(10);
    expect(h.sent()).toEqual([range(1, 10), range(11, 15)]); // 11-15 out, 1-10's settlement held
    h.log.release(new StoreError('unavailable', 'disk full', 'SQLITE_FULL'));
    await settle(10);
    answer!(); // 11-15 answered 200 after the failure
    await settle(10);
    expect(h.worker.state).toBe('paused');
    h.log.hold = false;
    h.worker.resume();
    await settle(20);
    expect(h.worker.state).toBe('idle');
    expect(h.sent()).toEqual([range(1, 10), range(11, 15)]);
    expect(h.log.settlements.map((x) => x.upTo)).toEqual([15]);
  });

  it('a failed call after a delivered one: the settlement lands first, then the failure counts from zero', async () => {
    const h = await slowCommits(15, [200, 503]);
    expect(h.worker.state).toBe('working'); // the 503 waits for 1-10's settlement before backing off
    h.log.release();
    await settle(10);
    expect(h.worker.state).toBe('backoff');
    expect(h.worker.status().failures).toBe(1);
    expect(h.worker.status().lastError).toBe('HTTP 503');
    expect(h.clock.pending()).toEqual([100]); // the first failure's wait
    expect(h.log.settlements.map((x) => x.upTo)).toEqual([10]);
  });

  it('working → halted: a permanent store error stops the queue and tells the operator; resume goes on', async () => {
    const h = harness([200]);
    h.log.add(1, h.clock.now());
    h.log.readFails.push(new StoreError('permanent', 'damaged database: message 1 is missing', 'MISSING_ROW'));
    h.worker.kick();
    await settle();
    expect(h.worker.state).toBe('halted');
    expect(h.halted).toHaveLength(1);
    expect(h.worker.status().lastError).toMatch(/damaged/);
    h.worker.kick();
    expect(h.worker.state).toBe('halted'); // not retried in a loop
    h.worker.resume();
    await settle();
    expect(h.worker.state).toBe('idle');
    expect(h.sent()).toEqual([[1]]);
  });

  it('backoff → working at once when the recipient registers a new webhook URL', async () => {
    const h = harness(['down', 200]);
    h.log.add(1, h.clock.now());
    h.worker.kick();
    await settle();
    expect(h.worker.state).toBe('backoff');
    HOOK.url = 'https://sup.example/new';
    try {
      h.worker.webhookMayHaveChanged();
      await settle();
      expect(h.worker.state).toBe('idle');
      expect(h.calls.map((c) => c.url)).toEqual(['https://sup.example/dip', 'https://sup.example/new']);
    } finally {
      HOOK.url = 'https://sup.example/dip';
    }
  });

  it('messages dead-lettered as stale leave the webhook\'s failure record: failures, since when and the error stay until a call is answered', async () => {
    const h = harness(Array<'down'>(5).fill('down'), { staleAfterMs: 1000 });
    const start = h.clock.now();
    h.log.add(1, start);
    h.worker.kick();
    await settle();
    // Calls at 0, 100, 300 and 700 ms fail; the retry at 1,500 ms finds the message stale and sets it aside.
    await h.clock.advance(1500);
    expect(h.deadLettered.map((e) => [e.entry.seq, e.reason])).toEqual([[1, 'stale']]);
    expect(h.worker.status()).toMatchObject({ state: 'idle', ackedSeq: 1, failures: 4, failingSince: start, lastError: 'connection refused', retryAt: null });
    // A new message: still refused; its own backoff starts from the base (new head), the record goes on.
    h.log.add(1, h.clock.now());
    h.worker.kick();
    await settle();
    expect(h.worker.status()).toMatchObject({ state: 'backoff', failures: 5, failingSince: start, lastError: 'connection refused' });
    expect(h.clock.pending()).toEqual([100]);
    // The recipient answers: the record is gone.
    await h.clock.advance(100);
    expect(h.worker.status()).toMatchObject({ state: 'idle', ackedSeq: 2, failures: 0, failingSince: null, lastError: null });
  });

  it('a refusal (4xx) is an answer: it ends the failure record like a success', async () => {
    const h = harness(['down', 400]);
    h.log.add(1, h.clock.now());
    h.worker.kick();
    await settle();
    expect(h.worker.status()).toMatchObject({ failures: 1, lastError: 'connection refused' });
    await h.clock.advance(100);
    expect(h.deadLettered.map((e) => [e.entry.seq, e.reason])).toEqual([[1, 'rejected']]);
    expect(h.worker.status()).toMatchObject({ state: 'idle', failures: 0, failingSince: null, lastError: null });
  });

  it('a new callback URL, or none, ends the failure record of an idle queue (the old URL\'s); an unchanged one keeps it', async () => {
    const options: { staleAfterMs: number; url?: string; hook?: boolean } = { staleAfterMs: 1000 };
    const h = harness(Array<'down'>(4).fill('down'), options);
    h.log.add(1, h.clock.now());
    h.worker.kick();
    await settle();
    await h.clock.advance(1500);
    expect(h.worker.status()).toMatchObject({ state: 'idle', failures: 4 });
    h.worker.webhookMayHaveChanged(); // another registry change: same URL
    await settle();
    expect(h.worker.status().failures).toBe(4);
    options.url = 'https://sup.example/new';
    h.worker.webhookMayHaveChanged();
    await settle();
    expect(h.worker.status()).toMatchObject({ state: 'idle', failures: 0, failingSince: null, lastError: null });

    const removed: { staleAfterMs: number; hook?: boolean } = { staleAfterMs: 1000 };
    const p = harness(['down'], removed);
    p.log.add(1, p.clock.now());
    p.worker.kick();
    await settle();
    expect(p.worker.status()).toMatchObject({ state: 'backoff', failures: 1 });
    removed.hook = false; // the recipient pulls now
    p.worker.webhookMayHaveChanged();
    expect(p.worker.status()).toMatchObject({ failures: 0, failingSince: null, lastError: null });
  });

  it('working → stopped without calling when the lease ended while the call was prepared (a node stalled past it)', async () => {
    let leased = true;
    let ended = 0;
    const h = harness([200, 200], { mayCall: () => leased, leaseEnded: () => void (ended += 1) });
    h.log.add(2, h.clock.now());
    h.worker.kick();
    await settle();
    expect([h.worker.state, h.sent()]).toEqual(['idle', [[1, 2]]]);
    h.log.add(1, h.clock.now());
    leased = false; // the clock passed the lease's end while this node was frozen
    h.worker.kick();
    await settle();
    expect(h.worker.state).toBe('stopped');
    expect(h.sent()).toEqual([[1, 2]]); // position 3 was not sent
    expect(h.attempts).toHaveLength(1);
    expect(ended).toBe(1); // told, so the queue is claimed again if the lease is renewed after all
  });

  it('stopped while its call was being prepared (a store read under way), it makes no call, though the node holds the lease again', async () => {
    // A worker stopped (its lease lost, or the queue given up for a store out of reach) goes on with the
    // step under way: its store read answered later (a PostgreSQL restart), it called the recipient, because
    // the node held the lease again by then, and the queue's new worker called beside it.
    let answer: () => void = () => {};
    const h = harness([200], { mayCall: () => true, copyFor: (_q, { outbound }) => new Promise<string>((resolve) => (answer = () => resolve(outbound))) });
    h.log.add(1, h.clock.now());
    h.worker.kick();
    await settle();
    const stopped = h.worker.stop();
    answer();
    await stopped;
    expect(h.worker.state).toBe('stopped');
    expect(h.sent()).toEqual([]);
  });

  it('stopped is final, and an illegal transition is refused loudly', async () => {
    const h = harness(['down']);
    h.log.add(1, h.clock.now());
    h.worker.kick();
    await settle();
    await h.worker.stop();
    expect(h.worker.state).toBe('stopped');
    expect(h.clock.pending()).toEqual([]);
    h.worker.kick();
    h.worker.resume();
    expect(h.worker.state).toBe('stopped');
  });
});

describe('end-to-end delivery latency (spec 5.10.3: every message within 30 s; 5.11.4: a latency alarm)', () => {
  it('tells of messages delivered later than the threshold after their acceptance, and the alarm resolves a window after the last', async () => {
    const late = { afterMs: 30_000, windowMs: 15 * 60_000 };
    const h = harness([], { late });
    const alarms = deliveryLatencyAlarms(() => [h.worker.status()], late.afterMs, late.windowMs);
    // Accepted now, delivered 45 s later (the webhook was not set, say): late.
    const accepted = h.clock.now();
    h.log.add(2, accepted);
    await h.clock.advance(45_000);
    h.worker.kick();
    await settle(10);
    expect(h.log.acked).toBe(2);
    expect(h.worker.status().late).toEqual({ messages: 2, worstMs: 45_000, since: accepted + 45_000, last: accepted + 45_000 });
    const raised = await alarms();
    expect(raised).toEqual([
      {
        key: 'delivery-latency:SUP0000001/IF-021',
        rule: 'delivery-latency',
        participant: 'SUP0000001',
        summary: 'messages for SUP0000001 / IF-021 were delivered later than 30 s after their acceptance: 2 since 2026-01-01T00:00:45.000Z, the slowest 45 s (window 15 min)',
        since: accepted + 45_000,
        channel: 'IF-021',
      },
    ]);
    // One delivered in time does not end it; a window with none late does.
    h.log.add(1, h.clock.now());
    h.worker.kick();
    await settle(10);
    expect(await alarms()).toHaveLength(1);
    await h.clock.advance(late.windowMs);
    expect(await alarms()).toEqual([]);
  });

  it('takes wall-clock steps out: one forward while messages wait makes none late; neither a step forward nor back ends a late run early or holds it late', async () => {
    // A short window, so that its passing on the monotonic clock can be waited for.
    const late = { afterMs: 30_000, windowMs: 3_000 };
    // The wall clock (steps when the test says so) against the monotonic one, as the DIP wires them.
    const wall = new ShiftableClock();
    const h = harness([], { late, wall, steps: new WallClockSteps(wall, monotonicClock) });
    const alarms = deliveryLatencyAlarms(() => [h.worker.status()], late.afterMs, late.windowMs);
    const delivered = async (n: number): Promise<void> => {
      h.worker.kick();
      await waitFor(() => h.log.acked === n, 5000, `${n} acked`);
    };
    // Accepted a moment ago; NTP then steps the clock 10 min forward before they are delivered: not late.
    h.log.add(2, wall.now());
    wall.jump(10 * 60_000);
    await delivered(2);
    expect(h.worker.status().late).toBeNull();
    expect(await alarms()).toEqual([]);

    // Really late (accepted 45 s before, on the clock as it is now): raised…
    h.log.add(1, wall.now() - 45_000);
    await delivered(3);
    expect(h.worker.status().late).toMatchObject({ messages: 1, worstMs: expect.any(Number) });
    expect(h.worker.status().late!.worstMs).toBeGreaterThanOrEqual(45_000);
    expect(await alarms()).toHaveLength(1);
    // …held across a step forward of an hour (its window is time passed, not the clock's reading)…
    wall.jump(60 * 60_000);
    expect(await alarms()).toHaveLength(1);
    // …and, after a step back of two hours, resolved once its window has passed, not two hours later.
    wall.jump(-2 * 60 * 60_000);
    await waitFor(async () => (await alarms()).length === 0, late.windowMs + 5000, 'the late run ended a window after the last', 100);
    expect(h.worker.status().late).toBeNull();
  });
});

describe('queue worker over a store: a settlement whose COMMIT answer was lost', () => {
  it('recorded again after it had in fact committed, raises its dead letters once and clears the store error (settle2)', async () => {
    const backend = openSqliteBackend(join(mkdtempSync(join(tmpdir(), 'opendip-indoubt-')), 'dip.db'), { clock: systemClock });
    try {
      await backend.log.append(batch([message(['SUP0000001'])]));
      let lose = true;
      const settled: SettleOutcome[] = [];
      // The store commits the set-aside, and the answer to its COMMIT is lost (PgDatabase.tx's COMMIT_IN_DOUBT).
      const log: WorkerDeps['log'] = Object.assign(Object.create(backend.log) as typeof backend.log, {
        settle: async (q: QueueRef, s: Settlement): Promise<SettleOutcome> => {
          const outcome = await backend.log.settle(q, s);
          if (lose && (s.deadLetters?.length ?? 0) > 0) {
            lose = false;
            throw new StoreError('unavailable', 'PostgreSQL: the answer to COMMIT was lost (Connection terminated); whether the transaction committed is not known', COMMIT_IN_DOUBT);
          }
          settled.push(outcome);
          return outcome;
        },
      });
      const deadLettered: DeadLetterEvent[] = [];
      const noticed: unknown[] = [];
      const clock = new FakeClock();
      const paused: QueueWorker[] = [];
      const worker = new QueueWorker(sup, workerDeps(clock, {
        log,
        transport: { post: async () => ({ kind: 'answered', status: 400, retryAfter: undefined, body: '', latencyMs: 1 }), close: async () => {} },
        notices: async (events) => ({ channel: 'STATUS', senderDipId: 'DIP', receivedAt: 0, rawRequest: Buffer.alloc(0), signatureHeaders: '{}', messages: events.map((e) => ({ transactionId: `S-${e.entry.seq}`, channel: 'STATUS', eventCode: '', senderDipId: 'DIP', senderRole: 'STS', senderUniqueReference: null, correlationId: null, mpan: null, receivedAt: 0, outbound: '{}', recipients: ['SDS0000001'] })) }),
        deadLettered: (events, notices) => void (deadLettered.push(...events), noticed.push(notices)),
        storeUnavailable: (w) => void paused.push(w),
      }));
      worker.kick();
      await waitFor(() => worker.state === 'paused', 5000, 'the worker paused on the lost answer');
      expect(worker.status().lastError).toMatch(/answer to COMMIT was lost/);
      expect(deadLettered).toEqual([]);
      worker.resume();
      await waitFor(() => worker.state === 'idle', 5000, 'the worker idle after recording it again');
      // Its own commit recognised: settled, the refusal raised once (with the notices, whose queue it wakes), the error gone.
      expect(settled).toEqual(['settled']);
      expect(deadLettered.map((e) => [e.entry.seq, e.reason, e.status])).toEqual([[1, 'rejected', 400]]);
      expect(noticed).toHaveLength(1);
      expect(noticed[0]).toMatchObject({ channel: 'STATUS' });
      expect(worker.status().lastError).toBeNull();
      expect((await backend.deadLetters.deadLetters({ limit: 10 })).map((d) => d.seq)).toEqual([1]);
      await worker.stop();
    } finally {
      await backend.close();
    }
  });
});
