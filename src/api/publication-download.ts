import type { FastifyReply, FastifyRequest } from 'fastify';
import { pipeline, Readable } from 'node:stream';
import { createGzip } from 'node:zlib';
import { MSG } from '../domain/response-codes.js';
import { parseIsoDateOrDateTime } from '../domain/time.js';
import { decoded, FilterError, filterRows, isDecompressionError, parseRowFilter, tabularFormat } from '../pipeline/publication-content.js';
import type { JsonSchema } from '../catalogue/types.js';
import { COMPRESSIONS, type PublicationQuery, type PublicationRecord } from '../ports/publications.js';
import type { ApiDeps } from './deps.js';
import { readQuery, unknownParameter, type RawQuery } from './query.js';
import { sendStandard } from './request.js';

/**
 * Listing and downloading publications: one module for the participant listener (mutual TLS) and the
 * anonymous one (public publications only), so both answer alike.
 */

/** What a listing reads from the query string (channel: on the anonymous listener). */
interface ListQuery {
  channel?: string;
  type?: string;
  version?: string;
  from?: string;
  to?: string;
  effectiveOn?: string;
  limit?: string;
}
const LIST_PARAMETERS = ['channel', 'type', 'version', 'from', 'to', 'effectiveOn', 'limit'] as const;

/** What a download reads: where may be repeated (every condition must hold), the rest once. */
interface ContentQuery {
  where?: string[];
  columns?: string;
  decompress?: string;
}
const CONTENT_PARAMETERS = ['where', 'columns', 'decompress'] as const;

const MAX_LIST = 1000;

/**
 * A listing's filters from the query string, its names in any case (readQuery), or why they cannot be
 * read. The channel is the URL's (`base.channel`) or, where the URL names none (the anonymous listener),
 * the query's.
 */
export function listQuery(query: RawQuery, base: Pick<PublicationQuery, 'channel' | 'publicOnly' | 'channels' | 'namedFor'>): PublicationQuery | { error: string } {
  // The channel is a filter only where the URL names none (the anonymous listener).
  const names = base.channel === undefined ? LIST_PARAMETERS : LIST_PARAMETERS.filter((n) => n !== 'channel');
  const unknown = unknownParameter(query, names, 'a listing filter');
  if (unknown) return unknown;
  const q = readQuery<ListQuery>(query, names);
  if ('error' in q) return q;
  const time = (name: string, v: string | undefined): number | undefined | { error: string } => {
    if (v === undefined) return undefined;
    // An ISO date is checked against the calendar (Date.parse rolls 2026-02-30 over to 2 March); other
    // forms Date.parse reads are taken as before.
    const iso = parseIsoDateOrDateTime(v);
    if (iso !== null && 'problem' in iso) return { error: `${name} '${v}' is not a date or date-time (${iso.problem})` };
    const t = iso?.ms ?? Date.parse(v);
    return Number.isNaN(t) ? { error: `${name} '${v}' is not a date or date-time (for example 2026-01-31 or 2026-01-31T00:00:00+00:00)` } : t;
  };
  const from = time('from', q.from);
  const to = time('to', q.to);
  if (typeof from === 'object') return from;
  if (typeof to === 'object') return to;
  // `to` names a time up to the precision it is written in, and covers all of it: the day of a date, the
  // second of a date-time to the second (publishedAt is listed so). Taken as the instant it starts, a
  // publication's own publishedAt excluded the publication (stored to the millisecond).
  const toEnd = to === undefined || q.to === undefined ? undefined : to + spanMs(q.to) - 1;
  if (q.effectiveOn !== undefined) {
    const on = parseIsoDateOrDateTime(q.effectiveOn);
    if (on === null || 'problem' in on) return { error: `effectiveOn '${q.effectiveOn}' is not a date (YYYY-MM-DD)${on === null ? '' : ` (${on.problem})`}` };
  }
  const limit = q.limit === undefined ? 100 : Number(q.limit);
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_LIST) return { error: `limit must be a whole number from 1 to ${MAX_LIST}` };
  const channel = base.channel ?? q.channel;
  return {
    ...base,
    ...(channel !== undefined ? { channel } : {}),
    ...(q.type !== undefined ? { publicationType: q.type } : {}),
    ...(q.version !== undefined ? { version: q.version } : {}),
    ...(from !== undefined ? { from } : {}),
    ...(toEnd !== undefined ? { to: toEnd } : {}),
    ...(q.effectiveOn !== undefined ? { effectiveOn: q.effectiveOn } : {}),
    limit,
  };
}

