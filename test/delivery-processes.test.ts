import type { ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import parsePrometheusTextFormat, { type PrometheusFamily } from 'parse-prometheus-text-format';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startWebhookReceiver, type ReceivedCall } from '../src/client/webhook-receiver.js';
import { buildIF021 } from '../src/sim/messages.js';
import { waitFor } from './helpers/dip-harness.js';
import { alive, clientOf, deliveryPids, freePort, killDipProcess, onboardDirect, startDipProcess, transactionIdOf, type OnboardedParticipant } from './helpers/dip-process.js';
import type { KeyAndCert } from '../src/security/pki.js';
import { DEFAULTS } from '../src/config.js';
import { deliveryProcessAlarms, haltedQueueAlarms } from '../src/pipeline/alarm-sources.js';
import type { Delivery } from '../src/pipeline/delivery.js';
import type { WorkerStatus } from '../src/pipeline/queue-worker.js';
import type { Logger } from '../src/ports/logger.js';
import { DeliveryProcesses, RESTART_WINDOW_MS, type Child, type MainSide } from '../src/topology/delivery-processes.js';
import type { FromWorker, ToWorker } from '../src/topology/protocol.js';
import { FakeClock } from './helpers/clocks.js';

/**
 * `dip serve` with DIP_WORKERS=2: the main process and one delivery process, which works every recipient
 * queue. The delivery process's own polls of the registry are set to an hour, so whatever it learns in
 * this test it learned from the main process's push (src/topology/shared-state.ts).
 */
