/**
 * While NATS cannot answer (JetStream without its quorum), the shared replay guard and rate limits take
 * their fallbacks at once for 5 s after a failure instead of waiting out the request timeout on every
 * request (a fault campaign saw each submission take 5 s, then 5–10 s). A stand-in KV fails after the
 * wait a silent NATS costs, moving the clock on as the wait would; it counts the calls.
 */
import { EventEmitter, on } from 'node:events';
import { setImmediate as turn } from 'node:timers/promises';
import type { KV } from '@nats-io/kv';
import { describe, expect, it } from 'vitest';
import { followConnection } from '../src/adapters/nats/connection.js';
import { NatsRateLimits } from '../src/adapters/nats/rate-limits.js';
import { NatsReplayGuard } from '../src/adapters/nats/replay-guard.js';
import { Unreachable } from '../src/adapters/nats/unreachable.js';
import { FakeClock } from './helpers/clocks.js';

const TIMEOUT_MS = 1_000;

function silentKv(clock: FakeClock): { kv: KV; calls: () => number } {
  let calls = 0;
  const fail = async (): Promise<never> => {
    calls += 1;
    await clock.advance(TIMEOUT_MS);
    throw new Error('TimeoutError: timeout');
  };
  return { kv: { create: fail, get: fail, update: fail, delete: fail } as unknown as KV, calls: () => calls };
}

/** A connection's status events (nc.status()), emitted by the test. */
function statusFeed(): { events: AsyncIterable<{ type: string }>; emit: (type: string) => Promise<void> } {
  const emitter = new EventEmitter();
  async function* events(): AsyncIterable<{ type: string }> {
    for await (const [event] of on(emitter, 'status')) yield event as { type: string };
  }
  // One turn of the event loop: the follower has taken the event.
  return { events: events(), emit: async (type) => void (emitter.emit('status', { type }), await turn()) };
}

describe('the shared stores while NATS does not answer', () => {
  it('the replay guard asks NATS once, then checks this node only for 5 s after the failure, still refusing a replay to it', async () => {
    const clock = new FakeClock(1_000_000);
    const { kv, calls } = silentKv(clock);
    const guard = new NatsReplayGuard(kv, 600_000, new Unreachable(() => clock.now()));
    expect(await guard.check('sig-1', clock.now())).toEqual({ replayed: false });
    // 4.9 s after the failure (5.9 s after the request that met it began): still not asked.
    await clock.advance(4_900);
    expect(await guard.check('sig-2', clock.now())).toEqual({ replayed: false });
    expect((await guard.check('sig-1', clock.now())).replayed).toBe(true);
    expect(calls()).toBe(1);
    await clock.advance(101);
    await guard.check('sig-3', clock.now());
    expect(calls()).toBe(2);
  });

  it('the rate limits let requests through without asking for 5 s after a failure, and the replay guard, sharing the memory, does not ask either', async () => {
    const clock = new FakeClock(1_000_000);
    const { kv, calls } = silentKv(clock);
    const down = new Unreachable(() => clock.now());
    const limits = new NatsRateLimits(kv, { requestsPerSecond: 10, burst: 10 }, down);
    const guard = new NatsReplayGuard(kv, 600_000, down);
    for (let i = 0; i < 20; i++) {
      expect((await limits.take('p:1', clock.now())).ok).toBe(true);
      expect((await guard.check(`sig-${i}`, clock.now())).replayed).toBe(false);
      await clock.advance(200);
    }
    expect(calls()).toBe(1);
    await clock.advance(2_000);
    await limits.take('p:1', clock.now());
    expect(calls()).toBe(2);
  });

  it("one follower's failure on an event leaves the others following the connection", async () => {
    const clock = new FakeClock(1_000_000);
    const down = new Unreachable(() => clock.now());
    const feed = statusFeed();
    const failures: unknown[] = [];
    const broken = {
      connectionLost: () => {
        throw new Error('broken follower');
      },
      connectionBack: () => {},
    };
    void followConnection(feed.events, [broken, down], (err) => failures.push(err));
    await feed.emit('disconnect');
    expect([down.skipping, failures.length]).toEqual([true, 1]);
    await feed.emit('reconnect');
    expect(down.skipping).toBe(false);
  });

  it('while the connection is lost (its disconnect event) nothing waits on NATS; once it is back (reconnect) the next request asks at once, a failure window or not', async () => {
    const clock = new FakeClock(1_000_000);
    const { kv, calls } = silentKv(clock);
    const down = new Unreachable(() => clock.now());
    const feed = statusFeed();
    void followConnection(feed.events, [down], (err) => {
      throw err;
    });
    const limits = new NatsRateLimits(kv, { requestsPerSecond: 10, burst: 10 }, down);
    const guard = new NatsReplayGuard(kv, 600_000, down);
    await feed.emit('disconnect');
    await feed.emit('reconnecting');
    expect((await limits.take('p:1', clock.now())).ok).toBe(true);
    expect((await guard.check('sig-1', clock.now())).replayed).toBe(false);
    expect((await guard.check('sig-1', clock.now())).replayed).toBe(true);
    expect(calls()).toBe(0);
    expect(clock.now()).toBe(1_000_000);

    await feed.emit('reconnect');
    await guard.check('sig-2', clock.now());
    expect(calls()).toBe(1);
    // That call failed (the stand-in is silent): a window of 5 s, which the next reconnect ends.
    await guard.check('sig-3', clock.now());
    expect(calls()).toBe(1);
    await feed.emit('disconnect');
    await feed.emit('reconnect');
    await limits.take('p:1', clock.now());
    expect(calls()).toBe(2);
  });
});

describe('a node whose NATS does not answer at start', () => {
  it('says it is NATS, at which address, and that a cluster node needs it to start', async () => {
    const { createServer } = await import('node:net');
    const { connectNats } = await import('../src/adapters/nats/connection.js');
    // A port nothing listens on (taken, then freed).
    const server = createServer();
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    await new Promise<void>((r) => server.close(() => r()));
    const failure = await connectNats({ servers: [`127.0.0.1:${port}`], prefix: 'x', replicas: 1 }).then(
      () => new Error('connected'),
      (e: Error) => e,
    );
    expect(failure.message).toMatch(new RegExp(`^NATS at 127\\.0\\.0\\.1:${port} \\(storage\\.nats\\.servers\\) does not answer \\(connection refused\\): a cluster node needs NATS to start`));
  });
});