/** How long the time an ISO date or date-time names lasts, by the precision it is written to (1 ms for other forms). */
function spanMs(text: string): number {
  const m = /^\d{4}-\d\d-\d\d(?:T\d\d:\d\d(?::\d\d(?:\.(\d+))?)?)?/i.exec(text);
  if (!m) return 1;
  const [whole, fraction] = [m[0], m[1]];
  if (whole.length === 10) return 86_400_000;
  if (whole.length === 16) return 60_000;
  if (fraction === undefined) return 1000;
  return Math.max(1, 10 ** (3 - fraction.length));
}

/** The header a listing cut at its limit carries the next page's token in (206), and the next request sends it back in: the replay's. */
const LISTING_TOKEN = 'x-continuation-token';

/**
 * Answers a listing, a page at a time: the publications of `query` (newest first) up to its limit, from where
 * the request's X-Continuation-Token says (the one the page before carried). A page cut at the limit is a
 * 206 with the next page's token in X-Continuation-Token, as a replay's page is; the last page is a 200.
 * Pages follow a (publishedAt, publication ID) position, so none skips or repeats a publication, however
 * many share a second.
 */
export async function sendListing(deps: ApiDeps, req: FastifyRequest, reply: FastifyReply, query: PublicationQuery, caller: string | null, uri: (p: PublicationRecord) => string): Promise<FastifyReply> {
  // The token is bound to the query and the caller it was issued for: sent with another, it is refused
  // (a page of another listing, or an empty one, would look like the end of this one).
  const bound = { query, caller };
  const sentBack = req.headers[LISTING_TOKEN];
  let after: PublicationQuery['after'];
  if (sentBack !== undefined) {
    const token = String(sentBack);
    const read = token.length > 200 ? null : deps.continuation.readListing(bound, token);
    if (read === null) return sendStandard(deps, reply, 400, caller, MSG.schemaFailure, `${LISTING_TOKEN} '${token.slice(0, 60)}' is not a token a listing of this DIP gave for this query: send the one the 206 carried, with the same query (path, filters and limit), or none for the first page`);
    after = read;
  }
  const found = await deps.publications.find({ ...query, ...(after ? { after } : {}), limit: query.limit + 1 });
  const page = found.slice(0, query.limit);
  const more = found.length > query.limit;
  if (more) {
    const last = page[page.length - 1]!;
    reply.header(LISTING_TOKEN, deps.continuation.issueListing(bound, { publishedAt: last.publishedAt, id: last.id }));
  }
  return reply.code(more ? 206 : 200).send({ publications: page.map((p) => describePublication(p, uri(p))) });
}

