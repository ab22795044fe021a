import type { FastifyPluginAsync } from 'fastify';
import { dipDateTime } from '../domain/time.js';
import type { Publications } from '../pipeline/publications.js';
import { WITHDRAWAL_REASON_MAX } from '../pipeline/publications.js';
import type { OperatorJournal } from '../ports/operator-journal.js';
import type { PublicationRecord } from '../ports/publications.js';
import { operatorOf, refuse } from './admin-operators.js';
import { answers } from './admin-schemas.js';
import { describePublication, PUBLICATION_SCHEMA } from './publication-download.js';

const params = { type: 'object', required: ['publicationId'], properties: { publicationId: { type: 'string', minLength: 1, maxLength: 100, description: 'The publication ID' } } } as const;
const withdrawnSchema = {
  ...PUBLICATION_SCHEMA,
  required: [...(PUBLICATION_SCHEMA['required'] as string[]), 'withdrawn'],
  properties: {
    ...(PUBLICATION_SCHEMA['properties'] as object),
    withdrawn: {
      type: 'object',
      required: ['at', 'by', 'reason'],
      properties: { at: { type: 'string' }, by: { type: 'string', description: 'operator:<name>' }, reason: { type: 'string' } },
    },
  },
  description: 'The publication as it now is: withdrawn',
} as const;

/** A withdrawn publication as the operator API answers it: its metadata, and who withdrew it, when and why. */
function describeWithdrawn(p: PublicationRecord, downloadURI: string): Record<string, unknown> {
  const w = p.withdrawn;
  return { ...describePublication(p, downloadURI), withdrawn: w ? { at: dipDateTime(new Date(w.at)), by: w.by, reason: w.reason } : null };
}

/**
 * Publications on the operator API. The spec (5.6) says nothing of taking a publication back; a DIP that
 * stores one sent to the wrong channel, or holding what it should not, needs a way to: the operator
 * withdraws it, with a reason every later download is told (410), journalled with before and after.
 */
export const publicationAdminRoutes: FastifyPluginAsync<{ publications: Publications; journal: OperatorJournal; now: () => number }> = async (app, { publications, journal, now }) => {
  app.post<{ Params: { publicationId: string }; Body: { reason: string } }>(
    '/admin/publications/:publicationId/withdraw',
    {
      schema: {
        tags: ['Publications'],
        summary: 'Withdraw a publication (Pattern B): its bytes are removed, every download answers 410 with the reason',
        description:
          'For a publication sent to the wrong channel, or holding what it should not. Listed nowhere from then on; a download or metadata request by whoever could read it is answered 410 naming when and why (an anonymous or unentitled caller gets the answer it got before). Its version is not reused (publish a new one). Recipients are not sent a notice. 404: no such publication; 409: withdrawn already.',
        params,
        body: { type: 'object', additionalProperties: false, required: ['reason'], properties: { reason: { type: 'string', minLength: 1, maxLength: WITHDRAWAL_REASON_MAX, description: 'Why: said in every later 410' } } },
        response: answers({ 200: withdrawnSchema }, [400, 404, 409]),
      },
    },
    async (req, reply) => {
      try {
        const actor = operatorOf(req).actor;
        const { before, after } = await publications.withdraw(req.params.publicationId, actor, req.body.reason);
        const uri = publications.downloadUrl(after);
        await journal.append({ at: now(), actor, action: 'publication.withdraw', target: after.id, before: describePublication(before, uri), after: describeWithdrawn(after, uri), status: 200 });
        req.journaled = true;
        return describeWithdrawn(after, uri);
      } catch (e) {
        return refuse(reply, e);
      }
    },
  );
};
