import { describe, expect, it } from 'vitest';
import { refusedInMultiStatus } from '../src/domain/recipient-answer.js';
import { answerBytes, QueueWorker, type DeadLetterEvent } from '../src/pipeline/queue-worker.js';
import { returnToSender } from '../src/pipeline/return-to-sender.js';
import type { QueueEntry, Settlement } from '../src/ports/message-log.js';
import type { DeliveryTrace } from '../src/ports/tracing.js';
import type { DeliveryAttempt } from '../src/ports/archive.js';
import { webhookFailingAlarms } from '../src/pipeline/alarm-sources.js';
import { DipMetrics } from '../src/pipeline/metrics.js';
import { MULTI_STATUS_NAMES_NO_FAILURE as CONTRACT_FAULT, MULTI_STATUS_NOT_STANDARD_RESPONSE as NOT_AN_ANSWER } from '../src/pipeline/queue-worker.js';
import type { WebhookCall } from '../src/ports/webhook.js';
import { FakeClock, settle } from './helpers/clocks.js';
import { workerDeps } from './helpers/worker-deps.js';

/**
 * A recipient's webhook answering 207 (Some Messages Created, published callback) with a failure code
 * for some messages: those are refused like a 400 (not retried), set aside and relayed to their senders
 * (spec 5.5.9); the rest are delivered, in one settlement past the call.
 */
const queue = { recipientDipId: 'SUP0000001', channel: 'IF-021' };

function harness(answers: Array<{ status: number; body: string; truncated?: true }>) {
  const clock = new FakeClock();
  const entries: QueueEntry[] = [1, 2, 3].map((seq) => ({ seq, messageId: seq, transactionId: `T-${seq}`, receivedAt: clock.now(), outbound: JSON.stringify({ seq }), capacity: null, securityPattern: null }));
  let acked = 0;
  const settlements: Settlement[] = [];
  const calls: WebhookCall[] = [];
  const deadLettered: DeadLetterEvent[] = [];
  const relayed: Array<{ transactionId: string; message: string; help: string }> = [];
  const errors: string[] = [];
  const traced: DeliveryTrace[] = [];
  const attempts: DeliveryAttempt[] = [];
  const notices = returnToSender({
    fromDip: async (items) => {
      relayed.push(...items.map((i) => ({ transactionId: i.transactionId, message: i.message, help: i.help })));
      return undefined;
    },
  });
  const worker = new QueueWorker(
    queue,
    workerDeps(clock, {
      log: {
        readQueue: async (_q, after, limit) => entries.filter((e) => e.seq > after).slice(0, limit),
        queueState: async () => ({ ackedSeq: acked, headSeq: entries.length, pulledSeq: 0 }),
        settle: async (_q, s) => {
          settlements.push(s);
          acked = Math.max(acked, s.upTo);
          return 'settled';
        },
      },
      transport: {
        post: async (call) => {
          calls.push(call);
          const a = answers.shift() ?? { status: 201, body: '' };
          return { kind: 'answered', status: a.status, retryAfter: undefined, body: a.body, ...(a.truncated ? { truncated: a.truncated } : {}), latencyMs: 1 };
        },
        close: async () => {},
      },
      notices,
      deadLettered: (events) => void deadLettered.push(...events),
      archive: { recordAttempt: async (a) => void attempts.push(a) },
      tracer: { now: () => clock.now(), ingested() {}, attempted: (t) => void traced.push(t) },
      logger: { info() {}, warn() {}, error: (_o: unknown, msg: string) => void errors.push(msg) },
    }),
  );
  return { clock, worker, settlements, calls, deadLettered, relayed, errors, traced, attempts, entries };
}

const answer = (...entries: Array<[string, string, string?]>) =>
  JSON.stringify({ messageArray: entries.map(([transactionID, message, help]) => ({ transactionID, message, help: help ?? null })), timestamp: '2026-01-01T00:00:00+00:00' });

