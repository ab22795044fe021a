import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { DipConfig } from '../config.js';
import type { Delivery, DeadLetterEvent } from '../pipeline/delivery.js';
import type { ProcessUsage } from '../pipeline/metrics.js';
import type { WorkerStatus } from '../pipeline/queue-worker.js';
import type { RestartRun } from '../pipeline/alarm-sources.js';
import type { DeliveryAttempt } from '../ports/archive.js';
import type { Backend, BackendHealth } from '../ports/backend.js';
import type { Cancel, Clock } from '../ports/clock.js';
import type { Logger } from '../ports/logger.js';
import type { QueueRef, SettleOutcome, Settlement } from '../ports/message-log.js';
import { MainProcessLeases } from './leases.js';
import { queueKey } from '../ports/queue-ref.js';
import { ownerOf, processName, toWire, type Call, type FromWorker, type ToWorker } from './protocol.js';
import { pushSharedChanges, type SharedState } from './shared-state.js';

/** What the API, the portals and the alarms ask of delivery, whichever processes run it. */
export type DeliveryControl = Pick<Delivery, 'notify' | 'sweep' | 'resume' | 'status' | 'start' | 'stop'>;

/** One delivery process as the operator sees it (GET /admin/health, /admin/processes, metrics). */
export interface ProcessView {
  index: number;
  /** delivery-1, delivery-2, … as logs and metrics label it. */
  name: string;
  pid: number | null;
  state: 'starting' | 'running' | 'restarting' | 'stopped';
  /** Times it was restarted after it died. */
  restarts: number;
  startedAt: number | null;
  /** CPU and memory as of its last status (each second); null until the first. */
  usage: ProcessUsage | null;
}

/** The main process's side of the writes and events a delivery process sends it. */
export interface MainSide {
  config: DipConfig;
  logger: Logger;
  /** The wall clock: what the views and the alarm report (startedAt, since). */
  now(): number;
  /**
   * Time that never steps, and its timers: the watchdog, the restarts' backoff and how long a process
   * worked or stayed up are measured on it, so a wall-clock step (NTP, `date -s`) can neither make a
   * healthy process look silent nor a crashing one look long-lived (src/adapters/clock.ts monotonicClock).
   */
  timers: Clock;
  /** The queue's highest durable position (src/adapters/sqlite: committed and synced). */
  durableHead(queue: QueueRef): number;
  settle(queue: QueueRef, settlement: Settlement): Promise<SettleOutcome>;
  recordAttempt(attempt: DeliveryAttempt): Promise<void>;
  deadLettered(events: DeadLetterEvent[], queues: QueueRef[]): void;
  halted(queue: QueueRef, error: string): void;
  health(): BackendHealth;
}

/** How long a stopping delivery process may take to finish its calls in flight before it is killed. */
const STOP_TIMEOUT_MS = 20_000;
const RESTART_FIRST_MS = 250;
const RESTART_MAX_MS = 10_000;
/**
 * A process that worked this long before it died restarts after RESTART_FIRST_MS again; one that died
 * sooner restarts after twice its last wait (up to RESTART_MAX_MS). Killed as hung, it worked until it
 * fell silent: the watchdog's wait is not work, so one that hangs again at once backs off too.
 */
const WORKED_MS = 30_000;
/**
 * A delivery process restarted RESTARTS_ALARMED times within RESTART_WINDOW_MS raises the
 * `delivery-process` alarm: each restart is a spell in which its queues wait, and a run of them (a crash
 * or hang it meets again at once) is for an operator to look into. Resolved once it has run for
 * RESTART_WINDOW_MS since its last start.
 */
export const RESTARTS_ALARMED = 3;
export const RESTART_WINDOW_MS = 10 * 60_000;

/** What this class uses of a forked process (a test gives a fake). */
export type Child = Pick<ChildProcess, 'pid' | 'connected' | 'exitCode' | 'signalCode' | 'kill' | 'send' | 'on' | 'once'>;
export type SpawnChild = (path: string, execArgv: string[]) => Child;
const forkChild: SpawnChild = (path, execArgv) => fork(path, [], { execArgv, serialization: 'advanced', stdio: 'inherit' });

