/** The delivery journal keeps what the store refused while out of reach (src/pipeline/attempt-journal.ts). */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { systemClock } from '../src/adapters/clock.js';
import { openSqliteBackend } from '../src/adapters/sqlite/index.js';
import { newAttemptId } from '../src/domain/attempt-id.js';
import { deliveryJournal, keptJournal } from '../src/pipeline/attempt-journal.js';
import { DipMetrics } from '../src/pipeline/metrics.js';
import type { DeliveryAttempt } from '../src/ports/archive.js';
import { StoreError } from '../src/ports/errors.js';
import { batch, message, sup } from './contract/fixtures.js';
import { FakeClock, settle } from './helpers/clocks.js';

const attempt = (seq: number): DeliveryAttempt => ({
  attemptId: newAttemptId(Date.UTC(2026, 0, 1) + seq, (n) => new Uint8Array(n).fill(seq)),
  queue: { recipientDipId: 'abcdef0123', channel: 'IF-021' },
  firstSeq: seq,
  lastSeq: seq,
  url: 'https://receiver.example/hook',
  startedAt: Date.UTC(2026, 0, 1) + seq,
  latencyMs: 3,
  status: 200,
  verdict: 'delivered',
  error: null,
});

/** A store that refuses while `state` says so, and records what it takes. */
function store() {
  const written: number[] = [];
  const s = {
    state: 'up' as 'up' | 'unavailable' | 'permanent',
    tries: 0,
    written,
    recordAttempt(a: DeliveryAttempt): Promise<void> {
      s.tries += 1;
      if (s.state === 'unavailable') return Promise.reject(new StoreError('unavailable', 'connection refused', 'ECONNREFUSED'));
      if (s.state === 'permanent') return Promise.reject(new StoreError('permanent', 'no queue', null));
      written.push(a.firstSeq);
      return Promise.resolve();
    },
  };
  return s;
}

function logs() {
  const errors: Array<{ fields: object; msg: string }> = [];
  return { errors, logger: { info() {}, warn() {}, error: (fields: object, msg: string) => errors.push({ fields, msg }) } };
}

describe('keptJournal', () => {
  it('holds the records refused while the store is out of reach and writes them in order once it answers', async () => {
    const clock = new FakeClock();
    const db = store();
    const { logger } = logs();
    const journal = keptJournal(db, clock, logger, { retryMs: 1_000, maxRetryMs: 4_000 });
    await journal.recordAttempt(attempt(1));
    db.state = 'unavailable';
    await journal.recordAttempt(attempt(2));
    await journal.recordAttempt(attempt(3)); // behind 2: not tried before it
    expect(journal.pending()).toBe(2);
    expect(db.tries).toBe(2);
    // Still out of reach: each try costs one refused write, and the waits double up to the cap.
    await clock.advance(1_000);
    expect(db.tries).toBe(3);
    expect(clock.pending()).toEqual([2_000]);
    await clock.advance(2_000);
    await clock.advance(4_000);
    expect(clock.pending()).toEqual([4_000]);
    db.state = 'up';
    await journal.recordAttempt(attempt(4)); // the store is back, but 2 and 3 come first
    expect(db.written).toEqual([1]);
    await clock.advance(4_000);
    expect(db.written).toEqual([1, 2, 3, 4]);
    expect(journal.pending()).toBe(0);
    expect(clock.pending()).toEqual([]);
    // The next record goes straight through, and the next outage starts again at the first wait.
    await journal.recordAttempt(attempt(5));
    db.state = 'unavailable';
    await journal.recordAttempt(attempt(6));
    expect(clock.pending()).toEqual([1_000]);
  });

  it('drops and logs a record the store refuses for good, without holding back the ones after it', async () => {
    const clock = new FakeClock();
    const db = store();
    const { logger, errors } = logs();
    const journal = keptJournal(db, clock, logger);
    db.state = 'permanent';
    await journal.recordAttempt(attempt(1));
    db.state = 'up';
    await journal.recordAttempt(attempt(2));
    expect(db.written).toEqual([2]);
    expect(journal.pending()).toBe(0);
    expect(errors.map((e) => e.msg)).toEqual(['could not record a delivery attempt']);
  });

  it('holds at most maxPending, giving up the oldest and saying how many', async () => {
    const clock = new FakeClock();
    const db = store();
    const { logger, errors } = logs();
    const journal = keptJournal(db, clock, logger, { maxPending: 3, retryMs: 1_000 });
    db.state = 'unavailable';
    for (let seq = 1; seq <= 5; seq++) await journal.recordAttempt(attempt(seq));
    expect(journal.pending()).toBe(3);
    db.state = 'up';
    await clock.advance(1_000);
    expect(db.written).toEqual([3, 4, 5]);
    expect(errors).toEqual([{ fields: { given: 2 }, msg: expect.stringContaining('given up') }]);
  });

  it('tries once more when stopped, and logs what it could still not write', async () => {
    const clock = new FakeClock();
    const db = store();
    const { logger, errors } = logs();
    const journal = keptJournal(db, clock, logger);
    db.state = 'unavailable';
    await journal.recordAttempt(attempt(1));
    await journal.recordAttempt(attempt(2));
    await journal.stop();
    expect(errors).toEqual([{ fields: { notWritten: 2 }, msg: expect.stringContaining('not taken') }]);
    expect(clock.pending()).toEqual([]);

    const db2 = store();
    const again = keptJournal(db2, clock, logger);
    db2.state = 'unavailable';
    await again.recordAttempt(attempt(7));
    db2.state = 'up';
    await again.stop();
    expect(db2.written).toEqual([7]);
  });
});

