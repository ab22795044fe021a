import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { JsonSchema } from '../catalogue/types.js';
import { RefusedError } from '../pipeline/refused.js';
import { Readable } from 'node:stream';
import type { Logger } from '../ports/logger.js';
import type { Registry } from '../pipeline/registry.js';
import { STATUS_CHANNEL } from '../pipeline/status.js';
import { csvPieces, GRANULARITIES, jsonPieces, LINKS, toCsv, type Chain, type Granularity, type LinkBy, type ListingAnswer, type Outcome, REPORT_RETRY_AFTER_SECONDS, type ReportFilter, type Reports, type Viewer } from '../pipeline/reports.js';
import { zonedInstant } from '../domain/time.js';

/** A report's rows, as JSON objects (a CSV's columns are their members, flattened). */
type Rows = Array<Record<string, unknown>>;

interface ReportQuery {
  from?: string;
  to?: string;
  granularity?: Granularity;
  channel?: string;
  sender?: string;
  recipient?: string;
  format?: 'json' | 'csv';
  transactionId?: string;
  correlationId?: string;
  stuckAfterMinutes?: number;
  channels?: string;
  linkBy?: LinkBy;
}

const querySchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    from: { type: 'string', maxLength: 40 },
    to: { type: 'string', maxLength: 40 },
    granularity: { type: 'string', enum: [...GRANULARITIES] },
    channel: {
      type: 'string',
      maxLength: 2000,
      description: 'One or more interface IDs, comma-separated (IF-021,IF-022), in any case: the messages on any of them. An ID that names no channel of the catalogue is refused (400), naming it',
    },
    sender: { type: 'string', maxLength: 20, description: 'A participant ID, in any case: what it sent. One never registered is refused (400)' },
    recipient: { type: 'string', maxLength: 20, description: "A participant ID, in any case: that recipient's copies only. One never registered is refused (400)" },
    format: { type: 'string', enum: ['json', 'csv'] },
    transactionId: { type: 'string', maxLength: 100 },
    correlationId: { type: 'string', maxLength: 100 },
    stuckAfterMinutes: { type: 'number', minimum: 0 },
  },
} as const;

/** The processes report's: a participant's own chain besides (spec 5.11.3, reports linked by the user). */
const processesQuerySchema = {
  ...querySchema,
  properties: {
    ...querySchema.properties,
    channels: {
      type: 'string',
      pattern: '^IF-\\d{3}(?:,IF-\\d{3}){1,9}$',
      description: "A chain of your own: 2 to 10 interface IDs in the order the process runs them, comma-separated (IF-031,IF-032,IF-033), linked by linkBy; answered instead of the predefined processes, each instance from a message on the first to the next, complete at the last (process 'custom')",
    },
    linkBy: { type: 'string', enum: [...LINKS], description: "What links the chain's messages: one correlation ID, one transaction ID, or one MPAN" },
  },
} as const;

/** A participant's own chain from the query, or why not; undefined when none is asked for. */
function chainOf(q: ReportQuery, names: ReportNames): Chain | string | undefined {
  if (q.channels === undefined && q.linkBy === undefined) return undefined;
  if (q.channels === undefined) return 'name channels (2 to 10 interface IDs, comma-separated) for the chain linkBy links';
  if (q.linkBy === undefined) return `name linkBy (${LINKS.join(', ')}): what links the chain's messages`;
  if (q.channel !== undefined) return 'channel narrows the predefined processes to one channel, channels names a chain of your own: not both';
  const channels = q.channels.split(',');
  const unknown = unknownChannels('channels', channels, names);
  if (unknown !== null) return unknown;
  const twice = channels.find((c, i) => channels.indexOf(c) !== i);
  if (twice !== undefined) return `channels names ${twice} twice: a chain passes each channel once`;
  return { channels, linkBy: q.linkBy };
}

/**
 * How a report's filters are read: each ID in the catalogue's or the registry's own spelling, whatever the
 * case it is given in, or undefined for one that names nothing. The store compares IDs as stored, so an ID
 * in another case, or one that names nothing, would be answered with no rows, as if nothing had been sent.
 */
export interface ReportNames {
  channel(id: string): string | undefined;
  participant(id: string): string | undefined;
}

