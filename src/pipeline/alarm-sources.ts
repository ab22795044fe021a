import type { AlarmCondition, AlarmRule } from '../ports/alarms.js';
import type { BackendHealth, CoordinationHealth, DiskSpace, LostNode, PeerClockOffset } from '../ports/backend.js';
import type { Clock } from '../ports/clock.js';
import type { DeadLetters } from '../ports/dead-letters.js';
import type { StaleCrl } from '../security/external-crl.js';
import type { ExpiringCertificate } from '../security/expiry.js';
import type { QueueBacklog } from './metrics.js';
import { STATUS_CHANNEL } from './status.js';
import type { WorkerStatus } from './queue-worker.js';
import type { ConditionSource } from './alarms.js';
import type { ActivityDamage } from './activity-damage.js';
import type { ActivityLogStatus } from './activity-recorder.js';
import { holders, thresholdCondition } from './alarm-thresholds.js';
import type { QueueRef } from '../ports/message-log.js';
import type { UnreachedSeen } from './unreached-holders.js';

/**
 * A queue with dead letters still dead: resolved once every one is requeued or discarded. A subscription
 * holding `dead-letter` to its own threshold (thresholds.deadLetters) is told instead when more than its
 * count of one of its queues' letters, still dead, were dead-lettered within its window.
 */
export function deadLetterAlarms(deadLetters: Pick<DeadLetters, 'deadLetters'>, clock: Clock): ConditionSource {
  return async (watched = []) => {
    const byQueue = new Map<string, { queue: QueueRef; n: number; since: number; ats: number[] }>();
    for (const d of await deadLetters.deadLetters({ state: 'dead', limit: 100_000 })) {
      const k = `${d.queue.recipientDipId}/${d.queue.channel}`;
      const q = byQueue.get(k) ?? { queue: d.queue, n: 0, since: d.at, ats: [] };
      q.n += 1;
      q.since = Math.min(q.since, d.at || clock.now());
      q.ats.push(d.at);
      byQueue.set(k, q);
    }
    const now = clock.now();
    return [...byQueue].flatMap(([k, q]): AlarmCondition[] => [
      { key: `dead-letter:${k}`, rule: 'dead-letter', participant: q.queue.recipientDipId, summary: `dead letters in queue ${q.queue.recipientDipId} / ${q.queue.channel}: ${q.n}`, since: q.since, channel: q.queue.channel },
      ...holders(watched, 'deadLetters', q.queue).flatMap(({ s, value }) => {
        const within = q.ats.filter((at) => at > now - value.windowMinutes * 60_000);
        if (within.length <= value.count) return [];
        const what = `${within.length} message${within.length === 1 ? '' : 's'} for ${q.queue.recipientDipId} / ${q.queue.channel} were dead-lettered within ${value.windowMinutes} min, more than ${value.count}`;
        return [thresholdCondition('dead-letter', q.queue, s, what, 'any dead letter still dead', within.reduce((a, b) => Math.min(a, b)))];
      }),
    ]);
  };
}

/**
 * From one reading of the queues: a recipient queue holding more than `depthThreshold` messages
 * (`queue-depth`), one whose oldest undelivered message has waited longer than `ageThresholdMs`
 * (`queue-age`: the latency threshold of spec 5.11.4, whether the recipient takes webhooks or pulls), and
 * one whose oldest undelivered entry refers to a message the store does not have (`queue-damage`: its
 * worker halts there, and a pulled queue's reader stops there too; operators only, since only they can
 * repair it; resolved once the reading finds no damage, after a repair or once the entry is settled).
 * A subscription holding `queue-age` to its own minutes (thresholds.queueAgeMinutes) is judged from the
 * same reading, on its owner's queues only.
 */
