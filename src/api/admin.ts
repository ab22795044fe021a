import Fastify, { type FastifyInstance } from 'fastify';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Delivery } from '../pipeline/delivery.js';
import type { Logger } from '../ports/logger.js';
import { SLOTS, type AppointmentChange } from '../domain/mpan-lookup.js';
import type { MpanDirectory } from '../pipeline/mpan-directory.js';
import type { Sealer } from '../security/at-rest.js';
import { registerActivityLog } from './activity.js';
import type { ActivitySink } from '../pipeline/activity-recorder.js';
import { registerAdminPkiRoutes, type AdminPkiDeps } from './admin-pki.js';
import { recordOperations } from './operations.js';
import { registerAdminPortalRoutes } from './admin-portal.js';
import type { PortalAccountService } from '../pipeline/portal-accounts.js';
import type { Archive } from '../ports/archive.js';
import type { BackendHealth } from '../ports/backend.js';
import type { DeadLetter, DeadLetters } from '../ports/dead-letters.js';
import type { OperatorJournal } from '../ports/operator-journal.js';
import type { OperatorAccounts } from '../pipeline/operators.js';
import { registerOperatorAuth, registerOperatorRoutes } from './admin-operators.js';

export const adminTokenFile = (dataDir: string): string => join(dataDir, 'admin-token');

/** The operator's bearer token: made on first start, readable by the operator's account only. */
export function ensureAdminToken(dataDir: string): string {
  const file = adminTokenFile(dataDir);
  /* eslint-disable security/detect-non-literal-fs-filename -- a fixed name in the operator's data folder */
  if (!existsSync(file)) writeFileSync(file, `${randomBytes(32).toString('base64url')}\n`, { mode: 0o600 });
  return readFileSync(file, 'utf8').trim();
  /* eslint-enable security/detect-non-literal-fs-filename */
}

export interface AdminDeps {
  /** The bootstrap (break-glass) token: an admin named `bootstrap`, e.g. to create the first operator account. */
  token: string;
  operators: OperatorAccounts;
  journal: OperatorJournal;
  now(): number;
  /** Further operator routes (channels, participants, the register feed), registered after authentication. */
  routes?: Array<(app: FastifyInstance) => void>;
  deadLetters: DeadLetters;
  archive: Pick<Archive, 'attempts'>;
  health(): BackendHealth;
  mpan: Pick<MpanDirectory, 'history' | 'apply'>;
  sealer: Pick<Sealer, 'rotate'>;
  pki: AdminPkiDeps;
  /** Portal accounts: a participant's users, and operators' portal sign-in. */
  portalAccounts: PortalAccountService;
  /** The key the portals in this process call the operator API with (see OperatorAuthDeps.inProcessKey). */
  inProcessKey?: string;
  delivery: Pick<Delivery, 'notify' | 'status' | 'resume'>;
  logger: Logger;
  /** The API activity log (spec 5.8.1); absent when it is turned off. */
  activity?: ActivitySink;
}

interface QueueBody {
  recipientDipId: string;
  channel: string;
  seqs?: number[];
}

const queueBody = {
  type: 'object',
  required: ['recipientDipId', 'channel'],
  additionalProperties: false,
  properties: {
    recipientDipId: { type: 'string', minLength: 1, maxLength: 20 },
    channel: { type: 'string', minLength: 1, maxLength: 20 },
    seqs: { type: 'array', items: { type: 'integer', minimum: 1 }, maxItems: 100_000 },
  },
} as const;

/**
 * The operator's API, apart from the participants' listener: bound to the loopback interface; every call
 * names its operator by a bearer token (src/api/admin-operators.ts), so no participant credential can
 * reach it and every act is attributable.
 */
