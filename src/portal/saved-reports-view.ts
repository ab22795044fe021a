import { MAIL_FORMATS, MAIL_SCHEDULES, describeDefinition, type ReportDefinition, type SavedReport, type SavedReportInput } from '../domain/saved-report.js';
import { actionButton, html, input, isoOrDash, select, table, type Html } from './html.js';
import { field } from './session.js';

/**
 * The saved reports on the Reports page, the same in both portals: the user's own list (open, delete) and
 * the form that saves the report shown under a name, optionally e-mailed (src/domain/saved-report.ts).
 */

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
  shown: Omit<ReportDefinition, 'report'>;
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