export function queueAlarms(depths: () => Promise<Array<Pick<QueueBacklog, 'queue' | 'depth' | 'oldestAgeMs' | 'damage'>>>, depthThreshold: number, ageThresholdMs: number, clock: Clock): ConditionSource {
  return async (watched = []) => {
    const out: AlarmCondition[] = [];
    for (const d of await depths()) {
      const q = `${d.queue.recipientDipId}/${d.queue.channel}`;
      const since = clock.now() - d.oldestAgeMs;
      if (d.depth > depthThreshold) out.push({ key: `queue-depth:${q}`, rule: 'queue-depth', participant: d.queue.recipientDipId, summary: `queue ${d.queue.recipientDipId} / ${d.queue.channel} holds more than ${depthThreshold} messages`, since });
      // A sender's status messages wait in its STATUS queue until it pulls them or they go stale: no alarm.
      const waiting = d.depth > 0 && d.queue.channel !== STATUS_CHANNEL;
      if (waiting && d.oldestAgeMs > ageThresholdMs) {
        out.push({ key: `queue-age:${q}`, rule: 'queue-age', participant: d.queue.recipientDipId, summary: `messages for ${d.queue.recipientDipId} / ${d.queue.channel} have waited more than ${Math.round(ageThresholdMs / 60_000)} min undelivered`, since: since + ageThresholdMs, channel: d.queue.channel });
      }
      for (const { s, value } of waiting ? holders(watched, 'queueAgeMinutes', d.queue) : []) {
        const ms = value * 60_000;
        const what = `messages for ${d.queue.recipientDipId} / ${d.queue.channel} have waited more than ${value} min undelivered (the oldest ${Math.round(d.oldestAgeMs / 60_000)} min)`;
        if (d.oldestAgeMs > ms) out.push(thresholdCondition('queue-age', d.queue, s, what, `${Math.round(ageThresholdMs / 60_000)} min`, since + ms));
      }
      if (d.damage !== null) {
        const summary = `queue ${d.queue.recipientDipId} / ${d.queue.channel} is damaged and nothing past its head is delivered: ${d.damage} (repair it, then POST /admin/queues/resume)`;
        out.push({ key: `queue-damage:${q}`, rule: 'queue-damage', participant: null, summary, since: clock.now() });
      }
    }
    return out;
  };
}

/**
 * A recipient's webhook failing without an answered call for longer than `forMs`, timed from the first
 * failed call (the worker's failingSince). Dead-lettering the messages those calls carried does not end
 * it: only a call the recipient answers, or a new (or removed) callback URL, does.
 *
 * Also, at once and under its own key, a webhook answering against its contract (WorkerStatus.contractFault:
 * a 207 naming no failing message): the messages were taken as delivered, so nothing else shows that some
 * failed at the recipient and no sender was told. The participant is told, as for a failing webhook (its
 * receiver is at fault); resolved by its next call answered as the contract says.
 */
/** What a receiver contract fault (queue-worker MULTI_STATUS_…) says the webhook did: "answered 207 … without naming a failing message". */
const contractBreach = (error: string): string => error.replace(/^CONTRACT: the recipient /, '').replace(/: all taken as delivered.*$/, '');

export function webhookFailingAlarms(status: () => WorkerStatus[], forMs: number, clock: Clock): ConditionSource {
  return () => {
    const now = clock.now();
    return status().flatMap((w): AlarmCondition[] => {
      const k = `${w.queue.recipientDipId}/${w.queue.channel}`;
      const fault = w.contractFault;
      const out: AlarmCondition[] = fault
        ? [{ key: `webhook-contract:${k}`, rule: 'webhook-failing', participant: w.queue.recipientDipId, summary: `the webhook of ${k} ${contractBreach(fault.error)} (${fault.calls} call${fault.calls === 1 ? '' : 's'} since ${new Date(fault.since).toISOString()}): its senders cannot be told which messages failed; all were taken as delivered`, since: fault.since }]
        : [];
      if (w.failures === 0 || w.failingSince === null || now - w.failingSince < forMs) return out;
      const summary = `the webhook of ${k} has failed for ${Math.round((now - w.failingSince) / 60_000)} min (${w.failures} calls; ${w.lastError ?? 'no answer'})`;
      return [...out, { key: `webhook-failing:${k}`, rule: 'webhook-failing', participant: w.queue.recipientDipId, summary, since: w.failingSince }];
    });
  };
}

