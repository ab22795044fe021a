import type { FastifyReply } from 'fastify';
import type { TracedMessage } from '../ports/traces.js';
import { AUDIT_FILTERS, auditChannels, auditLinks, auditForm, detailedAudit, messageHeader, MPAN_FILTERS, mpanForm, periodOf, reportReply, senderAuditTable, TRACE_FILTERS, traceForm, traceTable, type SenderAuditRow } from './audit-view.js';
import type { PortalDeps } from './deps.js';
import { dipId, freeText } from './filters.js';
import { html, input, type Html } from './html.js';
import { api, filtersOf, OPERATOR_REALM as O, problemOf, type OperatorCtx as Ctx } from './operator-realm.js';
import { refuse, render, isReply } from './session.js';

/**
 * The operator portal's audit reports (spec 5.11.3, figures 16 to 19) across every participant: the
 * operator reports API's answers (GET /admin/reports/sender-audit, trace, mpan/{mpan}), called in-process
 * as the operator signed in, like every operator page. The rows are the reports' own (src/pipeline/reports.ts),
 * which the route passes through as JSON (its schema lists no columns): read back as those types.
 */

const AUDIT_ROWS_SHOWN = 500;
const link = (m: { transactionId: string }) => `/operator/messages/${encodeURIComponent(m.transactionId)}`;
const iso = (ms: number) => new Date(ms).toISOString();

export function registerOperatorAuditPages(page: (path: string, method: 'GET', handler: (c: Ctx) => Promise<FastifyReply>) => void, deps: PortalDeps): void {
  page('/audit', 'GET', async (c) => senderAuditPage(deps, c));
  page('/audit/trace', 'GET', async (c) => tracePage(deps, c));
  page('/audit/mpan', 'GET', async (c) => mpanPage(deps, c));
  page('/messages/:transactionId', 'GET', async (c) => messagePage(deps, c));
}

const links = auditLinks('/operator');

function answered(c: Ctx, title: string, form: Html, status: number, why: string): FastifyReply {
  return render(reportReply(c.reply, status), status, O, c.req, c.signed, title, html`${links}${form}<p role="alert">${why}</p>`);
}

const cut = <T>(rows: readonly T[]) => ({ shown: rows.slice(0, AUDIT_ROWS_SHOWN), more: rows.length > AUDIT_ROWS_SHOWN ? html`<p class="muted">The first ${AUDIT_ROWS_SHOWN} of ${rows.length}: narrow the period, or ask GET /admin/reports/… for all of them as CSV.</p>` : null });

async function senderAuditPage(deps: PortalDeps, c: Ctx): Promise<FastifyReply> {
  const title = 'Audit: messages sent';
  const f = filtersOf(c, title, { ...AUDIT_FILTERS, sender: dipId() });
  if (isReply(f)) return f;
  const form = auditForm('/operator/audit', c.req.query, input('sender', 'Sender DIP ID (optional: every sender)', { value: f.sender }));
  const period = periodOf(f.from, f.to, deps.clock.now());
  if (typeof period === 'string') return answered(c, title, form, 400, period);
  const channels = auditChannels(f.process, f.channels);
  const query = { from: iso(period.fromMs), to: iso(period.toMs), ...(channels ? { channel: channels.join(',') } : {}), ...(f.sender ? { sender: f.sender } : {}) };
  const got = await api(deps, c).GET('/admin/reports/sender-audit', { params: { query } });
  if (!got.data) return answered(c, title, form, got.response.status, problemOf(got.error));
  const rows = got.data.rows as unknown as SenderAuditRow[];
  const { shown, more } = cut(rows);
  return render(c.reply, 200, O, c.req, c.signed, title, html`${links}${form}
<p class="muted">Messages sent by ${f.sender || 'every participant'}${channels ? ` on ${channels.join(', ')}` : ''}, ${query.from} to ${query.to} (without dates, the last 24 hours).</p>
${senderAuditTable(`${rows.length} message(s) sent`, shown, link)}${more}`);
}

