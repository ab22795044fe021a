import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Readable } from 'node:stream';
import type { Participant } from '../../domain/participant.js';
import { MSG, type MsgText } from '../../domain/response-codes.js';
import { parseIsoDateOrDateTime } from '../../domain/time.js';
import { standardResponse } from '../../domain/standard-response.js';
import { authenticate } from '../../pipeline/authenticate.js';
import type { Channel } from '../../pipeline/channels.js';
import { describeWithdrawn } from '../../pipeline/publication-view.js';
import { downloadRefusal, mayRead, noticeReference, NOTICE_GRACE_MS, WITHDRAWAL_REASON_MAX, type PublishOutcome } from '../../pipeline/publications.js';
import { refusalOf } from '../../pipeline/refused.js';
import { COMPRESSIONS, type Compression, type PublicationMetadata, type PublicationRecord } from '../../ports/publications.js';
import { DIP_HEADER_CONTENT_HASH } from '../../security/signature.js';
import type { ApiDeps } from '../deps.js';
import { admitted } from '../guard.js';
import { CONTENT_MEDIA_TYPES, describePublication, listQuery, PUBLICATION_SCHEMA, sendListing, sendPublication, WITHDRAWN_PUBLICATION_SCHEMA } from '../publication-download.js';
import { readQuery, unknownParameter, type RawQuery } from '../query.js';
import { publishedSchema } from '../schemas.js';
import { answers, binaryBody, channelParams, GUARDED, noBody, signatureHeaders } from '../route-schemas.js';
import { closeLingering, evidence, goAhead, sendStandard, unacceptedContentEncoding } from '../request.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The route reads its body as a stream (application/octet-stream): nothing buffers it. */
    streamedBody?: boolean;
  }
}

interface PublishQuery {
  type?: string;
  version?: string;
  format?: string;
  compression?: string;
  fileName?: string;
  effectiveFrom?: string;
  effectiveTo?: string;
  description?: string;
  public?: string;
  recipients?: string;
}

const NAME = /^[\w.+-]+$/;
/** What the publish route reads from the query string: each once. */
const PUBLISH_PARAMETERS = ['type', 'version', 'format', 'compression', 'fileName', 'effectiveFrom', 'effectiveTo', 'description', 'public', 'recipients'] as const;

