import { describe, expect, it } from 'vitest';
import { DeliveryShare, type DeliveryShareSettings } from '../src/pipeline/delivery-share.js';
import { QueueWorker, type WorkerDeps } from '../src/pipeline/queue-worker.js';
import type { QueueEntry, QueueRef, Settlement } from '../src/ports/message-log.js';
import type { WebhookCall } from '../src/ports/webhook.js';
import { FakeClock, settle } from './helpers/clocks.js';
import { workerDeps } from './helpers/worker-deps.js';

/**
 * Fair delivery: one recipient's backlog shares the delivery capacity instead of taking it. Driven by a fake
 * clock, and live traffic made late by handing in messages received earlier: the rates below are what
 * the share hands out per simulated second, not timings of this machine.
 */
const SETTINGS: DeliveryShareSettings = { catchUpAfterMs: 2_000, catchUpPerSecond: 1_000, minShare: 0.1, liveLateAfterMs: 50, adjustEveryMs: 250 };

describe('delivery share (the scheduler)', () => {
  it('a lone catching-up queue is handed catchUpPerSecond, in turns of at most a quarter second', async () => {
    const clock = new FakeClock();
    const share = new DeliveryShare(SETTINGS, clock);
    let handed = 0;
    const loop = async () => {
      for (;;) {
        const n = await share.grant('A', 500);
        if (n === 0) return;
        expect(n).toBeLessThanOrEqual(250);
        handed += n;
      }
    };
    const done = loop();
    await settle();
    const atStart = handed; // the full bucket: a quarter second's worth
    expect(atStart).toBe(250);
    await clock.advance(10_000);
    expect(handed - atStart).toBeGreaterThanOrEqual(9_900);
    expect(handed - atStart).toBeLessThanOrEqual(10_000);
    share.stop();
    await done;
  });

  it('several backlogs drain at the same pace: each turn is an equal part of the bucket, served in turn', async () => {
    const clock = new FakeClock();
    const share = new DeliveryShare(SETTINGS, clock);
    const handed: Record<string, number> = { A: 0, B: 0, C: 0 };
    const loops = Object.keys(handed).map(async (k) => {
      for (;;) {
        const n = await share.grant(k, 500);
        if (n === 0) return;
        handed[k]! += n;
      }
    });
    await clock.advance(30_000);
    const total = handed.A! + handed.B! + handed.C!;
    expect(total).toBeLessThanOrEqual(30_250);
    for (const k of ['A', 'B', 'C']) expect(Math.abs(handed[k]! - total / 3)).toBeLessThan(200);
    share.stop();
    await Promise.all(loops);
  });

  it('while over a tenth of the live calls are late the rate halves down to minShare, and climbs back once they are on time', async () => {
    const clock = new FakeClock();
    const share = new DeliveryShare(SETTINGS, clock);
    share.start();
    // Each quarter second: 20 live calls, `late` of them later than 50 ms.
    const window = async (late: number) => {
      for (let i = 0; i < 20; i++) share.live(i < late ? 51 : 50);
      await clock.advance(250);
    };
    await window(3); // 15 %: their p90 is late
    expect(share.rate()).toBe(500);
    for (let i = 0; i < 8; i++) await window(20);
    expect(share.rate()).toBe(100); // never below a tenth: a backlog always drains
    await window(2); // 10 %, at the limit (50 ms is not late): on time
    expect(share.rate()).toBeCloseTo(200);
    for (let i = 0; i < 20; i++) await window(0);
    expect(share.rate()).toBe(1_000);
    share.stop();
  });

  it('a window without live calls has nobody to protect: the rate climbs, however busy the process is', async () => {
    const clock = new FakeClock();
    const share = new DeliveryShare(SETTINGS, clock);
    share.start();
    for (let i = 0; i < 4; i++) {
      for (let j = 0; j < 10; j++) share.live(500);
      await clock.advance(250);
    }
    expect(share.rate()).toBe(100);
    await clock.advance(2_250);
    expect(share.rate()).toBeCloseTo(1_000);
    share.stop();
  });

  it('a withdrawn queue leaves the line with nothing; asking again replaces its place', async () => {
    const clock = new FakeClock();
    const share = new DeliveryShare(SETTINGS, clock);
    expect(await share.grant('A', 250)).toBe(250); // the bucket was full
    const waiting = share.grant('A', 100);
    expect(share.waiting()).toBe(1);
    share.withdraw('A');
    expect(await waiting).toBe(0);
    const first = share.grant('B', 100);
    const second = share.grant('B', 50);
    expect(await first).toBe(0);
    await clock.advance(100);
    expect(await second).toBe(50);
    share.stop();
  });
});

