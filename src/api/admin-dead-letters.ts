import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import type { Delivery } from '../pipeline/delivery.js';
import type { DeadLetter, DeadLetters } from '../ports/dead-letters.js';
import type { Logger } from '../ports/logger.js';
import type { OperatorJournal } from '../ports/operator-journal.js';
import { operatorOf } from './admin-operators.js';
import type { QueueRef } from '../ports/queue-ref.js';
import { answers, epochMs, queueRef } from './admin-schemas.js';

export interface DeadLetterRouteOptions {
  deadLetters: DeadLetters;
  delivery: Pick<Delivery, 'notify'>;
  /** Why nothing can be delivered on the queue now (its recipient offboarded, or no longer receiving there), null when it can: src/pipeline/queue-rules.ts. */
  undeliverable?(queue: QueueRef): string | null;
  /** Each requeue and discard is journalled with the positions and transaction IDs it acted on (spec 8.3). */
  journal: Pick<OperatorJournal, 'append'>;
  now: () => number;
  logger: Logger;
}

/** A queue (recipient and channel) and, optionally, positions in it: what requeue, discard and resume name. */
export interface QueueBody {
  recipientDipId: string;
  channel: string;
  seqs?: number[];
}

export const queueBody = {
  type: 'object',
  required: ['recipientDipId', 'channel'],
  additionalProperties: false,
  properties: {
    recipientDipId: { type: 'string', minLength: 1, maxLength: 20 },
    channel: { type: 'string', minLength: 1, maxLength: 20 },
    seqs: { type: 'array', items: { type: 'integer', minimum: 1 }, maxItems: 100_000, description: 'Positions in the queue; requeue without seqs takes every dead letter of the queue' },
  },
} as const;

const deadLetter = {
  type: 'object',
  required: ['queue', 'seq', 'messageId', 'transactionId', 'senderDipId', 'senderUniqueReference', 'receivedAt', 'reason', 'status', 'detail', 'at', 'state'],
  properties: {
    queue: queueRef,
    seq: { type: 'integer', description: 'Position in the queue' },
    messageId: { type: 'integer' },
    transactionId: { type: 'string' },
    senderDipId: { type: 'string' },
    senderUniqueReference: { type: ['string', 'null'] },
    receivedAt: epochMs,
    reason: { type: 'string', enum: ['rejected', 'stale'], description: 'rejected: the webhook refused it for good; stale: not delivered within the channel\'s time' },
    status: { type: ['integer', 'null'], description: "The webhook's last HTTP status" },
    detail: { type: 'string' },
    at: epochMs,
    state: { type: 'string', enum: ['dead', 'requeued', 'discarded'] },
  },
} as const;

/**
 * The refusal for a queue the store does not have: an operator who mistyped a DIP ID or channel is told
 * so, rather than answered "0 requeued" as if the queue merely had no dead letters.
 */
export const noQueue = (queue: QueueRef): string =>
  `no queue ${queue.recipientDipId}/${queue.channel}: nothing was ever enqueued for recipient ${queue.recipientDipId} on channel ${queue.channel} (check the DIP ID and the channel; GET /admin/queues and GET /admin/dead-letters list those that exist)`;

/** A named position a requeue or discard left alone, and why. */
export interface Skipped {
  seq: number;
  reason: string;
}

/** The answer of a requeue or discard: how many were acted on, and which named positions were not. */
const acted = (count: 'requeued' | 'discarded', description: string) =>
  ({
    type: 'object',
    required: [count, 'skipped'],
    properties: {
      [count]: { type: 'integer' },
      skipped: {
        type: 'array',
        description: 'The positions named (or, without seqs, listed as dead) that were left alone, ascending, with why: no dead letter there, already requeued or discarded',
        items: { type: 'object', required: ['seq', 'reason'], properties: { seq: { type: 'integer' }, reason: { type: 'string' } } },
      },
    },
    description,
  }) as const;

