/**
 * A delivery process of the embedded DIP (`workers` > 1), forked by the main process
 * (src/topology/delivery-processes.ts). It works its share of the recipient queues: reads entries and
 * messages from the SQLite file on a connection of its own, calls webhooks, and sends every write to the
 * main process over IPC. It never writes the database itself, and reads a queue only up to the position
 * the main process last reported durable. When the main process goes away (killed or stopped) this
 * process exits at once: whatever it handed out and had not settled is handed out again after restart,
 * at the same queue position, as after a crash of the single process.
 */
import { openBackend } from '../adapters/backend.js';
import { monotonicClock, systemClock } from '../adapters/clock.js';
import { WallClockSteps } from '../pipeline/wall-clock-steps.js';
import { defaultLogger, pkiDir } from '../app.js';
import { startCore } from '../assemble/core.js';
import { buildDelivery, webhookTransport } from '../assemble/delivery.js';
import { startTracing } from '../assemble/observability.js';
import type { DipConfig } from '../config.js';
import { Lifecycle } from '../lifecycle.js';
import { processUsage } from '../pipeline/metrics.js';
import { isConsumptionReplayQueue } from '../pipeline/consumption-replay.js';
import { MPAN_LOOKUP_RECIPIENT } from '../pipeline/mpan-feed.js';
import { queuesOf } from '../pipeline/delivery.js';
import type { BackendHealth } from '../ports/backend.js';
import type { SettleOutcome } from '../ports/message-log.js';
import { ServerCertificateWatcher } from '../security/server-certificate.js';
import { ensurePki } from '../security/pki.js';
import { DurableReads } from './durable-reads.js';
import { DeliveryProcessLeases } from './leases.js';
import { labelled, ownerOf, PendingCalls, processName, type Call, type FromWorker, type ToWorker } from './protocol.js';
import { refreshSharedState } from './shared-state.js';

const send = (m: FromWorker): void => {
  if (process.connected) process.send!(m);
};

async function run(init: Extract<ToWorker, { t: 'init' }>): Promise<void> {
  const { index, count } = init;
  // The main process compiled the validators it needs; delivery compiles none.
  const config: DipConfig = { ...init.config, warmCatalogue: false };
  const clock = systemClock;
  const logger = labelled(defaultLogger(), { process: processName(index) });
  const life = new Lifecycle(logger);
  const pki = await ensurePki(pkiDir(config), { environment: config.environment, hostnames: config.hostnames, ipAddresses: config.ipAddresses });
  // Its sealer loads a data key the operator rotated in the main process when it meets a message sealed under it.
  const { backend } = await openBackend(config, { clock, logger, besideWriter: true });
  life.started('storage (reads)', () => backend.close());
  // The same registry, catalogue, channels and signing key as the main process, from the same file and
  // folders. The main process pushes a 'refresh' when any changes; this process's own polls only back that up.
  const slow = config.workerPollMs;
  const core = await startCore(config, pkiDir(config), pki, backend, clock, logger, life, () => {}, undefined, { registryMs: slow, catalogueMs: slow, signingKeyMs: slow });
  const tracer = await startTracing(config, life);
  // The TLS pair renewed in the folder is presented from the next call here too (the main process's listeners take it up alike).
  const certificate = new ServerCertificateWatcher(pkiDir(config), pki.ca, pki.server, clock, logger);
  certificate.start(slow);
  life.started('server certificate watcher', () => certificate.stop());
  const { transport } = webhookTransport(config, pki, certificate);
  life.started('webhook transport', () => transport.close());

  const main = new PendingCalls();
  const call = <T>(c: Call): Promise<T> => main.call<T>((id) => send({ t: 'call', id, ...c }));
  const reads = new DurableReads(backend.log, {
    cap: (queue) => call<number>({ op: 'cap', queue }),
    settle: (queue, settlement) => call<SettleOutcome>({ op: 'settle', queue, settlement }),
  });
  // The queues the main process consumes itself (it keeps every write) are no delivery process's.
  const leases = new DeliveryProcessLeases((q) => q.recipientDipId !== MPAN_LOOKUP_RECIPIENT && !isConsumptionReplayQueue(q) && ownerOf(q, count) === index);
  let health: BackendHealth = init.health;
  const healthListeners: Array<(h: BackendHealth) => void> = [];
  const delivery = buildDelivery(
    { config, core, transport, tracer, clock, logger, steps: new WallClockSteps(clock, monotonicClock) },
    {
      backend: { health: () => health, onHealthChange: (l) => void healthListeners.push(l), log: reads },
      log: reads,
      archive: { recordAttempt: (attempt) => call<void>({ op: 'attempt', attempt }) },
      leases,
      localConsumer: () => undefined,
      // The status notices are already durable (they were written with the settlement): the main process
      // wakes their queues, which may belong to another delivery process.
      deadLettered: (events, notices) => send({ t: 'dead-lettered', events, queues: notices ? queuesOf(notices) : [] }),
      halted: (queue, error) => send({ t: 'halted', queue, error: error instanceof Error ? error.message : String(error) }),
    },
  );

  let stopping = false;
  const stop = async (): Promise<void> => {
    if (stopping) return;
    stopping = true;
    clearInterval(reporting);
    // Calls in flight finish and their settlements go through the main process first.
    await delivery.stop();
    await life.stop();
    process.exit(0);
  };
  process.on('message', (m: ToWorker) => {
    switch (m.t) {
      case 'reply':
        main.answered(m);
        return;
      case 'wake':
        for (const { queue, cap } of m.queues) {
          reads.learn(queue, cap);
          leases.woken(queue);
        }
        return;
      case 'refresh':
        refreshSharedState(core).catch((err: unknown) => logger.error({ err }, 'could not re-read the registry, catalogue or signing key'));
        return;
      case 'health':
        health = m.health;
        for (const l of healthListeners) l(health);
        return;
      case 'sweep':
        delivery.sweep().catch((err: unknown) => logger.error({ err }, 'sweep failed'));
        return;
      case 'resume':
        delivery.resume(m.queue);
        return;
      case 'stop':
        void stop();
        return;
      case 'init':
        return;
    }
  });
  await delivery.start();
  const report = (): void => send({ t: 'status', workers: delivery.status(), usage: processUsage() });
  const reporting = setInterval(report, 1000);
  send({ t: 'ready' });
  report();
}

// The main process is gone (killed, or stopped without asking): stop at once, whatever is in flight.
// SIGKILL to itself, not process.exit(): exit() runs the logger's final synchronous flush, and with the
// main process gone stdout may be a pipe nobody reads (full, then EPIPE), which sonic-boom's flushSync
// retries for ever: a fault campaign found such a process alive 8 minutes after its main process was
// killed. Nothing is lost: this process writes nothing durable; what it had not settled is handed out again.
process.on('disconnect', () => process.kill(process.pid, 'SIGKILL'));
// Its lifetime is the main process's: a Ctrl-C to the terminal's process group reaches both, and the main
// process stops this one in order (its settlements still go through) rather than have it die mid-call.
process.on('SIGINT', () => {});
process.on('SIGTERM', () => {});
process.once('message', (m: ToWorker) => {
  if (m.t !== 'init') return;
  run(m).catch((err: unknown) => {
    process.stderr.write(`delivery process ${m.index} failed to start: ${err instanceof Error ? err.stack : String(err)}\n`);
    process.exit(1);
  });
});