/** Queues of one recipient each over one fake log; a recipient that answers every call 200 at once. */
class Market {
  readonly clock = new FakeClock();
  readonly entries = new Map<string, QueueEntry[]>();
  readonly acked = new Map<string, number>();
  /** Per recipient: when (fake clock) each delivered message's call went out, and its seq. */
  readonly delivered = new Map<string, Array<{ seq: number; at: number; receivedAt: number }>>();
  readonly share: DeliveryShare;
  readonly workers = new Map<string, QueueWorker>();

  constructor(settings: DeliveryShareSettings) {
    this.share = new DeliveryShare(settings, this.clock);
    this.share.start();
  }

  private deps(): WorkerDeps {
    const key = (q: QueueRef) => q.recipientDipId;
    return workerDeps(this.clock, {
      log: {
        readQueue: async (q, after, limit) => (this.entries.get(key(q)) ?? []).filter((e) => e.seq > after).slice(0, limit),
        queueState: async (q) => ({ ackedSeq: this.acked.get(key(q)) ?? 0, headSeq: this.entries.get(key(q))?.length ?? 0, pulledSeq: 0 }),
        settle: async (q: QueueRef, s: Settlement) => (this.acked.set(key(q), Math.max(this.acked.get(key(q)) ?? 0, s.upTo)), 'settled'),
      },
      transport: {
        post: async (call: WebhookCall) => {
          const to = new URL(call.url).pathname.slice(1);
          const list = this.delivered.get(to) ?? [];
          for (const m of JSON.parse(call.body.toString()) as Array<{ seq: number; receivedAt: number }>) list.push({ seq: m.seq, at: this.clock.now(), receivedAt: m.receivedAt });
          this.delivered.set(to, list);
          return { kind: 'answered', status: 200, retryAfter: undefined, body: '', latencyMs: 1 };
        },
        close: async () => {},
      },
      share: this.share,
    });
  }

  /** Appends `n` messages for a recipient, received at `receivedAt`, and kicks its worker. */
  add(recipient: string, n: number, receivedAt = this.clock.now()): void {
    const list = this.entries.get(recipient) ?? [];
    for (let i = 0; i < n; i++) {
      const seq = list.length + 1;
      list.push({ seq, messageId: seq, transactionId: `${recipient}-${seq}`, receivedAt, outbound: JSON.stringify({ seq, receivedAt }), capacity: null, securityPattern: null });
    }
    this.entries.set(recipient, list);
    let w = this.workers.get(recipient);
    if (!w) {
      w = new QueueWorker({ recipientDipId: recipient, channel: 'IF-021' }, this.deps());
      this.workers.set(recipient, w);
    }
    w.kick();
  }

  seqs(recipient: string): number[] {
    return (this.delivered.get(recipient) ?? []).map((d) => d.seq);
  }

  async stop(): Promise<void> {
    this.share.stop();
    await Promise.all([...this.workers.values()].map((w) => w.stop()));
  }
}

