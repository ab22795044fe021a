import { queueKey } from '../ports/queue-ref.js';
import type { FastifyPluginAsync } from 'fastify';
import { shownUrl } from '../domain/url-secrets.js';
import type { ActivityDamage } from '../pipeline/activity-damage.js';
import type { ActivityLogStatus } from '../pipeline/activity-recorder.js';
import type { ClockCheckView } from '../pipeline/clock-check.js';
import type { Delivery } from '../pipeline/delivery.js';
import type { QueueBacklog } from '../pipeline/metrics.js';
import type { WorkerStatus } from '../pipeline/queue-worker.js';
import type { Archive } from '../ports/archive.js';
import type { BackendHealth, Coordination, CoordinationHealth, PeerClockOffset } from '../ports/backend.js';
import type { Logger } from '../ports/logger.js';
import type { QueueRef, QueueState } from '../ports/message-log.js';
import { noQueue, queueBody, type QueueBody } from './admin-dead-letters.js';
import { answers, epochMs, queueRef } from './admin-schemas.js';

export interface QueueRouteOptions {
  health(): BackendHealth;
  /** Whether what the nodes share (NATS) answers this node; absent: nothing is shared (one process). */
  coordination?(): CoordinationHealth;
  /** The peer whose clock is furthest from this node's (coordination.peerClock); absent: one process. */
  clockOffset?(): PeerClockOffset | null;
  /** The clock check of this node's own clock against participants' signature dates (GET /admin/health clockCheck); absent: not shown. */
  clockCheck?(): ClockCheckView;
  /** What is still loading (the catalogue after a start), or null. */
  notReady(): string | null;
  /** The cluster's lost nodes, and the operator's word that one was removed; absent: one process. */
  nodes?: Required<Pick<Coordination, 'lostNodes' | 'forgetNode'>>;
  /** The API activity log's backlog (its recorder's status); absent when the log is turned off. */
  activityLog?: () => ActivityLogStatus & { damaged?: ActivityDamage | null };
  delivery: Pick<Delivery, 'status' | 'resume'>;
  /**
   * Every queue holding undelivered messages, and the queues in `also`, read from the store (the same
   * reading as the dip_queue_depth and dip_queue_oldest_age_seconds metrics: queueDepths).
   */
  backlog(also: QueueRef[]): Promise<QueueBacklog[]>;
  /** Where a queue stands in the store (headSeq 0: the store has no such queue), for resume's answer. */
  queueState(queue: QueueRef): Promise<Pick<QueueState, 'headSeq'>>;
  /** The delivery processes (workers > 1), as GET /admin/health reports them; absent in one process. */
  processes?: () => ReadonlyArray<{ index: number; pid: number | null; state: string; restarts: number; startedAt: number | null }>;
  /** The ingest threads (ingestThreads > 0), as GET /admin/health reports them; absent without. */
  ingestThreads?: () => ReadonlyArray<{ index: number; state: string; restarts: number; inHand: number; handled: number }>;
  archive: Pick<Archive, 'attempts'>;
  logger: Logger;
}