describe('a webhook answering 207 with per-message failures', () => {
  it('sets aside the messages it names with a failure code and returns them to their senders; delivers the rest, without retrying', async () => {
    const h = harness([{ status: 207, body: answer(['T-1', 'RCP0000 - Message Success'], ['T-2', 'RCP1021 - Msg Mandatory Data Item Missing', 'DI-063 missing']) }]);
    h.worker.kick();
    await settle(20);
    expect(h.calls).toHaveLength(1);
    // One settlement past the call: T-2 set aside, T-1 (success) and T-3 (not named) delivered.
    expect(h.settlements).toEqual([{ upTo: 3, deadLetters: [{ seq: 2, messageId: 2, reason: 'rejected', status: 207, detail: 'SUP0000001 refused the message in a 207 answer (RCP1021 - Msg Mandatory Data Item Missing)' }] }]);
    expect(h.deadLettered.map((e) => e.entry.transactionId)).toEqual(['T-2']);
    // The sender is told with the recipient's own code and help.
    expect(h.relayed).toEqual([{ transactionId: 'T-2', message: 'RCP1021 - Msg Mandatory Data Item Missing', help: 'SUP0000001 refused the message in a 207 answer (RCP1021 - Msg Mandatory Data Item Missing): DI-063 missing' }]);
    expect(h.worker.status()).toMatchObject({ state: 'idle', failures: 0, ackedSeq: 3 });
    // The call's trace says which messages it refused, and with what code (src/adapters/otel-tracer.ts makes spans of it).
    expect(h.traced.map((t) => [t.status, t.verdict, t.transactionIds, t.refusals])).toEqual([[207, 'delivered', ['T-1', 'T-2', 'T-3'], [{ transactionId: 'T-2', code: 'RCP1021' }]]]);
    // Not retried: nothing more is sent, however long one waits.
    await h.clock.advance(60_000);
    expect(h.calls).toHaveLength(1);
    await h.worker.stop();
  });

  it('a 207 whose entries are all successes delivers all', async () => {
    const h = harness([{ status: 207, body: answer(['T-1', 'MSG0000 - Success'], ['T-2', 'RCP0000 - Message Success'], ['T-3', 'MSG0000 - Success']) }]);
    h.worker.kick();
    await settle(20);
    expect(h.settlements).toEqual([{ upTo: 3 }]);
    expect(h.deadLettered).toEqual([]);
    expect(h.traced.map((t) => t.refusals)).toEqual([undefined]);
    await h.worker.stop();
  });

  // A 207 is "some messages created; see the response body" (spec 5.5): at least one failed. One that names
  // no failing message is a fault of the receiver's contract: its senders cannot be told which failed.
  it('a 207 that names no failing message cannot say which failed: all are taken as delivered (not sent again), the call recorded as a receiver contract fault and raised as webhook-failing', async () => {
    // Found by a black-box participant client (probe5): a body that is no StandardResponse at all was reported
    // as naming no failing message; it is a fault of its own, said as such in the calls list and the alarm.
    const bodies: Array<[string, string, string]> = [
      ['', NOT_AN_ANSWER, 'with a body that is no StandardResponse (not JSON, or no messageArray)'],
      ['not json', NOT_AN_ANSWER, 'with a body that is no StandardResponse (not JSON, or no messageArray)'],
      [JSON.stringify({ messageArray: 'no' }), NOT_AN_ANSWER, 'with a body that is no StandardResponse (not JSON, or no messageArray)'],
      [answer(['T-99', 'RCP1001 - Schema Failure']), CONTRACT_FAULT, 'without naming a failing message'],
      [answer(['T-1', 'MSG0000 - Success']), CONTRACT_FAULT, 'without naming a failing message'],
    ];
    for (const [body, fault, said] of bodies) {
      const h = harness([{ status: 207, body }, { status: 207, body }, { status: 201, body: '' }]);
      h.worker.kick();
      await settle(20);
      expect(h.settlements, body).toEqual([{ upTo: 3 }]);
      expect(h.calls, body).toHaveLength(1);
      // The webhook's calls list says why; the status (and from it the alarm) keeps the fault until a call is answered as the contract says.
      expect(h.attempts.map((a) => [a.status, a.verdict, a.error]), body).toEqual([[207, 'delivered', fault]]);
      expect(h.worker.status().contractFault, body).toEqual({ calls: 1, since: h.clock.now(), error: fault });
      const alarms = await webhookFailingAlarms(() => [h.worker.status()], 60_000, h.clock)();
      expect(alarms.map((a) => [a.key, a.rule, a.summary])).toEqual([['webhook-contract:SUP0000001/IF-021', 'webhook-failing', `the webhook of SUP0000001/IF-021 answered 207 (some messages created) ${said} (1 call since ${new Date(h.clock.now()).toISOString()}): its senders cannot be told which messages failed; all were taken as delivered`]]);
      await h.worker.stop();
    }
  });

  it('counts receiver contract faults in dip_webhook_contract_faults_total, by channel', async () => {
    const metrics = new DipMetrics(async () => []);
    const base = { queue, latencyMs: 1 };
    metrics.attempt({ ...base, verdict: 'delivered', error: CONTRACT_FAULT });
    metrics.attempt({ ...base, verdict: 'delivered', error: null });
    metrics.attempt({ ...base, verdict: 'retry', error: 'TIMEOUT' });
    expect(await metrics.text()).toMatch(/^dip_webhook_contract_faults_total\{channel="IF-021"\} 1$/m);
  });

  it('a receiver contract fault ends at the next call answered as the contract says', async () => {
    const h = harness([{ status: 207, body: '' }, { status: 201, body: '' }]);
    h.worker.kick();
    await settle(20);
    expect(h.worker.status().contractFault).toMatchObject({ calls: 1 });
    h.entries.push({ seq: 4, messageId: 4, transactionId: 'T-4', receivedAt: h.clock.now(), outbound: '{}', capacity: null, securityPattern: null });
    h.worker.kick();
    await settle(20);
    expect(h.calls).toHaveLength(2);
    expect(h.worker.status().contractFault).toBeNull();
    expect(await webhookFailingAlarms(() => [h.worker.status()], 60_000, h.clock)()).toEqual([]);
    await h.worker.stop();
  });

  it('asks the transport for as much of the answer as an entry per message needs, and says loudly when it was cut off', async () => {
    expect([answerBytes(3), answerBytes(300), answerBytes(10_000), answerBytes(100_000)]).toEqual([64 << 10, 300 << 10, 10_000 << 10, 16 << 20]);
    const h = harness([{ status: 207, body: answer(['T-1', 'RCP1001 - Schema Failure']).slice(0, 40), truncated: true }]);
    h.worker.kick();
    await settle(20);
    expect(h.calls[0]!.maxAnswerBytes).toBe(answerBytes(3));
    // Its refusals cannot be read: taken as delivered (a 2xx), and an error is logged for the operator.
    expect(h.settlements).toEqual([{ upTo: 3 }]);
    expect(h.errors).toEqual([expect.stringContaining('207 with a body too long')]);
    expect(h.traced.map((t) => t.refusals)).toEqual([undefined]);
    await h.worker.stop();
  });

  it('reads the answer as ingress does: field names in any case; the first failure named wins', () => {
    const body = JSON.stringify({ MessageArray: [{ TRANSACTIONID: 'T-1', Message: 'RCP1001 - Schema Failure', help: 'x' }, { transactionID: 'T-1', message: 'RCP1022 - Msg Contains Invalid Value for Value Restricted Field' }, { transactionID: 'T-2', message: 'not coded' }] });
    const refused = refusedInMultiStatus(body, ['T-1', 'T-2']);
    expect([...(refused ?? new Map()).entries()]).toEqual([['T-1', { transactionId: 'T-1', message: 'RCP1001 - Schema Failure', help: 'x' }]]);
    // Transaction IDs whatever their case: refused under the ID that was sent.
    const folded = refusedInMultiStatus(JSON.stringify({ messageArray: [{ transactionID: 't-if-021-abc', message: 'RCP1001 - Schema Failure' }] }), ['T-IF-021-ABC']);
    expect([...(folded ?? new Map()).keys()]).toEqual(['T-IF-021-ABC']);
  });

  // A 400 to a call carrying several messages was followed by each message sent alone (n calls to find the
  // one refused), though the recipient's StandardResponse named it. Named failing items are set aside as
  // refused (their senders told); the rest go together again, in position order: a call stops before a
  // named one (its positions stay consecutive) and the named one is set aside when it reaches the head.
  it('a 400 naming failing items sets exactly those aside and sends the rest together again', async () => {
    const h = harness([{ status: 400, body: answer(['T-2', 'RCP1001 - Schema Failure', 'D0.transactionID missing']) }]);
    h.worker.kick();
    await settle(30);
    const sent = h.calls.map((c) => (JSON.parse(c.body.toString()) as Array<{ seq: number }>).map((m) => m.seq));
    expect(sent).toEqual([[1, 2, 3], [1], [3]]);
    expect(h.deadLettered.map((e) => [e.entry.transactionId, e.status, e.detail])).toEqual([['T-2', 400, 'SUP0000001 refused the message in a 400 answer (RCP1001 - Schema Failure)']]);
    expect(h.relayed).toEqual([{ transactionId: 'T-2', message: 'RCP1001 - Schema Failure', help: 'SUP0000001 refused the message in a 400 answer (RCP1001 - Schema Failure): D0.transactionID missing' }]);
    expect(h.settlements.at(-1)).toEqual({ upTo: 3 });
    expect(h.settlements.find((x) => x.deadLetters)).toMatchObject({ upTo: 2, deadLetters: [{ seq: 2, reason: 'rejected', status: 400 }] });
    await h.worker.stop();
  });

  it('a 400 naming the first item: set aside, the rest in one call; naming none: each message alone, as before', async () => {
    const h = harness([{ status: 400, body: answer(['T-1', 'RCP1001 - Schema Failure']) }]);
    h.worker.kick();
    await settle(30);
    const sent = (x: typeof h) => x.calls.map((c) => (JSON.parse(c.body.toString()) as Array<{ seq: number }>).map((m) => m.seq));
    expect(sent(h)).toEqual([[1, 2, 3], [2, 3]]);
    expect(h.deadLettered.map((e) => e.entry.transactionId)).toEqual(['T-1']);
    await h.worker.stop();
    const none = harness([{ status: 400, body: answer(['T-99', 'RCP1001 - Schema Failure']) }, { status: 201, body: '' }, { status: 400, body: '' }]);
    none.worker.kick();
    await settle(30);
    expect(sent(none)).toEqual([[1, 2, 3], [1], [2], [3]]);
    expect(none.deadLettered.map((e) => e.entry.transactionId)).toEqual(['T-2']);
    await none.worker.stop();
  });
});