describe('fair delivery (queue workers sharing one scheduler)', () => {
  it('a recovering recipient drains its backlog at the catch-up rate, oldest first, while the others get what arrives at once', async () => {
    const m = new Market(SETTINGS);
    // LSS was down for an hour: 20,000 messages wait, received before the outage ended.
    m.add('LSS', 20_000, m.clock.now() - 3_600_000);
    // Live traffic: 50 messages every 100 ms to SUP, LDSO and MDS, and to LSS behind its backlog, for 10 s.
    for (let tick = 0; tick < 100; tick++) {
      for (const r of ['SUP', 'LDSO', 'MDS', 'LSS']) m.add(r, 50);
      await settle();
      await m.clock.advance(100);
    }
    for (const r of ['SUP', 'LDSO', 'MDS']) {
      expect(m.seqs(r)).toEqual(Array.from({ length: 5_000 }, (_, i) => i + 1));
      // Each message went out at the moment it arrived: the backlog made nobody else wait.
      expect(Math.max(...m.delivered.get(r)!.map((d) => d.at - d.receivedAt))).toBe(0);
    }
    // LSS: ~1,000 msg/s for 10 s (plus the full bucket it started with), in order, none skipped.
    const lss = m.seqs('LSS');
    expect(lss.length).toBeGreaterThanOrEqual(10_000);
    expect(lss.length).toBeLessThanOrEqual(10_250);
    expect(lss).toEqual(Array.from({ length: lss.length }, (_, i) => i + 1));
    // What came first once it was back: the oldest message of the backlog.
    expect(m.delivered.get('LSS')![0]!.receivedAt).toBe(m.clock.now() - 10_000 - 3_600_000);
    // Once the backlog (20,000 + 5,000 live) is through it is live again: new messages go at once.
    await m.clock.advance(16_000);
    expect(m.seqs('LSS')).toHaveLength(25_000);
    m.add('LSS', 10);
    await settle();
    expect(m.seqs('LSS')).toHaveLength(25_010);
    expect(m.delivered.get('LSS')!.at(-1)!.at).toBe(m.clock.now());
    await m.stop();
  });

  it('a requeue of thousands on two queues at once: both drain at half the rate each, live queues untouched', async () => {
    const m = new Market(SETTINGS);
    const old = m.clock.now() - 3_600_000;
    m.add('SUP', 5_000, old);
    m.add('LDSO', 5_000, old);
    for (let tick = 0; tick < 40; tick++) {
      m.add('MDS', 10);
      await settle();
      await m.clock.advance(100);
    }
    expect(m.seqs('MDS')).toHaveLength(400);
    expect(Math.max(...m.delivered.get('MDS')!.map((d) => d.at - d.receivedAt))).toBe(0);
    const sup = m.seqs('SUP').length;
    const ldso = m.seqs('LDSO').length;
    // 4 s at 1,000 msg/s shared by two (plus the first bucket): ~2,000 each, within one turn of each other.
    expect(sup + ldso).toBeGreaterThanOrEqual(4_000);
    expect(sup + ldso).toBeLessThanOrEqual(4_750);
    expect(Math.abs(sup - ldso)).toBeLessThanOrEqual(500);
    await m.stop();
  });

  it('while live calls run late catch-up slows to minShare, and takes the full rate again once they are on time', async () => {
    const m = new Market(SETTINGS);
    m.add('LSS', 50_000, m.clock.now() - 3_600_000);
    // MDS is live, but each message reaches its worker 80 ms after it was received (the DIP is busy).
    const tick = async (lateMs: number) => {
      m.add('MDS', 5, m.clock.now() - lateMs);
      await settle();
      await m.clock.advance(50);
    };
    for (let i = 0; i < 200; i++) await tick(80);
    const pressed = m.seqs('LSS').length;
    // Halved each quarter second down to 100 msg/s: about a second's worth at the start, then 100/s.
    expect(pressed).toBeLessThan(2_500);
    for (let i = 0; i < 200; i++) await tick(0);
    const relieved = m.seqs('LSS').length - pressed;
    expect(relieved).toBeGreaterThan(8_000);
    expect(m.seqs('LSS')).toEqual(Array.from({ length: m.seqs('LSS').length }, (_, i) => i + 1));
    expect(m.seqs('MDS')).toHaveLength(2_000);
    await m.stop();
  });

  it('queues that all fell behind together are not held to the floor: nobody is live, so they share the full rate and come back', async () => {
    const m = new Market(SETTINGS);
    const recipients = ['SUP', 'LDSO', 'MDS', 'LSS'];
    // Every queue is 3 s behind (the DIP was stalled), and 100 msg/s more keep arriving for each.
    for (const r of recipients) m.add(r, 300, m.clock.now() - 3_000);
    for (let t = 0; t < 150; t++) {
      for (const r of recipients) m.add(r, 10);
      await settle();
      await m.clock.advance(100);
    }
    // 1,200 behind and 6,000 arrived: at the full 1,000 msg/s shared they are back within ~2 s (at the
    // floor, 100 msg/s for 400 msg/s of arrivals, they would fall further behind for ever).
    for (const r of recipients) {
      expect(m.seqs(r)).toEqual(Array.from({ length: 1_800 }, (_, i) => i + 1));
      const lastSecond = m.delivered.get(r)!.filter((d) => d.at >= m.clock.now() - 1_000);
      expect(Math.max(...lastSecond.map((d) => d.at - d.receivedAt))).toBe(0);
    }
    await m.stop();
  });
});
