import type { FastifyReply } from 'fastify';
import { definitionQuery, reportOwner, MAIL_FORMATS, MAIL_SCHEDULES, PERIOD_NAMES, describeDefinition, readSavedReport, type ReportDefinition, type SavedReport, type SavedReportInput } from '../domain/saved-report.js';
import { saveReport } from '../pipeline/saved-reports.js';
import type { PortalDeps } from './deps.js';
import { dipId, freeText, oneOf, type Filters } from './filters.js';
import { actionButton, html, input, isoOrDash, select, table, type Flash, type Html } from './html.js';
import { field, refuse, type PortalReq, type Realm, type Signed } from './session.js';

/**
 * The saved reports on the Reports page, the same in both portals: the user's own list (open, delete) and
 * the form that saves the report shown under a name, optionally e-mailed (src/domain/saved-report.ts).
 */

/** The Reports pages' filters (both portals): a saved report's definition is these and the report an e-mail carries. */
export const REPORT_FILTERS = { period: oneOf(PERIOD_NAMES, 'day'), channel: freeText(2000), sender: dipId(), recipient: dipId() };

/** The filters a Reports page shows: a saved report's definition without the report it e-mails. */
export type ShownReport = Omit<ReportDefinition, 'report'>;

/** The page's filters as read from its query. */
export const shownOf = (f: Filters<typeof REPORT_FILTERS>): ShownReport => ({
  period: f.period,
  channels: f.channel.split(',').map((x) => x.trim()).filter((x) => x !== ''),
  sender: f.sender || null,
  recipient: f.recipient || null,
});

/** A portal's Reports page, for the saved reports' actions: where it is, whose reports, and the page itself to answer with. */
export interface SavedReportsPage {
  realm: Realm;
  /** /portal/reports or /operator/reports. */
  base: string;
  req: PortalReq;
  reply: FastifyReply;
  signed: Signed;
  /** The participant the user acts for (the report's viewer); null for an operator. */
  participantDipId: string | null;
  /** The Reports page showing `shown` (null: the query's filters), with a flash. */
  page(shown: ShownReport | null, flash: Flash, status: number): Promise<FastifyReply>;
}

/** Saves the report shown under a name: the user's own (the store caps and names per user). */
export async function saveShownReport(deps: PortalDeps, o: SavedReportsPage): Promise<FastifyReply> {
  const owner = reportOwner(o.signed.account);
  const input = savedReportInput(o.req.body);
  const shown = readSavedReport({ ...input, name: 'shown', every: 'none' }, (id) => id);
  const made = await saveReport({ store: deps.savedReports.store, channelId: (id) => deps.channel(id)?.interfaceId, mailing: deps.savedReports.mailing, recipients: deps.savedReports.recipients, now: () => deps.clock.now() }, owner, o.participantDipId, input);
  if (!made.ok) return o.page(shown.ok ? shown.definition : null, { kind: 'error', text: `not saved: ${made.problem}` }, 400);
  const r = made.report;
  deps.logger.info({ username: owner, participant: o.participantDipId, id: r.id, mailed: r.mailing?.every ?? null }, 'portal: report saved');
  const waiting =
    made.recipient === 'confirmed' || made.recipient === null
      ? ''
      : made.recipient === 'unsent'
        ? ': nothing is e-mailed yet, the confirmation e-mail to the address could not be sent now (delete the report and save it again to ask again)'
        : made.recipient === 'limited'
          ? ': nothing is e-mailed yet, and the address was not asked: you had as many new addresses asked in the last 7 days as you may (delete the report and save it again later)'
        : ` once the address agrees: ${made.recipient === 'requested' ? 'a confirmation e-mail was sent to it' : 'it was sent a confirmation e-mail already'}, nothing else goes there before it opens the link`;
  return o.page(r.definition, { kind: 'ok', text: `saved "${r.name}"${r.mailing ? `: e-mailed ${r.mailing.every} to ${r.mailing.to}, next at ${isoOrDash(r.nextDueAt)}${waiting}` : ''}` }, 200);
}