/** A death of a delivery process: when (timers, and wall clock for the alarm) and how. */
interface Death {
  at: number;
  wall: number;
  how: string;
}

interface Slot {
  view: ProcessView;
  child: Child | null;
  /** Its workers as its process last reported them (kept through a restart until the new process reports). */
  statuses: WorkerStatus[];
  backoffMs: number;
  cancelRestart: Cancel | null;
  /** Queues woken in this turn of the event loop, sent together at its end (each with the durable position then). */
  woken: Map<string, QueueRef>;
  /** When the running process last sent anything (it reports its status every second; on main.timers). */
  heardAt: number;
  /** When the running process became ready (main.timers); null while it starts. */
  upAt: number | null;
  /** Killed as hung: when it was last heard from (its exit is on the way); else null. */
  hungHeardAt: number | null;
  /** Its deaths within RESTART_WINDOW_MS of the last one, oldest first. */
  deaths: Death[];
}

/** The delivery process's entry module, as source (tsx) or as built JavaScript (dist/). */
function entryModule(): { path: string; execArgv: string[] } {
  const fromSource = import.meta.url.endsWith('.ts');
  const path = fileURLToPath(new URL(fromSource ? './delivery-process.ts' : './delivery-process.js', import.meta.url));
  const execArgv = [...process.execArgv];
  if (fromSource && !execArgv.some((a) => a.includes('tsx'))) execArgv.push('--import', 'tsx');
  return { path, execArgv };
}

/**
 * The delivery processes of an embedded DIP (`workers` > 1): forked at start, each working its share of
 * the recipient queues (src/topology/leases.ts), and restarted when one dies. The main process stays
 * the only writer of the SQLite file: a delivery process reads queues and messages itself (its own
 * connection, over the WAL) but only up to the positions the main process reported durable, and sends
 * every write (settling a queue, a dead letter with its status notices, a delivery attempt) here, where
 * it goes through the one group commit and is answered once it is durable. So per-queue order, "nothing
 * handed out before its sync", and every dead letter's atomic settlement hold as in one process.
 */
export class DeliveryProcesses {
  private readonly slots: Slot[];
  private stopping = false;
  private readonly entry = entryModule();

  constructor(
    readonly count: number,
    private readonly main: MainSide,
    private readonly spawnChild: SpawnChild = forkChild,
  ) {
    this.slots = Array.from({ length: count }, (_, index) => ({
      view: { index, name: processName(index), pid: null, state: 'starting', restarts: 0, startedAt: null, usage: null },
      child: null,
      statuses: [],
      backoffMs: RESTART_FIRST_MS,
      cancelRestart: null,
      woken: new Map(),
      heardAt: 0,
      upAt: null,
      hungHeardAt: null,
      deaths: [],
    }));
  }

  private watchdog: Cancel | null = null;
  private checkedAt = 0;

  /**
   * Kills a running delivery process not heard from for `workerHungMs` (stopped with SIGSTOP, or its
   * event loop stuck): its exit restarts it, and its queues resume from their settled positions. Without
   * this its queues waited for as long as it stayed stuck while /admin/health called it running.
   */
  private checkHung(every: number): void {
    const now = this.main.timers.now();
    const late = now - this.checkedAt > 2 * every;
    this.checkedAt = now;
    // This process was stalled itself (its reports may be waiting, unread): nobody is judged on that.
    if (late) for (const slot of this.slots) slot.heardAt = Math.max(slot.heardAt, now);
    for (const slot of this.slots) {
      const child = slot.child;
      if (slot.view.state !== 'running' || !child || slot.hungHeardAt !== null || now - slot.heardAt <= this.main.config.workerHungMs) continue;
      this.main.logger.error({ process: slot.view.index, pid: child.pid, silentMs: now - slot.heardAt }, 'a delivery process stopped reporting: killing it as hung (it is restarted and its queues resume from their settled positions)');
      slot.hungHeardAt = slot.heardAt;
      child.kill('SIGKILL');
    }
  }

  /** Leases for the main process's own Delivery: it holds the queues `local` names, and wakes the owner of any other. */
  leases(local: (queue: QueueRef) => boolean): MainProcessLeases {
    return new MainProcessLeases(local, (q) => this.wake(q));
  }