const workerStatus = {
  type: 'object',
  required: ['queue', 'state', 'ackedSeq', 'failures', 'failingSince', 'lastError', 'retryAt'],
  properties: {
    queue: queueRef,
    state: { type: 'string', enum: ['idle', 'working', 'backoff', 'paused', 'halted', 'stopped'], description: "The delivery worker's state: idle also for a queue no worker here delivers (a recipient that pulls)" },
    ackedSeq: { type: 'integer', description: 'Settled (delivered, refused, dead-lettered or acknowledged by a pull) up to this position' },
    failures: { type: 'integer', description: 'Consecutive failed webhook calls since the recipient last answered one; kept when their messages are dead-lettered as stale' },
    failingSince: { type: ['integer', 'null'], description: 'When the first of those failed calls was made, epoch ms; null while none failed' },
    lastError: { type: ['string', 'null'], description: 'The store error that paused or halted the queue, else the last failed call\'s error until the recipient answers a call' },
    retryAt: { type: ['integer', 'null'], description: 'When the next attempt is due (backoff), epoch ms' },
    withheld: { type: ['string', 'null'], description: "Why its messages are held back and not sent (security pattern 2: the recipient's registered certificate is revoked or expired, so nothing is encrypted to it; the `copies-withheld` alarm), as of the worker's last look; null: they are not" },
    late: {
      type: ['object', 'null'],
      description: 'Messages its webhook calls delivered later than observability.alarms.deliveryLatencySeconds (30) after their acceptance, while one was within the last deliveryLatencyWindowMinutes (15): the `delivery-latency` alarm. null: none',
      required: ['messages', 'worstMs', 'since', 'last'],
      properties: {
        messages: { type: 'integer', description: 'Late messages since `since`' },
        worstMs: { type: 'integer', description: 'The slowest, from acceptance to delivery, ms' },
        since: { type: 'integer', description: 'epoch ms: the first late delivery of this run' },
        last: { type: 'integer', description: 'epoch ms: the last late delivery' },
      },
    },
    contractFault: {
      type: ['object', 'null'],
      description: 'Calls its webhook answered against the receiver contract (a 207 naming no failing message: taken as delivered, no sender told) since the last it answered as the contract says: the `webhook-failing` alarm under the key `webhook-contract:`. null: none',
      required: ['calls', 'since', 'error'],
      properties: {
        calls: { type: 'integer', description: 'Such calls in a row' },
        since: { type: 'integer', description: 'epoch ms: the first of them' },
        error: { type: 'string', description: "What the calls' records say" },
      },
    },
  },
} as const;

/** A queue as GET /admin/queues lists it: its worker's state and, read from the store, its backlog. */
export interface QueueView extends WorkerStatus {
  workedHere: boolean;
  depth: number | null;
  headSeq: number | null;
  oldestReceivedAt: number | null;
  oldestAgeMs: number | null;
  damage: string | null;
}

const unread = 'null when the store could not be read';
const queueView = {
  type: 'object',
  required: [...workerStatus.required, 'workedHere', 'depth', 'headSeq', 'oldestReceivedAt', 'oldestAgeMs', 'damage'],
  properties: {
    ...workerStatus.properties,
    workedHere: {
      type: 'boolean',
      description:
        "Whether a delivery worker of this node holds the queue. false: a queue holding messages that no worker here delivers (a recipient that pulls, a STATUS queue, or in a cluster a queue another node works): its state, failures and lastError say nothing; that node's GET /admin/queues has them",
    },
    depth: { type: ['integer', 'null'], description: `Messages enqueued and not yet settled (headSeq − ackedSeq); ${unread}` },
    headSeq: { type: ['integer', 'null'], description: `The last position enqueued; ${unread}` },
    oldestReceivedAt: { type: ['integer', 'null'], description: `When the oldest message waiting was received, epoch ms; null when none waits or ${unread}` },
    oldestAgeMs: { type: ['integer', 'null'], description: `How long the oldest message has waited, ms (0 when none waits); ${unread}` },
    damage: {
      type: ['string', 'null'],
      description:
        "Null, or damage found at the queue's head: `damaged database: queue …/… position N refers to message M, which is missing` (the words of the error that halts a worker on it). The entry is counted in depth; oldestReceivedAt is then the oldest entry after it whose message is there. Null too when the store could not be read",
    },
  },
} as const;


/**
 * Every worker's status with its queue's backlog, then the queues holding messages that no worker here
 * delivers (a recipient that pulls, a sender's STATUS queue): idle, with no failure record. A backlog that
 * could not be read (null) leaves the workers' states, which matter most while the store is down.
 */
export function queueViews(workers: readonly WorkerStatus[], backlog: readonly QueueBacklog[] | null): QueueView[] {
  const byQueue = new Map((backlog ?? []).map((b) => [queueKey(b.queue), b]));
  const withBacklog = (w: WorkerStatus, workedHere: boolean): QueueView => {
    const b = byQueue.get(queueKey(w.queue));
    // The store's position when it is ahead: a pull's acknowledgement moves it without the worker.
    return b
      ? { ...w, workedHere, ackedSeq: Math.max(w.ackedSeq, b.ackedSeq), depth: b.depth, headSeq: b.headSeq, oldestReceivedAt: b.oldestReceivedAt, oldestAgeMs: b.oldestAgeMs, damage: b.damage }
      : { ...w, workedHere, depth: null, headSeq: null, oldestReceivedAt: null, oldestAgeMs: null, damage: null };
  };
  const worked = new Set(workers.map((w) => queueKey(w.queue)));
  const unworked = (backlog ?? []).filter((b) => !worked.has(queueKey(b.queue)));
  return [
    ...workers.map((w) => withBacklog(w, true)),
    ...unworked.map((b) => withBacklog({ queue: b.queue, state: 'idle', ackedSeq: b.ackedSeq, failures: 0, failingSince: null, lastError: null, retryAt: null }, false)),
  ];
}

