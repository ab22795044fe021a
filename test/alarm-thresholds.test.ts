import { describe, expect, it } from 'vitest';
import { deadLetterAlarms, deliveryLatencyAlarms, queueAlarms } from '../src/pipeline/alarm-sources.js';
import { Alarms, createSubscription } from '../src/pipeline/alarms.js';
import { receives } from '../src/pipeline/alarm-thresholds.js';
import type { AlarmChannel, AlarmCondition, AlarmSubscription } from '../src/ports/alarms.js';
import type { DeadLetter } from '../src/ports/dead-letters.js';
import type { WorkerStatus } from '../src/pipeline/queue-worker.js';
import { FakeClock } from './helpers/clocks.js';
import { quietLogger } from './helpers/dip-harness.js';

const MIN = 60_000;
const sub = (over: Partial<AlarmSubscription>): AlarmSubscription => ({ id: 's1', owner: '1000000001', rules: ['queue-age'], email: 'ops@sup.example', webhookUrl: null, createdAt: 1, ...over });
const reading = (recipientDipId: string, channel: string, oldestAgeMs: number, depth = 1) => ({ queue: { recipientDipId, channel }, depth, oldestAgeMs, damage: null });

describe("a subscription's own thresholds, evaluated from the operator's readings (pure, injected clock)", () => {
  it('queue-age: its own queues held to its minutes, the operator keeps 60 min, another participant is never judged by it', async () => {
    const clock = new FakeClock(Date.UTC(2026, 5, 1, 12, 0, 0));
    const mine = sub({ thresholds: { queueAgeMinutes: 5 } });
    const depths = [reading('1000000001', 'IF-021', 7 * MIN), reading('1000000001', 'IF-022', 4 * MIN), reading('1000000002', 'IF-021', 30 * MIN), reading('1000000001', 'STATUS', 30 * MIN)];
    const found = await queueAlarms(async () => depths, 10_000, 60 * MIN, clock)([mine]);
    expect(found.map((c) => [c.key, c.participant, c.since, c.subscription])).toEqual([
      ['queue-age:1000000001/IF-021@subscription:s1', '1000000001', clock.now() - 2 * MIN, { id: 's1', owner: '1000000001' }],
    ]);
    expect(found[0]!.summary).toBe("messages for 1000000001 / IF-021 have waited more than 5 min undelivered (the oldest 7 min): the threshold of 1000000001's subscription s1 (the DIP's own: 60 min)");
    // Without thresholds nothing changes: the operator's condition alone.
    expect(await queueAlarms(async () => depths, 10_000, 60 * MIN, clock)([])).toEqual([]);
  });

  it('a higher threshold than the operator\'s: the operator\'s alarm still holds for operators, the subscription is told only past its own', async () => {
    const clock = new FakeClock(Date.UTC(2026, 5, 1, 12, 0, 0));
    const patient = sub({ thresholds: { queueAgeMinutes: 120 } });
    const found = await queueAlarms(async () => [reading('1000000001', 'IF-021', 90 * MIN)], 10_000, 60 * MIN, clock)([patient]);
    expect(found.map((c) => c.key)).toEqual(['queue-age:1000000001/IF-021']);
    expect(receives(patient, found[0]!)).toBe(false);
    expect(receives(sub({ id: 's2' }), found[0]!)).toBe(true);
    expect(receives(sub({ owner: 'operator', id: 'ops' }), found[0]!)).toBe(true);
  });

  it('channels: only the queues of the channels named are held to its thresholds, the others to the operator\'s', async () => {
    const clock = new FakeClock(Date.UTC(2026, 5, 1, 12, 0, 0));
    const s = sub({ thresholds: { queueAgeMinutes: 5, channels: ['IF-021'] } });
    const found = await queueAlarms(async () => [reading('1000000001', 'IF-021', 10 * MIN), reading('1000000001', 'IF-022', 61 * MIN)], 10_000, 60 * MIN, clock)([s]);
    expect(found.map((c) => c.key).sort()).toEqual(['queue-age:1000000001/IF-021@subscription:s1', 'queue-age:1000000001/IF-022']);
    expect(found.filter((c) => receives(s, c)).map((c) => c.key).sort()).toEqual(['queue-age:1000000001/IF-021@subscription:s1', 'queue-age:1000000001/IF-022']);
  });

  it('dead letters: more than N of one queue in the window, counted from the letters the operator\'s source reads', async () => {
    const clock = new FakeClock(Date.UTC(2026, 5, 1, 12, 0, 0));
    const queue = { recipientDipId: '1000000001', channel: 'IF-021' };
    const letter = (seq: number, at: number): DeadLetter => ({ queue, seq, messageId: seq, transactionId: `T-${seq}`, senderDipId: '2000000001', senderUniqueReference: null, receivedAt: at, reason: 'rejected', status: 400, detail: 'HTTP 400', at, state: 'dead' });
    const s = sub({ rules: ['dead-letter'], thresholds: { deadLetters: { count: 2, windowMinutes: 10 } } });
    const letters = [letter(1, clock.now() - 30 * MIN), letter(2, clock.now() - 9 * MIN), letter(3, clock.now() - 2 * MIN)];
    const source = deadLetterAlarms({ deadLetters: async () => letters }, clock);
    expect((await source([s])).map((c) => c.key)).toEqual(['dead-letter:1000000001/IF-021']);
    letters.push(letter(4, clock.now() - MIN));
    const found = await source([s]);
    expect(found.map((c) => c.key)).toEqual(['dead-letter:1000000001/IF-021', 'dead-letter:1000000001/IF-021@subscription:s1']);
    expect(found[1]!.summary).toBe("3 messages for 1000000001 / IF-021 were dead-lettered within 10 min, more than 2: the threshold of 1000000001's subscription s1 (the DIP's own: any dead letter still dead)");
    expect(found[1]!.since).toBe(clock.now() - 9 * MIN);
    // The operator's dead-letter alarm is not sent to the subscription that holds the rule to its own threshold.
    expect(found.filter((c) => receives(s, c)).map((c) => c.key)).toEqual(['dead-letter:1000000001/IF-021@subscription:s1']);
    await clock.advance(10 * MIN);
    expect((await source([s])).map((c) => c.key)).toEqual(['dead-letter:1000000001/IF-021']);
  });

  it('delivery latency: read from the late run the workers already keep (nothing added to a message\'s road)', () => {
    const s = sub({ rules: ['delivery-latency'], thresholds: { deliveryLatencySeconds: 60 } });
    const worker = (worstMs: number): Pick<WorkerStatus, 'queue' | 'late'> => ({ queue: { recipientDipId: '1000000001', channel: 'IF-021' }, late: { messages: 4, worstMs, since: 1_000, last: 2_000 } });
    let status = [worker(45_000)];
    const source = deliveryLatencyAlarms(() => status, 30_000, 15 * MIN);
    expect(source([s])).toHaveLength(1);
    status = [worker(75_000)];
    const found = source([s]) as AlarmCondition[];
    expect(found.map((c) => c.key)).toEqual(['delivery-latency:1000000001/IF-021', 'delivery-latency:1000000001/IF-021@subscription:s1']);
    expect(found[1]!.summary).toBe("messages for 1000000001 / IF-021 were delivered later than 60 s after their acceptance, the slowest 75 s (since 1970-01-01T00:00:01.000Z, window 15 min): the threshold of 1000000001's subscription s1 (the DIP's own: 30 s)");
  });
});

