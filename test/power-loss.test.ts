/**
 * Power loss while messages stream in: what survives is what the DIP synced, not what it wrote.
 *
 * test/crash-recovery.test.ts kills `dip serve` with SIGKILL, but a killed process's writes are already
 * in the kernel's page cache and reach the disk anyway: that test would pass with no fsync at all. A
 * power cut also drops the page cache. This machine has no device-mapper (no `log-writes`/`flakey`
 * target), so the cut is simulated in the process: test/helpers/power-loss-shim.c, built here with the
 * system C compiler and loaded with LD_PRELOAD into the DIP only, keeps every write to dip.db and its
 * WAL in its own memory until an fsync/fdatasync of that file, and reads see those writes. After a
 * SIGKILL the files hold exactly what was synced, plus (in the first test) a random quarter of the
 * later pages, as if the kernel had written some back on its own before the power went.
 *
 * 1. Several senders stream signed batches to several recipients; the DIP is cut mid-stream, after a
 *    SQLite checkpoint and with acknowledged batches that only the store's own WAL sync keeps, and is
 *    restarted without the shim. Every message that got a 201 must reach every recipient, under the
 *    transaction ID it was acknowledged with and no other, in the order the 201s imply, at contiguous
 *    queue positions; sent again, each is refused as a duplicate; new batches take the next positions.
 * 2. Negative control, so that (1) cannot pass vacuously: the shim drops the store's own WAL
 *    fdatasync (issued from Node's thread pool) while still honouring SQLite's checkpoint syncs. The
 *    DIP code is unchanged; only its disk lies to it. Acknowledged messages must then be lost, and the
 *    same check as in (1) must find them missing.
 *
 * Limits: torn writes inside a 4 KiB page, lost directory entries (file creation, unlink) and device
 * caches that ignore a flush are not simulated; the -shm file is removed before the restart (its unsynced
 * state lost with the power; SQLite rebuilds it from the WAL on the first open after a crash). The shim is Linux/glibc-only and needs a C compiler: without one
 * the tests are skipped, saying so.
 */
import { spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DipClient } from '../src/client/dip-client.js';
import { MSG } from '../src/domain/response-codes.js';
import { startWebhookReceiver, type ReceivedCall } from '../src/client/webhook-receiver.js';
import type { KeyAndCert } from '../src/security/pki.js';
import { buildIF021 } from '../src/sim/messages.js';
import { waitFor } from './helpers/dip-harness.js';
import { clientOf, freePort, killDipProcess, onboardDirect, startDipProcess, type OnboardedParticipant } from './helpers/dip-process.js';

type Json = Record<string, any>;

const SENDERS = ['2000000001', '2000000002'];
const SUPPLIERS = ['1000000001', '1000000002'];
/** IF-021 always goes to the MDS as well as to the supplier named as primary recipient. */
const MDS = '4000000001';
const RECIPIENTS = [...SUPPLIERS, MDS];

/** Builds the shim with the system compiler; a reason instead when this machine cannot. */
function buildShim(): { path: string } | { skip: string } {
  if (process.platform !== 'linux') return { skip: `the power-loss shim is an LD_PRELOAD library for Linux; this is ${process.platform}` };
  const out = join(mkdtempSync(join(tmpdir(), 'opendip-shim-')), 'power-loss-shim.so');
  const source = join(import.meta.dirname, 'helpers', 'power-loss-shim.c');
  for (const cc of [process.env.CC, 'cc', 'gcc', 'clang'].filter((c): c is string => !!c)) {
    const r = spawnSync(cc, ['-shared', '-fPIC', '-O2', '-Wall', '-Werror', '-o', out, source, '-ldl', '-lpthread'], { encoding: 'utf8' });
    const error: NodeJS.ErrnoException | undefined = r.error;
    if (error?.code === 'ENOENT') continue;
    if (r.status !== 0) throw new Error(`${cc} could not build ${source}:\n${r.stderr}`);
    return { path: out };
  }
  return { skip: 'no C compiler (cc, gcc or clang) on PATH: the power-loss shim cannot be built' };
}