describe('delivery processes (DIP_WORKERS=2)', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'opendip-procs-'));
  let child: ChildProcess | undefined;
  let adminPort = 0;
  let port = 0;
  let ca: KeyAndCert;
  let participants: Map<string, OnboardedParticipant>;
  const closers: Array<() => Promise<void>> = [];

  beforeAll(async () => {
    // A delivery process silent for 5 s is taken as hung (the default is 30 s): the last test stops one.
    writeFileSync(join(dataDir, 'dip.config.yaml'), 'workerPollMs: 3600000\nworkerHungMs: 5000\n');
    port = await freePort();
    adminPort = await freePort();
    child = await startDipProcess(dataDir, port, { DIP_WORKERS: '2', DIP_ADMIN_PORT: String(adminPort) });
    expect(deliveryPids(child.pid!)).toHaveLength(1);
    // Onboarded from another process, as the CLI does: the main process's watcher sees it and tells the delivery process.
    ({ ca, participants } = await onboardDirect(dataDir, [
      { dipId: '2000000001', role: 'SDS' },
      { dipId: '1000000001', role: 'SUP' },
    ]));
  }, 120_000);
  afterAll(async () => {
    if (child) await killDipProcess(child);
    for (const c of closers) await c();
  });

  const clientFor = (id: string) => {
    const client = clientOf(participants.get(id)!, ca, port);
    closers.push(() => client.close());
    return client;
  };
  const receiver = async () => {
    const calls: ReceivedCall[] = [];
    const r = await startWebhookReceiver({ trustedCas: [ca.certPem], onCall: (c) => calls.push(c) });
    closers.push(() => r.close());
    const seen = () => calls.flatMap((c) => c.messages.map(transactionIdOf));
    return { url: r.url, seen };
  };

  it('uses a webhook registered through the API at once, not at its next poll', async () => {
    const sender = clientFor('2000000001');
    const supplier = clientFor('1000000001');
    const submit = async (tag: string): Promise<string> => {
      const answer = await sender.submit('IF-021', [buildIF021({ senderDipId: '2000000001', senderRole: 'SDS', primaryRecipients: ['1000000001'], uniqueSuffix: tag })]);
      expect(answer.status).toBe(201);
      return answer.body.messageArray[0]!.transactionID!;
    };
    const first = await receiver();
    const second = await receiver();

    expect((await supplier.setWebhook('IF-021', '1000000001', { callbackURL: first.url })).status).toBe(201);
    const a = await submit('p1');
    await waitFor(() => first.seen().includes(a), 60_000, 'the first message at the first webhook');

    // Moved: the very next message goes to the new URL (with the old view it would go to the first receiver).
    expect((await supplier.setWebhook('IF-021', '1000000001', { callbackURL: second.url })).status).toBe(201);
    const b = await submit('p2');
    await waitFor(() => second.seen().includes(b), 60_000, 'the second message at the second webhook');
    expect(first.seen()).toEqual([a]);
  }, 180_000);

  it("exports every process's CPU and memory, the delivery process's as process=\"delivery-1\"", async () => {
    const token = readFileSync(join(dataDir, 'admin-token'), 'utf8').trim();
    const scrape = async (): Promise<PrometheusFamily[]> => {
      const res = await fetch(`http://127.0.0.1:${adminPort}/metrics`, { headers: { authorization: `Bearer ${token}` } });
      expect(res.status).toBe(200);
      return parsePrometheusTextFormat(await res.text());
    };
    const value = (all: PrometheusFamily[], name: string, process: string): number | undefined => {
      const m = all.find((f) => f.name === name)?.metrics.find((s) => s.labels?.process === process);
      return m ? Number(m.value) : undefined;
    };
    let all: PrometheusFamily[] = [];
    // The delivery process reports its usage with its status, each second.
    await waitFor(async () => value((all = await scrape()), 'dip_process_process_cpu_seconds_total', 'delivery-1') !== undefined, 30_000, 'the delivery process usage');
    expect(all.find((f) => f.name === 'dip_process_process_cpu_seconds_total')?.type).toBe('COUNTER');
    for (const process of ['main', 'delivery-1']) {
      expect(value(all, 'dip_process_process_cpu_seconds_total', process), process).toBeGreaterThan(0);
      expect(value(all, 'dip_process_process_cpu_user_seconds_total', process), process).toBeGreaterThan(0);
      expect(value(all, 'dip_process_process_resident_memory_bytes', process), process).toBeGreaterThan(10 * 1024 * 1024);
      expect(value(all, 'dip_process_nodejs_heap_size_used_bytes', process), process).toBeGreaterThan(0);
    }
    // Two processes' figures, not one figure twice: the main process compiled the validators, the delivery process none.
    expect(value(all, 'dip_process_process_cpu_seconds_total', 'main')).not.toBe(value(all, 'dip_process_process_cpu_seconds_total', 'delivery-1'));
    expect(value(all, 'dip_delivery_process_restarts', 'delivery-1')).toBe(0);
  }, 60_000);

  it('kills a delivery process that stops reporting (SIGSTOP) and starts another: its queue goes on, each message at one position', async () => {
    const sender = clientFor('2000000001');
    const calls: ReceivedCall[] = [];
    const r = await startWebhookReceiver({ trustedCas: [ca.certPem], onCall: (c) => calls.push(c) });
    closers.push(() => r.close());
    expect((await clientFor('1000000001').setWebhook('IF-021', '1000000001', { callbackURL: r.url, maxMessageCount: 2 })).status).toBe(201);
    const [stuck] = deliveryPids(child!.pid!);
    // Stopped, not dead: no exit tells the main process. Before, its queues waited for as long as it stayed stopped.
    process.kill(stuck!, 'SIGSTOP');
    // If this test fails before the main process kills it, a stopped process would outlive the run: end it.
    closers.push(async () => {
      if (alive(stuck!)) process.kill(stuck!, 'SIGKILL');
    });
    const sent: string[] = [];
    for (let i = 0; i < 5; i++) {
      const answer = await sender.submit('IF-021', [buildIF021({ senderDipId: '2000000001', senderRole: 'SDS', primaryRecipients: ['1000000001'], uniqueSuffix: `hung${i}` })]);
      expect(answer.status).toBe(201);
      sent.push(answer.body.messageArray[0]!.transactionID!);
    }
    await waitFor(() => deliveryPids(child!.pid!).some((p) => p !== stuck), 30_000, 'a new delivery process');
    await waitFor(() => !alive(stuck!), 10_000, 'the stopped process gone');
    const bySeq = new Map<number, string>();
    const seen = () => calls.flatMap((c) => c.messages.map(transactionIdOf));
    await waitFor(() => sent.every((t) => seen().includes(t)), 60_000, 'every message at the webhook');
    for (const c of calls) c.messages.forEach((m, i) => {
      const tx = transactionIdOf(m);
      expect(bySeq.get(c.firstSeq! + i) ?? tx).toBe(tx);
      bySeq.set(c.firstSeq! + i, tx);
    });
    expect([...bySeq.entries()].sort(([a], [b]) => a - b).map(([, t]) => t).filter((t) => sent.includes(t))).toEqual(sent);
  }, 90_000);
});

