import type { FastifyReply } from 'fastify';
import { RefusedError } from '../pipeline/refused.js';
import type { Participant } from '../domain/participant.js';
import type { Viewer } from '../pipeline/reports.js';
import { AUDIT_FILTERS, auditChannels, auditLinks, reported, auditForm, MPAN_FILTERS, mpanForm, periodOf, reportReply, senderAuditTable, TRACE_FILTERS, traceForm, traceTable } from './audit-view.js';
import type { PortalDeps } from './deps.js';
import { dipId, type FilterRule, type Filters } from './filters.js';
import { html, type Html } from './html.js';
import { isReply, render } from './session.js';
import { asField, asQuery, journeyLink, scope, USER_REALM as R, userFilters, type UserCtx as Ctx, type UserPageRegistrar as Registrar } from './user-realm.js';

/**
 * The user portal's audit reports (spec 5.11.3, figures 16 to 18): the participant's messages as sender
 * (figure 16), a business process followed by its correlation or transaction ID (17), and the messages
 * about an MPAN (18). Each is the reports API's own answer for the participant as viewer
 * (src/pipeline/reports.ts: only what it sent or received, of others' copies none), never a participant
 * named in the URL: `as` is the participant API's rule (a DIP Connection Provider acting for another).
 * The detailed audit (figure 19) is the message's journey page (src/portal/user-pages.ts).
 */

/** The most rows a page shows; the reports API (/observability/reports/…, JSON or CSV) gives them all. */
export const AUDIT_ROWS_SHOWN = 500;

export function registerUserAuditPages(page: Registrar, deps: PortalDeps): void {
  page('/audit', 'GET', async (c) => senderAuditPage(deps, c));
  page('/audit/trace', 'GET', async (c) => tracePage(deps, c));
  page('/audit/mpan', 'GET', async (c) => mpanPage(deps, c));
}

function refused(c: Ctx, title: string, form: Html, status: number, why: string): FastifyReply {
  return render(reportReply(c.reply, status), status, R, c.req, c.signed, title, html`${form}<p role="alert">${why}</p>`);
}

/**
 * What every audit page starts with: its filters (with `as`, src/portal/filters.ts) or the page answered
 * 400, the participant it reads for (the API's rule, `scope`) or the refusal, and its form after the links
 * between the audit reports (keeping "acting as").
 */
function opened<S extends Record<string, FilterRule>>(deps: PortalDeps, c: Ctx, title: string, spec: S, path: string, formOf: (action: string, q: Ctx['req']['query'], extra: Html | null) => Html): { f: Filters<S & { as: ReturnType<typeof dipId> }>; p: Participant; form: Html } | FastifyReply {
  const f = userFilters(c, title, { as: dipId(), ...spec });
  if (isReply(f)) return f;
  const s = scope(deps, c, 'self');
  if (isReply(s)) return s;
  const p = s.caller;
  return { f, p, form: html`${auditLinks('/portal', asQuery(c.own, p))}${formOf(path, c.req.query, asField(c.own, p))}` };
}

const cut = <T>(rows: readonly T[]) => ({ shown: rows.slice(0, AUDIT_ROWS_SHOWN), more: rows.length > AUDIT_ROWS_SHOWN ? html`<p class="muted">The first ${AUDIT_ROWS_SHOWN} of ${rows.length}: narrow the period, or ask the reports API for all of them as CSV.</p>` : null });