describe('the Alarms raise, tell and resolve a subscription\'s threshold condition with the existing caps', () => {
  it('tells only its subscription, lists it only to its owner (never to the operator), and caps its notices per hour', async () => {
    const clock = new FakeClock(Date.UTC(2026, 5, 1, 12, 0, 0));
    let depths = [reading('1000000001', 'IF-021', 7 * MIN)];
    const mine = sub({ email: 'ops@sup.example', thresholds: { queueAgeMinutes: 5 } });
    const plain = sub({ id: 's2', email: 'plain@sup.example' });
    const ops = sub({ id: 'ops', owner: 'operator', email: 'ops@dip.example' });
    const other = sub({ id: 's3', owner: '1000000002', email: 'x@other.example', thresholds: { queueAgeMinutes: 1 } });
    const mails: Array<{ to: string; subject: string; text: string }> = [];
    const channel: AlarmChannel = { email: async (to, subject, text) => void mails.push({ to, subject, text }), webhook: async () => undefined, close: async () => undefined };
    // Every participant's address here confirmed (test/alarms.test.ts has those that did not).
    const confirmedAll = { confirmed: async () => true, ask: async () => 'confirmed' as const };
    const alarms = new Alarms([queueAlarms(async () => depths, 10_000, 60 * MIN, clock)], { list: async () => [mine, plain, ops, other] }, channel, { evaluateIntervalMs: 10_000, maxNoticesPerHour: 2 }, clock, quietLogger, undefined, confirmedAll);
    await alarms.evaluate();
    expect(mails.map((m) => [m.to, m.subject])).toEqual([['ops@sup.example', '[DIP alarm RAISED] queue-age (warning): 1000000001 / IF-021']]);
    expect(mails[0]!.text).toContain("Alarm raised: messages for 1000000001 / IF-021 have waited more than 5 min undelivered (the oldest 7 min): the threshold of 1000000001's subscription s1 (the DIP's own: 60 min)");
    expect(mails[0]!.text).toContain("threshold: 1000000001's subscription s1 (queue-age: 5 min)");
    expect(alarms.current('operator')).toEqual([]);
    expect(alarms.current('1000000002')).toEqual([]);
    expect(alarms.current('1000000001').map((c) => c.key)).toEqual(['queue-age:1000000001/IF-021@subscription:s1']);
    // Flapping: raised and resolved again and again, the subscription hears at most maxNoticesPerHour.
    for (let i = 0; i < 4; i++) {
      await clock.advance(10_000);
      depths = i % 2 === 0 ? [] : [reading('1000000001', 'IF-021', 7 * MIN)];
      await alarms.evaluate();
    }
    expect(mails.filter((m) => m.to === 'ops@sup.example')).toHaveLength(2);
    expect(alarms.suppressed).toBeGreaterThan(0);
    expect(alarms.resolved('operator')).toEqual([]);
    expect(alarms.resolved('1000000001').length).toBeGreaterThan(0);
  });

  it('reads the subscriptions for their thresholds at most once a minute (a threshold does not make the DIP read or evaluate more often)', async () => {
    const clock = new FakeClock(Date.UTC(2026, 5, 1, 12, 0, 0));
    let reads = 0;
    const list = async () => {
      reads += 1;
      return [sub({ thresholds: { queueAgeMinutes: 5 } })];
    };
    const channel: AlarmChannel = { email: async () => undefined, webhook: async () => undefined, close: async () => undefined };
    const alarms = new Alarms([queueAlarms(async () => [], 10_000, 60 * MIN, clock)], { list }, channel, { evaluateIntervalMs: 10_000, maxNoticesPerHour: 20 }, clock, quietLogger);
    for (let i = 0; i < 6; i++) {
      await alarms.evaluate();
      await clock.advance(10_000);
    }
    expect(reads).toBe(1);
    await alarms.evaluate();
    expect(reads).toBe(2);
    // A subscription put or removed on this node is read at the next evaluation.
    alarms.subscriptionsChanged();
    await alarms.evaluate();
    expect(reads).toBe(3);
  });
});