interface Item {
  ref: string;
  tx: string;
  recipients: string[];
}
/** One acknowledged batch; sentAt/answeredAt are ticks of one logical clock across all senders. */
interface Batch {
  sender: string;
  /** The items as sent. */
  sent: unknown[];
  items: Item[];
  sentAt: number;
  answeredAt: number;
  /** Lines in the shim's log when it was sent. */
  logAt: number;
}
/** A recipient saw message `tx` (reference `ref`) at queue position `seq`. */
interface Sighting {
  seq: number;
  tx: string;
  ref: string;
}

/** A data directory with onboarded participants, and the DIP running on it in its own process. */
class Scenario {
  readonly dataDir = mkdtempSync(join(tmpdir(), 'opendip-power-'));
  readonly shimLog = join(this.dataDir, 'shim.log');
  child: ChildProcess | undefined;
  private ca!: KeyAndCert;
  private participants!: Map<string, OnboardedParticipant>;
  private clients = new Map<string, DipClient>();
  private closers: Array<() => Promise<void>> = [];
  port = 0;
  private clock = 0;
  private next = 0;
  readonly batches: Batch[] = [];

  async onboard(): Promise<void> {
    // resubmitAll() sends every acknowledged batch at once, a burst a DIP rightly sheds with 503 when it is
    // behind (README, overload); this test is about durability, so the DIP takes the whole burst.
    writeFileSync(join(this.dataDir, 'dip.config.yaml'), 'overload:\n  delayCountsFromSubmissions: 100000\n  maxSubmissionsInFlight: 100000\n  maxBytesInFlight: 1099511627776\n  maxBytesArriving: 1099511627776\n  maxBytesArrivingPerSender: 1099511627776\n');
    const onboarded = await onboardDirect(this.dataDir, [
      ...SENDERS.map((dipId) => ({ dipId, role: 'SDS' })),
      ...SUPPLIERS.map((dipId) => ({ dipId, role: 'SUP' })),
      { dipId: MDS, role: 'MDS' },
    ]);
    this.ca = onboarded.ca;
    this.participants = onboarded.participants;
    this.port = await freePort();
  }

  /** `dip serve` with the shim between it and its database files. */
  async startUnderShim(shim: string, options: Record<string, string>): Promise<void> {
    this.child = await startDipProcess(this.dataDir, this.port, {
      LD_PRELOAD: shim,
      POWERLOSS_PREFIX: join(this.dataDir, 'dip.db'),
      POWERLOSS_LOG: this.shimLog,
      // libuv may submit file I/O through io_uring, which no LD_PRELOAD library sees: keep it on syscalls.
      UV_USE_IO_URING: '0',
      // One process: the shim's stand-in for the page cache lives in the memory of the process it is loaded
      // into, whereas the kernel's is shared, so a delivery process reading the same file would see a disk
      // no real machine shows. Delivery processes after a crash are covered by test/crash-recovery.test.ts.
      DIP_WORKERS: '1',
      // Ingest on the listeners' thread: an ingest thread only reads (through the same shim, in the same
      // process), but compiling its validators beside the main thread's at every start of this test's
      // several starts costs more than its time budget on a loaded machine. Threads across a kill -9 are
      // covered by test/crash-recovery.test.ts.
      DIP_INGEST_THREADS: '0',
      ...options,
    });
  }

  async restartWithoutShim(): Promise<void> {
    // The shim keeps the unsynced writes of dip.db and its WAL from the disk, but not the -shm's (a shared
    // mapping it does not see), which a power cut loses too: the wal-index reaches the disk only when the
    // kernel writes it back. Left as the killed process wrote it, it would count the frames of the group
    // whose sync the cut interrupted, which the DIP's start-up check (src/adapters/sqlite/wal-guard.ts)
    // rightly takes for lost ones. Removed, as after a cut that came before any write-back of it.
    rmSync(join(this.dataDir, 'dip.db-shm'), { force: true });
    this.child = await startDipProcess(this.dataDir, this.port, { DIP_INGEST_THREADS: '0' });
  }

  client(dipId: string): DipClient {
    let c = this.clients.get(dipId);
    if (!c) {
      c = clientOf(this.participants.get(dipId)!, this.ca, this.port);
      this.clients.set(dipId, c);
      const client = c;
      this.closers.push(() => client.close());
    }
    return c;
  }