/**
 * Why each of `named` that the operation did not act on was left alone, read after it: what the store
 * holds at that position now. Read after, not before, so that a position another operator's call took
 * in between is reported in the state it took (it was not acted on by this call).
 */
async function notActedOn(deadLetters: DeadLetters, queue: QueueRef, named: readonly number[], done: readonly number[], operation: 'requeue' | 'discard'): Promise<Skipped[]> {
  const doneSet = new Set(done);
  const rest = [...new Set(named)].filter((seq) => !doneSet.has(seq)).sort((a, b) => a - b);
  if (rest.length === 0) return [];
  const found = new Map((await deadLetters.deadLetters({ ...queue, seqs: rest, limit: rest.length })).map((d) => [d.seq, d.state]));
  return rest.map((seq) => ({ seq, reason: skipReason(found.get(seq), operation) }));
}

function skipReason(state: DeadLetter['state'] | undefined, operation: 'requeue' | 'discard'): string {
  switch (state) {
    case undefined:
      return 'no dead letter at this position';
    case 'requeued':
      return operation === 'requeue' ? 'already requeued' : 'requeued: it is back in the queue, not a dead letter to discard';
    case 'discarded':
      return operation === 'discard' ? 'already discarded' : 'discarded: a discarded dead letter is not requeued';
    case 'dead':
      // Not expected (the operation takes every named dead letter still dead, under the queue's lock), but
      // should it happen the operator is told it is still there to act on, not that it was missing.
      return `still dead: not ${operation === 'requeue' ? 'requeued' : 'discarded'} by this call (another call held it); try again`;
  }
}

/** The dead-letter queue: browse, requeue (to the tail of the queue, same transaction ID), discard. */
export const deadLetterRoutes: FastifyPluginAsync<DeadLetterRouteOptions> = async (app, deps) => {
  const tags = ['Dead letters'];
  app.get<{ Querystring: { recipient?: string; channel?: string; state?: DeadLetter['state']; limit?: number } }>(
    '/admin/dead-letters',
    {
      schema: {
        tags,
        summary: 'Dead letters, oldest first',
        querystring: {
          type: 'object',
          properties: {
            recipient: { type: 'string' },
            channel: { type: 'string' },
            state: { type: 'string', enum: ['dead', 'requeued', 'discarded'], default: 'dead' },
            limit: { type: 'integer', minimum: 1, maximum: 10_000, default: 1000 },
          },
          // A misspelt filter (?recipent=) would otherwise list every dead letter as if it matched.
          additionalProperties: false,
        },
        response: answers({ 200: { type: 'array', items: deadLetter, description: 'The dead letters that match' } }),
      },
    },
    async (req) => deps.deadLetters.deadLetters({ recipientDipId: req.query.recipient, channel: req.query.channel, state: req.query.state ?? 'dead', limit: req.query.limit ?? 1000 }),
  );

  app.post<{ Body: QueueBody }>(
    '/admin/dead-letters/requeue',
    {
      schema: {
        tags,
        summary: 'Requeue dead letters at the tail of their queue (all of the queue without seqs)',
        description:
          'Without seqs every dead letter of the queue is requeued; a property the body does not list (a misspelt seqs) is refused with 400, never read as "all". A named position that is not a dead letter in state dead is left alone and listed in skipped with why. 404: the store has no such queue. 409: its recipient cannot receive there now (offboarded, or no longer holding a receiving role): nothing is requeued.',
        body: queueBody,
        response: answers({ 200: acted('requeued', 'How many were requeued, and the named positions that were not') }, [404, 409]),
      },
    },
    async (req, reply) => {
      const queue = { recipientDipId: req.body.recipientDipId, channel: req.body.channel };
      // Requeued to a recipient that cannot receive, each would be dead-lettered again at once and its
      // sender told a second time, while the answer said "requeued": refused, saying why and what to do.
      const cannot = deps.undeliverable?.(queue) ?? null;
      if (cannot !== null) return reply.code(409).send({ error: `not requeued: ${cannot.replace(/: the message was not delivered$/, '')}; requeued now each would be dead-lettered again. Discard them (dip dead-letters discard), or requeue once it receives again` });
      const seqs = req.body.seqs ?? (await deps.deadLetters.deadLetters({ ...queue, state: 'dead', limit: 100_000 })).map((d) => d.seq);
      const dead = await deadAt(deps.deadLetters, queue, seqs);
      const requeued = await deps.deadLetters.requeueDeadLetters(queue, seqs);
      if (requeued === null) return reply.code(404).send({ error: noQueue(queue) });
      deps.delivery.notify([queue]);
      const skipped = await notActedOn(deps.deadLetters, queue, seqs, requeued, 'requeue');
      await journalled(req, deps, 'dead-letters.requeue', queue, dead, requeued, skipped);
      deps.logger.info({ queue, requeued: requeued.length, skipped: skipped.length }, 'operator requeued dead letters');
      return { requeued: requeued.length, skipped };
    },
  );

  app.post<{ Body: QueueBody }>(
    '/admin/dead-letters/discard',
    {
      schema: {
        tags,
        summary: 'Discard dead letters (seqs required): they stay listed as discarded',
        description: 'A named position that is not a dead letter in state dead is left alone and listed in skipped with why. 404: the store has no such queue.',
        body: queueBody,
        response: answers({ 200: acted('discarded', 'How many were discarded, and the named positions that were not') }, [404]),
      },
    },
    async (req, reply) => {
      if (!req.body.seqs) return reply.code(400).send({ error: 'seqs: name the dead letters to discard' });
      const queue = { recipientDipId: req.body.recipientDipId, channel: req.body.channel };
      const dead = await deadAt(deps.deadLetters, queue, req.body.seqs);
      const discarded = await deps.deadLetters.discardDeadLetters(queue, req.body.seqs);
      if (discarded === null) return reply.code(404).send({ error: noQueue(queue) });
      const skipped = await notActedOn(deps.deadLetters, queue, req.body.seqs, discarded, 'discard');
      await journalled(req, deps, 'dead-letters.discard', queue, dead, discarded, skipped);
      deps.logger.info({ queue, discarded: discarded.length, skipped: skipped.length }, 'operator discarded dead letters');
      return { discarded: discarded.length, skipped };
    },
  );
};