/** The names a DIP's reports know: the catalogue's channels and the DIP's status messages; the registry's participants and the DIP itself. */
export function reportNames(channel: (id: string) => { interfaceId: string } | undefined, registry: Pick<Registry, 'spelling'>, dipId: string): ReportNames {
  return {
    channel: (id) => (id.toUpperCase() === STATUS_CHANNEL ? STATUS_CHANNEL : channel(id)?.interfaceId),
    participant: (id) => (id === dipId ? dipId : registry.spelling(id)),
  };
}

const CHANNEL_IDS = 'interface IDs such as IF-021, comma-separated';

/** Why a list of channels cannot be read (an empty ID, IDs the catalogue does not hold, all named), or null. */
function unknownChannels(field: string, ids: readonly string[], names: ReportNames): string | null {
  if (ids.some((id) => id.trim() === '')) return `${field}: an empty interface ID (${CHANNEL_IDS})`;
  const unknown = ids.filter((id) => names.channel(id.trim()) === undefined);
  if (unknown.length === 0) return null;
  return `${field}: ${unknown.join(', ')} ${unknown.length === 1 ? 'names' : 'name'} no channel of the catalogue (${CHANNEL_IDS})`;
}

/** The filters' IDs in the catalogue's and registry's spelling (channels each once), or why not. */
function namedFilters(q: Pick<ReportQuery, 'channel' | 'sender' | 'recipient'>, names: ReportNames): Pick<ReportFilter, 'channels' | 'sender' | 'recipient'> | string {
  const out: Pick<ReportFilter, 'channels' | 'sender' | 'recipient'> = {};
  if (q.channel !== undefined) {
    const ids = q.channel.split(',');
    const unknown = unknownChannels('channel', ids, names);
    if (unknown !== null) return unknown;
    out.channels = [...new Set(ids.map((id) => names.channel(id.trim())!))];
  }
  for (const field of ['sender', 'recipient'] as const) {
    const id = q[field];
    if (id === undefined) continue;
    const known = names.participant(id);
    if (known === undefined) return `${field}: ${id} is no registered participant`;
    out[field] = known;
  }
  return out;
}

/**
 * A period's end as epoch ms, or why not, naming the field. Only ISO 8601: a date (midnight UTC, as the
 * buckets are) or a date-time with its zone, checked against the calendar (zonedInstant).
 */
function instantOf(field: 'from' | 'to', value: string): number | string {
  const parsed = zonedInstant(field, value, true);
  return 'ms' in parsed ? parsed.ms : parsed.problem;
}

/** How a listener names its viewer and answers a refusal (the participant listener: a StandardResponse). */
export interface ReportRouteOptions {
  prefix: string;
  viewer(req: FastifyRequest): Viewer;
  fail(reply: FastifyReply, req: FastifyRequest, status: number, help: string): FastifyReply;
  /** The listener's answers: `ok` as given, and its refusals (a StandardResponse, or {error}) for the codes given. */
  answers(ok: Record<number, JsonSchema>, refusals: readonly number[]): Record<number, object>;
  /** The participant listener's routes are signed calls (the guard's access). */
  config?: { access: 'participant' };
  now(): number;
  names: ReportNames;
  /** Where an answer that fails after it began is logged (the listeners' fastify loggers are off); else the request's. */
  logger?: Pick<Logger, 'error'>;
}

const DAY = 86_400_000;