  /** Webhook receivers for every recipient, recording what each call delivered. */
  async webhooks(): Promise<Map<string, Sighting[]>> {
    const seen = new Map<string, Sighting[]>(RECIPIENTS.map((id) => [id, []]));
    for (const id of RECIPIENTS) {
      const r = await startWebhookReceiver({
        trustedCas: [this.ca.certPem],
        onCall: (c: ReceivedCall) => {
          expect(c.signature.ok).toBe(true);
          seen.get(id)!.push(...sightings(c.messages, c.firstSeq));
        },
      });
      this.closers.push(() => r.close());
      expect((await this.client(id).setWebhook('IF-021', id, { callbackURL: r.url, maxMessageCount: 20 })).status).toBe(201);
    }
    return seen;
  }

  /** Every message in each recipient's queue, by pull (for recipients without a webhook). */
  async pullAll(): Promise<Map<string, Sighting[]>> {
    const seen = new Map<string, Sighting[]>();
    for (const id of RECIPIENTS) {
      const list: Sighting[] = [];
      for (;;) {
        const answer = await this.client(id).pull('IF-021', id, 500);
        expect(answer.status).toBe(200);
        if (answer.body.length === 0) break;
        list.push(...sightings(answer.body, answer.firstSeq));
        expect((await this.client(id).ack('IF-021', id, answer.lastSeq!)).status).toBe(200);
      }
      seen.set(id, list);
    }
    return seen;
  }

  /** Submits one batch of ten from `sender`, each item to one supplier and the MDS; the batch if acknowledged. */
  async submit(sender: string, n: number): Promise<Batch | null> {
    const built = Array.from({ length: 10 }, (_, i) => {
      const supplier = SUPPLIERS[(n + i) % SUPPLIERS.length]!;
      const item = buildIF021({ senderDipId: sender, senderRole: 'SDS', primaryRecipients: [supplier], uniqueSuffix: `p${sender}n${n}i${i}` });
      return { item, recipients: [supplier, MDS] };
    });
    const logAt = this.logLines().length;
    const sentAt = ++this.clock;
    const answer = await this.client(sender).submit('IF-021', built.map((b) => b.item));
    const answeredAt = ++this.clock;
    if (answer.status !== 201) return null;
    const items = answer.body.messageArray.map((e, i) => ({
      ref: (built[i]!.item as Json).payload.CommonBlock.S1.senderUniqueReference as string,
      tx: e.transactionID!,
      recipients: built[i]!.recipients,
    }));
    const batch = { sender, sent: built.map((b) => b.item), items, sentAt, answeredAt, logAt };
    this.batches.push(batch);
    return batch;
  }

  /** Every sender submits batch after batch, one request at a time, until told to stop or the DIP dies. */
  stream(): { stop: () => Promise<void>; accepted: () => number } {
    let streaming = true;
    const loops = SENDERS.map(async (sender) => {
      while (streaming) {
        try {
          await this.submit(sender, this.next++);
        } catch {
          return; // the connection died with the DIP
        }
      }
    });
    return {
      stop: async () => {
        streaming = false;
        await Promise.all(loops);
      },
      accepted: () => this.batches.length * 10,
    };
  }

  /**
   * Sends every acknowledged batch again: a DIP that still holds them refuses each item as a duplicate
   * (MSG1006). Returns the references it accepted or answered otherwise, i.e. had forgotten.
   */
  async resubmitAll(): Promise<string[]> {
    const answers = await Promise.all(this.batches.map(async (b) => ({ b, answer: await this.client(b.sender).submit('IF-021', b.sent) })));
    return answers.flatMap(({ b, answer }) =>
      answer.body.messageArray.flatMap((e, i) => (answer.status === 400 && e.message === MSG.duplicateReference ? [] : [`${b.items[i]!.ref}: ${answer.status} ${e.message}`])),
    );
  }

  /**
   * Acknowledged batches sent after SQLite's last checkpoint (the shim's last sync of dip.db itself):
   * their commits are in the WAL after it, kept by nothing but the store's own WAL sync.
   */
  exposed(): number {
    const last = this.logLines().lastIndexOf(`sync ${join(this.dataDir, 'dip.db')}`);
    return last < 0 ? 0 : this.batches.filter((b) => b.logAt > last).length;
  }

  logLines(): string[] {
    return existsSync(this.shimLog) ? readFileSync(this.shimLog, 'utf8').split('\n').filter((l) => l !== '') : [];
  }