async function senderAuditPage(deps: PortalDeps, c: Ctx): Promise<FastifyReply> {
  const title = 'Audit: messages sent';
  const o = opened(deps, c, title, AUDIT_FILTERS, '/portal/audit', auditForm);
  if (isReply(o)) return o;
  const { f, p, form } = o;
  const period = periodOf(f.from, f.to, deps.clock.now());
  if (typeof period === 'string') return refused(c, title, form, 400, period);
  const channels = auditChannels(f.process, f.channels);
  const unknown = channels?.filter((id) => !deps.channel(id));
  if (unknown?.length) return refused(c, title, form, 400, `channels: ${unknown.join(', ')} ${unknown.length === 1 ? 'is' : 'are'} no channel of this DIP`);
  // The sender is the participant itself (figure 16: it defaults to the DIP user): Reports.senderAudit
  // reads a participant's own messages as sender, whatever the filter says.
  const viewer: Viewer = { kind: 'participant', dipId: p.dipId };
  const rows = await reported(() => deps.reports.senderAudit(viewer, { ...period, granularity: 'hour', ...(channels ? { channels } : {}) }));
  if (rows instanceof RefusedError) return refused(c, title, form, rows.status, rows.message);
  const { shown, more } = cut(rows);
  const body = html`${form}
<p class="muted">Messages ${p.dipId} sent${channels ? ` on ${channels.join(', ')}` : ''}, ${new Date(period.fromMs).toISOString()} to ${new Date(period.toMs).toISOString()} (without dates, the last 24 hours). Sent: accepted by the API; DIP: archived and routed; Received: each recipient's outcome. A submission the DIP refused is not here: see API activity.</p>
${senderAuditTable(`${rows.length} message(s) sent`, shown, (r) => journeyLink(c.own, p, r))}${more}`;
  return render(c.reply, 200, R, c.req, c.signed, title, body);
}

async function tracePage(deps: PortalDeps, c: Ctx): Promise<FastifyReply> {
  const title = 'Audit: business process trace';
  const o = opened(deps, c, title, TRACE_FILTERS, '/portal/audit/trace', traceForm);
  if (isReply(o)) return o;
  const { f, p, form } = o;
  const by = f.correlationId ? { correlationId: f.correlationId } : f.transactionId ? { transactionId: f.transactionId } : null;
  if (by === null) return render(c.reply, 200, R, c.req, c.signed, title, html`${form}<p class="muted">Choose a business process and enter the correlation ID (or a transaction ID) that links its messages: they are shown in order across its channels.</p>`);
  const period = periodOf(f.from, f.to, deps.clock.now(), true);
  if (typeof period === 'string') return refused(c, title, form, 400, period);
  const found = await reported(() => deps.reports.trace({ kind: 'participant', dipId: p.dipId }, by, period.fromMs, period.toMs));
  if (found instanceof RefusedError) return refused(c, title, form, found.status, found.message);
  const { shown, more } = cut(found);
  const named = by.correlationId ? `correlation ID ${by.correlationId}` : `transaction ID ${by.transactionId}`;
  return render(c.reply, 200, R, c.req, c.signed, title, html`${form}
${traceTable(`Messages linked by ${named} that ${p.dipId} sent or received`, shown, (m) => journeyLink(c.own, p, m), f.process)}${more}`);
}

async function mpanPage(deps: PortalDeps, c: Ctx): Promise<FastifyReply> {
  const title = 'Audit: MPAN';
  const o = opened(deps, c, title, MPAN_FILTERS, '/portal/audit/mpan', mpanForm);
  if (isReply(o)) return o;
  const { f, p, form } = o;
  if (f.mpan === '') return render(c.reply, 200, R, c.req, c.signed, title, html`${form}<p class="muted">Enter an MPAN to see the messages about it that ${p.dipId} sent or received while responsible for it, across channels.</p>`);
  if (!/^\d{13}$/.test(f.mpan)) return refused(c, title, form, 400, `mpan: "${f.mpan}" is not an MPAN (13 digits)`);
  const period = periodOf(f.from, f.to, deps.clock.now(), true);
  if (typeof period === 'string') return refused(c, title, form, 400, period);
  // The store compares the MPAN as it keeps it (a keyed hash when sealed at rest); the participant sees
  // what it sent or received while it was responsible for the MPAN (Reports.mpanTrace, as the API's).
  const found = await reported(() => deps.reports.mpanTrace({ kind: 'participant', dipId: p.dipId }, f.mpan, period.fromMs, period.toMs));
  if (found instanceof RefusedError) return refused(c, title, form, found.status, found.message);
  if (!found.ok) return refused(c, title, form, found.status, found.help);
  const { shown, more } = cut(found.value);
  return render(c.reply, 200, R, c.req, c.signed, title, html`${form}
${traceTable(`Messages about MPAN ${f.mpan} that ${p.dipId} sent or received`, shown, (m) => journeyLink(c.own, p, m))}${more}`);
}
