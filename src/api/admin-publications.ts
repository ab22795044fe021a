import type { FastifyPluginAsync } from 'fastify';
import type { Delivery } from '../pipeline/delivery.js';
import { describeWithdrawn } from '../pipeline/publication-view.js';
import type { Publications } from '../pipeline/publications.js';
import { WITHDRAWAL_REASON_MAX } from '../pipeline/publications.js';
import { operatorOf, refuse } from './admin-operators.js';
import { answers } from './admin-schemas.js';
import { WITHDRAWN_PUBLICATION_SCHEMA } from './publication-download.js';

const params = { type: 'object', required: ['publicationId'], properties: { publicationId: { type: 'string', minLength: 1, maxLength: 100, description: 'The publication ID' } } } as const;
/**
 * Publications on the operator API. The spec (5.6) says nothing of taking a publication back; a DIP that
 * stores one sent to the wrong channel, or holding what it should not, needs a way to: the operator
 * withdraws it, with a reason every later download is told (410), journalled with before and after, its
 * recipients sent a withdrawal notice (Publications.withdraw, which the publisher's own withdrawal uses too).
 */
export const publicationAdminRoutes: FastifyPluginAsync<{ publications: Publications; delivery: Pick<Delivery, 'notify'> }> = async (app, { publications, delivery }) => {
  app.post<{ Params: { publicationId: string }; Body: { reason: string } }>(
    '/admin/publications/:publicationId/withdraw',
    {
      schema: {
        tags: ['Publications'],
        summary: 'Withdraw a publication (Pattern B): its bytes are removed, every download answers 410 with the reason',
        description:
          'For a publication sent to the wrong channel, or holding what it should not. Listed nowhere from then on; a download or metadata request by whoever could read it is answered 410 naming when and why (an anonymous or unentitled caller gets the answer it got before). Its version is not reused (publish a new one). The recipients told of it are sent a withdrawal notice (README). The publisher may withdraw its own (POST /dip-channel/{id}/publications/{publication-id}/withdraw on the participant API). 404: no such publication; 409: withdrawn already.',
        params,
        body: { type: 'object', additionalProperties: false, required: ['reason'], properties: { reason: { type: 'string', minLength: 1, maxLength: WITHDRAWAL_REASON_MAX, description: 'Why: said in every later 410' } } },
        response: answers({ 200: { ...WITHDRAWN_PUBLICATION_SCHEMA, description: 'The publication as it now is: withdrawn' } }, [400, 404, 409]),
      },
    },
    async (req, reply) => {
      try {
        // Journalled by the withdrawal itself, as the publisher's own is.
        const { after, queues } = await publications.withdraw(req.params.publicationId, operatorOf(req).actor, req.body.reason);
        req.journaled = true;
        delivery.notify(queues);
        return describeWithdrawn(after, publications.downloadUrl(after));
      } catch (e) {
        return refuse(reply, e);
      }
    },
  );
};