  async close(): Promise<void> {
    if (this.child) await killDipProcess(this.child);
    for (const c of this.closers) await c();
  }
}

const sightings = (messages: unknown[], firstSeq: number | null): Sighting[] =>
  messages.map((m, i) => {
    const block = (m as Json).payload.CommonBlock;
    return { seq: firstSeq! + i, tx: block.D0.transactionID as string, ref: block.S1.senderUniqueReference as string };
  });

/**
 * What a recipient must see of the acknowledged batches: each message at least once (a repeat is
 * the same message at the same position), under the transaction ID of its 201 and no other, positions
 * 1..n without gaps, and in the order the answers imply: within a batch as sent, and a batch answered
 * before another was sent comes first. Returns the acknowledged messages never seen, per recipient,
 * and every other violation.
 */
function checkDelivery(batches: Batch[], seen: Map<string, Sighting[]>): { missing: Map<string, string[]>; problems: string[] } {
  const missing = new Map<string, string[]>();
  const problems: string[] = [];
  for (const id of RECIPIENTS) {
    const bySeq = new Map<number, string>();
    const position = new Map<string, number>();
    const txOfRef = new Map<string, Set<string>>();
    for (const s of seen.get(id)!) {
      const held = bySeq.get(s.seq);
      if (held !== undefined && held !== s.tx) problems.push(`${id}: position ${s.seq} held ${held} and then ${s.tx}`);
      bySeq.set(s.seq, s.tx);
      if (!position.has(s.tx)) position.set(s.tx, s.seq);
      txOfRef.set(s.ref, (txOfRef.get(s.ref) ?? new Set()).add(s.tx));
    }
    const seqs = [...bySeq.keys()].sort((a, b) => a - b);
    if (seqs.some((s, i) => s !== i + 1)) problems.push(`${id}: positions are not 1..${seqs.length} without gaps`);
    for (const [ref, txs] of txOfRef) if (txs.size > 1) problems.push(`${id}: ${ref} arrived under ${txs.size} transaction IDs (${[...txs].join(', ')})`);

    const mine = batches.map((b) => ({ ...b, items: b.items.filter((i) => i.recipients.includes(id)) })).filter((b) => b.items.length > 0);
    const lost: string[] = [];
    for (const b of mine) {
      for (const item of b.items) {
        if (!position.has(item.tx)) lost.push(item.tx);
        const refTxs = txOfRef.get(item.ref);
        if (refTxs && !refTxs.has(item.tx)) problems.push(`${id}: ${item.ref} was acknowledged as ${item.tx} but arrived as ${[...refTxs].join(', ')}`);
      }
      const at = b.items.map((i) => position.get(i.tx)).filter((p): p is number => p !== undefined);
      if (at.some((p, i) => i > 0 && p <= at[i - 1]!)) problems.push(`${id}: batch sent at tick ${b.sentAt} arrived out of order`);
    }
    if (lost.length > 0) missing.set(id, lost);
    for (const earlier of mine) {
      const last = Math.max(...earlier.items.map((i) => position.get(i.tx) ?? -Infinity));
      for (const later of mine) {
        if (earlier.answeredAt >= later.sentAt) continue;
        const first = Math.min(...later.items.map((i) => position.get(i.tx) ?? Infinity));
        if (first <= last) problems.push(`${id}: a batch sent at tick ${later.sentAt} arrived before one acknowledged at tick ${earlier.answeredAt}`);
      }
    }
  }
  return { missing, problems };
}

const walSyncs = (lines: string[]): number => lines.filter((l) => l.startsWith('sync ') && l.endsWith('-wal')).length;