/** A store whose every write waits until the test answers it: writes are in flight while records arrive. */
function gatedStore() {
  const calls: Array<{ a: DeliveryAttempt; take: () => void; refuse: () => void }> = [];
  const written: number[] = [];
  return {
    calls,
    written,
    recordAttempt(a: DeliveryAttempt): Promise<void> {
      return new Promise<void>((resolve, reject) => {
        calls.push({
          a,
          take: () => {
            written.push(a.firstSeq);
            resolve();
          },
          refuse: () => reject(new StoreError('unavailable', 'the store is closing', 'CLOSED')),
        });
      });
    },
  };
}

describe('keptJournal with writes in flight', () => {
  it('never gives up the record being written when new ones arrive at the bound', async () => {
    const clock = new FakeClock();
    const db = gatedStore();
    const { logger, errors } = logs();
    const journal = keptJournal(db, clock, logger, { maxPending: 3, retryMs: 1_000 });
    for (let seq = 1; seq <= 3; seq++) {
      const w = journal.recordAttempt(attempt(seq));
      await settle();
      db.calls.at(-1)?.refuse();
      await w;
    }
    expect(journal.pending()).toBe(3);
    await clock.advance(1_000); // the flush is writing 1
    expect(db.calls.at(-1)!.a.firstSeq).toBe(1);
    await journal.recordAttempt(attempt(4)); // arrives while 1 is in flight: 2, 3, 4 held, none given up
    for (let i = 0; i < 4; i++) {
      db.calls.at(-1)!.take();
      await settle();
    }
    expect(db.written).toEqual([1, 2, 3, 4]);
    expect(errors).toEqual([]);
  });

  it('waits on stop for the writes under way, and logs what the closing store then refused', async () => {
    const clock = new FakeClock();
    const db = gatedStore();
    const { logger, errors } = logs();
    const journal = keptJournal(db, clock, logger);
    const w = journal.recordAttempt(attempt(1));
    let stopped = false;
    const stopping = journal.stop().then(() => (stopped = true));
    await settle();
    expect(stopped).toBe(false); // the write of 1 is still under way
    db.calls[0]!.refuse(); // the store closes under it
    await settle();
    db.calls[1]!.refuse(); // the last try
    await stopping;
    await w;
    expect(errors).toEqual([{ fields: { notWritten: 1 }, msg: expect.stringContaining('not taken') }]);
    // Refused after the stop: logged, not held where nothing would write it.
    const late = journal.recordAttempt(attempt(2));
    await settle();
    db.calls[2]!.refuse();
    await late;
    expect(journal.pending()).toBe(0);
    expect(errors.map((e) => e.msg)).toContain('delivery attempt record not written: the store refused it after the journal stopped');
  });

  it('gives up on stop after stopWithinMs when the store leaves a write unanswered', async () => {
    const clock = new FakeClock();
    const db = gatedStore();
    const { logger } = logs();
    const journal = keptJournal(db, clock, logger, { stopWithinMs: 5_000 });
    void journal.recordAttempt(attempt(1)); // never answered
    let stopped = false;
    const stopping = journal.stop().then(() => (stopped = true));
    await clock.advance(4_999);
    expect(stopped).toBe(false);
    await clock.advance(1);
    await stopping;
  });

  /** Record 1 refused, held, its retry under way and unanswered when stop() gives up waiting (5 s). */
  const stoppedWithRetryUnderWay = async () => {
    const clock = new FakeClock();
    const db = gatedStore();
    const { logger, errors } = logs();
    const journal = keptJournal(db, clock, logger, { retryMs: 1_000, stopWithinMs: 5_000 });
    const first = journal.recordAttempt(attempt(1));
    await settle();
    db.calls[0]!.refuse();
    await first;
    await clock.advance(1_000);
    expect(db.calls).toHaveLength(2);
    const stopping = journal.stop();
    await clock.advance(5_000);
    await stopping;
    return { db, errors, journal };
  };

  it('tries a record that arrives after stop on its own, even while a flush stop gave up on is still under way', async () => {
    const { db, journal } = await stoppedWithRetryUnderWay();
    const late = journal.recordAttempt(attempt(2)); // a worker given up without waiting ends its call
    await settle();
    expect(db.calls.map((c) => c.a.firstSeq)).toEqual([1, 1, 2]);
    db.calls[2]!.take();
    await late;
    expect(db.written).toEqual([2]);
  });

  it('logs a held record whose retry the store answers only after stop gave up on it', async () => {
    const { db, errors, journal } = await stoppedWithRetryUnderWay();
    db.calls[1]!.refuse();
    await settle();
    expect(journal.pending()).toBe(0);
    expect(errors.map((e) => e.msg)).toEqual(['delivery attempt record not written: the store refused it after the journal stopped']);
  });
});