/**
 * End-to-end delivery latency (spec 5.10.3: 100 % of messages within 30 s; 5.11.4: an alarm on a latency
 * threshold): a queue whose webhook calls delivered messages more than `afterMs` after their acceptance,
 * raised at the first such delivery and resolved once `windowMs` passes without one (the worker's
 * WorkerStatus.late, which the worker ends once the window has passed on the monotonic clock: read here
 * against the wall clock, a step forward resolved it early and a step back held it for the step).
 * `queue-age` is the other side: messages still waiting, not yet delivered.
 * A subscription's own latency (thresholds.deliveryLatencySeconds, never below `afterMs`: the workers record
 * only deliveries later than it, and a lower one would need a check on every message's road) holds while
 * the run's slowest delivery exceeds it, and resolves with the run.
 */
export function deliveryLatencyAlarms(status: () => Array<Pick<WorkerStatus, 'queue' | 'late'>>, afterMs: number, windowMs: number): ConditionSource {
  return (watched = []) =>
    status().flatMap((w): AlarmCondition[] => {
      const late = w.late;
      if (!late) return [];
      const k = `${w.queue.recipientDipId}/${w.queue.channel}`;
      const summary = `messages for ${w.queue.recipientDipId} / ${w.queue.channel} were delivered later than ${Math.round(afterMs / 1000)} s after their acceptance: ${late.messages} since ${new Date(late.since).toISOString()}, the slowest ${Math.round(late.worstMs / 1000)} s (window ${Math.round(windowMs / 60_000)} min)`;
      const own = holders(watched, 'deliveryLatencySeconds', w.queue).flatMap(({ s, value }) => {
        if (late.worstMs <= value * 1000) return [];
        const what = `messages for ${w.queue.recipientDipId} / ${w.queue.channel} were delivered later than ${value} s after their acceptance, the slowest ${Math.round(late.worstMs / 1000)} s (since ${new Date(late.since).toISOString()}, window ${Math.round(windowMs / 60_000)} min)`;
        return [thresholdCondition('delivery-latency', w.queue, s, what, `${Math.round(afterMs / 1000)} s`, late.since)];
      });
      return [{ key: `delivery-latency:${k}`, rule: 'delivery-latency', participant: w.queue.recipientDipId, summary, since: late.since, channel: w.queue.channel }, ...own];
    });
}

/**
 * A queue whose worker a permanent store error halted (`queue-halted`): nothing more is delivered from it
 * until an operator repairs the cause and resumes it (POST /admin/queues/resume). Read from the workers'
 * state, not from the 'queue-halted' event, so it resolves however the worker starts again (resumed by an
 * operator, or a restarted delivery process) and covers delivery processes (their workers' status reaches
 * the main process's delivery.status()). Operators only; seen by the node that works the queue, so not shared.
 */
export function haltedQueueAlarms(status: () => WorkerStatus[], clock: Clock): ConditionSource {
  return () =>
    status().flatMap((w): AlarmCondition[] => {
      if (w.state !== 'halted') return [];
      const k = `${w.queue.recipientDipId}/${w.queue.channel}`;
      const summary = `queue ${w.queue.recipientDipId} / ${w.queue.channel} is halted by a permanent storage error and nothing more is delivered from it: ${w.lastError ?? 'no error recorded'} (repair it, then POST /admin/queues/resume)`;
      return [{ key: `queue-halted:${k}`, rule: 'queue-halted', participant: null, summary, since: clock.now() }];
    });
}

/**
 * A recipient whose pattern 2 copies its queue workers hold back (WorkerStatus.withheld): its registered
 * certificate is revoked or has expired, so nothing is encrypted to it and nothing is delivered until it
 * registers a new one. One per recipient, naming its held queues; resolved once no worker holds any back.
 */
export function withheldCopyAlarms(status: () => WorkerStatus[], clock: Clock): ConditionSource {
  return () => {
    const held = new Map<string, { why: string; channels: string[] }>();
    for (const w of status()) {
      if (!w.withheld) continue;
      const r = held.get(w.queue.recipientDipId) ?? { why: w.withheld, channels: [] };
      r.channels.push(w.queue.channel);
      held.set(w.queue.recipientDipId, r);
    }
    return [...held].map(([recipient, r]): AlarmCondition => ({
      key: `copies-withheld:${recipient}`,
      rule: 'copies-withheld',
      participant: recipient,
      summary: `messages for ${recipient} on ${r.channels.sort().join(', ')} are not delivered: ${r.why}`,
      since: clock.now(),
    }));
  };
}