export function buildAdminServer(deps: AdminDeps): FastifyInstance {
  const app = Fastify({ logger: false, bodyLimit: 64 * 1024 * 1024 });
  // First of all hooks: every call gets its ID and its record, whichever hook answers it.
  if (deps.activity) registerActivityLog(app, deps.activity, 'operator', (req) => (req.operator ? `operator:${req.operator.name}` : null), () => deps.now());
  recordOperations(app);
  // Refusals are {"error": "<what and why>"} (the error handler is in admin-operators.ts), unknown paths too.
  app.setNotFoundHandler((req, reply) => reply.code(404).send({ error: `no such operation: ${req.method} ${req.url.split('?')[0] ?? ''}` }));
  const auth = { bootstrapToken: deps.token, operators: deps.operators, journal: deps.journal, logger: deps.logger, now: () => deps.now(), inProcessKey: deps.inProcessKey };
  registerOperatorAuth(app, auth);
  registerOperatorRoutes(app, auth);
  for (const register of deps.routes ?? []) register(app);

  app.get<{ Querystring: { recipient?: string; channel?: string; state?: DeadLetter['state']; limit?: number } }>(
    '/admin/dead-letters',
    {
      schema: {
        querystring: {
          type: 'object',
          properties: {
            recipient: { type: 'string' },
            channel: { type: 'string' },
            state: { type: 'string', enum: ['dead', 'requeued', 'discarded'] },
            limit: { type: 'integer', minimum: 1, maximum: 10_000 },
          },
        },
      },
    },
    async (req) => deps.deadLetters.deadLetters({ recipientDipId: req.query.recipient, channel: req.query.channel, state: req.query.state ?? 'dead', limit: req.query.limit ?? 1000 }),
  );

  app.post<{ Body: QueueBody }>('/admin/dead-letters/requeue', { schema: { body: queueBody } }, async (req) => {
    const queue = { recipientDipId: req.body.recipientDipId, channel: req.body.channel };
    const seqs = req.body.seqs ?? (await deps.deadLetters.deadLetters({ ...queue, state: 'dead', limit: 100_000 })).map((d) => d.seq);
    const requeued = await deps.deadLetters.requeueDeadLetters(queue, seqs);
    deps.delivery.notify([queue]);
    deps.logger.info({ queue, requeued }, 'operator requeued dead letters');
    return { requeued };
  });

  app.post<{ Body: QueueBody }>('/admin/dead-letters/discard', { schema: { body: queueBody } }, async (req, reply) => {
    if (!req.body.seqs) return reply.code(400).send({ error: 'seqs: name the dead letters to discard' });
    const queue = { recipientDipId: req.body.recipientDipId, channel: req.body.channel };
    const discarded = await deps.deadLetters.discardDeadLetters(queue, req.body.seqs);
    deps.logger.info({ queue, discarded }, 'operator discarded dead letters');
    return { discarded };
  });
  registerAdminPkiRoutes(app, deps.pki);
  registerAdminPortalRoutes(app, deps.portalAccounts, deps.operators);

  // Health of the store, and of every queue this process delivers: paused (store full), halted
  // (a permanent storage error on that queue), backing off from a failing recipient.
  app.get('/admin/health', async (_req, reply) => {
    const h = deps.health();
    return reply.code(h.state === 'ok' ? 200 : 503).send({ storage: h, queues: deps.delivery.status().filter((q) => q.state !== 'idle') });
  });
  app.get('/admin/queues', async () => deps.delivery.status());
  app.post<{ Body: QueueBody }>('/admin/queues/resume', { schema: { body: queueBody } }, async (req, reply) => {
    const queue = { recipientDipId: req.body.recipientDipId, channel: req.body.channel };
    if (!deps.delivery.resume(queue)) return reply.code(409).send({ error: `queue ${queue.recipientDipId}/${queue.channel} is not halted` });
    deps.logger.info({ queue }, 'operator resumed a halted queue');
    return { resumed: true };
  });

  // The delivery audit trail of one queue: every webhook call, its answer and how long it took.
  app.get<{ Querystring: { recipient: string; channel: string; limit?: number } }>(
    '/admin/attempts',
    {
      schema: {
        querystring: {
          type: 'object',
          required: ['recipient', 'channel'],
          properties: { recipient: { type: 'string' }, channel: { type: 'string' }, limit: { type: 'integer', minimum: 1, maximum: 10_000 } },
        },
      },
    },
    async (req) => deps.archive.attempts({ recipientDipId: req.query.recipient, channel: req.query.channel }, req.query.limit ?? 100),
  );

  // Encryption at rest: a new data key for everything written from now on; older keys keep reading.
  app.post('/admin/keys/rotate', async () => {
    const dataKeyId = await deps.sealer.rotate();
    deps.logger.info({ dataKeyId }, 'at-rest data key rotated');
    return { dataKeyId };
  });

  // MPAN lookup: the operator's view and corrections, and the target of bulk loads (dip mpan load).
  app.get<{ Params: { mpan: string } }>(
    '/admin/mpan/:mpan',
    { schema: { params: { type: 'object', properties: { mpan: { type: 'string', pattern: '^\\d{13}$' } } } } },
    async (req) => (await deps.mpan.history(req.params.mpan)).map((a) => ({
      slot: a.slot,
      dipId: a.dipId,
      effectiveFrom: new Date(a.fromMs).toISOString(),
      effectiveTo: a.toMs === null ? null : new Date(a.toMs).toISOString(),
    })),
  );

  app.post<{ Body: ChangeBody[] }>('/admin/mpan/changes', { schema: { body: changesBody } }, async (req) => {
    const changes: AppointmentChange[] = req.body.map((c) => {
      const fromMs = c.effectiveFrom === undefined ? 0 : Date.parse(c.effectiveFrom);
      const toMs = c.effectiveTo === undefined || c.effectiveTo === null ? null : Date.parse(c.effectiveTo);
      return c.kind === 'end'
        ? { kind: 'end', mpan: c.mpan, slot: c.slot, dipId: c.dipId, toMs: toMs ?? Date.now() }
        : { kind: 'appoint', mpan: c.mpan, slot: c.slot, dipId: c.dipId, fromMs, toMs };
    });
    await deps.mpan.apply(changes);
    deps.logger.info({ count: changes.length }, 'MPAN lookup changed by the operator');
    return { applied: changes.length };
  });
  return app;
}

interface ChangeBody {
  kind?: 'appoint' | 'end';
  mpan: string;
  slot: (typeof SLOTS)[number];
  dipId: string;
  effectiveFrom?: string;
  effectiveTo?: string | null;
}

const changesBody = {
  type: 'array',
  maxItems: 100_000,
  items: {
    type: 'object',
    additionalProperties: false,
    required: ['mpan', 'slot', 'dipId'],
    properties: {
      kind: { type: 'string', enum: ['appoint', 'end'] },
      mpan: { type: 'string', pattern: '^\\d{13}$' },
      slot: { type: 'string', enum: SLOTS },
      dipId: { type: 'string', minLength: 1, maxLength: 20 },
      effectiveFrom: { type: 'string', format: 'date-time' },
      effectiveTo: { type: 'string', format: 'date-time', nullable: true },
    },
  },
} as const;