describe('keptJournal over a real store whose answer is lost after it took the write', () => {
  it('writes the record again, and the store keeps it once', async () => {
    const backend = openSqliteBackend(join(mkdtempSync(join(tmpdir(), 'opendip-journal-')), 'dip.db'), { clock: systemClock });
    try {
      await backend.log.append(batch([message(['SUP0000001'])]));
      let lost = 0;
      /** The store's answer to the latest write (real I/O: the fake clock does not wait for it). */
      let answered: Promise<void> = Promise.resolve();
      // Committed, then the answer lost (a connection cut just after COMMIT): the journal sees `unavailable`.
      const ambiguous = {
        recordAttempt(a: DeliveryAttempt): Promise<void> {
          const write = backend.archive.recordAttempt(a).then(() => {
            if (lost++ === 0) throw new StoreError('unavailable', 'Connection terminated unexpectedly', null);
          });
          answered = write.catch(() => {});
          return write;
        },
      };
      const clock = new FakeClock();
      const { logger, errors } = logs();
      const journal = keptJournal(ambiguous, clock, logger, { retryMs: 1_000 });
      const record = { ...attempt(1), queue: sup };
      await journal.recordAttempt(record);
      expect(journal.pending()).toBe(1); // held: as far as the journal knows, it was not written
      await clock.advance(1_000);
      await answered;
      await settle();
      expect(lost).toBe(2); // written again
      expect(journal.pending()).toBe(0);
      expect((await backend.archive.attempts(sup, 10)).map((a) => [a.attemptId, a.firstSeq])).toEqual([[record.attemptId, 1]]);
      expect(errors).toEqual([]);
    } finally {
      await backend.close();
    }
  });
});

describe('deliveryJournal', () => {
  const delivered = async (metrics: DipMetrics): Promise<string | undefined> => /^dip_delivery_attempts_total\{verdict="delivered"\} (\d+)$/m.exec(await metrics.text())?.[1];

  it('counts a call once in the metrics, however many times its record is tried before the store takes it', async () => {
    const clock = new FakeClock();
    const db = store();
    const { logger } = logs();
    const metrics = new DipMetrics(async () => []);
    const journal = deliveryJournal(db, metrics, clock, logger, { retryMs: 1_000 });
    db.state = 'unavailable';
    await journal.recordAttempt(attempt(1));
    await clock.advance(1_000); // refused again
    db.state = 'up';
    await clock.advance(2_000);
    expect(db.tries).toBe(3);
    expect(db.written).toEqual([1]);
    expect(await delivered(metrics)).toBe('1');
    // What it holds is the kept journal's: pending and stop pass through.
    expect(journal.pending()).toBe(0);
    await journal.recordAttempt(attempt(2));
    expect(await delivered(metrics)).toBe('2');
    await journal.stop();
  });
});