async function tracePage(deps: PortalDeps, c: Ctx): Promise<FastifyReply> {
  const title = 'Audit: business process trace';
  const f = filtersOf(c, title, TRACE_FILTERS);
  if (isReply(f)) return f;
  const form = traceForm('/operator/audit/trace', c.req.query);
  const by = f.correlationId ? { correlationId: f.correlationId } : f.transactionId ? { transactionId: f.transactionId } : null;
  if (by === null) return render(c.reply, 200, O, c.req, c.signed, title, html`${links}${form}<p class="muted">Choose a business process and enter the correlation ID (or a transaction ID) that links its messages.</p>`);
  const period = periodOf(f.from, f.to, deps.clock.now(), true);
  if (typeof period === 'string') return answered(c, title, form, 400, period);
  const got = await api(deps, c).GET('/admin/reports/trace', { params: { query: { ...by, from: iso(period.fromMs), to: iso(period.toMs) } } });
  if (!got.data) return answered(c, title, form, got.response.status, problemOf(got.error));
  const { shown, more } = cut(got.data.rows as unknown as TracedMessage[]);
  const named = by.correlationId ? `correlation ID ${by.correlationId}` : `transaction ID ${by.transactionId}`;
  return render(c.reply, 200, O, c.req, c.signed, title, html`${links}${form}${traceTable(`Messages linked by ${named}`, shown, link, f.process)}${more}`);
}

async function mpanPage(deps: PortalDeps, c: Ctx): Promise<FastifyReply> {
  const title = 'Audit: MPAN';
  const f = filtersOf(c, title, MPAN_FILTERS);
  if (isReply(f)) return f;
  const form = mpanForm('/operator/audit/mpan', c.req.query);
  if (f.mpan === '') return render(c.reply, 200, O, c.req, c.signed, title, html`${links}${form}<p class="muted">Enter an MPAN to see every message about it, across channels.</p>`);
  if (!/^\d{13}$/.test(f.mpan)) return answered(c, title, form, 400, `mpan: "${f.mpan}" is not an MPAN (13 digits)`);
  const period = periodOf(f.from, f.to, deps.clock.now(), true);
  if (typeof period === 'string') return answered(c, title, form, 400, period);
  const got = await api(deps, c).GET('/admin/reports/mpan/{mpan}', { params: { path: { mpan: f.mpan }, query: { from: iso(period.fromMs), to: iso(period.toMs) } } });
  if (!got.data) return answered(c, title, form, got.response.status, problemOf(got.error));
  const { shown, more } = cut(got.data.rows as unknown as TracedMessage[]);
  return render(c.reply, 200, O, c.req, c.signed, title, html`${links}${form}${traceTable(`Messages about MPAN ${f.mpan}`, shown, link)}${more}`);
}

/**
 * The detailed audit of one message (figure 19), every recipient's copy: its header and workflow. The
 * payload is not shown: each recipient's copy was made for it (obfuscated for its role, encrypted for it);
 * the signed request as received is the evidence API's (GET /admin/evidence/{transactionId}).
 */
async function messagePage(deps: PortalDeps, c: Ctx): Promise<FastifyReply> {
  const f = filtersOf(c, 'Message', { recipient: freeText(20) });
  if (isReply(f)) return f;
  const tx = c.req.params.transactionId ?? '';
  const got = await api(deps, c).GET('/admin/reports/trace', { params: { query: { transactionId: tx } } });
  if (!got.data) return refuse(reportReply(c.reply, got.response.status), O, c.req, c.signed, got.response.status, problemOf(got.error));
  const m = (got.data.rows as unknown as TracedMessage[]).find((x) => x.transactionId === tx);
  if (!m) return refuse(c.reply, O, c.req, c.signed, 404, `no message ${tx}`);
  return render(c.reply, 200, O, c.req, c.signed, `Journey of ${m.transactionId}`, html`${links}${detailedAudit(m, f.recipient || null, link(m), null, deps.config.dipId)}
<h2>Header</h2>${messageHeader(m)}
<p class="muted">Each recipient's copy of the payload was made for it (obfuscated for its role, encrypted for it): the signed request as received is evidence, GET /admin/evidence/${m.transactionId}.</p>`);
}