/** A publication as listed: its metadata and where to download it. */
/** What describePublication answers, as the routes' answer schemas (serialisation and OpenAPI) declare it. */
export const PUBLICATION_SCHEMA: JsonSchema = {
  type: 'object',
  required: ['publicationID', 'channel', 'publicationType', 'version', 'publisherDIPID', 'effectiveFrom', 'effectiveTo', 'format', 'compression', 'fileName', 'description', 'public', 'recipients', 'size', 'sha256', 'publishedAt', 'downloadURI'],
  properties: {
    publicationID: { type: 'string' },
    channel: { type: 'string' },
    publicationType: { type: 'string' },
    version: { type: 'string' },
    publisherDIPID: { type: 'string' },
    effectiveFrom: { type: ['string', 'null'] },
    effectiveTo: { type: ['string', 'null'] },
    format: { type: 'string' },
    compression: { type: 'string', enum: [...COMPRESSIONS] },
    fileName: { type: 'string' },
    description: { type: ['string', 'null'] },
    public: { type: 'boolean' },
    recipients: { type: ['array', 'null'], items: { type: 'string' }, description: 'The recipients the publisher named; null: everyone who receives on the channel' },
    size: { type: 'integer', description: 'Bytes as stored' },
    sha256: { type: 'string', description: 'Hex SHA-256 of the bytes as stored (also the ETag)' },
    publishedAt: { type: 'string' },
    downloadURI: { type: 'string' },
  },
};

/** A withdrawn publication as describeWithdrawn answers it: its metadata, and who withdrew it, when and why. */
export const WITHDRAWN_PUBLICATION_SCHEMA: JsonSchema = {
  ...PUBLICATION_SCHEMA,
  required: [...(PUBLICATION_SCHEMA['required'] as string[]), 'withdrawn'],
  properties: {
    ...(PUBLICATION_SCHEMA['properties'] as object),
    withdrawn: {
      type: 'object',
      required: ['at', 'by', 'reason'],
      properties: { at: { type: 'string' }, by: { type: 'string', description: 'operator:<name> (or bootstrap), or participant:<DIP ID>: its publisher' }, reason: { type: 'string' } },
    },
  },
};

import { describePublication } from '../pipeline/publication-view.js';
export { describePublication };

const CONTENT_TYPES: Readonly<Record<string, string>> = {
  csv: 'text/csv; charset=utf-8',
  jsonl: 'application/x-ndjson',
  json: 'application/json',
  pdf: 'application/pdf',
  zip: 'application/zip',
};

/** Every media type a publication's content is served as (without parameters): what the document lists. */
export const CONTENT_MEDIA_TYPES: readonly string[] = [...new Set([...Object.values(CONTENT_TYPES), 'application/octet-stream'].map((t) => t.split(';')[0]!))];

function contentType(format: string): string {
  return CONTENT_TYPES[format.toLowerCase()] ?? 'application/octet-stream';
}

