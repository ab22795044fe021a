import type { RecipientConfirmation } from '../pipeline/mail-recipients.js';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { JsonSchema } from '../catalogue/types.js';
import { MAIL_FORMATS, MAIL_SCHEDULES, PERIOD_NAMES, SAVED_REPORT_KINDS, SAVED_REPORT_NAME_MAX, SAVED_REPORTS_PER_USER, type SavedReport, type SavedReportInput } from '../domain/saved-report.js';
import { refusalOf } from '../pipeline/refused.js';
import { GRANULARITIES, REPORT_RETRY_AFTER_SECONDS, type Reports, type Viewer } from '../pipeline/reports.js';
import { runDefinition, saveReport } from '../pipeline/saved-reports.js';
import type { SavedReports } from '../ports/saved-reports.js';

/**
 * Saved reports over the APIs (spec 5.11: users configure their own reporting, e.g. by e-mail), the same
 * definitions the portals' Reports pages save (src/domain/saved-report.ts), checked by the same code
 * (saveReport: the fields, the channels, the 20-per-owner cap, a name once per owner) and e-mailed by the
 * same sender (src/pipeline/saved-report-mail.ts: one node sends each, by its claim in the store). Each
 * caller keeps its own under an owner key of its kind: an operator `operator:<name>` (reportOwner: the
 * same operator's portal reports), a participant's system `participant:<DIP ID>` (systemOwner).
 */

/** What the saved-report routes of either listener need. */
export interface SavedReportApiDeps {
  store: Pick<SavedReports, 'list' | 'get' | 'create' | 'remove'>;
  /** Whether saved reports may be e-mailed (an SMTP server is configured). */
  mailing: boolean;
  /** Asks a report's address to confirm it takes the e-mail, as the portal does (null: no e-mail here). */
  recipients: Pick<RecipientConfirmation, 'ask'> | null;
  reports: Pick<Reports, 'throughput' | 'latency'>;
  /** An interface ID in the catalogue's spelling, or undefined: no channel of this DIP. */
  channelId(id: string): string | undefined;
  now(): number;
}

/** Whose saved reports a call reads and writes, and as whom their reports run; or the refusal to answer. */
export type SavedReportCaller = { owner: string; participantDipId: string | null; viewer: Viewer } | { status: 403; help: string };

/** How a listener names its caller, answers, refuses, and documents its routes. */
export interface SavedReportDoor {
  /** /observability/saved-reports or /admin/saved-reports. */
  prefix: string;
  tags: string[];
  /** ` (OpenDIP)` on the participant listener, whose published API does not have these. */
  mark: string;
  /** The participant listener's: each operation's ID and the signature headers; its routes' guard access. */
  signed?: { operationId(name: string): string; headers: JsonSchema; config: { access: 'participant' } };
  /** The listener's answers: `ok` as given, and its refusals for the codes given. */
  answers(ok: Record<number, JsonSchema>, refusals: readonly number[]): Record<number, object>;
  caller(req: FastifyRequest): SavedReportCaller;
  fail(reply: FastifyReply, req: FastifyRequest, status: number, help: string): FastifyReply;
}

/** What a client sends to save a report: the portal form's fields, as JSON (errors name them alike). */
export interface SavedReportBody {
  name: string;
  report: string;
  period: string;
  channels?: string[];
  sender?: string | null;
  recipient?: string | null;
  every?: string;
  format?: string | null;
  email?: string | null;
}

const dipIdOrNull = (what: string) => ({ type: ['string', 'null'], maxLength: 20, description: `A DIP ID (10 letters or digits): ${what}; absent, null or empty: any` });

/** The body of a new saved report: validated here for shape, by saveReport for the rest (as the portal's form). */
export const savedReportBody = {
  type: 'object',
  additionalProperties: false,
  required: ['name', 'report', 'period'],
  properties: {
    name: { type: 'string', maxLength: 1000, description: `1 to ${SAVED_REPORT_NAME_MAX} characters (spaces around trimmed), once among the caller's saved reports` },
    report: { type: 'string', enum: [...SAVED_REPORT_KINDS], description: 'The report it runs (and an e-mail carries): throughput or latency, as GET …/reports/throughput and …/latency' },
    period: { type: 'string', enum: [...PERIOD_NAMES], description: 'Relative to when it runs: day (the last 24 hours, per hour), week (7 days, per day), month (30 days, per day)' },
    channels: { type: 'array', maxItems: 100, items: { type: 'string', minLength: 1, maxLength: 20, pattern: '^[^,]+$' }, description: 'Interface IDs (any case; kept in the catalogue\'s spelling); absent or empty: every channel' },
    sender: dipIdOrNull('what it sent'),
    recipient: dipIdOrNull('its copies only'),
    every: { type: 'string', enum: ['none', ...MAIL_SCHEDULES], description: 'E-mailed daily (06:00 UTC) or weekly (Mondays 06:00 UTC); absent or none: not e-mailed. Only where the DIP has an SMTP server' },
    format: { type: ['string', 'null'], enum: [...MAIL_FORMATS, null], description: "With every: the rows as a CSV attachment, or a summary of totals and a link to the portal's page" },
    email: { type: ['string', 'null'], maxLength: 254, description: 'With every: the address it is sent to' },
  },
} as const;

