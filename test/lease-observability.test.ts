import { afterEach, describe, expect, it } from 'vitest';
import type { NatsConnection } from '@nats-io/transport-node';
import type { KV } from '@nats-io/kv';
import { NatsQueueLeases } from '../src/adapters/nats/leases.js';
import { NatsAlarmNotifierLease } from '../src/adapters/nats/notifier-lease.js';
import type { Logger } from '../src/ports/logger.js';
import Fastify from 'fastify';
import { pino } from 'pino';
import { queueRoutes } from '../src/api/admin-queues.js';
import { clockSkewAlarms } from '../src/pipeline/alarm-sources.js';
import { alarmSeverity } from '../src/pipeline/alarm-actions.js';
import { DipMetrics } from '../src/pipeline/metrics.js';
import { OPERATOR_RULES } from '../src/ports/alarms.js';
import { FakeClock, ShiftableClock } from './helpers/clocks.js';

/**
 * NatsQueueLeases on a FakeClock, without a NATS server: roll calls are handed to its subscription's
 * callback directly, and the bucket is a stub that answers or fails as the test says. What is measured
 * here is what the node shows of its peers' clocks and what it logs while the bucket fails.
 */
const settings = { ttlMs: 6_000, skewMs: 1_000 };

interface Logged {
  level: 'info' | 'warn' | 'error';
  obj: Record<string, unknown>;
  msg: string;
}

function recordingLogger(): { logger: Logger; logged: Logged[] } {
  const logged: Logged[] = [];
  const at = (level: Logged['level']) => (obj: object, msg?: string) => void logged.push({ level, obj: obj as Record<string, unknown>, msg: msg ?? '' });
  return { logger: { info: at('info'), warn: at('warn'), error: at('error') }, logged };
}

/**
 * A leases bucket that fails every call while `down` is set (NATS out of reach), and every write while
 * `writesDown` is (reads answered, writes refused: a stream out of space), else holds nothing and grants
 * every create.
 */
function stubBucket(): { kv: KV; state: { down: boolean; writesDown: boolean } } {
  const state = { down: false, writesDown: false };
  let revision = 0;
  const answer = async <T>(value: T, write = true): Promise<T> => {
    if (state.down || (write && state.writesDown)) throw new Error('TIMEOUT');
    return value;
  };
  const kv = {
    get: () => answer(null, false),
    create: () => answer(++revision),
    update: () => answer(++revision),
    delete: () => answer(undefined),
  };
  return { kv: kv as unknown as KV, state };
}

function leasesOnStubs(clock: FakeClock, logger: Logger) {
  const callbacks = new Map<string, (err: unknown, msg: { string(): string }) => void>();
  const published: Array<{ subject: string; data: string }> = [];
  const nc = {
    subscribe: (subject: string, opts: { callback: (err: unknown, msg: { string(): string }) => void }) => {
      callbacks.set(subject, opts.callback);
      return { unsubscribe() {} };
    },
    publish: (subject: string, data?: string) => void published.push({ subject, data: data ?? '' }),
  };
  const bucket = stubBucket();
  const leases = new NatsQueueLeases(nc as unknown as NatsConnection, bucket.kv, 'dip', clock, settings, logger, 'this-node');
  /** A roll call of `node` saying its clock reads `theirNow`, heard now (a node taking queues, unless `says` tells otherwise). */
  const rollCall = (node: string, theirNow: number, says: { taking?: boolean; leaving?: boolean } = {}) =>
    callbacks.get('dip.nodes')?.(null, { string: () => JSON.stringify({ node, held: 1, taking: says.taking ?? true, leaving: says.leaving ?? false, now: theirNow }) });
  return { leases, bucket, rollCall, published };
}

const running: Array<{ close(): Promise<void> }> = [];
afterEach(async () => {
  for (const r of running.splice(0)) await r.close();
});

describe("a node's view of its peers' clocks", () => {
  it('is the peer furthest off, either way, with the allowance; null before any roll call and after the peers fall silent', async () => {
    const clock = new FakeClock();
    const { leases, rollCall } = leasesOnStubs(clock, recordingLogger().logger);
    running.push(leases);
    expect(leases.clockOffset()).toBeNull();
    rollCall('ahead', clock.now() + 400);
    rollCall('behind', clock.now() - 2_500);
    expect(leases.clockOffset()).toEqual({ node: 'behind', offsetMs: -2_500, allowanceMs: 1_000, believed: true });
    // Silent two lease lengths: forgotten, as the leases forget it.
    await clock.advance(2 * settings.ttlMs + 1);
    expect(leases.clockOffset()).toBeNull();
  });

  it('shows a peer beyond the believed cap (five lease lengths) as not believed, and logs it once while it lasts, not at every roll call', async () => {
    const clock = new FakeClock();
    const { logger, logged } = recordingLogger();
    const { leases, rollCall } = leasesOnStubs(clock, logger);
    running.push(leases);
    for (let i = 0; i < 10; i++) {
      rollCall('far-behind', clock.now() - 40_000);
      rollCall('near', clock.now() + 200);
      await clock.advance(2_000);
    }
    expect(leases.clockOffset()).toEqual({ node: 'far-behind', offsetMs: -40_000, allowanceMs: 1_000, believed: false });
    expect(logged.filter((l) => l.obj.node === 'far-behind').map((l) => l.level)).toEqual(['error']);
  });
});