/** The publisher's metadata from the (signed) query string, its names in any case (readQuery), or the first thing wrong with it. */
export function publicationMetadata(channel: string, query: RawQuery): PublicationMetadata | { error: string } {
  // A name it does not know is refused, not passed over: the metadata is kept and announced as given, for
  // good (a publication is never overwritten), and a misspelt `recipients` made a report for one supplier
  // one for the whole channel.
  const unknown = unknownParameter(query, PUBLISH_PARAMETERS, 'publication metadata');
  if (unknown) return unknown;
  const q = readQuery<PublishQuery>(query, PUBLISH_PARAMETERS);
  if ('error' in q) return q;
  const required = (name: keyof PublishQuery, max: number): string | { error: string } => {
    const v = q[name];
    if (v === undefined || v === '') return { error: `${name} is required (query string)` };
    if (v.length > max || !NAME.test(v)) return { error: `${name} '${v.slice(0, 60)}' must be 1 to ${max} letters, digits or . _ + -` };
    return v;
  };
  const type = required('type', 50);
  if (typeof type === 'object') return type;
  // DI-961 Publication Version ID: at most 10 characters.
  const version = required('version', 10);
  if (typeof version === 'object') return version;
  // DI-968 Distribution Variant Format: at most 10 characters.
  const format = required('format', 10);
  if (typeof format === 'object') return format;
  const compression = (q.compression ?? 'none') as Compression;
  if (!COMPRESSIONS.includes(compression)) return { error: `compression '${q.compression ?? ''}' is not one of ${COMPRESSIONS.join(', ')}` };
  for (const name of ['effectiveFrom', 'effectiveTo'] as const) {
    const v = q[name];
    if (v === undefined) continue;
    // The shape alone let 2026-13-45 through, stored and compared as text by effectiveOn ever after.
    const parsed = parseIsoDateOrDateTime(v);
    if (parsed === null) return { error: `${name} '${v.slice(0, 40)}' is not an ISO date or date-time` };
    if ('problem' in parsed) return { error: `${name} '${v.slice(0, 40)}' is not an ISO date or date-time (${parsed.problem})` };
  }
  if (q.effectiveFrom && q.effectiveTo && q.effectiveTo.slice(0, 10) < q.effectiveFrom.slice(0, 10)) return { error: `effectiveTo ${q.effectiveTo} is before effectiveFrom ${q.effectiveFrom}` };
  if (q.description !== undefined && q.description.length > 200) return { error: 'description is longer than 200 characters (DI-960)' };
  const fileName = q.fileName ?? `${type}-${version}.${format.toLowerCase()}`;
  if (fileName.length > 200 || !NAME.test(fileName)) return { error: `fileName '${fileName.slice(0, 60)}' must be 1 to 200 letters, digits or . _ + -` };
  if (q.public !== undefined && q.public !== 'true' && q.public !== 'false') return { error: `public must be true or false` };
  const recipients = q.recipients === undefined ? null : [...new Set(q.recipients.split(','))];
  if (recipients && (recipients.length > 100 || recipients.some((id) => !/^[0-9a-z]{10}$/i.test(id)))) {
    return { error: `recipients '${(q.recipients ?? '').slice(0, 60)}' must be 1 to 100 DIP IDs (10 characters each), separated by commas` };
  }
  if (recipients && q.public === 'true') return { error: 'a public publication is for everyone: it cannot also name its recipients' };
  return {
    channel,
    publicationType: type,
    version,
    format: format.toLowerCase(),
    compression,
    fileName,
    effectiveFrom: q.effectiveFrom ?? null,
    effectiveTo: q.effectiveTo ?? null,
    description: q.description ?? null,
    public: q.public === 'true',
    recipients,
  };
}

/** The DI-999 code of a refused publication: the one the outcome names, else MSG1000 for a 403 and MSG1001 for what is wrong with the request. */
function refusalCode(outcome: Extract<PublishOutcome, { ok: false }>): MsgText {
  return outcome.message ?? (outcome.status === 403 ? MSG.processingFailed : MSG.schemaFailure);
}

/**
 * A refusal sent while the upload may still be coming: the connection closes after it rather than read
 * gigabytes to throw away, but in stages (closeLingering), so that a sender still writing reads it.
 */
function refuseUnread(deps: ApiDeps, req: FastifyRequest, reply: FastifyReply, status: number, caller: string | null, message: Parameters<typeof sendStandard>[4], help: string): FastifyReply {
  const { refusedUploadLingerMs: ms, refusedUploadLingerBytes: bytes } = deps.config.http;
  closeLingering(req.raw, { ms, bytes });
  reply.header('connection', 'close');
  return sendStandard(deps, reply, status, caller, message, help);
}

/**
 * Pattern B on the participant listener (an OpenDIP extension in the published style,
 * docs/api-differences.md):
 *   POST /dip-channel/{id}/publications?type=…&version=…&format=…  publish (application/octet-stream, streamed)
 *   GET  /dip-channel/{id}/publications                            list (type, version, from, to, effectiveOn, limit)
 *   GET  /dip-channel/{id}/publications/{publication-id}           one publication's metadata
 *   GET  /dip-channel/{id}/publications/{publication-id}/content   download (Range; where, columns, decompress)
 *   POST /dip-channel/{id}/publications/{publication-id}/withdraw  its publisher withdraws it ({"reason": …})
 */