/** A forked delivery process as DeliveryProcesses sees it: what it sends is up to the test. */
class FakeChild extends EventEmitter {
  connected = true;
  exitCode: number | null = null;
  signalCode: NodeJS.Signals | null = null;
  constructor(readonly pid: number) {
    super();
  }
  /** What the main process told it. */
  readonly told: ToWorker[] = [];
  send(m: ToWorker, done?: () => void): boolean {
    this.told.push(m);
    if (m.t === 'stop') this.exit(0, null);
    done?.();
    return true;
  }
  kill(): boolean {
    this.exit(null, 'SIGKILL');
    return true;
  }
  say(m: FromWorker): void {
    this.emit('message', m);
  }
  exit(code: number | null, signal: NodeJS.Signals | null): void {
    if (!this.connected) return;
    this.connected = false;
    this.exitCode = code;
    this.signalCode = signal;
    queueMicrotask(() => this.emit('exit', code, signal));
  }
}

/**
 * The main process's side with fakes: no process is forked, and the watchdog, backoff and start timeout
 * run on a fake monotonic clock (`timers`) while `wall` is the wall clock, which a test may step.
 */
function restartHarness(config: Partial<typeof DEFAULTS> = {}) {
  const timers = new FakeClock(5_000_000);
  const clocks = { wall: Date.UTC(2026, 11, 3, 12, 0, 0) };
  const children: FakeChild[] = [];
  const died: Array<{ how: string; restartInMs: number }> = [];
  const logger: Logger = {
    info() {},
    warn() {},
    error(obj, msg) {
      if (msg?.startsWith('a delivery process died')) died.push(obj as { how: string; restartInMs: number });
    },
  };
  const main: MainSide = {
    config: { ...DEFAULTS, workerHungMs: 30_000, ...config },
    logger,
    now: () => clocks.wall,
    timers,
    durableHead: () => 0,
    settle: async () => 'settled',
    recordAttempt: async () => undefined,
    deadLettered() {},
    halted() {},
    health: () => ({ state: 'ok' }),
  };
  const processes = new DeliveryProcesses(1, main, () => {
    const c = new FakeChild(1000 + children.length);
    children.push(c);
    return c as unknown as Child;
  });
  const latest = (): FakeChild => children.at(-1)!;
  /** Moves the fake time on in small steps until `done` (at most `limitMs`). */
  const until = async (done: () => boolean, limitMs: number): Promise<void> => {
    for (let t = 0; !done(); t += 250) {
      expect(t, 'waited too long').toBeLessThan(limitMs);
      await timers.advance(250);
    }
  };
  /** Each second (as a delivery process does) for `ms`. */
  const reportFor = async (ms: number): Promise<void> => {
    for (let t = 0; t < ms; t += 1000) {
      latest().say({ t: 'status', workers: [], usage: { cpuUserSeconds: 0, cpuSystemSeconds: 0, residentBytes: 0, heapUsedBytes: 0, heapTotalBytes: 0 } });
      await timers.advance(1000);
    }
  };
  const alarms = deliveryProcessAlarms(() => processes.restartRuns());
  return { timers, clocks, children, died, processes, latest, until, reportFor, alarms };
}