describe('a node hearing a peer ahead beyond what the leases believe', () => {
  it('gives its leases up, takes none and says so in its roll call while it hears it; takes again once it is silent two lease lengths', async () => {
    // That peer reads this node's leases by their own expiry (its clock says they ended long ago) and takes
    // them while this node, by its own clock, still works them: both would deliver the same queue.
    const clock = new FakeClock();
    const { leases, rollCall, published } = leasesOnStubs(clock, recordingLogger().logger);
    running.push(leases);
    const q = { recipientDipId: 'SUP0000001', channel: 'IF-021' };
    const lost: string[] = [];
    leases.onLost((queue) => void lost.push(queue.channel));
    expect(await leases.acquire(q)).toBe(true);
    rollCall('ahead', clock.now() + 5 * settings.ttlMs + 1_000);
    expect(leases.holds(q)).toBe(false);
    expect(lost).toEqual(['IF-021']);
    expect(await leases.acquire(q)).toBe(false);
    await clock.advance(2_000);
    const said = JSON.parse(published.filter((p) => p.subject === 'dip.nodes').at(-1)!.data) as { taking: boolean };
    expect(said.taking, 'its roll call: it takes no queue').toBe(false);
    // Behind beyond the cap is no reason to yield (a receiver that stalls only makes a peer look behind).
    rollCall('far-behind', clock.now() - 5 * settings.ttlMs - 1_000);
    await clock.advance(2 * settings.ttlMs);
    expect(await leases.acquire(q), 'the peer ahead silent two lease lengths').toBe(true);
  });

  // Before, the peer ahead was yielded to whatever its roll call said: stopping (its last roll call), it
  // left this node delivering nothing for two lease lengths; taking none itself (its store out of reach,
  // or yielding to a node further ahead), nobody delivered those queues while it was heard.
  it('does not yield to it while it takes no queue, and takes again at once when it stops', async () => {
    const clock = new FakeClock();
    const { leases, rollCall, published } = leasesOnStubs(clock, recordingLogger().logger);
    running.push(leases);
    const q = { recipientDipId: 'SUP0000001', channel: 'IF-021' };
    const ahead = () => clock.now() + 5 * settings.ttlMs + 1_000;
    expect(await leases.acquire(q)).toBe(true);
    rollCall('ahead', ahead(), { taking: false });
    expect(leases.holds(q), 'kept while the peer ahead takes none').toBe(true);
    await clock.advance(2_000);
    const said = JSON.parse(published.filter((p) => p.subject === 'dip.nodes').at(-1)!.data) as { taking: boolean };
    expect(said.taking, 'its roll call: it takes queues').toBe(true);
    expect(leases.clockOffset(), 'still shown').toMatchObject({ node: 'ahead', believed: false });
    // It takes queues again: this node yields, as before.
    rollCall('ahead', ahead());
    expect(leases.holds(q)).toBe(false);
    expect(await leases.acquire(q)).toBe(false);
    // Its last roll call, stopping (its leases released): this node takes at once, not two lease lengths later.
    rollCall('ahead', ahead(), { leaving: true });
    expect(await leases.acquire(q), 'claim just after the peer ahead stopped').toBe(true);
  });
});

