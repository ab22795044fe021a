import type { FastifyPluginAsync } from 'fastify';
import { evidenceOf } from '../pipeline/evidence.js';
import type { Archive } from '../ports/archive.js';
import { answers, isoTime } from './admin-schemas.js';

export interface EvidenceRouteOptions {
  archive: Pick<Archive, 'receivedRequest'>;
  /** The clock skew a signature date was allowed at receipt (maxClockSkewSeconds). */
  signatureSkewMs: number;
}

const text = { type: 'string' } as const;
const headerValue = { anyOf: [text, { type: 'array', items: text }] } as const;

const evidence = {
  type: 'object',
  required: ['transactionId', 'channel', 'sender', 'receivedAt', 'request', 'verification'],
  description: 'The request as signed, and the DIP’s check of its signature',
  properties: {
    transactionId: text,
    channel: text,
    sender: { ...text, description: 'The DIP ID the request was accepted from' },
    receivedAt: isoTime,
    request: {
      type: 'object',
      required: ['method', 'url', 'headers', 'body', 'bodySha256'],
      properties: {
        method: { type: 'string', enum: ['POST'] },
        url: { type: ['string', 'null'], description: 'The URL the signature was verified against at receipt (null: archived before it was kept)' },
        headers: { type: 'object', additionalProperties: headerValue, description: 'The X-DIP-* headers as received (empty: the DIP made the request itself)' },
        body: { ...text, description: 'The whole request body (the batch the transaction was part of) as received, base64' },
        bodySha256: { ...text, description: 'SHA-256 of the body, base64: what X-DIP-Content-Hash should carry' },
      },
    },
    verification: {
      type: 'object',
      required: ['result'],
      description: 'The signature checked again now, against the time of receipt',
      properties: {
        result: { type: 'string', enum: ['valid', 'invalid', 'unsigned'] },
        reason: { ...text, description: 'invalid: which check failed' },
        detail: text,
        stringToSign: { ...text, description: 'METHOD;url;date;content hash: what the signature covers' },
        signedBy: {
          type: 'object',
          required: ['subject', 'fingerprint256', 'dipIds', 'notAfter'],
          properties: { subject: text, fingerprint256: text, dipIds: { type: 'array', items: text }, notAfter: isoTime },
        },
        namesSender: { type: 'boolean', description: 'valid: the signing certificate names the sender’s DIP ID' },
      },
    },
  },
} as const;

/**
 * Non-repudiation (spec 5.2.2): the request a transaction arrived in, exactly as its sender signed it, for
 * an auditor or a dispute. The answer holds the payload (personal data): every read is in the API activity log.
 */
export const evidenceRoutes: FastifyPluginAsync<EvidenceRouteOptions> = async (app, deps) => {
  app.get<{ Params: { transactionId: string } }>(
    '/admin/evidence/:transactionId',
    {
      config: { keepAnswer: false },
      schema: {
        tags: ['Audit'],
        summary: 'The signed request a transaction arrived in, and its signature checked again',
        params: { type: 'object', required: ['transactionId'], properties: { transactionId: { type: 'string', minLength: 1, maxLength: 200 } } },
        response: answers({ 200: evidence }, [404]),
      },
    },
    async (req, reply) => {
      const received = await deps.archive.receivedRequest(req.params.transactionId);
      if (!received) return reply.code(404).send({ error: `no archived transaction '${req.params.transactionId}' (never accepted, or purged after the retention period)` });
      return evidenceOf(req.params.transactionId, received, deps.signatureSkewMs);
    },
  );
};