describe('delivery process restarts: backoff and the delivery-process alarm (fake processes, injected time)', () => {
  it('one killed as hung again and again backs off (it worked only until it fell silent), and its third restart in 10 min raises the alarm, resolved once it has run 10 min', async () => {
    const h = restartHarness();
    const started = h.processes.start();
    h.latest().say({ t: 'ready' });
    await started;
    for (const [i, backoff] of [250, 500, 1000].entries()) {
      // It reports for 2 s, then hangs: killed some 30 s later (workerHungMs), more than 30 s after it started.
      await h.reportFor(2_000);
      await h.until(() => h.died.length === i + 1, 60_000);
      // Before, a process that lived 30 s counted as having worked, so each hang restarted after 0.25 s.
      expect(h.died[i]).toMatchObject({ how: 'killed as hung', restartInMs: backoff });
      // Raised at the third death in 10 min, not before.
      expect((await h.alarms()).length).toBe(i < 2 ? 0 : 1);
      await h.until(() => h.children.length === i + 2, backoff + 250);
      h.latest().say({ t: 'ready' });
    }
    // Raised (operators only), naming the process and how it last ended.
    const raised = await h.alarms();
    expect(raised).toEqual([
      {
        key: 'delivery-process:delivery-1',
        rule: 'delivery-process',
        participant: null,
        summary: 'delivery process delivery-1 restarted 3 times in 10 min (last: killed as hung): its queues wait while it is down; its log lines say why',
        since: h.clocks.wall,
      },
    ]);
    // Now it works: held until it has run 10 min since its last start, then resolved.
    await h.reportFor(RESTART_WINDOW_MS - 2_000);
    expect((await h.alarms()).map((c) => c.key)).toEqual(['delivery-process:delivery-1']);
    await h.reportFor(2_000);
    expect(await h.alarms()).toEqual([]);
    expect(h.died).toHaveLength(3);
    await h.processes.stop();
  });

  /** A started harness whose main process works no queue itself, with the queue-halted source over its workers' reports. */
  async function haltedHarness() {
    const h = restartHarness();
    const started = h.processes.start();
    h.latest().say({ t: 'ready' });
    await started;
    // This process works no queue itself: the halted worker is the delivery process's.
    const local = { start: async () => {}, stop: async () => {}, notify: () => {}, sweep: async () => {}, resume: () => false, status: (): WorkerStatus[] => [] };
    const control = h.processes.control(local as unknown as Delivery, Promise.resolve());
    const alarms = haltedQueueAlarms(() => control.status(), h.timers);
    const queue = { recipientDipId: '1000000001', channel: 'IF-021' };
    const usage = { cpuUserSeconds: 0, cpuSystemSeconds: 0, residentBytes: 0, heapUsedBytes: 0, heapTotalBytes: 0 };
    /** The delivery process now running reports its one worker. */
    const report = (state: WorkerStatus['state'], lastError: string | null = null): void =>
      h.latest().say({ t: 'status', workers: [{ queue, state, ackedSeq: 0, failures: 0, failingSince: null, lastError, retryAt: null }], usage });
    return { h, control, alarms, queue, report };
  }

  it("raises queue-halted for a queue a delivery process's worker halted, naming its error, and resolves it once resume reaches that process and the worker goes on", async () => {
    const { h, control, alarms, queue, report } = await haltedHarness();
    report('halted', 'damaged database: message 7 is missing');
    expect((await alarms()).map((c) => [c.key, c.participant, c.summary])).toEqual([
      ['queue-halted:1000000001/IF-021', null, 'queue 1000000001 / IF-021 is halted by a permanent storage error and nothing more is delivered from it: damaged database: message 7 is missing (repair it, then POST /admin/queues/resume)'],
    ]);
    // POST /admin/queues/resume: the main process tells the delivery process that holds the queue.
    expect(control.resume(queue)).toBe(true);
    expect(h.latest().told).toContainEqual({ t: 'resume', queue });
    report('working');
    expect(await alarms()).toEqual([]);
    await h.processes.stop();
  });

  it('keeps queue-halted raised while the delivery process that reported it restarts, until the new process reports', async () => {
    const { h, alarms, report } = await haltedHarness();
    report('halted', 'damaged');
    const key = ['queue-halted:1000000001/IF-021'];
    expect((await alarms()).map((c) => c.key)).toEqual(key);
    // It dies; while it restarts, and until the new one reports, the queue is still halted as far as anyone knows.
    h.latest().exit(1, null);
    await h.until(() => h.died.length === 1, 1_000);
    expect((await alarms()).map((c) => c.key)).toEqual(key);
    await h.until(() => h.children.length === 2, 1_000);
    h.latest().say({ t: 'ready' });
    expect((await alarms()).map((c) => c.key)).toEqual(key);
    report('working');
    expect(await alarms()).toEqual([]);
    await h.processes.stop();
  });

  it('measures on the monotonic clock: a wall-clock step neither kills a process that reports nor makes a quick crash look like one after long work', async () => {
    const h = restartHarness();
    const started = h.processes.start();
    h.latest().say({ t: 'ready' });
    await started;
    await h.reportFor(5_000);
    h.latest().exit(1, null);
    await h.until(() => h.died.length === 1, 1_000);
    expect(h.died[0]).toMatchObject({ how: 'died (code 1, signal null)', restartInMs: 250 });
    await h.until(() => h.children.length === 2, 500);
    h.latest().say({ t: 'ready' });
    // The wall clock steps an hour back, then two on, while it reports: nobody is killed.
    await h.reportFor(3_000);
    h.clocks.wall -= 3_600_000;
    await h.reportFor(10_000);
    h.clocks.wall += 7_200_000;
    await h.reportFor(10_000);
    expect(h.died).toHaveLength(1);
    // 23 s of work, then a crash: the second in a row, so it waits twice as long. By the wall clock it
    // worked an hour, and its backoff was reset to 250 ms.
    h.latest().exit(1, null);
    await h.until(() => h.died.length === 2, 1_000);
    expect(h.died[1]).toMatchObject({ restartInMs: 500 });
    await h.processes.stop();
  });

  it('kills one that never becomes ready (it stayed `starting` for ever), and restarts it after its backoff: a first start that fails does not fail the DIP', async () => {
    const h = restartHarness({ workerStartTimeoutMs: 20_000 });
    const started = h.processes.start().then(
      () => null,
      (err: unknown) => err,
    );
    // workerStartTimeoutMs, not a fixed 60 s: killed 20 s after it was forked.
    await h.until(() => h.died.length === 1, 21_000);
    expect(h.timers.now() - 5_000_000).toBeLessThanOrEqual(20_250);
    // `dip serve` awaits start(): the process is restarted like any that died, and the DIP runs meanwhile.
    expect(await started).toBeNull();
    expect(h.died[0]).toMatchObject({ how: 'died while starting (code null, signal SIGKILL)', restartInMs: 250 });
    expect(h.processes.processes()[0]).toMatchObject({ state: 'restarting', startedAt: null });
    await h.until(() => h.children.length === 2, 500);
    expect(h.processes.processes()[0]).toMatchObject({ state: 'starting' });
    h.latest().say({ t: 'ready' });
    await h.reportFor(2_000);
    expect(h.processes.processes()[0]).toMatchObject({ state: 'running', restarts: 1 });
    await h.processes.stop();
  });

  it('a restarted process shows no startedAt while it starts again (not the dead one\'s)', async () => {
    const h = restartHarness();
    const started = h.processes.start();
    h.latest().say({ t: 'ready' });
    await started;
    const first = h.processes.processes()[0]!.startedAt;
    expect(first).toBe(h.clocks.wall);
    await h.reportFor(2_000);
    h.latest().exit(1, null);
    await h.until(() => h.died.length === 1, 1_000);
    expect(h.processes.processes()[0]).toMatchObject({ state: 'restarting', startedAt: null });
    await h.until(() => h.children.length === 2, 500);
    expect(h.processes.processes()[0]).toMatchObject({ state: 'starting', startedAt: null });
    h.clocks.wall += 60_000;
    h.latest().say({ t: 'ready' });
    expect(h.processes.processes()[0]).toMatchObject({ state: 'running', startedAt: h.clocks.wall });
    await h.processes.stop();
  });
});
