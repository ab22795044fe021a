import type { FastifyPluginAsync } from 'fastify';
import { evidenceOf } from '../pipeline/evidence.js';
import { STORE_RETRY_AFTER_SECONDS } from '../pipeline/ingest.js';
import type { Archive } from '../ports/archive.js';
import { DataKeyNotLoaded, storeFailureKind } from '../ports/errors.js';
import type { Logger } from '../ports/logger.js';
import { answers, isoTime } from './admin-schemas.js';
import { UNREADABLE_HEADER } from './routes/replay.js';

export interface EvidenceRouteOptions {
  archive: Pick<Archive, 'receivedRequest'>;
  /** Told of an archived request that does not open (a damaged or swapped row): dip_archive_unreadable_total{reader="evidence"}. */
  unreadableSeen: () => void;
  logger: Pick<Logger, 'warn'>;
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
        response: answers({ 200: evidence }, [404, 422, 503]),
      },
    },
    async (req, reply) => {
      const id = req.params.transactionId;
      let received: Awaited<ReturnType<typeof deps.archive.receivedRequest>>;
      try {
        received = await deps.archive.receivedRequest(id);
      } catch (err) {
        // Sealed under a data key this process is loading (rotated elsewhere): the row is sound, ask again.
        if (err instanceof DataKeyNotLoaded) {
          void reply.header('retry-after', String(STORE_RETRY_AFTER_SECONDS));
          return reply.code(503).send({ error: `the archived request of '${id}' is ${err.message}: ask again after the Retry-After interval` });
        }
        if (storeFailureKind(err) !== null) throw err;
        // The row does not open (damaged, or swapped from another record): named, logged and counted as
        // replay and reports count the rows they skip, never a bare 500.
        const why = err instanceof Error ? err.message : String(err);
        deps.logger.warn({ transactionId: id, why }, 'evidence: the archived request does not open');
        deps.unreadableSeen();
        void reply.header(UNREADABLE_HEADER, '1');
        return reply.code(422).send({ error: `the archived request of '${id}' cannot be opened: ${why}` });
      }
      if (!received) return reply.code(404).send({ error: `no archived transaction '${id}' (never accepted, or purged after the retention period)` });
      return evidenceOf(id, received, deps.signatureSkewMs);
    },
  );
};