/**
 * Certificates (participants' and the DIP's own) that expire within the warning period; read from disk at
 * most every `everyMs`, and again at the evaluation after the registry changes (`onRegistryChange`): a
 * participant onboarded on another node was seen, before, only by nodes started after it, for up to an hour.
 */
export function certificateAlarms(expiring: () => ExpiringCertificate[], clock: Clock, everyMs = 3_600_000, onRegistryChange?: (listener: () => void) => void): ConditionSource {
  let read = { at: -Infinity, certificates: [] as ExpiringCertificate[] };
  onRegistryChange?.(() => {
    read = { at: -Infinity, certificates: read.certificates };
  });
  return () => {
    if (clock.now() - read.at >= everyMs) read = { at: clock.now(), certificates: expiring() };
    return read.certificates.map((c) => {
      const participant = /^participant (\S+)/.exec(c.owner)?.[1] ?? null;
      return {
        // Keyed by owner and expiry, not fingerprint: keys are logged, and a long hex run can look like an MPAN to log scanners.
        key: `certificate-expiring:${c.owner}:${c.notAfter}`,
        rule: 'certificate-expiring',
        participant,
        summary: `the certificate of ${c.owner} ${c.daysLeft < 0 ? 'has expired' : `expires in ${c.daysLeft} days`} (${c.notAfter})`,
        since: read.at,
      };
    });
  };
}

/** An external CA's CRL past three quarters of its validity, or expired (src/security/external-crl.ts: fail-closed). */
export function crlAlarms(stale: () => StaleCrl[], node?: string): ConditionSource {
  return () =>
    stale().map((c) => ({
      // Each node reads its own files: keyed by node in a cluster, as the other node-own alarms are.
      key: node === undefined ? `crl-stale:${c.issuer}` : `crl-stale:${c.issuer}:${node}`,
      rule: 'crl-stale',
      participant: null,
      summary: `the CRL of ${c.issuer} (${c.file}) ${c.expired ? 'expired' : 'expires'} at ${new Date(c.nextUpdate).toISOString()}${c.expired ? ': every certificate it issued is refused at the handshake' : ''}`,
      since: c.since,
    }));
}

/** A delivery process restarted again and again (src/topology/delivery-processes.ts restartRuns). */
export interface RestartRun {
  /** delivery-1, delivery-2, … as logs and metrics name it. */
  process: string;
  /** Its deaths within `windowMs` of the last. */
  restarts: number;
  windowMs: number;
  /** How the last one ended: `killed as hung`, `died (code 1, signal null)`, … */
  last: string;
  /** The first death of the run (epoch ms). */
  since: number;
}

/**
 * A delivery process restarted RESTARTS_ALARMED times within a window and not up for a window since:
 * each restart is a spell in which its queues wait, and a process that meets the same crash or hang at
 * once goes on failing with nothing else saying so (operators only; one process, so no node).
 */
export function deliveryProcessAlarms(runs: () => RestartRun[]): ConditionSource {
  return () =>
    runs().map((r) => ({
      key: `delivery-process:${r.process}`,
      rule: 'delivery-process',
      participant: null,
      summary: `delivery process ${r.process} restarted ${r.restarts} times in ${Math.round(r.windowMs / 60_000)} min (last: ${r.last}): its queues wait while it is down; its log lines say why`,
      since: r.since,
    }));
}

/**
 * NATS JetStream not answering this node: no queue lease can be claimed or renewed, so nothing is
 * delivered while ingest goes on (the store answers, so neither the storage alarm nor the health's
 * status says so). Raised once it has lasted `lastingMs` since the first probe that found it so (its
 * `since`): the probe is a write, so a JetStream leader election after one NATS server of three is lost
 * (5-10 s without writes) is `unavailable` in health too, and raised on every node at once it would be
 * raised and resolved at each rolling restart of NATS. Assembled with two lease lengths (12 s by default):
 * a lease outlives a shorter outage, so delivery has not stopped for long before it. Resolved once the
 * probe has been taken for a lease length.
 */