describe('power loss (unsynced writes dropped) while messages stream in', () => {
  let shim: { path: string } | { skip: string };
  const scenarios: Scenario[] = [];
  beforeAll(() => {
    shim = buildShim();
  });
  afterAll(async () => {
    for (const s of scenarios) await s.close();
  });

  it('delivers every message that got a 201 to every recipient, once per transaction ID, in order, at contiguous positions', async (ctx) => {
    if ('skip' in shim) return ctx.skip(shim.skip);
    const run = new Scenario();
    scenarios.push(run);
    await run.onboard();
    // Which unsynced pages reach the disk early differs per run; a failure names the seed.
    const seed = String(Date.now());
    await run.startUnderShim(shim.path, { POWERLOSS_WRITEBACK_PERCENT: '25', POWERLOSS_SEED: seed });
    const seen = await run.webhooks();

    // Cut the power mid-stream once SQLite has checkpointed (the database file itself then went through
    // the shim too, and the WAL started over) and five acknowledged batches were sent after the last
    // checkpoint, so that only the store's own WAL sync keeps them. Should another checkpoint slip in
    // between that look and the cut and cover them all, the DIP comes back under the shim (recovering
    // from the cut) and is cut again.
    for (let cut = 1; ; cut++) {
      if (cut > 1) await run.startUnderShim(shim.path, { POWERLOSS_WRITEBACK_PERCENT: '25', POWERLOSS_SEED: seed + cut });
      const stream = run.stream();
      await waitFor(() => run.exposed() >= 5, 30_000, 'a checkpoint and five acknowledged batches after it');
      await killDipProcess(run.child!);
      await stream.stop();
      if (run.exposed() > 0) break;
      expect(cut, 'three cuts in a row came right after a checkpoint').toBeLessThan(3);
    }

    await run.restartWithoutShim();
    // The DIP still knows every reference it acknowledged, and carries on from where its queues were:
    // new batches take the next positions (a forgotten tail would be handed out again to new messages).
    expect(await run.resubmitAll(), `early-writeback seed ${seed}`).toEqual([]);
    for (const sender of SENDERS) for (let n = 0; n < 3; n++) expect(await run.submit(sender, 2_000_000 + n)).not.toBeNull();
    const delivered = () => checkDelivery(run.batches, seen);
    await waitFor(() => delivered().missing.size === 0, 20_000, 'every acknowledged message at every recipient').catch(() => {});
    expect(Object.fromEntries([...delivered().missing].map(([id, txs]) => [id, `${txs.length} acknowledged messages never delivered`])), `seed ${seed}`).toEqual({});
    expect(delivered().problems, `seed ${seed}`).toEqual([]);
  }, 60_000);

  it('negative control: with the store’s WAL fdatasync dropped, acknowledged messages are lost', async (ctx) => {
    if ('skip' in shim) return ctx.skip(shim.skip);
    const run = new Scenario();
    scenarios.push(run);
    await run.onboard();
    // No webhooks: nothing writes to the database unless this test sends a batch, so the log below
    // tells exactly which acknowledged batch no sync ever covered.
    await run.startUnderShim(shim.path, { POWERLOSS_DROP_STORE_WAL_SYNCS: '1' });
    const stream = run.stream();
    await waitFor(() => stream.accepted() >= 100, 20_000, '100 accepted messages');
    await stream.stop();

    // One more batch; if a checkpoint synced the WAL after it was sent, its commit is on disk: try another.
    let probe: Batch | null = null;
    let mark = 0;
    for (let n = 0; n < 20 && !probe; n++) {
      mark = run.logLines().length;
      const b = await run.submit(SENDERS[0]!, 1_000_000 + n);
      expect(b).not.toBeNull();
      const since = run.logLines().slice(mark);
      // The store's own sync, dropped: if it no longer runs off the main thread, this control cannot single it out.
      expect(since.some((l) => l.startsWith('drop ') && l.endsWith('-wal')), 'no WAL sync from the thread pool was dropped').toBe(true);
      if (walSyncs(since) === 0) probe = b;
    }
    expect(probe, 'every probe batch was covered by a checkpoint').not.toBeNull();
    await killDipProcess(run.child!);
    expect(walSyncs(run.logLines().slice(mark)), 'something wrote and checkpointed between the probe and the cut').toBe(0);

    await run.restartWithoutShim();
    // Both checks of the first test see the loss: the probe's messages reach none of their recipients,
    // and the DIP takes its references again as new.
    const { missing } = checkDelivery(run.batches, await run.pullAll());
    for (const id of RECIPIENTS) {
      expect(missing.get(id) ?? []).toEqual(expect.arrayContaining(probe!.items.filter((i) => i.recipients.includes(id)).map((i) => i.tx)));
    }
    const forgotten = await run.resubmitAll();
    for (const item of probe!.items) expect(forgotten).toContain(`${item.ref}: 201 ${MSG.success}`);
  }, 60_000);
});