  /**
   * Starts every delivery process and waits until each has resumed its queues, or failed its first start:
   * one that died or was killed while starting is restarted after its backoff like any that died later
   * (its exit does that; /admin/health shows it `restarting`, then `starting`). A first start that failed
   * used to reject here, and `dip serve` exited 1 on a slow first start (README "Every core").
   */
  async start(): Promise<void> {
    const every = Math.max(250, Math.min(5_000, Math.floor(this.main.config.workerHungMs / 4)));
    this.checkedAt = this.main.timers.now();
    this.watchdog ??= this.main.timers.every(every, () => this.checkHung(every));
    await Promise.all(
      this.slots.map((s) =>
        this.spawn(s).catch((err: unknown) => this.main.logger.error({ err, process: s.view.index, restartInMs: s.backoffMs }, 'a delivery process failed its first start: restarting it after its backoff')),
      ),
    );
  }

  /**
   * The Delivery the rest of the DIP talks to: the main process's own for its queues, the delivery
   * processes for the rest. `started` is this.start(), begun early: start() resolves once they run too.
   */
  control(local: Delivery, started: Promise<void>): DeliveryControl {
    // Held as a value until start() asks: a failure before then is not an unhandled rejection.
    const outcome = started.then(
      () => null,
      (err: unknown) => (err instanceof Error ? err : new Error(String(err))),
    );
    return {
      start: async () => {
        await local.start();
        const failed = await outcome;
        if (failed) throw failed;
      },
      notify: (queues) => local.notify(queues),
      sweep: async () => {
        this.broadcast({ t: 'sweep' });
        await local.sweep();
      },
      resume: (queue) => {
        if (local.resume(queue)) return true;
        const slot = this.slots[ownerOf(queue, this.count)]!;
        const halted = slot.statuses.some((w) => w.queue.recipientDipId === queue.recipientDipId && w.queue.channel === queue.channel && w.state === 'halted');
        if (halted) this.send(slot, { t: 'resume', queue });
        return halted;
      },
      // Each delivery process reports its workers every second: this view is at most that old.
      status: () => [...local.status(), ...this.slots.flatMap((s) => s.statuses)],
      stop: async () => {
        await this.stop();
        await local.stop();
      },
    };
  }

  processes(): ProcessView[] {
    return this.slots.map((s) => ({ ...s.view }));
  }

  /**
   * The delivery processes restarted RESTARTS_ALARMED times or more within RESTART_WINDOW_MS and not up
   * for RESTART_WINDOW_MS since (the `delivery-process` alarm). Read from the deaths kept, so it holds
   * while the process keeps failing, however slowly its backoff lets it.
   */
  restartRuns(): RestartRun[] {
    const now = this.main.timers.now();
    return this.slots.flatMap((s): RestartRun[] => {
      if (s.deaths.length < RESTARTS_ALARMED) return [];
      if (s.view.state === 'running' && s.upAt !== null && s.hungHeardAt === null && now - s.upAt >= RESTART_WINDOW_MS) return [];
      return [{ process: s.view.name, restarts: s.deaths.length, windowMs: RESTART_WINDOW_MS, last: s.deaths.at(-1)!.how, since: s.deaths[0]!.wall }];
    });
  }

  /** The main process's registry, catalogue or signing key changed: each delivery process re-reads its own at once. */
  refresh(): void {
    for (const s of this.slots) this.send(s, { t: 'refresh' });
  }

  /** The store's health changed: delivery processes pause or resume their workers as the main process's would. */
  health(health: BackendHealth): void {
    this.broadcast({ t: 'health', health });
  }

  /**
   * Something arrived for a queue: its delivery process may read it up to the position durable when the
   * wake goes out, at the end of this turn of the event loop (every commit of the turn in one message).
   * A process that is starting gets it too (its start-up sweep may have read the queue's position
   * before this append); one that is down finds the queue with that sweep.
   */
  private wake(queue: QueueRef): void {
    const slot = this.slots[ownerOf(queue, this.count)]!;
    if (!slot.child?.connected) return;
    if (slot.woken.size === 0) setImmediate(() => this.flushWakes(slot));
    slot.woken.set(queueKey(queue), queue);
  }