/** A saved report as either listener answers it: the body's fields as saved (so it can be sent again), and its own. */
const savedReport = {
  type: 'object',
  required: ['id', 'owner', 'name', 'report', 'period', 'channels', 'sender', 'recipient', 'every', 'format', 'email', 'createdAt', 'nextDueAt'],
  properties: {
    id: { type: 'string' },
    owner: { type: 'string', description: '`operator:<name>` (an operator, from the operator API or the operator portal), `participant:<DIP ID>` (a participant system, from the participant API) or `user:<name>` (a portal user)' },
    name: { type: 'string' },
    report: savedReportBody.properties.report,
    period: savedReportBody.properties.period,
    channels: { type: 'array', items: { type: 'string' } },
    sender: { type: ['string', 'null'] },
    recipient: { type: ['string', 'null'] },
    every: savedReportBody.properties.every,
    format: savedReportBody.properties.format,
    email: { type: ['string', 'null'] },
    createdAt: { type: 'integer', description: 'Milliseconds since the Unix epoch' },
    nextDueAt: { type: ['integer', 'null'], description: 'When its next e-mail is due, epoch ms; null: not e-mailed' },
    emailConfirmation: {
      type: ['string', 'null'],
      enum: ['confirmed', 'requested', 'pending', 'unsent', 'limited', null],
      description:
        'Only in the answer to a save with `email`: `confirmed` (the address agreed to this caller\'s reports), `requested` (a confirmation e-mail was sent to it now) , `pending` (one was sent before and is not yet opened) `unsent` (it could not be sent now: delete the report and save it again to ask again) or `limited` (this caller had 10 new addresses asked in the last 7 days: none is asked now; save again later). Nothing is e-mailed to an address before it agrees.',
    },
  },
} as const;

/** A saved report run now: its period ending now, and the rows its report gives for it. */
const ranReport = {
  type: 'object',
  required: ['id', 'name', 'report', 'from', 'to', 'granularity', 'rows'],
  properties: {
    id: { type: 'string' },
    name: { type: 'string' },
    report: savedReportBody.properties.report,
    from: { type: 'string', format: 'date-time' },
    to: { type: 'string', format: 'date-time' },
    granularity: { type: 'string', enum: [...GRANULARITIES] },
    rows: { type: 'array', items: { type: 'object', additionalProperties: true }, description: "The rows of GET …/reports/throughput or …/latency (as `report` says) over the period, as the portal's Reports page charts them" },
  },
} as const;

/** A saved report as answered. */
export function savedReportView(r: SavedReport) {
  const d = r.definition;
  return {
    id: r.id,
    owner: r.owner,
    name: r.name,
    report: d.report,
    period: d.period,
    channels: d.channels,
    sender: d.sender,
    recipient: d.recipient,
    every: r.mailing?.every ?? 'none',
    format: r.mailing?.format ?? null,
    email: r.mailing?.to ?? null,
    createdAt: r.createdAt,
    nextDueAt: r.nextDueAt,
  };
}

/** The body as the portal's form sends it (every field a string, '' for none), for the one check of both. */
function inputOf(b: SavedReportBody): SavedReportInput {
  return { name: b.name, report: b.report, period: b.period, channels: (b.channels ?? []).join(','), sender: b.sender ?? '', recipient: b.recipient ?? '', every: b.every ?? 'none', format: b.format ?? '', email: b.email ?? '' };
}

const idParams: JsonSchema = { type: 'object', required: ['id'], properties: { id: { type: 'string', maxLength: 100, description: 'The saved report\'s ID' } } };
const listOf: JsonSchema = { type: 'object', required: ['savedReports'], properties: { savedReports: { type: 'array', items: savedReport as unknown as JsonSchema } }, description: "The caller's saved reports, oldest first" };