/** Opens one of the user's saved reports: the page with its filters, run now. Another's is answered as unknown. */
export async function openSavedReport(deps: PortalDeps, o: SavedReportsPage): Promise<FastifyReply> {
  const id = o.req.params.id ?? '';
  const r = await deps.savedReports.store.get(reportOwner(o.signed.account), id);
  if (!r) return refuse(o.reply, o.realm, o.req, o.signed, 404, `you have no saved report ${id}`);
  return o.reply.redirect(`${o.base}?${definitionQuery(r.definition)}`, 303);
}

/** Deletes one of the user's saved reports; another's (or none) is answered as unknown, and nothing is removed. */
export async function removeSavedReport(deps: PortalDeps, o: SavedReportsPage): Promise<FastifyReply> {
  const id = field(o.req.body, 'id');
  if (!(await deps.savedReports.store.remove(reportOwner(o.signed.account), id))) return o.page(null, { kind: 'error', text: `you have no saved report ${id}` }, 404);
  deps.logger.info({ username: o.signed.account.username, participant: o.participantDipId, id }, 'portal: saved report deleted');
  return o.page(null, { kind: 'ok', text: 'saved report deleted' }, 200);
}

/** What the form posts, as the domain reads it. */
export function savedReportInput(body: unknown): SavedReportInput {
  const read = (name: keyof SavedReportInput) => field(body, name);
  return { name: read('name'), report: read('report'), period: read('period'), channels: read('channels'), sender: read('sender'), recipient: read('recipient'), every: read('every'), format: read('format'), email: read('email') };
}

export interface SavedReportsSection {
  /** The Reports page's path (/portal/reports or /operator/reports): saved reports live under it. */
  base: string;
  saved: readonly SavedReport[];
  csrf: string;
  /** The filters shown now: what the form saves. */
  shown: ShownReport;
  /** Whether e-mail is offered (an SMTP server is configured). */
  mailing: boolean;
}

export function savedReportsSection(o: SavedReportsSection): Html {
  const rows = o.saved.map(
    (r) => html`<tr><td><a href="${o.base}/saved/${encodeURIComponent(r.id)}">${r.name}</a></td><td>${describeDefinition(r.definition)}</td><td>${r.mailing ? `${r.mailing.every} to ${r.mailing.to} (${r.mailing.format === 'csv' ? 'CSV attached' : 'summary and link'}), next ${isoOrDash(r.nextDueAt)}` : '—'}</td>
<td>${actionButton({ action: `${o.base}/saved/remove`, csrf: o.csrf, fields: { id: r.id }, label: 'Delete', about: r.name, kind: 'danger' })}</td></tr>`,
  );
  const s = o.shown;
  const mail = o.mailing
    ? html`<fieldset><legend>E-mail it (optional)</legend>${select('every', 'Send by e-mail', [{ value: 'none', label: 'Not by e-mail' }, ...MAIL_SCHEDULES.map((v) => ({ value: v, label: v === 'daily' ? 'Daily, 06:00 UTC' : 'Weekly, Mondays 06:00 UTC' }))], 'none')}
${select('format', 'As', MAIL_FORMATS.map((v) => ({ value: v, label: v === 'csv' ? 'The rows as a CSV attachment' : 'A summary and a link to this page' })), 'summary')}
${input('email', 'To (e-mail address)', { type: 'email', autocomplete: 'email', maxlength: 254 })}</fieldset>`
    : html`<p class="muted">This DIP sends no e-mail (no SMTP server is configured): reports are saved to open here.</p>`;
  return html`<h2>Saved reports</h2>
${table('Your saved reports (open one to run it now)', ['Name', 'Report', 'E-mailed', ''], rows, 'You have no saved report: save the one shown below.')}
<form method="post" action="${o.base}/saved"><input type="hidden" name="_csrf" value="${o.csrf}">
<input type="hidden" name="period" value="${s.period}"><input type="hidden" name="channels" value="${s.channels.join(',')}"><input type="hidden" name="sender" value="${s.sender ?? ''}"><input type="hidden" name="recipient" value="${s.recipient ?? ''}">
<fieldset><legend>Save the report shown (${describeDefinition({ report: 'throughput', ...s }).replace(/^throughput, /, '')})</legend>
${input('name', 'Name', { required: true, maxlength: 80 })}
${select('report', 'Report (what an e-mail carries)', [{ value: 'throughput', label: 'Throughput' }, { value: 'latency', label: 'Latency' }], 'throughput')}</fieldset>
${mail}
<button type="submit">Save report</button></form>`;
}