  private flushWakes(slot: Slot): void {
    const queues = [...slot.woken.values()].map((queue) => ({ queue, cap: this.main.durableHead(queue) }));
    slot.woken.clear();
    this.send(slot, { t: 'wake', queues });
  }

  private broadcast(m: ToWorker): void {
    for (const s of this.slots) if (s.view.state === 'running') this.send(s, m);
  }

  private send(slot: Slot, m: ToWorker): void {
    const child = slot.child;
    if (!child?.connected) return;
    // A process that died meanwhile cannot take it (the error is ignored): it restarts and sweeps.
    child.send(m, () => {});
  }

  private spawn(slot: Slot): Promise<void> {
    const child = this.spawnChild(this.entry.path, this.entry.execArgv);
    slot.child = child;
    slot.view.pid = child.pid ?? null;
    slot.view.state = 'starting';
    // The dead process's start is not this one's: set again once this one is ready.
    slot.view.startedAt = null;
    slot.view.usage = null;
    slot.upAt = null;
    slot.hungHeardAt = null;
    const ready = new Promise<void>((resolve, reject) => {
      // One that never becomes ready is killed: left, it stayed `starting` for ever (the watchdog judges
      // only running ones) and its queues waited. Its exit restarts it, after its backoff.
      const timeoutMs = this.main.config.workerStartTimeoutMs;
      const cancelStartTimeout = this.main.timers.after(timeoutMs, () => {
        reject(new Error(`delivery process ${slot.view.index} did not start within ${timeoutMs} ms (workerStartTimeoutMs): killed`));
        child.kill('SIGKILL');
      });
      child.on('message', (m: FromWorker) => {
        slot.heardAt = this.main.timers.now();
        if (m.t === 'ready') {
          cancelStartTimeout();
          slot.upAt = slot.heardAt;
          slot.view.state = 'running';
          slot.view.startedAt = this.main.now();
          // A change made while it read the registry and catalogue at start, pushed before it listened, is not lost.
          this.send(slot, { t: 'refresh' });
          resolve();
          return;
        }
        this.handle(slot, child, m);
      });
      child.once('exit', (code, signal) => {
        cancelStartTimeout();
        if (slot.view.state === 'starting') reject(new Error(`delivery process ${slot.view.index} exited while starting (code ${code}, signal ${signal})`));
        this.exited(slot, child, code, signal);
      });
    });
    this.send(slot, { t: 'init', index: slot.view.index, count: this.count, config: this.main.config, health: this.main.health() });
    return ready;
  }

  private handle(slot: Slot, child: Child, m: FromWorker): void {
    switch (m.t) {
      case 'call':
        this.call(m).then(
          (value) => child.connected && child.send({ t: 'reply', id: m.id, ok: true, value } satisfies ToWorker),
          (error: unknown) => child.connected && child.send({ t: 'reply', id: m.id, ok: false, error: toWire(error) } satisfies ToWorker),
        );
        return;
      case 'dead-lettered':
        this.main.deadLettered(m.events, m.queues);
        return;
      case 'halted':
        this.main.halted(m.queue, m.error);
        return;
      case 'status':
        slot.statuses = m.workers;
        slot.view.usage = m.usage;
        return;
    }
  }

  private async call(c: Call): Promise<unknown> {
    switch (c.op) {
      case 'settle':
        return this.main.settle(c.queue, c.settlement);
      case 'attempt':
        return this.main.recordAttempt(c.attempt);
      case 'cap':
        return this.main.durableHead(c.queue);
    }
  }