/** A report's rows: their columns depend on the report (docs/reports.md); `format=csv` gives the same rows as CSV. */
const rows: JsonSchema = { type: 'array', items: { type: 'object', additionalProperties: true } };
const count = { type: 'integer' };
const ms = { type: ['number', 'null'], description: 'Milliseconds; null without messages' };
const stats: JsonSchema = { type: 'object', required: ['count', 'minMs', 'avgMs', 'maxMs', 'p50Ms', 'p90Ms', 'p99Ms'], properties: { count, minMs: ms, avgMs: ms, maxMs: ms, p50Ms: ms, p90Ms: ms, p99Ms: ms } };
const bucket = { type: 'string', format: 'date-time', description: 'Start of the period the row counts' };
/** The rows the portals chart: each column listed (further columns, if any, pass through). */
const ROWS: Readonly<Record<string, JsonSchema>> = {
  throughput: {
    type: 'array',
    items: {
      type: 'object',
      additionalProperties: true,
      required: ['bucket', 'in', 'out', 'errors', 'pending'],
      properties: {
        bucket,
        in: count,
        out: count,
        errors: count,
        pending: count,
        // From the API activity log: absent when it is not kept, or with a recipient named (a refusal has none).
        refused: { type: 'integer', description: 'Submissions refused (POST /dip-channel answered 400 or above), each a batch, in the bucket of their arrival' },
        refusedMessages: { type: 'integer', description: "The messages those submissions carried: their answers' entries (one per item read, one for a batch refused whole)" },
        refusedCodes: { type: 'object', additionalProperties: { type: 'integer' }, description: 'Refused submissions by MSG code (the first entry naming why: neither MSG0000 nor MSG1000, else the first), or HTTP status without one' },
      },
    },
  },
  latency: {
    type: 'array',
    items: { type: 'object', additionalProperties: true, required: ['bucket', 'endToEnd', 'dipProcessing'], properties: { bucket, endToEnd: stats, dipProcessing: stats } },
  },
};
const periodReport = (name: string): JsonSchema => ({
  type: 'object',
  required: ['from', 'to', 'granularity', 'rows'],
  properties: { from: { type: 'string', format: 'date-time' }, to: { type: 'string', format: 'date-time' }, granularity: { type: 'string', enum: [...GRANULARITIES] }, rows: ROWS[name] ?? rows },
});
const rowsOnly: JsonSchema = { type: 'object', required: ['rows'], properties: { rows } };
/** JSON, or with `format=csv` the rows as CSV (an attachment). */
const jsonOrCsv = (schema: JsonSchema, description: string): JsonSchema => ({
  description,
  content: { 'application/json': { schema }, 'text/csv': { schema: { type: 'string', description: 'The rows as CSV, a header line first' } } },
});
const SUMMARY: Readonly<Record<string, string>> = {
  throughput: 'Messages in, out and refused per period',
  latency: 'End-to-end and DIP-processing latency per period (min, avg, max, p50, p90, p99)',
  'sender-audit': 'What each sender sent, per period',
  processes: 'Business processes linked by correlation ID (change of supplier, appointment) or MPAN (de-acquisition, data collection), or a chain of your own (channels, linkBy), with stuck detection',
  trace: 'The messages of a transaction ID or correlation ID',
  'mpan-trace': 'The messages about an MPAN',
  journey: 'The journey of one transaction: received, validated, archived, routed, attempts, delivered, …',
};

/** Whether a listing's answer was begun as a stream, and what to call once that stream has closed. */
interface Written {
  begun: boolean;
  end: () => void;
}

/**
 * A listing's pieces, an error logged at error level with the report and the request's ID: it comes after
 * the status line and headers went out (200), so the client only sees the body end short (fastify then
 * cuts the connection): the log is where the operator learns why.
 */
async function* loggedPieces(log: Pick<Logger, 'error'>, req: FastifyRequest, report: string, pieces: AsyncIterable<string>): AsyncGenerator<string> {
  try {
    yield* pieces;
  } catch (e) {
    log.error({ err: e, report, reqId: req.id }, `${report} report failed after its answer began: the body sent is cut short`);
    throw e;
  }
}

/** The reports that list messages one by one (up to 200,000 rows): their answers are streamed. */
const LISTINGS: ReadonlySet<string> = new Set(['sender-audit', 'processes', 'trace', 'mpan-trace']);

/**
 * The reports API (spec 5.11), the same on both listeners: JSON or CSV (`format=csv`), for any period
 * (`from`/`to`, ISO 8601; default the last day) and granularity, filtered by channel, sender, recipient.
 */