export function registerPublicationRoutes(app: FastifyInstance, deps: ApiDeps): void {
  // Only routes that say so take a stream; anywhere else application/octet-stream is refused as before.
  app.addContentTypeParser('application/octet-stream', (req, payload, done) => {
    if (req.routeOptions.config.streamedBody) done(null, payload);
    else done(Object.assign(new Error(`Content-Type 'application/octet-stream' is not accepted: send application/json`), { statusCode: 400 }), undefined);
  });

  const tags = ['Publications (OpenDIP)'];
  const publicationParams = { ...channelParams, required: ['id', 'publicationId'], properties: { ...(channelParams['properties'] as object), publicationId: { type: 'string', description: 'The publication ID (from the 201 answer, the list or the notice)' } } };
  const standard = publishedSchema('StandardResponse');
  const published = {
    ...standard,
    properties: { ...(standard['properties'] as object), publication: { ...PUBLICATION_SCHEMA, description: '(OpenDIP) what was stored and where to fetch it' } },
  };
  const publishSchema = {
    operationId: 'publishPublication',
    tags,
    summary: 'Publish a large payload (Pattern B, spec 5.6) (OpenDIP)',
    description:
      'The payload as application/octet-stream (streamed), its metadata in the query string (type, version, format; compression, effectiveFrom, effectiveTo, fileName, description, public, recipients; any other name is a 400). The signature covers the X-DIP-Content-Hash the publisher declares, checked against the bytes once read. 409: that version of the publication type exists already, or another publisher owns the type.',
    params: channelParams,
    headers: signatureHeaders,
    response: answers([...GUARDED, 409], { 201: { ...published, description: 'Created: the StandardResponse, with the publication beside it' } }),
  };
  app.post<{ Params: { id: string }; Querystring: RawQuery }>('/dip-channel/:id/publications', { config: { streamedBody: true, authenticatesInRoute: true }, schema: publishSchema }, async (req, reply) => {
    const auth = await authenticate(deps.registry, { ...evidence(deps, req), streamedBody: true }, new Date(deps.clock.now()), deps.config.maxClockSkewSeconds * 1000);
    deps.clockCheck?.dated(auth.dated);
    if (!auth.ok) return refuseUnread(deps, req, reply, auth.status, null, MSG.processingFailed, auth.help);
    const caller = auth.participant;
    const channel = deps.channel(req.params.id);
    if (!channel) return refuseUnread(deps, req, reply, 404, caller.dipId, MSG.interfaceIdInvalid, `dip-channel '${req.params.id}' is not a channel of this DIP`);
    if (!String(req.headers['content-type'] ?? '').startsWith('application/octet-stream')) {
      return refuseUnread(deps, req, reply, 400, caller.dipId, MSG.schemaFailure, `a publication is uploaded as Content-Type application/octet-stream (the payload's bytes as they are to be stored)`);
    }
    const encoded = unacceptedContentEncoding(req, "upload the payload's bytes as they are to be stored");
    if (encoded !== null) return refuseUnread(deps, req, reply, 400, caller.dipId, MSG.schemaFailure, encoded);
    const meta = publicationMetadata(channel.interfaceId, req.query);
    if ('error' in meta) return refuseUnread(deps, req, reply, 400, caller.dipId, MSG.schemaFailure, meta.error);
    const declared = Buffer.from(String(req.headers[DIP_HEADER_CONTENT_HASH] ?? ''), 'base64');
    if (declared.length !== 32) return refuseUnread(deps, req, reply, 400, caller.dipId, MSG.schemaFailure, `${DIP_HEADER_CONTENT_HASH} must be the base64 SHA-256 of the payload (32 bytes)`);
    const length = req.headers['content-length'] === undefined ? undefined : Number(req.headers['content-length']);
    const early = await deps.publications.precheck(caller, channel, meta, length);
    if (early && !early.ok) return refuseUnread(deps, req, reply, early.status, caller.dipId, refusalCode(early), early.help);

    // Everything the head tells is judged: a sender waiting for 100 Continue is told to send its body now.
    goAhead(req.raw, reply.raw);
    // Read without destroying the request when the store stops early (the limit reached part-way: 413):
    // destroyed, its socket was closed with the rest of the body arriving, and the sender read a reset
    // instead of the refusal; kept, refuseUnread's lingering close reads and drops the rest, bounded.
    // A store that throws part-way (a full disk) leaves the body neither read nor destroyed: Node would not
    // drain it, and the connection would hang until the request timeout. Destroyed, the 500 is the answer.
    const outcome = await deps.publications.publish(caller, channel, meta, declared.toString('hex'), (req.body as Readable).iterator({ destroyOnReturn: false })).catch((err: unknown) => {
      req.raw.destroy();
      throw err;
    });
    if (!outcome.ok) return refuseUnread(deps, req, reply, outcome.status, caller.dipId, refusalCode(outcome), outcome.help);
    deps.delivery.notify(outcome.queues);
    const uri = deps.publications.downloadUrl(outcome.record);
    reply.header('location', uri);
    reply.header('x-opendip-publication-id', outcome.record.id);
    // Stored and durable either way (201): a publisher who sent it again would get a 409. A pending notice
    // is said as such, so the publisher neither retries nor believes its recipients told already.
    const help =
      outcome.notice === 'queued'
        ? `publication ${outcome.record.id} stored (${outcome.record.size} bytes, SHA-256 verified); ${outcome.recipients.length} recipient(s) notified`
        : `publication ${outcome.record.id} stored (${outcome.record.size} bytes, SHA-256 verified); its notice to ${outcome.recipients.length} recipient(s) could not be queued now: the DIP queues it itself once the publication is ${NOTICE_GRACE_MS / 60_000} minutes old, at its next pass for missed notices (sender reference ${noticeReference(outcome.record)}); do not publish it again`;
    return reply.code(201).send({
      ...standardResponse(new Date(deps.clock.now()), deps.config.dipId, caller.dipId, [{ transactionID: outcome.transactionId, message: MSG.success, help }]),
      // An extension beside the published StandardResponse: what was stored and where to fetch it.
      publication: describePublication(outcome.record, uri),
    });
  });

  const listSchema = {
    operationId: 'listPublications',
    tags,
    summary: 'List the publications of a channel the caller may read (OpenDIP)',
    description:
      'Query: type, version, from, to (inclusive, to the precision written: a date covers its day, a date-time to the second its second), effectiveOn, limit (1 to 1000, 100 by default); any other name is a 400. Restricted publications are listed only to the recipients their publisher named. Paged as a replay is: a page cut at the limit is a 206 whose X-Continuation-Token header the next request sends back (the same query) for the next page; the last page is a 200. No publication is skipped or listed twice.',
    params: channelParams,
    headers: signatureHeaders,
    response: answers(GUARDED, {
      200: { type: 'object', required: ['publications'], properties: { publications: { type: 'array', items: PUBLICATION_SCHEMA } }, description: 'The publications, newest first: all of them, or the last page' },
      206: { type: 'object', required: ['publications'], properties: { publications: { type: 'array', items: PUBLICATION_SCHEMA } }, description: 'A page cut at the limit, newest first: X-Continuation-Token names the next page' },
    }),
  };
  app.get<{ Params: { id: string }; Querystring: RawQuery }>('/dip-channel/:id/publications', { config: { access: 'participant' }, schema: listSchema }, async (req, reply) => {
    const scope = readerScope(deps, req, reply);
    if (!scope) return reply;
    // Restricted publications are left out by the query itself, so they never crowd the caller's out of the limit.
    const query = listQuery(req.query, { channel: scope.channel.interfaceId, publicOnly: !scope.reader, namedFor: scope.caller.dipId });
    if ('error' in query) return sendStandard(deps, reply, 400, scope.caller.dipId, MSG.schemaFailure, query.error);
    return sendListing(deps, req, reply, query, scope.caller.dipId, (p) => deps.publications.downloadUrl(p));
  });

  const oneSchema = {
    operationId: 'getPublication',
    tags,
    summary: "One publication's metadata (OpenDIP)",
    description: '404: no such publication on this channel, or one the caller may not read (not public, and the caller neither receives nor publishes on the channel, or its publisher named its recipients and not the caller): the same answer; 410: the DIP operator or its publisher withdrew it (the help says who, when and why).',
    params: publicationParams,
    headers: signatureHeaders,
    response: answers([...GUARDED, 410], { 200: { ...PUBLICATION_SCHEMA, description: 'The publication' } }),
  };
  app.get<{ Params: { id: string; publicationId: string }; Querystring: RawQuery }>('/dip-channel/:id/publications/:publicationId', { config: { access: 'participant' }, schema: oneSchema }, async (req, reply) => {
    const found = await readable(deps, req, reply);
    if (!found) return reply;
    const unknown = unknownParameter(req.query, [], '');
    if (unknown) return sendStandard(deps, reply, 400, found.caller.dipId, MSG.schemaFailure, unknown.error);
    return reply.code(200).send(describePublication(found.record, deps.publications.downloadUrl(found.record)));
  });

  app.get<{ Params: { id: string; publicationId: string }; Querystring: RawQuery }>(
    '/dip-channel/:id/publications/:publicationId/content',
    {
      config: { access: 'participant', keepAnswer: false, streamedAnswer: true },
      schema: {
        operationId: 'downloadPublication',
        tags,
        summary: "Download a publication's content (OpenDIP)",
        description:
          '404: as for its metadata; 410: the DIP operator or its publisher withdrew it (the help says who, when and why). Whole, or one byte range (Range; If-Range on the ETag, which is the SHA-256 as stored, or on the Last-Modified date, when it was published): 206 with Content-Range; a range outside the file is 416. Conditional requests (RFC 9110 13.2.2): If-Match not naming the ETag (strong comparison), or, without it, If-Unmodified-Since before Last-Modified, is 412 with no bytes; If-None-Match naming the ETag, or, without it, If-Modified-Since not before Last-Modified, is 304 with no bytes. With decompress=true, or where=field:v1,v2 and columns= (csv and jsonl), the plain and filtered content, gzip-compressed when the client accepts it; 422 when the bytes are not in the compression the publisher declared (download them as stored).',
        params: publicationParams,
        headers: signatureHeaders,
        response: answers([...GUARDED, 410, 412, 416, 422], {
          200: binaryBody(200, 'The content, as stored or (decompress, where, columns) plain and filtered; Content-Type by format', CONTENT_MEDIA_TYPES),
          206: binaryBody(206, 'The byte range Content-Range names', CONTENT_MEDIA_TYPES),
          304: noBody(304),
        }),
      },
    },
    async (req, reply) => {
      const found = await readable(deps, req, reply);
      if (!found) return reply;
      return sendPublication(deps, req, reply, found.record, found.caller.dipId);
    },
  );

  const withdrawSchema = {
    operationId: 'withdrawPublication',
    tags,
    summary: 'Withdraw a publication its caller published: its bytes are removed, every download answers 410 with the reason (OpenDIP)',
    description:
      "For the wrong file, or one sent to the wrong channel. Only its publisher may: to anyone else the ID is unknown (404, as for an ID that is none). The DIP operator's withdrawal, with the publisher named: listed nowhere from then on, a download or metadata request by whoever could read it answered 410 naming when, by whom and why, its version not reused (publish a new one), the recipients told of it sent a withdrawal notice (the availability notice's shape, additionalInformation saying `withdrawn`), the act in the operator journal. 409: withdrawn already.",
    params: publicationParams,
    headers: signatureHeaders,
    body: { type: 'object', additionalProperties: false, required: ['reason'], properties: { reason: { type: 'string', minLength: 1, maxLength: WITHDRAWAL_REASON_MAX, description: 'Why: said in every later 410 and in the withdrawal notice' } } },
    response: answers([...GUARDED, 409], {
      200: { ...standard, properties: { ...(standard['properties'] as object), publication: { ...WITHDRAWN_PUBLICATION_SCHEMA, description: '(OpenDIP) the publication as it now is: withdrawn' } }, description: 'Withdrawn: the StandardResponse, with the publication beside it' },
    }),
  };
  app.post<{ Params: { id: string; publicationId: string }; Body: { reason: string } }>('/dip-channel/:id/publications/:publicationId/withdraw', { config: { access: 'participant' }, schema: withdrawSchema }, async (req, reply) => {
    const { caller } = admitted(req);
    const channel = deps.channel(req.params.id);
    if (!channel) return sendStandard(deps, reply, 404, caller.dipId, MSG.interfaceIdInvalid, `dip-channel '${req.params.id}' is not a channel of this DIP`);
    let outcome;
    try {
      outcome = await deps.publications.withdraw(req.params.publicationId, `participant:${caller.dipId}`, req.body.reason, { publisher: caller.dipId, channel: channel.interfaceId });
    } catch (e) {
      const refusal = refusalOf(e);
      if (!refusal) throw e;
      return sendStandard(deps, reply, refusal.status, caller.dipId, refusal.status === 400 ? MSG.schemaFailure : MSG.processingFailed, refusal.message);
    }
    deps.delivery.notify(outcome.queues);
    const { after } = outcome;
    const gone = `publication ${after.id} withdrawn: its bytes are removed, every download is answered 410`;
    const help =
      outcome.notice === 'queued'
        ? `${gone}; ${outcome.recipients.length} recipient(s) notified`
        : outcome.notice === 'none'
          ? `${gone}; its recipients were never told of it (its notice was not queued yet), so none is told of its withdrawal either`
          : `publication ${after.id} withdrawn: its bytes are removed, every download is answered 410; its withdrawal notice to ${outcome.recipients.length} recipient(s) could not be queued now: the DIP queues it itself once the withdrawal is ${NOTICE_GRACE_MS / 60_000} minutes old, at its next pass for missed notices (sender reference ${noticeReference(after, 'withdrawal')})`;
    return reply.code(200).send({
      ...standardResponse(new Date(deps.clock.now()), deps.config.dipId, caller.dipId, [{ transactionID: null, message: MSG.success, help }]),
      publication: describeWithdrawn(after, deps.publications.downloadUrl(after)),
    });
  });
}