export function coordinationAlarms(health: () => CoordinationHealth, clock: Clock, node: string | undefined, lastingMs: number): ConditionSource {
  // An outage ends once the probe has been taken for a lease length (half the hold), not at the first
  // probe that lands: a JetStream taking a write now and then while most fail reset its start at each,
  // and the hold was never reached while delivery mostly stood still (reviewF). Once raised, it stays
  // until then rather than flapping with each probe.
  const settleMs = lastingMs / 2;
  let outage: { since: number; reason: string } | null = null;
  let okSince: number | null = null;
  return () => {
    const h = health();
    const now = clock.now();
    if (h.state === 'ok') {
      okSince ??= now;
      if (outage !== null && now - okSince >= settleMs) outage = null;
    } else {
      okSince = null;
      outage = { since: outage?.since ?? h.since, reason: h.reason };
    }
    if (outage === null || now - outage.since < lastingMs) return [];
    return [{ key: ownKey('coordination', node), rule: 'coordination', participant: null, summary: `the nodes' coordination does not answer${onNode(node)}, no queue can be claimed and delivery stops there: ${outage.reason}`, since: outage.since }];
  };
}

/**
 * A node this one heard say its roll call that went silent without saying it was leaving (kill -9, a
 * hung process, its machine or network lost): its queues are taken over, but the cluster has one node
 * less and nothing else said so (health 200, peerClock null). One per lost node, raised by every node
 * that heard it (its own condition: a node started later never heard it); since its last roll call.
 */
export function nodeLostAlarms(lost: () => LostNode[], node?: string): ConditionSource {
  return () =>
    lost().map((l) => ({
      key: ownKey('node-lost', node) + `/${l.node}`,
      rule: 'node-lost',
      participant: null,
      summary: `node ${l.node} has said nothing since ${new Date(l.lastHeardAt).toISOString()}${onNode(node) ? `, as heard${onNode(node)}` : ''}, nor that it was stopping: its queues were taken over, the cluster has one node less`,
      since: l.lastHeardAt,
    }));
}

/**
 * A peer node's clock further from this node's than the queue leases allow for (the lease skew
 * allowance, 1 s), as its roll calls say: the leases still hold (a holder behind has its leases read that
 * much later, one ahead is waited for longer after its death), but a dead node's queues wait longer, and
 * a peer beyond five lease lengths (30 s) is not believed, and the node behind then works no queue while
 * it hears the node ahead (one node delivers for both). Only logged before. Since the first evaluation that found it so; one per node (the peer
 * furthest off is named), resolved once every peer heard from is within the allowance.
 */
export function clockSkewAlarms(offset: () => PeerClockOffset | null, clock: Clock, node?: string, lastingMs = CLOCK_SKEW_LASTING_MS): ConditionSource {
  let since: number | null = null;
  return () => {
    const o = offset();
    if (o === null || Math.abs(o.offsetMs) <= o.allowanceMs) {
      since = null;
      return [];
    }
    since ??= clock.now();
    if (clock.now() - since < lastingMs) return [];
    const way = o.offsetMs > 0 ? 'ahead of' : 'behind';
    const effect = o.believed
      ? o.offsetMs > 0
        ? 'if it dies its queues wait that much longer to be taken over'
        : 'its leases are read that much later, so its queues wait that much longer to be taken over if it dies'
      : o.offsetMs > 0
        ? "beyond what the leases believe (five lease lengths): it ignores this node's clock and would take this node's queues while this node works them, so this node works none while it hears that node"
        : "beyond what the leases believe (five lease lengths): ignored here, so this node takes that node's queues, and that node works none while it hears this one";
    const summary = `the clock of node ${o.node} is ${Math.abs(o.offsetMs)} ms ${way} this node's${onNode(node)}, beyond the ${o.allowanceMs} ms the queue leases allow for: ${effect}`;
    return [{ key: ownKey('clock-skew', node), rule: 'clock-skew', participant: null, summary, since }];
  };
}