/** A signature refused for its date (ClockCheckView.lastAhead, lastBehind). */
const refusalSeen = {
  type: ['object', 'null'],
  required: ['participant', 'skewMs', 'agoMs'],
  properties: {
    participant: { type: 'string', description: 'The DIP ID that signed' },
    skewMs: { type: 'integer', description: "Its signature date less this node's time (positive: ahead)" },
    agoMs: { type: 'integer', description: 'How long ago it was refused (on the monotonic clock: not moved by a wall-clock step)' },
  },
} as const;

const health = {
  type: 'object',
  required: ['storage', 'loading', 'queues'],
  properties: {
    loading: { type: ['string', 'null'], description: 'What is still loading after a start (the catalogue validators), or that the node is stopping: the node takes no messages until it is null' },
    storage: {
      type: 'object',
      required: ['state'],
      properties: {
        state: { type: 'string', enum: ['ok', 'unavailable', 'fatal'] },
        reason: { type: 'string', description: 'Why the store takes no writes' },
        code: { type: ['string', 'null'] },
      },
    },
    coordination: {
      type: 'object',
      required: ['state'],
      description: 'Whether what the nodes share (NATS JetStream) answers this node. While it does not, no queue lease can be claimed or renewed and nothing is delivered, but messages are still accepted: the status stays 200 (the `coordination` alarm is raised)',
      properties: {
        state: { type: 'string', enum: ['ok', 'unavailable'] },
        reason: { type: 'string' },
        since: { type: 'integer', description: 'epoch ms: the first probe that found it unavailable' },
        peerClock: {
          type: ['object', 'null'],
          required: ['node', 'offsetMs', 'allowanceMs', 'believed'],
          description:
            "In a cluster: the peer node whose clock is furthest from this node's, either way, as its roll calls said within the last two lease lengths (null: none heard). Beyond allowanceMs the `clock-skew` alarm is raised; dip_cluster_clock_offset_seconds has it too",
          properties: {
            node: { type: 'string', description: 'The peer\'s node id' },
            offsetMs: { type: 'integer', description: 'How far its clock is ahead of this node\'s (negative: behind)' },
            allowanceMs: { type: 'integer', description: 'The clock skew the queue leases allow for' },
            believed: { type: 'boolean', description: 'false: beyond five lease lengths, ignored by the leases (a node that far behind works no queue while it hears the node ahead)' },
          },
        },
        lostNodes: {
          type: 'array',
          description:
            'In a cluster: the nodes lost, each raising `node-lost`: silent two lease lengths without saying they were stopping, as this node heard or as the store every node shares records (found by a node before this one started, across restarts). A node is no longer lost once it is heard again, a new id of its name is (a restart), or an operator says it was removed (POST /admin/cluster/nodes/{node}/removed)',
          items: {
            type: 'object',
            required: ['node', 'lastHeardAt'],
            properties: { node: { type: 'string', description: 'The lost node\'s id' }, lastHeardAt: { type: 'integer', description: 'epoch ms: its last roll call heard' } },
          },
        },
      },
    },
    clockCheck: {
      type: 'object',
      required: ['suspect', 'participants', 'lastAhead', 'lastBehind', 'windowMs'],
      description:
        "This node's own clock as participants' signature dates say (X-DIP-Signature-Date against this node's clock, maxClockSkewSeconds): whose latest signature within the window was refused dated ahead of it or behind it, or verified, and the last refusal each way. suspect: at least 3 participants refused the same way and more than all the others heard from, so this node's clock is most likely wrong (the `dip-clock` alarm is raised; check NTP: chronyc tracking). The status stays 200",
      properties: {
        suspect: { type: 'boolean' },
        participants: {
          type: 'object',
          required: ['ahead', 'behind', 'verified'],
          properties: {
            ahead: { type: 'integer', description: "Participants whose latest signature was refused dated ahead of this node's clock (this clock behind theirs)" },
            behind: { type: 'integer', description: "Participants whose latest signature was refused dated behind this node's clock (this clock ahead of theirs)" },
            verified: { type: 'integer', description: 'Participants whose latest signature date was within the allowed skew' },
          },
        },
        lastAhead: { ...refusalSeen, description: "The last signature refused dated ahead of this node's clock within the window (null: none)" },
        lastBehind: { ...refusalSeen, description: "The last signature refused dated behind this node's clock within the window (null: none)" },
        windowMs: { type: 'integer', description: 'How far back a participant\'s latest signature counts' },
      },
    },
    activityLog: {
      type: 'object',
      required: ['state', 'waiting', 'full', 'refused'],
      description:
        "The API activity log (absent when observability.activityLog.enabled is false). While its store refuses this process's records (a full disk for activity.db, its PostgreSQL refusing writes) they wait in memory and requests are still answered, up to observability.activityLog.maxWaiting (200,000) waiting: from then on new requests are refused 503 with Retry-After until they are written (a request that cannot be audited is not served). The status stays 200 (the `activity-log` alarm is raised)",
      properties: {
        state: {
          type: 'string',
          enum: ['ok', 'unavailable', 'damaged'],
          description: "unavailable: the store refuses this process's records; damaged: records were lost or the file found damaged (a WAL lost after a crash, PRAGMA quick_check, SQLITE_CORRUPT while running, the log replaced or restored shorter) and no operator has acknowledged it (POST /admin/activity/damage/acknowledge), across restarts",
        },
        damaged: {
          type: 'object',
          required: ['since', 'found'],
          description: 'The losses and damage not acknowledged (also while unavailable)',
          properties: {
            since: { type: 'integer', description: 'epoch ms: the first found' },
            found: { type: 'array', items: { type: 'object', required: ['at', 'lost'], properties: { at: { type: 'integer', description: 'epoch ms' }, lost: { type: 'string', description: 'What was lost or found damaged, and what to do' } } } },
          },
        },
        reason: { type: 'string', description: 'The error the store answered the last write with; when damaged, what was lost' },
        since: { type: 'integer', description: 'epoch ms: the first write it refused (damaged: the first loss found)' },
        waiting: { type: 'integer', description: 'Records in memory not yet written (lost if the process stops now)' },
        full: { type: 'boolean', description: 'observability.activityLog.maxWaiting records wait: new requests are refused 503 until they are written' },
        refused: { type: 'integer', description: 'Requests refused 503 since the start because the backlog was full (summed up in one activity record once it has room)' },
      },
    },
    queues: { type: 'array', items: workerStatus, description: 'The queues that are not idle: this process\'s and its delivery processes\' (reported each second)' },
    processes: {
      type: 'array',
      description: 'The delivery processes (workers > 1; absent in one process). One restarting delays delivery, not acceptance: the status stays 200',
      items: {
        type: 'object',
        required: ['index', 'pid', 'state', 'restarts', 'startedAt'],
        properties: {
          index: { type: 'integer' },
          pid: { type: ['integer', 'null'] },
          state: { type: 'string', enum: ['starting', 'running', 'restarting', 'stopped'] },
          restarts: { type: 'integer', description: 'Times it was restarted after it died' },
          startedAt: { type: ['integer', 'null'], description: 'epoch ms' },
        },
      },
    },
    ingestThreads: {
      type: 'array',
      description: 'The ingest threads (ingestThreads > 0; absent without). While none is ready the listeners\' thread runs ingest itself: the status stays 200',
      items: {
        type: 'object',
        required: ['index', 'state', 'restarts', 'inHand', 'handled'],
        properties: {
          index: { type: 'integer' },
          state: { type: 'string', enum: ['starting', 'ready', 'restarting', 'stopped'] },
          restarts: { type: 'integer', description: 'Times it was restarted after it died' },
          inHand: { type: 'integer', description: 'Submissions it holds now' },
          handled: { type: 'integer', description: 'Submissions it answered since it (re)started' },
        },
      },
    },
  },
} as const;