/** The caller, the URL's channel, and whether the caller may read every publication on it (else only public ones). */
function readerScope(deps: ApiDeps, req: FastifyRequest<{ Params: { id: string } }>, reply: FastifyReply): { caller: Participant; channel: Channel; reader: boolean } | null {
  const { caller } = admitted(req);
  const channel = deps.channel(req.params.id);
  if (!channel) {
    void sendStandard(deps, reply, 404, caller.dipId, MSG.interfaceIdInvalid, `dip-channel '${req.params.id}' is not a channel of this DIP`);
    return null;
  }
  return { caller, channel, reader: mayRead(channel, caller, deps.publications.publisherRoles(channel)) };
}

/** The publication of the URL, when the caller may read it (a recipient or publisher of its channel, or it is public). */
async function readable(deps: ApiDeps, req: FastifyRequest<{ Params: { id: string; publicationId: string } }>, reply: FastifyReply): Promise<{ caller: Participant; record: PublicationRecord } | null> {
  const scope = readerScope(deps, req, reply);
  if (!scope) return null;
  const record = await deps.publications.get(req.params.publicationId);
  const refused = downloadRefusal(scope.channel, scope.caller, req.params.publicationId, record, deps.publications.publisherRoles(scope.channel), deps.registry.nomineesOf(scope.caller));
  if (refused || !record) {
    // An unknown publication ID is not an unknown interface ID (MSG1002): DI-999 has no MSG code for it (RCP1042 is the recipient's), so the generic one, the help naming it.
    void sendStandard(deps, reply, refused?.status ?? 404, scope.caller.dipId, MSG.processingFailed, refused?.help ?? `no publication ${req.params.publicationId} on ${scope.channel.interfaceId}`);
    return null;
  }
  return { caller: scope.caller, record };
}
