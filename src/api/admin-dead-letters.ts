import type { FastifyPluginAsync } from 'fastify';
import type { Delivery } from '../pipeline/delivery.js';
import type { DeadLetter, DeadLetters } from '../ports/dead-letters.js';
import type { Logger } from '../ports/logger.js';
import { answers, epochMs, queueRef } from './admin-schemas.js';

export interface DeadLetterRouteOptions {
  deadLetters: DeadLetters;
  delivery: Pick<Delivery, 'notify'>;
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
        description: 'Without seqs every dead letter of the queue is requeued; a property the body does not list (a misspelt seqs) is refused with 400, never read as "all".',
        body: queueBody,
        response: answers({ 200: { type: 'object', required: ['requeued'], properties: { requeued: { type: 'integer' } }, description: 'How many were requeued' } }),
      },
    },
    async (req) => {
      const queue = { recipientDipId: req.body.recipientDipId, channel: req.body.channel };
      const seqs = req.body.seqs ?? (await deps.deadLetters.deadLetters({ ...queue, state: 'dead', limit: 100_000 })).map((d) => d.seq);
      const requeued = await deps.deadLetters.requeueDeadLetters(queue, seqs);
      deps.delivery.notify([queue]);
      deps.logger.info({ queue, requeued }, 'operator requeued dead letters');
      return { requeued };
    },
  );

  app.post<{ Body: QueueBody }>(
    '/admin/dead-letters/discard',
    {
      schema: {
        tags,
        summary: 'Discard dead letters (seqs required): they stay listed as discarded',
        body: queueBody,
        response: answers({ 200: { type: 'object', required: ['discarded'], properties: { discarded: { type: 'integer' } }, description: 'How many were discarded' } }),
      },
    },
    async (req, reply) => {
      if (!req.body.seqs) return reply.code(400).send({ error: 'seqs: name the dead letters to discard' });
      const queue = { recipientDipId: req.body.recipientDipId, channel: req.body.channel };
      const discarded = await deps.deadLetters.discardDeadLetters(queue, req.body.seqs);
      deps.logger.info({ queue, discarded }, 'operator discarded dead letters');
      return { discarded };
    },
  );
};