/** The saved-report routes of a listener: list, save, read, run now, delete; only ever the caller's own. */
export function registerSavedReportRoutes(app: FastifyInstance, deps: SavedReportApiDeps, door: SavedReportDoor): void {
  const { prefix, tags, mark, signed } = door;
  const schema = (name: string, summary: string, ok: Record<number, JsonSchema>, refusals: readonly number[], extra: Record<string, unknown> = {}) => ({
    ...(signed ? { config: signed.config } : {}),
    schema: { ...(signed ? { operationId: signed.operationId(name), headers: signed.headers } : {}), tags, summary: `${summary}${mark}`, ...extra, response: door.answers(ok, refusals) },
  });
  type Caller = Exclude<SavedReportCaller, { status: 403 }>;
  /** A handler of the caller's own reports: a caller the listener refuses is answered so, and nothing is read. */
  const own =
    <R extends { Params?: { id: string }; Body?: SavedReportBody }>(handle: (c: Caller, req: FastifyRequest<R>, reply: FastifyReply) => Promise<unknown>) =>
    async (req: FastifyRequest<R>, reply: FastifyReply) => {
      const c = door.caller(req);
      return 'status' in c ? door.fail(reply, req, c.status, c.help) : handle(c, req, reply);
    };
  const unknown = (reply: FastifyReply, req: FastifyRequest, id: string) => door.fail(reply, req, 404, `you have no saved report ${id}`);

  app.get(prefix, schema('listSavedReports', "The caller's saved reports", { 200: listOf }, [403]), own(async (c) => ({ savedReports: (await deps.store.list(c.owner)).map(savedReportView) })));
  app.post<{ Body: SavedReportBody }>(
    prefix,
    schema('saveReport', `Save a report under a name, optionally e-mailed daily or weekly (at most ${SAVED_REPORTS_PER_USER} per caller)`, { 201: { ...(savedReport as unknown as JsonSchema), description: 'Saved' } }, [400, 403], { body: savedReportBody }),
    own<{ Body: SavedReportBody }>(async (c, req, reply) => {
      const made = await saveReport({ store: deps.store, channelId: (id) => deps.channelId(id), mailing: deps.mailing, recipients: deps.recipients, now: () => deps.now() }, c.owner, c.participantDipId, inputOf(req.body));
      if (!made.ok) return door.fail(reply, req, 400, made.problem);
      return reply.code(201).send({ ...savedReportView(made.report), ...(made.recipient !== null ? { emailConfirmation: made.recipient } : {}) });
    }),
  );
  app.get<{ Params: { id: string } }>(
    `${prefix}/:id`,
    schema('getSavedReport', "One of the caller's saved reports", { 200: { ...(savedReport as unknown as JsonSchema), description: 'The saved report' } }, [403, 404], { params: idParams }),
    own<{ Params: { id: string } }>(async (c, req, reply) => {
      const r = await deps.store.get(c.owner, req.params.id);
      return r ? savedReportView(r) : unknown(reply, req, req.params.id);
    }),
  );
  app.get<{ Params: { id: string } }>(
    `${prefix}/:id/run`,
    schema('runSavedReport', "Run one of the caller's saved reports now: its rows over its period ending now", { 200: { ...(ranReport as unknown as JsonSchema), description: 'The report, run now' } }, [403, 404, 429], { params: idParams }),
    own<{ Params: { id: string } }>(async (c, req, reply) => {
      const r = await deps.store.get(c.owner, req.params.id);
      if (!r) return unknown(reply, req, req.params.id);
      try {
        const { period, rows } = await runDefinition(deps.reports, c.viewer, r.definition, deps.now());
        return { id: r.id, name: r.name, report: r.definition.report, from: new Date(period.fromMs).toISOString(), to: new Date(period.toMs).toISOString(), granularity: period.granularity, rows };
      } catch (e) {
        // As the reports' own routes: as many reports as the DIP computes at once are running (429), or a refusal of the store's.
        const refused = refusalOf(e);
        if (!refused) throw e;
        if (refused.status === 429) reply.header('retry-after', String(REPORT_RETRY_AFTER_SECONDS));
        return door.fail(reply, req, refused.status, refused.message);
      }
    }),
  );
  app.delete<{ Params: { id: string } }>(
    `${prefix}/:id`,
    schema('deleteSavedReport', "Delete one of the caller's saved reports (its e-mails stop)", { 204: { type: 'null', description: 'Deleted' } }, [403, 404], { params: idParams }),
    own<{ Params: { id: string } }>(async (c, req, reply) => {
      if (!(await deps.store.remove(c.owner, req.params.id))) return unknown(reply, req, req.params.id);
      return reply.code(204).send();
    }),
  );
}