/**
 * How long a peer's clock offset beyond the allowance lasts before `clock-skew` is raised: five roll calls.
 * The estimate is the largest sample of a lease length, and one read late (a node just started or resumed
 * after SIGSTOP, its first roll calls read behind; −1648 ms in a fault campaign) is gone at the next one:
 * every restarted node raised it, resolved 0.7 to 4 s later. A clock really off stays off.
 */
export const CLOCK_SKEW_LASTING_MS = 10_000;

/** How long the store refuses writes before `storage` is raised: beyond its probe's period (2 s), so one stale failure after a freeze is not an outage. */
export const STORAGE_LASTING_MS = 3_000;

/**
 * The API activity log behind: its store refuses this process's records (they wait in memory), or its
 * backlog is full and new requests are refused 503. Neither health nor the storage alarm says so: without
 * this the audit gap showed only in the process's log. Since the first refused write (or, for a backlog
 * full with the store answering but too slowly, since the first evaluation that found it so).
 */
export function activityLogAlarms(status: () => ActivityLogStatus, clock: Clock, node?: string): ConditionSource {
  const now = () => clock.now();
  let fullSince: number | null = null;
  return () => {
    const s = status();
    fullSince = s.full ? (fullSince ?? now()) : null;
    if (s.failing === null && !s.full) return [];
    const why = s.failing === null ? 'cannot keep up' : `cannot be written: ${s.failing.reason}`;
    const refusing = s.full ? `; the backlog is full and new requests are refused 503 (${s.refused} so far)` : '';
    return [{ key: ownKey('activity-log', node), rule: 'activity-log', participant: null, summary: `the API activity log ${why}${onNode(node)}; ${s.waiting} records wait in memory${refusing}`, since: s.failing?.since ?? fullSince ?? now() }];
  };
}

/** Holders named in an `mpan-holder-unreached` summary; the rest are counted ("and N more"). */
const HOLDERS_NAMED = 10;
const WHY: Readonly<Record<string, string>> = { MSG1033: 'not a registered participant', MSG1034: "without the slot's role" };

/**
 * Accepted messages whose MPAN lookup named a holder who cannot receive in that capacity (MSG1033 not a
 * participant, MSG1034 without the role): the others got their copies, this one none. The sender is told
 * in its 201's help, but the fix is the operator's (the register or the lookup feed), and a counter and a
 * log line reach nobody on call. Raised at the first evaluation after one; resolved once none was left out
 * for the quiet period (UnreachedHolders.quietMs). Operators only; each node tells what it accepted.
 */
export function unreachedHolderAlarms(recent: () => UnreachedSeen[], quietMs: number, node?: string): ConditionSource {
  return () => {
    const seen = recent();
    if (seen.length === 0) return [];
    const named = seen.slice(0, HOLDERS_NAMED).map((s) => `${s.holder} as ${s.slot} on ${s.channel} (${s.code}, ${WHY[s.code] ?? 'cannot receive'}; ${s.messages} message${s.messages === 1 ? '' : 's'})`);
    const more = seen.length > HOLDERS_NAMED ? `, and ${seen.length - HOLDERS_NAMED} more` : '';
    const summary = `holders the MPAN lookup names got no copy of accepted messages${onNode(node)} in the last ${Math.round(quietMs / 60_000)} min: ${named.join('; ')}${more}`;
    return [{ key: ownKey('mpan-holder-unreached', node), rule: 'mpan-holder-unreached', participant: null, summary, since: Math.min(...seen.map((s) => s.first)) }];
  };
}

/**
 * The data folder's volume running out: dip.db and activity.db share it (SQLite), and the activity log is
 * never deleted by the DIP (spec 5.8.1), so it grows with every request until the operator archives it.
 * Once the disk is full the store refuses writes and ingest stops; this says so before, while there is
 * room to act. Under the `storage` rule (operators'), with a key of its own beside the store's refusals.
 */