/** `bytes=a-b`, `bytes=a-`, `bytes=-n` (one range); undefined: no usable Range (the whole file); null: not satisfiable. */
export function parseRange(header: string | undefined, size: number): { start: number; end: number } | undefined | null {
  if (header === undefined) return undefined;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  // Several ranges, or another unit: served whole, as RFC 9110 allows.
  if (!m || (m[1] === '' && m[2] === '')) return undefined;
  if (m[1] === '') {
    const suffix = Number(m[2]);
    if (suffix === 0 || size === 0) return null;
    return { start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(m[1]);
  const end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  if (start >= size || start > end) return null;
  return { start, end };
}

/**
 * Sends a publication: whole, or a byte range of it (resumable downloads: Range, If-Range on the ETag,
 * which is the SHA-256 of the bytes as stored); or, with `decompress=true` or a row filter, its plain
 * (and filtered) content, streamed and gzip-compressed when the client accepts it.
 */
export async function sendPublication(deps: ApiDeps, req: FastifyRequest<{ Querystring: RawQuery }>, reply: FastifyReply, record: PublicationRecord, caller: string | null): Promise<FastifyReply> {
  const q = unknownParameter(req.query, CONTENT_PARAMETERS, 'a download option') ?? readQuery<ContentQuery>(req.query, CONTENT_PARAMETERS, ['where']);
  if ('error' in q) return sendStandard(deps, reply, 400, caller, MSG.schemaFailure, q.error);
  const filter = parseRowFilter(q.where, q.columns);
  if (filter && 'error' in filter) return sendStandard(deps, reply, 400, caller, MSG.schemaFailure, filter.error);
  const decompress = q.decompress === 'true';
  if (q.decompress !== undefined && !decompress && q.decompress !== 'false') {
    return sendStandard(deps, reply, 400, caller, MSG.schemaFailure, `decompress must be true or false`);
  }
  if (!filter && !decompress) return sendWhole(deps, req, reply, record, caller);

  const tabular = tabularFormat(record.format);
  if (filter && !tabular) {
    return sendStandard(deps, reply, 400, caller, MSG.schemaFailure, `rows and columns can be chosen in csv and jsonl publications; ${record.id} is ${record.format}: download it whole`);
  }
  const plain = decoded(record.compression, deps.publications.read(record));
  const body = filter && tabular ? filterRows(tabular, plain, filter) : (plain[Symbol.asyncIterator]() as AsyncIterator<Buffer>);
  // The first piece is awaited before answering, so a filter that cannot apply (an unknown column) is a
  // 400 rather than a cut 200.
  let first: IteratorResult<Buffer>;
  try {
    first = await body.next();
  } catch (err) {
    plain.destroy();
    if (err instanceof FilterError) return sendStandard(deps, reply, 400, caller, MSG.schemaFailure, err.message);
    // The request is sound and the bytes are what the publisher signed; they are just not in the
    // compression its metadata declares (a mislabelled upload, or cut short). Not the DIP's failure (a
    // 500), nor the caller's request (a 400): said so, with what still works.
    if (isDecompressionError(err)) {
      return sendStandard(deps, reply, 422, caller, MSG.processingFailed, `publication ${record.id} is declared ${record.compression}, but its bytes cannot be decompressed as ${record.compression} (${err.message}): download it as stored, without decompress, where or columns`);
    }
    throw err;
  }
  async function* all(): AsyncGenerator<Buffer> {
    if (first.done) return;
    yield first.value;
    for (let next = await body.next(); !next.done; next = await body.next()) yield next.value;
  }
  let out: Readable = Readable.from(all(), { objectMode: false });
  // However the answer ends (sent, cut off for idleness, the client gone), the stored bytes' reader is
  // closed: destroying what Fastify sends does not reach back through the row filter to it.
  reply.raw.once('close', () => plain.destroy());
  reply.header('content-type', contentType(tabular ?? record.format));
  reply.header('vary', 'accept-encoding');
  if (/\bgzip\b/.test(String(req.headers['accept-encoding'] ?? ''))) {
    // pipeline, not pipe: the gzip stream destroyed (the connection closed) destroys its source too.
    out = pipeline(out, createGzip(), () => undefined);
    reply.header('content-encoding', 'gzip');
  }
  return reply.code(200).send(out);
}

/**
 * Whether an If-Match / If-None-Match list names `etag` (or is `*`). Strong comparison (If-Match, RFC 9110
 * 13.1.1) takes no weak tag; weak (If-None-Match, 13.1.2) reads W/"x" as "x".
 */
function namesTag(header: string, etag: string, comparison: 'strong' | 'weak'): boolean {
  return header.split(',').some((tag) => {
    const t = tag.trim();
    if (t === '*') return true;
    if (t.startsWith('W/')) return comparison === 'weak' && t.slice(2) === etag;
    return t === etag;
  });
}

/** An HTTP-date's time, or null when the value is not a date (such a header is ignored: RFC 9110 13.1.3, 13.1.4). */
function httpDate(value: string | undefined): number | null {
  if (value === undefined) return null;
  const t = Date.parse(value);
  return Number.isNaN(t) ? null : t;
}

/**
 * RFC 9110 13.2.2's order for a GET of the stored bytes, whose validators are the ETag (the SHA-256) and
 * Last-Modified (when it was published: a publication never changes, so the date is as strong a
 * validator as the tag): If-Match, else If-Unmodified-Since (412 when false); then If-None-Match, else
 * If-Modified-Since (304 when false); null: send the bytes, or the range If-Range allows.
 */
function conditionalAnswer(headers: FastifyRequest['headers'], etag: string, lastModifiedMs: number): { status: 412; help: string } | { status: 304 } | null {
  const ifMatch = headers['if-match'];
  if (ifMatch !== undefined) {
    if (!namesTag(ifMatch, etag, 'strong')) return { status: 412, help: `precondition failed: If-Match ${ifMatch.slice(0, 100)} does not name this publication's ETag ${etag} (strong comparison): these are not the bytes that tag was given for` };
  } else {
    const since = httpDate(headers['if-unmodified-since']);
    if (since !== null && lastModifiedMs > since) return { status: 412, help: `precondition failed: the publication has changed since ${headers['if-unmodified-since'] ?? ''} (If-Unmodified-Since): it was published ${new Date(lastModifiedMs).toUTCString()}` };
  }
  const ifNoneMatch = headers['if-none-match'];
  if (ifNoneMatch !== undefined) return namesTag(ifNoneMatch, etag, 'weak') ? { status: 304 } : null;
  const since = httpDate(headers['if-modified-since']);
  return since !== null && lastModifiedMs <= since ? { status: 304 } : null;
}

/** If-Range (RFC 9110 13.1.5): the range applies when it is absent, names the ETag (strong), or is exactly the Last-Modified date. */
function rangeStillApplies(ifRange: string | undefined, etag: string, lastModifiedMs: number): boolean {
  if (ifRange === undefined) return true;
  const v = ifRange.trim();
  if (v.startsWith('"') || v.startsWith('W/')) return v === etag;
  return httpDate(v) === lastModifiedMs;
}

function sendWhole(deps: ApiDeps, req: FastifyRequest, reply: FastifyReply, record: PublicationRecord, caller: string | null): FastifyReply {
  const etag = `"${record.sha256}"`;
  // HTTP dates have whole seconds: Last-Modified is the publication time to the second, as it is sent.
  const lastModifiedMs = Math.floor(record.publishedAt / 1000) * 1000;
  reply.header('accept-ranges', 'bytes');
  // A client holding these bytes already (its ETag, the SHA-256, or their date) is told so without them;
  // one resuming a download of other bytes than it holds (If-Match) is told so before a byte is sent.
  const conditional = conditionalAnswer(req.headers, etag, lastModifiedMs);
  if (conditional?.status === 412) return sendStandard(deps, reply, 412, caller, MSG.processingFailed, conditional.help);
  reply.header('etag', etag);
  reply.header('last-modified', new Date(lastModifiedMs).toUTCString());
  if (conditional?.status === 304) return reply.code(304).send();
  const ifRange = req.headers['if-range'];
  const rangeHeader = rangeStillApplies(typeof ifRange === 'string' ? ifRange : undefined, etag, lastModifiedMs) ? req.headers.range : undefined;
  const range = parseRange(rangeHeader, record.size);
  if (range === null) {
    reply.header('content-range', `bytes */${record.size}`);
    return sendStandard(deps, reply, 416, caller, MSG.schemaFailure, `Range ${rangeHeader ?? ''} is outside the ${record.size} bytes of publication ${record.id}`);
  }
  reply.header('repr-digest', `sha-256=:${Buffer.from(record.sha256, 'hex').toString('base64')}:`);
  reply.header('content-type', contentType(record.compression === 'none' ? record.format : 'bin'));
  reply.header('content-disposition', `attachment; filename="${record.fileName.replace(/["\\\r\n]/g, '_')}"`);
  reply.header('x-opendip-compression', record.compression);
  if (range) {
    reply.header('content-range', `bytes ${range.start}-${range.end}/${record.size}`);
    reply.header('content-length', String(range.end - range.start + 1));
    return reply.code(206).send(Readable.from(deps.publications.read(record, range), { objectMode: false }));
  }
  reply.header('content-length', String(record.size));
  return reply.code(200).send(Readable.from(deps.publications.read(record), { objectMode: false }));
}