/** The dead letters still dead at the named positions, before an act: their transaction IDs for the journal. */
async function deadAt(deadLetters: DeadLetters, queue: QueueRef, seqs: readonly number[]): Promise<DeadLetter[]> {
  return seqs.length === 0 ? [] : deadLetters.deadLetters({ ...queue, seqs: [...seqs], state: 'dead', limit: seqs.length });
}

/**
 * The journal entry of a requeue or discard: what it acted on (positions and transaction IDs, dead before,
 * requeued or discarded after) and what it left alone. Not written: logged, and the operator API's own entry
 * for the call (its method and path) stands in for it.
 */
async function journalled(req: FastifyRequest, deps: DeadLetterRouteOptions, action: 'dead-letters.requeue' | 'dead-letters.discard', queue: QueueRef, dead: readonly DeadLetter[], done: readonly number[], skipped: readonly Skipped[]): Promise<void> {
  const acted = dead.filter((d) => done.includes(d.seq));
  const letters = acted.map((d) => ({ seq: d.seq, transactionId: d.transactionId }));
  try {
    await deps.journal.append({
      at: deps.now(),
      actor: operatorOf(req).actor,
      action,
      target: `${queue.recipientDipId}/${queue.channel}`,
      before: { state: 'dead', count: acted.length, letters },
      after: { state: action === 'dead-letters.requeue' ? 'requeued' : 'discarded', count: done.length, positions: done, skipped },
      status: 200,
    });
    req.journaled = true;
  } catch (err) {
    deps.logger.error({ err, queue, action }, 'could not journal a dead-letter act');
  }
}