const attempt = {
  type: 'object',
  required: ['attemptId', 'queue', 'firstSeq', 'lastSeq', 'url', 'startedAt', 'latencyMs', 'status', 'verdict', 'error'],
  properties: {
    attemptId: {
      type: ['string', 'null'],
      format: 'uuid',
      description: 'The attempt\'s ID, a UUIDv7 given when the call was made (or the pull acknowledged): a record written twice is stored once. Null for attempts recorded before 2026-12-03',
    },
    queue: queueRef,
    firstSeq: { type: 'integer' },
    lastSeq: { type: 'integer' },
    url: { type: 'string' },
    startedAt: epochMs,
    latencyMs: { type: 'number' },
    status: { type: ['integer', 'null'] },
    verdict: { type: 'string', enum: ['delivered', 'retry', 'rejected'] },
    error: { type: ['string', 'null'] },
  },
} as const;

/**
 * The activity log as GET /admin/health shows it, in the style of `coordination` (state, reason, since),
 * with its backlog: a gap in the audit trail is told where the operator on call looks first. `damaged`
 * while a loss or damage found is not acknowledged (ActivityLogDamage); `unavailable` (its writes refused
 * now) says more and wins, the damage still listed.
 */
export function activityLogHealth(s: ActivityLogStatus & { damaged?: ActivityDamage | null }): {
  state: 'ok' | 'unavailable' | 'damaged';
  reason?: string;
  since?: number;
  waiting: number;
  full: boolean;
  refused: number;
  damaged?: { since: number; found: Array<{ at: number; lost: string }> };
} {
  const damage = s.damaged ?? null;
  const backlog = { waiting: s.waiting, full: s.full, refused: s.refused, ...(damage ? { damaged: damage } : {}) };
  if (s.failing !== null) return { state: 'unavailable', reason: s.failing.reason, since: s.failing.since, ...backlog };
  return damage === null ? { state: 'ok', ...backlog } : { state: 'damaged', reason: damage.found.map((l) => l.lost).join(' '), since: damage.since, ...backlog };
}

