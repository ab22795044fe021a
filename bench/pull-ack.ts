/**
 * What a pull's acknowledgement costs the store at a queue with a long delivery journal.
 * `npx tsx bench/pull-ack.ts [--journal 10000] [--acks 200] [--rounds 3]`
 *
 * One SQLite store (as `dip serve` opens it) per scenario, its queue holding `journal` delivery attempts:
 *  - steady: a puller acknowledging one position at a time, every journal row a delivered acknowledgement;
 *  - set aside: the journal's rows are refused webhook calls (no delivery among the newest 20), every
 *    position then set aside as stale; the puller acknowledges the settled position, again and again.
 * Each acknowledgement does the store work of POST …/ack: `before`, as the route did up to 2026-12-06
 * (its reads copied here from the removed src/pipeline/set-aside-unseen.ts: the journal's newest 20 rows,
 * then the dead letters among up to 10,000 named positions; the position moved by settle); `after`, as it
 * does now (MessageLog.acknowledge, then the dead letters within the range it gives). Both run on the same
 * store in alternating rounds, the journal record of an advancing acknowledgement in each.
 */
import { mkdtempSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { systemClock } from '../src/adapters/clock.js';
import { openSqliteBackend } from '../src/adapters/sqlite/index.js';
import { newAttemptId } from '../src/domain/attempt-id.js';
import { judgeAck } from '../src/domain/pull-positions.js';
import { setAsideUnseen } from '../src/pipeline/set-aside-unseen.js';
import type { Backend } from '../src/ports/backend.js';
import type { AcceptedMessage, QueueRef } from '../src/ports/message-log.js';
import { hostNow, round } from './lib/util.js';

const { values: flags } = parseArgs({
  options: {
    journal: { type: 'string', default: '10000' },
    acks: { type: 'string', default: '200' },
    rounds: { type: 'string', default: '3' },
  },
});
const JOURNAL = Number(flags.journal);
const ACKS = Number(flags.acks);
const ROUNDS = Number(flags.rounds);
const queue: QueueRef = { recipientDipId: 'SUP0000001', channel: 'IF-021' };

let n = 0;
const message = (): AcceptedMessage => {
  n += 1;
  return { transactionId: `T-IF-021-SDS0000001-SDS-20260101-${String(n).padStart(16, '0')}`, channel: 'IF-021', eventCode: 'ActivePower', senderDipId: 'SDS0000001', senderRole: 'SDS', senderUniqueReference: `ref-${n}`, correlationId: null, mpan: null, receivedAt: Date.now(), outbound: JSON.stringify({ n }), recipients: [queue.recipientDipId] };
};

async function append(b: Backend, count: number): Promise<void> {
  for (let done = 0; done < count; done += 500) {
    const messages = Array.from({ length: Math.min(500, count - done) }, message);
    await b.log.append({ channel: 'IF-021', senderDipId: 'SDS0000001', receivedAt: Date.now(), rawRequest: Buffer.from('[]'), signatureHeaders: '{}', messages });
  }
}

const attempt = (firstSeq: number, lastSeq: number, verdict: 'delivered' | 'retry') => {
  const startedAt = Date.now();
  return { attemptId: newAttemptId(startedAt, randomBytes), queue, firstSeq, lastSeq, url: verdict === 'delivered' ? 'pull' : 'https://sup.example/hook', startedAt, latencyMs: 0, status: verdict === 'delivered' ? null : 503, verdict, error: null };
};

/** The store work of one acknowledgement as the route did it before 2026-12-06; how many it named. */
async function ackBefore(b: Backend, sequence: number): Promise<number> {
  const state = await b.log.queueState(queue);
  const decision = judgeAck(state, sequence);
  if (decision.kind === 'refused') throw new Error(decision.help);
  const top = Math.min(sequence, state.ackedSeq);
  let named = 0;
  if (top >= 1) {
    const lastDelivered = (await b.archive.attempts(queue, 20)).find((a) => a.verdict === 'delivered')?.lastSeq ?? 0;
    const from = Math.max(lastDelivered, top - 10_000) + 1;
    if (from <= top) {
      const seqs = Array.from({ length: top - from + 1 }, (_, i) => from + i);
      named = (await b.deadLetters.deadLetters({ ...queue, seqs, limit: 20 })).length;
    }
  }
  if (decision.kind === 'advance') {
    await b.archive.recordAttempt(attempt(state.ackedSeq + 1, sequence, 'delivered'));
    await b.log.settle(queue, { upTo: sequence });
  }
  return named;
}

/** The store work of one acknowledgement as the route does it now; how many it named. */
async function ackAfter(b: Backend, sequence: number): Promise<number> {
  const state = await b.log.queueState(queue);
  const decision = judgeAck(state, sequence);
  if (decision.kind === 'refused') throw new Error(decision.help);
  if (decision.kind === 'advance') await b.archive.recordAttempt(attempt(state.ackedSeq + 1, sequence, 'delivered'));
  const from = await b.log.acknowledge(queue, sequence);
  return (await setAsideUnseen(b.deadLetters, queue, from, sequence)).length;
}

type Path = (b: Backend, sequence: number) => Promise<number>;

async function scenario(name: string, setup: (b: Backend) => Promise<void>, sequences: (round: number, path: 'before' | 'after') => number[]): Promise<void> {
  const b = openSqliteBackend(join(mkdtempSync(join(tmpdir(), 'opendip-bench-ack-')), 'dip.db'), { clock: systemClock });
  try {
    await setup(b);
    const times: Record<'before' | 'after', number[]> = { before: [], after: [] };
    const named: Record<'before' | 'after', number> = { before: 0, after: 0 };
    /** CPU time of the process (µs), less bent than the wall time by other work on the machine. */
    const cpu: Record<'before' | 'after', number> = { before: 0, after: 0 };
    for (let r = 0; r < ROUNDS; r++) {
      for (const [path, run] of [['before', ackBefore], ['after', ackAfter]] as Array<['before' | 'after', Path]>) {
        const c0 = process.cpuUsage();
        for (const seq of sequences(r, path)) {
          const t0 = hostNow();
          named[path] += await run(b, seq);
          times[path].push(hostNow() - t0);
        }
        const used = process.cpuUsage(c0);
        cpu[path] += used.user + used.system;
      }
    }
    for (const path of ['before', 'after'] as const) {
      const sorted = [...times[path]].sort((x, y) => x - y);
      const mean = sorted.reduce((s, x) => s + x, 0) / sorted.length;
      console.log(`${name} ${path}: ${sorted.length} acks, mean ${round(mean * 1000, 0)} µs, median ${round(sorted[sorted.length >> 1]! * 1000, 0)} µs, p95 ${round(sorted[Math.floor(sorted.length * 0.95)]! * 1000, 0)} µs, CPU ${round(cpu[path] / sorted.length, 0)} µs an ack; set-asides named ${named[path]}`);
    }
  } finally {
    await b.close();
  }
}

// Steady: JOURNAL delivered acknowledgements of one position each; then each round acknowledges ACKS more, one at a time.
await scenario(
  'steady',
  async (b) => {
    await append(b, JOURNAL + 2 * ROUNDS * ACKS);
    for (let seq = 1; seq <= JOURNAL; seq++) await b.archive.recordAttempt(attempt(seq, seq, 'delivered'));
    await b.log.settle(queue, { upTo: JOURNAL });
    await b.log.markPulled(queue, JOURNAL + 2 * ROUNDS * ACKS);
  },
  (r, path) => {
    const start = JOURNAL + (2 * r + (path === 'after' ? 1 : 0)) * ACKS;
    return Array.from({ length: ACKS }, (_, i) => start + i + 1);
  },
);

// Set aside: JOURNAL refused webhook calls, every position then set aside as stale; the settled position acknowledged again and again.
await scenario(
  'set aside',
  async (b) => {
    await append(b, JOURNAL);
    for (let seq = 1; seq <= JOURNAL; seq++) await b.archive.recordAttempt(attempt(1, 1, 'retry'));
    const entries = await b.log.readQueue(queue, 0, JOURNAL, 1 << 30);
    await b.log.settle(queue, { upTo: JOURNAL, deadLetters: entries.map((e) => ({ seq: e.seq, messageId: e.messageId, reason: 'stale' as const, status: null, detail: 'stale' })) });
  },
  () => Array.from({ length: ACKS }, () => JOURNAL),
);