describe('creating a subscription with thresholds', () => {
  const stored: AlarmSubscription[] = [];
  const deps = { environment: 'DEV', subscriptions: { put: async (s: AlarmSubscription) => void stored.push(s), list: async () => stored }, checkUrl: async () => null, now: () => 5, deliveryLatencyFloorSeconds: 30 };
  const help = async (body: unknown) => {
    const made = await createSubscription(deps, '1000000001', body);
    return made.ok ? made.subscription.thresholds : made.help;
  };

  it('keeps them; refuses bounds, a threshold for a rule not named, and a latency below what the DIP watches, naming the field', async () => {
    expect(await help({ rules: ['queue-age', 'dead-letter'], email: 'a@b.example', thresholds: { queueAgeMinutes: 5, deadLetters: { count: 0, windowMinutes: 60 }, channels: ['IF-021'] } })).toEqual({ queueAgeMinutes: 5, deadLetters: { count: 0, windowMinutes: 60 }, channels: ['IF-021'] });
    expect(await help({ rules: ['queue-age'], email: 'a@b.example' })).toBeUndefined();
    expect(await help({ rules: ['queue-age'], email: 'a@b.example', thresholds: { queueAgeMinutes: 0 } })).toBe('thresholds.queueAgeMinutes must be >= 1');
    expect(await help({ rules: ['queue-age'], email: 'a@b.example', thresholds: { deliveryLatencySeconds: 60 } })).toBe('thresholds.deliveryLatencySeconds: the subscription does not name delivery-latency');
    expect(await help({ rules: ['delivery-latency'], email: 'a@b.example', thresholds: { deliveryLatencySeconds: 10 } })).toBe("thresholds.deliveryLatencySeconds: at least 30 s, the DIP's own delivery latency threshold (below it no delivery is watched)");
    expect(await help({ rules: ['queue-age'], email: 'a@b.example', thresholds: { channels: ['IF-021'] } })).toBe('thresholds: give queueAgeMinutes, deliveryLatencySeconds or deadLetters (channels only narrows them)');
  });
});