// A 400 whose StandardResponse said `MSG0000 - Success` for the message was relayed to its sender as
// "MSG0000 - Success" ("… refused the message: HTTP 400"): an adapter reading the code took it as delivered.
// Only a failure code in the entry for that very message is the recipient's verdict on it.
describe('Return to Sender relays only a failure code the recipient gave for that message', () => {
  const told = async (answerBody: string) => {
    const items: Array<{ transactionId: string; message: string; help: string }> = [];
    const notices = returnToSender({ fromDip: async (x) => void items.push(...x.map((i) => ({ transactionId: i.transactionId, message: i.message, help: i.help }))) });
    const entry: QueueEntry = { seq: 1, messageId: 1, transactionId: 'T-1', receivedAt: 0, outbound: '{}', capacity: null, securityPattern: null };
    await notices([{ queue, entry, reason: 'rejected', status: 400, detail: 'SUP0000001 refused the message: HTTP 400', answer: answerBody }]);
    return items;
  };

  it('a success code for the message: the DIP\'s own failure code, not "Success"', async () => {
    expect(await told(answer(['T-1', 'MSG0000 - Success', 'all good']))).toEqual([{ transactionId: 'T-1', message: 'MSG1000 - Message Processing Failed', help: 'SUP0000001 refused the message: HTTP 400' }]);
    expect(await told(answer(['T-1', 'RCP0000 - Message Success']))).toEqual([{ transactionId: 'T-1', message: 'MSG1000 - Message Processing Failed', help: 'SUP0000001 refused the message: HTTP 400' }]);
  });

  it('a failure code for another message is not this one\'s', async () => {
    expect(await told(answer(['T-9', 'RCP1001 - Schema Failure', 'not yours']))).toEqual([{ transactionId: 'T-1', message: 'MSG1000 - Message Processing Failed', help: 'SUP0000001 refused the message: HTTP 400' }]);
  });

  it('a failure entry naming no message is about the call, which carried only this one', async () => {
    const body = JSON.stringify({ messageArray: [{ transactionID: null, message: 'RCP1001 - Schema Failure', help: 'D0 missing' }] });
    expect(await told(body)).toEqual([{ transactionId: 'T-1', message: 'RCP1001 - Schema Failure', help: 'SUP0000001 refused the message: HTTP 400: D0 missing' }]);
  });

  it('the failure entry for the message is relayed, found past others and whatever the case of its ID', async () => {
    const body = answer(['T-9', 'RCP1021 - Msg Mandatory Data Item Missing'], ['t-1', 'MSG0000 - Success'], ['t-1', 'RCP1001 - Schema Failure', 'D0 missing']);
    expect(await told(body)).toEqual([{ transactionId: 'T-1', message: 'RCP1001 - Schema Failure', help: 'SUP0000001 refused the message: HTTP 400: D0 missing' }]);
  });
});