  private exited(slot: Slot, child: Child, code: number | null, signal: string | null): void {
    if (slot.child !== child) return;
    slot.child = null;
    // Its workers' last report stays until the next process reports its own: a queue halted or a webhook
    // failing there is still so while the process restarts, and dropping it made the queue-halted and
    // webhook-failing alarms resolve at each death and be raised again once the new process met the same
    // fault (a pair of notices per queue per restart in a crash loop).
    slot.view.usage = null;
    slot.woken.clear();
    if (this.stopping) {
      slot.view.state = 'stopped';
      return;
    }
    const now = this.main.timers.now();
    const worked = slot.upAt === null ? 0 : (slot.hungHeardAt ?? now) - slot.upAt;
    if (worked >= WORKED_MS) slot.backoffMs = RESTART_FIRST_MS;
    const how = slot.hungHeardAt !== null ? 'killed as hung' : slot.upAt === null ? `died while starting (code ${code}, signal ${signal})` : `died (code ${code}, signal ${signal})`;
    slot.deaths = [...slot.deaths.filter((d) => now - d.at < RESTART_WINDOW_MS), { at: now, wall: this.main.now(), how }];
    slot.view.state = 'restarting';
    slot.view.pid = null;
    slot.view.startedAt = null;
    this.main.logger.error({ process: slot.view.index, code, signal, how, workedMs: worked, restartInMs: slot.backoffMs, recentDeaths: slot.deaths.length }, 'a delivery process died: restarting it (its queues resume from their settled positions)');
    slot.cancelRestart = this.main.timers.after(slot.backoffMs, () => {
      slot.cancelRestart = null;
      slot.view.restarts += 1;
      this.spawn(slot).catch((err: unknown) => this.main.logger.error({ err, process: slot.view.index }, 'a delivery process failed to start'));
    });
    slot.backoffMs = Math.min(RESTART_MAX_MS, slot.backoffMs * 2);
  }

  /** Asks every delivery process to finish its calls in flight (their settlements still come here) and waits for it to exit. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.watchdog?.();
    await Promise.all(
      this.slots.map(async (slot) => {
        slot.cancelRestart?.();
        const child = slot.child;
        if (!child || child.exitCode !== null || child.signalCode !== null) {
          slot.view.state = 'stopped';
          return;
        }
        const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
        this.send(slot, { t: 'stop' });
        const cancel = this.main.timers.after(STOP_TIMEOUT_MS, () => child.kill('SIGKILL'));
        await gone;
        cancel();
      }),
    );
  }
}

/** A backend whose writes are made durable in this process and can say how far each queue is (the embedded SQLite one). */
type LocalWriter = Backend & { durableHead(queue: QueueRef): number; deliveredElsewhere(): void };
const isLocalWriter = (b: Backend): b is LocalWriter =>
  b.kind === 'sqlite' && typeof (b as Partial<LocalWriter>).durableHead === 'function' && typeof (b as Partial<LocalWriter>).deliveredElsewhere === 'function';

/**
 * The delivery processes `config.workers` asks for (workers - 1 of them), or null for one process: when
 * workers is 1 or unset, on the cluster backend (which scales by nodes, not processes), and never with an
 * injected clock (a test's fake time cannot cross into another process).
 */
export function deliveryProcesses(
  config: DipConfig,
  backend: Backend,
  main: Pick<MainSide, 'logger' | 'now' | 'timers' | 'halted'> & {
    /** What the delivery processes read too: each change here is pushed to them. */
    shared: SharedState;
    journal: { recordAttempt(a: DeliveryAttempt): Promise<void> };
    deadLettered(events: DeadLetterEvent[], queues: QueueRef[]): void;
    injectedClock: boolean;
  },
): DeliveryProcesses | null {
  const workers = config.workers ?? 1;
  if (workers <= 1 || config.storage.kind !== 'sqlite') return null;
  if (main.injectedClock) throw new Error(`workers: ${workers} runs delivery in other processes, which cannot share an injected clock: use workers: 1`);
  if (!isLocalWriter(backend)) throw new Error('delivery processes need the embedded SQLite store');
  const processes = new DeliveryProcesses(workers - 1, {
    config,
    logger: main.logger,
    now: main.now,
    timers: main.timers,
    durableHead: (q) => backend.durableHead(q),
    settle: (q, s) => backend.log.settle(q, s),
    recordAttempt: (a) => main.journal.recordAttempt(a),
    deadLettered: (events, queues) => main.deadLettered(events, queues),
    halted: (queue, error) => main.halted(queue, error),
    health: () => backend.health(),
  });
  pushSharedChanges(main.shared, () => processes.refresh());
  // The processes read what they deliver from the file: this one no longer keeps appended copies for them.
  backend.deliveredElsewhere();
  return processes;
}