export function registerReportRoutes(app: FastifyInstance, reports: Reports, o: ReportRouteOptions): void {
  const tags = ['Reports (OpenDIP)'];
  const route = (name: string, ok: JsonSchema, refusals: readonly number[], params?: JsonSchema, querystring: object = querySchema) => {
    // A listing's answer is written as a stream (below): bounded while a client leaves it unread (useAnswerDeadlines, on the
    // participant and operator listeners: it holds its report's slot until written), and not kept in the activity log (up to 200,000 rows).
    const config = { ...o.config, ...(LISTINGS.has(name) ? { streamedAnswer: true, keepAnswer: false as const } : {}) };
    return {
      schema: { tags, summary: SUMMARY[name], querystring, ...(params ? { params } : {}), response: o.answers({ 200: jsonOrCsv(ok, 'The report') }, refusals) },
      ...(Object.keys(config).length > 0 ? { config } : {}),
    };
  };
  const filterOf = (q: ReportQuery): ReportFilter | string => {
    const toMs = q.to ? instantOf('to', q.to) : o.now();
    if (typeof toMs === 'string') return toMs;
    const fromMs = q.from ? instantOf('from', q.from) : toMs - DAY;
    if (typeof fromMs === 'string') return fromMs;
    if (!(fromMs < toMs)) return `from (${new Date(fromMs).toISOString()}) must be before to (${new Date(toMs).toISOString()}${q.to ? '' : ', now'})`;
    const named = namedFilters(q, o.names);
    if (typeof named === 'string') return named;
    return { fromMs, toMs, granularity: q.granularity ?? 'hour', ...named };
  };
  /** A report the store cannot give whole (more messages than one report counts) is refused, saying how to ask. */
  const refusing = async (req: FastifyRequest, reply: FastifyReply, make: () => Promise<FastifyReply>): Promise<FastifyReply> => {
    try {
      return await make();
    } catch (e) {
      if (!(e instanceof RefusedError)) throw e;
      if (e.status === 429) reply.header('retry-after', String(REPORT_RETRY_AFTER_SECONDS));
      return o.fail(reply, req, e.status, e.message);
    }
  };
  /**
   * A listing's written answer: its report keeps its slot (Reports' gate) until `answered` settles, when
   * the stream has ended or closed (written, failed, or the client gone), or at once when none was begun.
   */
  const listing = async (req: FastifyRequest, reply: FastifyReply, make: (answered: Promise<void>, written: Written) => Promise<FastifyReply>): Promise<FastifyReply> => {
    let end!: () => void;
    const answered = new Promise<void>((resolve) => (end = resolve));
    const written: Written = { begun: false, end };
    try {
      return await refusing(req, reply, () => make(answered, written));
    } finally {
      if (!written.begun) end();
    }
  };
  const answer = (req: FastifyRequest, reply: FastifyReply, q: ReportQuery, name: string, rows: Rows | ListingAnswer, extra: Record<string, unknown> = {}, written?: Written) => {
    const csv = q.format === 'csv';
    if (csv) reply.header('content-type', 'text/csv; charset=utf-8').header('content-disposition', `attachment; filename="${name}.csv"`);
    // A listing (up to 200,000 rows) is written in pieces, the event loop taking turns between them; the
    // same bytes as the answer written whole (fastify's JSON of it, toCsv), sent chunked. Folded on the
    // listing thread (Reports.listing), its pieces come from there, written by the same code.
    if (!Array.isArray(rows)) return streamed(req, reply, name, csv, rows.pieces, written, rows.cancel);
    if (!LISTINGS.has(name)) return reply.send(csv ? toCsv(rows) : { ...extra, rows });
    return streamed(req, reply, name, csv, csv ? csvPieces(rows) : jsonPieces(extra, rows), written);
  };
  const streamed = (req: FastifyRequest, reply: FastifyReply, name: string, csv: boolean, pieces: AsyncIterable<string>, written?: Written, cancel?: () => void) => {
    if (!csv) reply.header('content-type', 'application/json; charset=utf-8');
    const stream = Readable.from(loggedPieces(o.logger ?? req.log, req, name, pieces));
    if (cancel) {
      // What the listing thread holds of an answer not read to its end (the client gone, or the answer refused by a later hook) is dropped.
      stream.once('close', cancel);
      reply.raw.once('close', cancel);
    }
    if (written) {
      written.begun = true;
      stream.once('close', written.end);
      // And should the stream never be piped (the answer refused by a later hook), once the response has closed.
      reply.raw.once('close', written.end);
    }
    return reply.send(stream);
  };
  const withFilter = (name: string, make: (viewer: Viewer, f: ReportFilter, q: ReportQuery, answered: Promise<void>, head: Record<string, unknown>) => Promise<Rows | ListingAnswer>, querystring?: object) =>
    app.get<{ Querystring: ReportQuery }>(`${o.prefix}/${name}`, route(name, periodReport(name), [400, 429], undefined, querystring), async (req, reply) => {
      const f = filterOf(req.query);
      if (typeof f === 'string') return o.fail(reply, req, 400, f);
      const head = { from: new Date(f.fromMs).toISOString(), to: new Date(f.toMs).toISOString(), granularity: f.granularity };
      return listing(req, reply, async (answered, written) => answer(req, reply, req.query, name, await make(o.viewer(req), f, req.query, answered, head), head, written));
    });
  const outcome = <T>(req: FastifyRequest, reply: FastifyReply, q: ReportQuery, name: string, r: Outcome<T>, rows: (v: T) => Array<Record<string, unknown>>, written?: Written) =>
    r.ok ? answer(req, reply, q, name, rows(r.value), {}, written) : o.fail(reply, req, r.status, r.help);

  withFilter('throughput', (v, f) => reports.throughput(v, f));
  withFilter('latency', (v, f) => reports.latency(v, f));
  // A listing is folded and written on the listing thread when there is one (the SQLite engine's), else here.
  const csvOf = (q: ReportQuery, head: Record<string, unknown> = {}) => ({ csv: q.format === 'csv', head });
  withFilter('sender-audit', (v, f, q, answered, head) => reports.listing({ report: 'sender-audit', viewer: v, filter: f }, csvOf(q, head), answered) ?? reports.senderAudit(v, f, answered));
  withFilter(
    'processes',
    async (v, f, q, answered, head) => {
      const chain = chainOf(q, o.names);
      if (typeof chain === 'string') throw new RefusedError(400, chain);
      const stuckAfterMs = (q.stuckAfterMinutes ?? 60) * 60_000;
      return (
        reports.listing({ report: 'processes', viewer: v, filter: f, stuckAfterMs, ...(chain ? { chain } : {}) }, csvOf(q, head), answered) ??
        ((await reports.processes(v, f, stuckAfterMs, answered, chain)) as unknown as Rows)
      );
    },
    processesQuerySchema,
  );
  app.get<{ Querystring: ReportQuery }>(`${o.prefix}/trace`, route('trace', rowsOnly, [400, 429]), async (req, reply) => {
    const { transactionId, correlationId } = req.query;
    if (!transactionId && !correlationId) return o.fail(reply, req, 400, 'name a transactionId or a correlationId');
    const f = filterOf({ from: req.query.from ?? new Date(0).toISOString(), to: req.query.to });
    if (typeof f === 'string') return o.fail(reply, req, 400, f);
    const by = { transactionId, correlationId };
    return listing(req, reply, async (answered, written) =>
      answer(req, reply, req.query, 'trace', (await (reports.listing({ report: 'trace', viewer: o.viewer(req), by, fromMs: f.fromMs, toMs: f.toMs }, csvOf(req.query), answered) ?? reports.trace(o.viewer(req), by, f.fromMs, f.toMs, answered))) as unknown as Rows | ListingAnswer, {}, written),
    );
  });
  app.get<{ Params: { mpan: string }; Querystring: ReportQuery }>(
    `${o.prefix}/mpan/:mpan`,
    route('mpan-trace', rowsOnly, [400, 403, 429], { type: 'object', required: ['mpan'], properties: { mpan: { type: 'string', pattern: '^\\d{13}$' } } }),
    async (req, reply) => {
      const f = filterOf(req.query);
      if (typeof f === 'string') return o.fail(reply, req, 400, f);
      return listing(req, reply, async (answered, written) =>
        outcome(req, reply, req.query, 'mpan-trace', await reports.mpanTrace(o.viewer(req), req.params.mpan, f.fromMs, f.toMs, answered), (v) => v as unknown as Array<Record<string, unknown>>, written),
      );
    },
  );
  const transaction: JsonSchema = { type: 'object', required: ['transactionId'], properties: { transactionId: { type: 'string', maxLength: 200 } } };
  app.get<{ Params: { transactionId: string }; Querystring: ReportQuery }>(`${o.prefix}/journey/:transactionId`, route('journey', rowsOnly, [400, 403, 404], transaction), async (req, reply) =>
    outcome(req, reply, req.query, 'journey', await reports.journey(o.viewer(req), req.params.transactionId), (v) => v.events as unknown as Array<Record<string, unknown>>),
  );
}