/** A worker's state as resume's 409 says it: what the operator can expect of the queue instead. */
const NOT_HALTED: Readonly<Partial<Record<WorkerStatus['state'], string>>> = {
  backoff: 'backing off from a failing recipient (it retries by itself; GET /admin/attempts has the errors)',
  paused: 'paused while the store takes no writes (it resumes by itself when the store does)',
};

/**
 * Health of the store and of every queue this process delivers (paused: store full; halted: a permanent
 * storage error on that queue; backing off from a failing recipient), resuming a halted queue, and the
 * delivery audit trail of one queue.
 */
export const queueRoutes: FastifyPluginAsync<QueueRouteOptions> = async (app, deps) => {
  const tags = ['Queues and health'];
  // While the listener stops: why the node takes nothing (in `loading`), beside the store's own health.
  const stopping = { stoppingAnswer: (help: string) => ({ loading: help, storage: deps.health(), queues: [] }) };
  app.get('/admin/health', { schema: { tags, summary: 'Health of the store and of the queues that are not idle', response: answers({ 200: { ...health, description: 'The store takes writes and the node is ready' }, 503: { ...health, description: 'The store takes no writes, the node is still loading, or it is stopping' } }) }, config: stopping }, async (_req, reply) => {
    const h = deps.health();
    const loading = deps.notReady();
    const processes = deps.processes ? { processes: deps.processes() } : {};
    const threads = deps.ingestThreads ? { ingestThreads: deps.ingestThreads() } : {};
    const activityLog = deps.activityLog ? { activityLog: activityLogHealth(deps.activityLog()) } : {};
    const coordination = { ...(deps.coordination?.() ?? { state: 'ok' }), ...(deps.clockOffset ? { peerClock: deps.clockOffset() } : {}), ...(deps.nodes ? { lostNodes: deps.nodes.lostNodes() } : {}) };
    const clockCheck = deps.clockCheck ? { clockCheck: deps.clockCheck() } : {};
    return reply.code(h.state === 'ok' && loading === null ? 200 : 503).send({ storage: h, coordination, loading, ...clockCheck, ...activityLog, queues: deps.delivery.status().filter((q) => q.state !== 'idle'), ...processes, ...threads });
  });
  app.get(
    '/admin/queues',
    { schema: { tags, summary: 'Every queue this process delivers and every queue holding undelivered messages, with its backlog', response: answers({ 200: { type: 'array', items: queueView, description: 'The queues' } }) } },
    async () => {
      const workers = deps.delivery.status();
      // Not read while the store is known to be down: a query would wait for its timeout (35 s on
      // PostgreSQL) just when the on-call operator needs the workers' states.
      const backlog =
        deps.health().state !== 'ok'
          ? null
          : await deps.backlog(workers.map((w) => w.queue)).catch((err: unknown) => {
              deps.logger.warn({ err }, 'GET /admin/queues: the backlog could not be read from the store; the workers\' states are shown without it');
              return null;
            });
      return queueViews(workers, backlog);
    },
  );
  app.post<{ Body: QueueBody }>(
    '/admin/queues/resume',
    {
      schema: {
        tags,
        summary: 'Resume a queue halted by a permanent storage error (after repair)',
        description: '404: the store has no such queue. 409: the queue is not halted (the answer says its state), or no delivery worker of this node holds it.',
        body: queueBody,
        response: answers({ 200: { type: 'object', required: ['resumed'], properties: { resumed: { type: 'boolean', const: true } }, description: 'Resumed' } }, [404, 409]),
      },
    },
    async (req, reply) => {
      const queue = { recipientDipId: req.body.recipientDipId, channel: req.body.channel };
      if (deps.delivery.resume(queue)) {
        deps.logger.info({ queue }, 'operator resumed a halted queue');
        return { resumed: true as const };
      }
      // Not resumed: say why, so that a mistyped queue is not taken for a healthy one ("is not halted").
      const name = `queue ${queue.recipientDipId}/${queue.channel}`;
      const worker = deps.delivery.status().find((w) => w.queue.recipientDipId === queue.recipientDipId && w.queue.channel === queue.channel);
      if (worker) return reply.code(409).send({ error: `${name} is ${NOT_HALTED[worker.state] ?? worker.state}, not halted: only a queue halted by a permanent storage error is resumed` });
      if ((await deps.queueState(queue)).headSeq === 0) return reply.code(404).send({ error: noQueue(queue) });
      return reply.code(409).send({
        error: `${name} is not held by a delivery worker of this node (a recipient that pulls, a STATUS queue, or in a cluster another node's queue): resume it on the node whose GET /admin/queues shows it halted`,
      });
    },
  );

  // The operator's word that a lost node (the node-lost alarm) was removed for good: every node stops raising it.
  app.post<{ Params: { node: string } }>(
    '/admin/cluster/nodes/:node/removed',
    {
      schema: {
        tags,
        summary: 'Say that a lost cluster node was removed for good (resolves its node-lost alarm on every node)',
        description: '404: no node of that id is lost here (the answer names those that are).',
        params: { type: 'object', required: ['node'], properties: { node: { type: 'string', minLength: 1, maxLength: 200 } } },
        response: answers({ 200: { type: 'object', required: ['forgotten'], properties: { forgotten: { type: 'string', description: 'The node forgotten' } }, description: 'Forgotten by every node' } }, [404]),
      },
    },
    async (req, reply) => {
      const { node } = req.params;
      if (deps.nodes?.forgetNode(node)) {
        deps.logger.warn({ node }, 'operator says a lost node was removed for good: its node-lost alarm is resolved on every node');
        return { forgotten: node };
      }
      const lost = deps.nodes?.lostNodes().map((l) => l.node) ?? [];
      return reply.code(404).send({ error: `node ${node} is not lost here (${lost.length ? `lost: ${lost.join(', ')}` : deps.nodes ? 'no node is lost' : 'one process: there are no other nodes'})` });
    },
  );

  // The delivery audit trail of one queue: every webhook call, its answer and how long it took.
  app.get<{ Querystring: { recipient: string; channel: string; limit?: number } }>(
    '/admin/attempts',
    {
      schema: {
        tags,
        summary: "A queue's webhook calls, newest first: answer and latency",
        querystring: {
          type: 'object',
          required: ['recipient', 'channel'],
          properties: { recipient: { type: 'string' }, channel: { type: 'string' }, limit: { type: 'integer', minimum: 1, maximum: 10_000, default: 100 } },
          additionalProperties: false,
        },
        response: answers({ 200: { type: 'array', items: attempt, description: 'The attempts' } }),
      },
    },
    // Shown without query values: calls recorded before the URL was stored so may carry a key in it.
    async (req) => (await deps.archive.attempts({ recipientDipId: req.query.recipient, channel: req.query.channel }, req.query.limit ?? 100)).map((a) => ({ ...a, url: shownUrl(a.url) })),
  );
};