export function diskSpaceAlarms(read: () => DiskSpace, minFreeMb: number, clock: Clock, node?: string): ConditionSource {
  let since = 0;
  const mb = (bytes: number) => Math.floor(bytes / (1024 * 1024));
  return () => {
    const d = read();
    if (d.freeBytes >= minFreeMb * 1024 * 1024) {
      since = 0;
      return [];
    }
    since ||= clock.now();
    const log = d.activityLogBytes === null ? '' : `; the API activity log (never deleted by the DIP) takes ${mb(d.activityLogBytes)} MB of it: dip audit export its older records and archive them (README "API activity log"), or add space`;
    return [{ key: ownKey('storage-disk', node), rule: 'storage', participant: null, summary: `the data volume ${d.path}${onNode(node)} has ${mb(d.freeBytes)} MB free, below storage.minFreeDiskMb (${minFreeMb} MB): when it is full, messages are refused 503${log}`, since }];
  };
}

/**
 * The DIP started accepting committed transactions its WAL had lost (`dip serve --accept-wal-loss`):
 * raised for as long as this process runs, from its start, so that the loss is noticed by whoever is
 * subscribed to storage alarms and not only by the operator who typed the flag. A start without the
 * flag ends it. The same for the activity log's file (key `storage-activity-wal-loss`), whose loss is accepted
 * without a flag (src/adapters/sqlite/activity-log.ts): raised for the life of the process that found it;
 * and for alarms.db's (key `storage-alarms-wal-loss`, src/adapters/sqlite/alarm-subscriptions.ts).
 */
export function walLossAlarms(accepted: () => string | null, since: number, node?: string, key: 'storage-wal-loss' | 'storage-activity-wal-loss' | 'storage-alarms-wal-loss' = 'storage-wal-loss'): ConditionSource {
  return () => {
    const lost = accepted();
    return lost === null ? [] : [{ key: ownKey(key, node), rule: 'storage', participant: null, summary: lost, since }];
  };
}

/**
 * The API activity log lost or damaged (ActivityLogDamage): raised, under the key its WAL loss had
 * (`storage-activity-wal-loss`), from the first loss found until an operator acknowledges them all, across
 * restarts: a gap in the audit trail is not over because the process that found it stopped.
 */
export function activityDamageAlarms(damage: () => ActivityDamage | null, node?: string): ConditionSource {
  return () => {
    const d = damage();
    if (d === null) return [];
    const summary = `the API activity log is damaged${onNode(node)}: ${d.found.map((l) => l.lost).join(' ')} Once dealt with (restored, or its loss noted for the audit), acknowledge it: POST /admin/activity/damage/acknowledge.`;
    return [{ key: ownKey('storage-activity-wal-loss', node), rule: 'storage', participant: null, summary, since: d.since }];
  };
}

/**
 * The store refusing writes, for `lastingMs` since the first evaluation that found it so: a process
 * resumed after a freeze (SIGSTOP, a VM paused) reads the query under way then as timed out, and the next
 * probe answers a second later (a fault campaign's 1 s `storage` alarm after SIGCONT). A store that stays
 * down is raised at the first evaluation past that, `since` its first finding. (A fatal store at once.)
 */
export function storageAlarms(health: () => BackendHealth, clock: Clock, node?: string, lastingMs = STORAGE_LASTING_MS): ConditionSource {
  let since = 0;
  return () => {
    const h = health();
    if (h.state === 'ok') {
      since = 0;
      return [];
    }
    since ||= clock.now();
    if (h.state === 'unavailable' && clock.now() - since < lastingMs) return [];
    return [{ key: ownKey('storage', node), rule: 'storage', participant: null, summary: `storage ${h.state}${onNode(node)}: ${h.reason}`, since }];
  };
}

/**
 * A node's own condition, keyed and told by the node (its id in the cluster, absent in one process): every
 * node that loses its store sends its own notice, and under one key they would read as one alarm, one node's
 * resolution seeming to end another's, with nothing saying which node to look at.
 */
const ownKey = (key: AlarmRule | 'storage-disk' | 'storage-wal-loss' | 'storage-activity-wal-loss' | 'storage-alarms-wal-loss', node: string | undefined): string => (node === undefined ? key : `${key}:${node}`);
const onNode = (node: string | undefined): string => (node === undefined ? '' : ` on node ${node}`);