describe('clock skew between nodes, as the operator on call sees it', () => {
  // Before, a peer's clock offset showed only in a log line: not in GET /admin/health, no metric, no alarm.
  it('raises clock-skew (operators, warning) once a peer is beyond the allowance, since the first evaluation that found it, and resolves it when the peer is back within', async () => {
    const clock = new FakeClock();
    const { leases, rollCall } = leasesOnStubs(clock, recordingLogger().logger);
    running.push(leases);
    // At once (lastingMs 0): the estimate's behaviour, not how long it must last (test/alarm-sources-debounce.test.ts).
    const alarms = clockSkewAlarms(() => leases.clockOffset(), clock, 'this-node', 0);
    rollCall('peer', clock.now() - 900);
    expect(await alarms(), 'within the 1 s allowance').toEqual([]);
    // Past the -0.9 s sample's window (a lease length: the estimate is the largest sample within it).
    await clock.advance(7_000);
    rollCall('peer', clock.now() - 3_000);
    const raisedAt = clock.now();
    const raised = await alarms();
    expect(raised).toEqual([
      {
        key: 'clock-skew:this-node',
        rule: 'clock-skew',
        participant: null,
        summary: expect.stringMatching(/^the clock of node peer is 3000 ms behind this node's on node this-node, beyond the 1000 ms the queue leases allow for: /),
        since: raisedAt,
      },
    ]);
    expect(OPERATOR_RULES.has('clock-skew')).toBe(true);
    expect(alarmSeverity(raised[0]!)).toBe('warning');
    await clock.advance(2_000);
    rollCall('peer', clock.now() - 3_000);
    expect((await alarms())[0]?.since, 'kept while it holds').toBe(raisedAt);
    // NTP fixed: the largest sample is within the allowance at once.
    await clock.advance(2_000);
    rollCall('peer', clock.now() - 50);
    expect(await alarms()).toEqual([]);
  });

  it('a peer beyond what the leases believe raises it too, saying which node works the queues', async () => {
    const clock = new FakeClock();
    const { leases, rollCall } = leasesOnStubs(clock, recordingLogger().logger);
    running.push(leases);
    rollCall('far-behind', clock.now() - 45_000);
    const [c] = await clockSkewAlarms(() => leases.clockOffset(), clock, undefined, 0)();
    expect(c).toMatchObject({ key: 'clock-skew', summary: expect.stringMatching(/45000 ms behind .*beyond what the leases believe .*this node takes that node's queues, and that node works none while it hears this one/) });
  });

  it('dip_cluster_clock_offset_seconds is the largest offset either way, 0 when no peer is heard', async () => {
    const clock = new FakeClock();
    const { leases, rollCall } = leasesOnStubs(clock, recordingLogger().logger);
    running.push(leases);
    const metrics = new DipMetrics(async () => []);
    metrics.watchClockOffset(() => leases.clockOffset());
    const value = async () => (await metrics.registry.getSingleMetric('dip_cluster_clock_offset_seconds')?.get())?.values[0]?.value;
    expect(await value()).toBe(0);
    rollCall('ahead', clock.now() + 1_500);
    rollCall('behind', clock.now() - 2_500);
    expect(await value()).toBe(2.5);
  });

  it("GET /admin/health's coordination names the peer furthest off (null before any roll call); absent in one process", async () => {
    const clock = new FakeClock();
    const { leases, rollCall } = leasesOnStubs(clock, recordingLogger().logger);
    running.push(leases);
    const health = async (clockOffset?: () => ReturnType<typeof leases.clockOffset>) => {
      const app = Fastify();
      await app.register(queueRoutes, {
        health: () => ({ state: 'ok' }),
        coordination: () => ({ state: 'ok' }),
        ...(clockOffset ? { clockOffset } : {}),
        notReady: () => null,
        delivery: { status: () => [], resume: () => false },
        backlog: async () => [],
        queueState: async () => ({ headSeq: 0 }),
        archive: { attempts: async () => [] },
        logger: pino({ level: 'silent' }),
      });
      try {
        const res = await app.inject({ method: 'GET', url: '/admin/health' });
        expect(res.statusCode).toBe(200);
        return res.json<{ coordination: Record<string, unknown> }>().coordination;
      } finally {
        await app.close();
      }
    };
    expect(await health(() => leases.clockOffset())).toEqual({ state: 'ok', peerClock: null });
    rollCall('behind', clock.now() - 2_500);
    expect(await health(() => leases.clockOffset())).toEqual({ state: 'ok', peerClock: { node: 'behind', offsetMs: -2_500, allowanceMs: 1_000, believed: true } });
    expect(await health()).toEqual({ state: 'ok' });
  });
});

describe('the log while the leases bucket does not answer', () => {
  it('warns once when claims start failing, then at most once a minute with a count, and once when they succeed again', async () => {
    // Three queues with work, a claim pass every 3 s, NATS away for 2 min: before, a warning per queue
    // per pass (120 lines).
    const clock = new FakeClock();
    const { logger, logged } = recordingLogger();
    const { leases, bucket } = leasesOnStubs(clock, logger);
    running.push(leases);
    const queues = ['IF-021', 'IF-022', 'IF-023'].map((channel) => ({ recipientDipId: 'SUP0000001', channel }));
    bucket.state.down = true;
    const start = clock.now();
    while (clock.now() - start < 120_000) {
      for (const q of queues) expect(await leases.acquire(q)).toBe(false);
      await clock.advance(3_000);
    }
    const claims = logged.filter((l) => /could not claim a queue lease/.test(l.msg));
    expect(claims.map((l) => l.level), 'at the start and a minute later').toEqual(['warn', 'warn']);
    expect(claims[1]!.obj.failures, 'the failures since the first warning').toBeGreaterThan(50);
    bucket.state.down = false;
    expect(await leases.acquire(queues[0]!)).toBe(true);
    expect(await leases.acquire(queues[1]!)).toBe(true);
    const back = logged.filter((l) => /queue leases can be claimed again/.test(l.msg));
    expect(back).toHaveLength(1);
    expect(back[0]).toMatchObject({ level: 'info', obj: { failures: 120 } });
  });

  it('while reads are answered and writes fail, warns as while nothing answers, not a warning and a recovery line at every claim', async () => {
    // Before, the read's answer counted as the recovery: every claim logged a recovery, then a new warning.
    const clock = new FakeClock();
    const { logger, logged } = recordingLogger();
    const { leases, bucket } = leasesOnStubs(clock, logger);
    running.push(leases);
    const q = { recipientDipId: 'SUP0000001', channel: 'IF-021' };
    bucket.state.writesDown = true;
    for (let i = 0; i < 10; i++) {
      expect(await leases.acquire(q)).toBe(false);
      await clock.advance(3_000);
    }
    const lines = () => logged.filter((l) => /could not claim a queue lease|queue leases can be claimed again/.test(l.msg)).map((l) => l.level);
    expect(lines(), 'one warning at the start').toEqual(['warn']);
    bucket.state.writesDown = false;
    expect(await leases.acquire(q)).toBe(true);
    expect(lines(), 'and one line once a claim is written').toEqual(['warn', 'info']);
  });

  /** The levels of the alarm notifier lease's log lines over twenty turns, 2 s apart, with the bucket failing as `fault` says. */
  const notifierLogOver20Turns = async (fault: 'down' | 'writesDown') => {
    const clock = new FakeClock();
    const { logger, logged } = recordingLogger();
    const bucket = stubBucket();
    const notifier = new NatsAlarmNotifierLease(bucket.kv, bucket.kv, async () => {}, 'this-node', clock, settings, logger);
    running.push(notifier);
    bucket.state[fault] = true;
    for (let i = 0; i < 20; i++) {
      expect(await notifier.turn()).toBeNull();
      await clock.advance(2_000);
    }
    return logged.filter((l) => /alarm notifier lease/.test(l.msg)).map((l) => l.level);
  };

  it('the alarm notifier lease warns once while it cannot be read, not at every alarm evaluation', async () => {
    expect(await notifierLogOver20Turns('down')).toEqual(['warn']);
  });

  it('the alarm notifier lease, read but not written, warns once rather than a warning and a recovery line at every turn', async () => {
    expect(await notifierLogOver20Turns('writesDown')).toEqual(['warn']);
  });
});

describe('the nodes a node finds lost', () => {
  it('is one silent two lease lengths, but not an id whose node name was heard again under a new id since (a restart within that time)', async () => {
    const clock = new FakeClock();
    const { leases, rollCall } = leasesOnStubs(clock, recordingLogger().logger);
    running.push(leases);
    rollCall('host-a-0000000a', clock.now());
    rollCall('host-b-0000000b', clock.now());
    await clock.advance(1_000);
    // host-a's supervisor restarts it at once: the same name, a new id, heard before the old one is lost.
    rollCall('host-a-000000aa', clock.now());
    await clock.advance(2 * settings.ttlMs);
    rollCall('host-a-000000aa', clock.now());
    expect(leases.lostNodes().map((l) => l.node)).toEqual(['host-b-0000000b']);
  });
});

describe('node-lost when this node’s wall clock steps', () => {
  it('a step of this node’s wall clock (+90 s) does not make its live peers lost: silence is elapsed time', async () => {
    // A fault campaign stepped a node's clock by +90 s (libfaketime): it raised node-lost for both its
    // live peers, their last roll calls suddenly 90 s old by its clock, until each said its next one.
    const wall = new ShiftableClock();
    const steady = new FakeClock();
    const callbacks = new Map<string, (err: unknown, msg: { string(): string }) => void>();
    const nc = { subscribe: (subject: string, opts: { callback: (err: unknown, msg: { string(): string }) => void }) => (callbacks.set(subject, opts.callback), { unsubscribe() {} }), publish: () => {} };
    const leases = new NatsQueueLeases(nc as unknown as NatsConnection, stubBucket().kv, 'dip', wall, settings, recordingLogger().logger, 'this-node', steady);
    running.push(leases);
    callbacks.get('dip.nodes')?.(null, { string: () => JSON.stringify({ node: 'peer-0000000a', held: 1, taking: true, leaving: false, now: wall.now() }) });
    wall.jump(90_000);
    expect(leases.lostNodes()).toEqual([]);
    // Silent for real (two lease lengths of elapsed time): lost.
    await steady.advance(2 * settings.ttlMs + 1);
    expect(leases.lostNodes().map((l) => l.node)).toEqual(['peer-0000000a']);
  });
});
