import type { OperatorApi } from '../openapi-client/index.js';
import { badge, codeBlock, facts, html, input, isoOrDash, select, table, textarea, type Flash, type Html } from './html.js';
import { csrfField, field, type PortalReq, type Signed } from './session.js';

/** What the page shows of a participant as GET /admin/participants answers it. */
interface ParticipantRow {
  dipId: string;
  suspended: { at: string; by: string; reason: string } | null;
  previousCertificateValidUntil: string | null;
  certificateFingerprint: string;
  certificateNotAfter: string;
}

/** What an action on the participant pages answers: the page's flash, its status, and what to show once (an API key, a certificate). */
export interface Outcome {
  flash: Flash;
  status: number;
  shown: Html | null;
}

const REVOCATION_REASONS = ['keyCompromise', 'superseded', 'cessationOfOperation', 'affiliationChanged', 'unspecified'];
const problemOf = (error: unknown): string => (typeof error === 'object' && error !== null && 'error' in error && typeof error.error === 'string' ? error.error : 'refused');
const refused = (what: string, status: number, error: unknown): Outcome => ({ flash: { kind: 'error', text: `${what}: ${problemOf(error)}` }, status, shown: null });

/**
 * The operator portal's participant administration (spec 5.12.2 "Create User", "Manage User", "Certificate
 * Management"): every act through the operator API as the operator signed in (src/api/admin-participants.ts),
 * so the operator's role decides (a viewer is refused, certificates are an admin's) and the API journals it.
 */
export function createParticipantForm(signed: Signed): Html {
  return html`<h2>Register a participant</h2>
<p class="muted">The MPIDs must all be registered, now, under one DIP ID of the central register: it gives the DIP ID and the roles (a role it does not give is refused). The certificate is issued for the company's certificate signing request, so its private key never leaves the company. Its first portal administrator is invited by e-mail; the API key is shown once, here.</p>
<form method="post" action="/operator/participants">${csrfField(signed)}
${input('new-company', 'Company name', { name: 'companyName', required: true, minlength: 2, maxlength: 200 })}
${input('new-mpids', 'MPIDs (comma-separated)', { name: 'mpids', required: true })}
${input('new-roles', 'DIP roles (comma-separated, as the register gives them)', { name: 'roles', required: true })}
${input('new-contact', 'First administrator: name', { name: 'contactName', required: true, maxlength: 100 })}
${input('new-email', 'First administrator: e-mail address', { name: 'contactEmail', type: 'email', required: true, maxlength: 254 })}
${input('new-username', 'First administrator: portal username (optional)', { name: 'username', maxlength: 64, pattern: '[a-z0-9][a-z0-9._\\-]{2,63}' })}
${textarea('new-csr', "The company's certificate signing request (PEM)", { name: 'csr', required: true, rows: 6 })}
<button type="submit">Register participant</button></form>`;
}

const list = (s: string): string[] => s.split(/[\s,]+/).map((x) => x.trim().toUpperCase()).filter(Boolean);

export async function createParticipant(api: OperatorApi, req: PortalReq): Promise<Outcome> {
  const b = req.body;
  const username = field(b, 'username').trim();
  const made = await api.POST('/admin/participants', {
    body: { companyName: field(b, 'companyName'), mpids: list(field(b, 'mpids')), roles: list(field(b, 'roles')), contactName: field(b, 'contactName'), contactEmail: field(b, 'contactEmail'), csr: field(b, 'csr'), ...(username ? { username } : {}) },
  });
  if (!made.data) return refused('not registered', made.response.status, made.error);
  const d = made.data;
  const mail = d.invitation.sent ? `${d.username} was invited by e-mail` : `the invitation could not be e-mailed (${d.invitation.problem ?? ''}): reset ${d.username}'s authenticator to give it a new first password`;
  const extra = d.rolesNotNamed.length ? ` (the register also gives ${d.rolesNotNamed.join(', ')})` : '';
  const shown = html`<h2>Participant API key</h2><p>Shown this once: hand it to the company over a channel you trust. The DIP keeps only its hash.</p>${codeBlock('Participant API key', d.apiKey)}${codeBlock('Participant certificate (PEM)', d.certificatePem)}<p><a href="/operator/participants/${d.dipId}">Participant ${d.dipId}</a></p>`;
  return { flash: { kind: 'ok', text: `${d.dipId} registered with the roles ${d.roles.join(', ')}${extra}; ${mail}` }, status: 201, shown };
}

/**
 * The participant page's administration: its state with suspend or reactivate, its certificate renewed from
 * a CSR or revoked, and its offboarding, offered only when `offboardRefusal` (the operator API's answer for
 * the role signed in) is null: otherwise why not is said in its place.
 */
export function manageParticipant(p: ParticipantRow, signed: Signed, offboardRefusal: string | null): Html {
  const csrf = csrfField(signed);
  const base = `/operator/participants/${p.dipId}`;
  const state = p.suspended
    ? html`<p>${badge('bad', 'suspended')} since ${isoOrDash(Date.parse(p.suspended.at))} by ${p.suspended.by}: ${p.suspended.reason}. Its calls are refused 403 with this reason; messages for it are held.</p>
<form method="post" action="${base}/reactivate">${csrf}<button type="submit">Reactivate<span class="skip"> ${p.dipId}</span></button></form>`
    : html`<p>${badge('ok', 'active')}</p>
<form method="post" action="${base}/suspend">${csrf}${textarea('suspend-reason', 'Reason for suspending (said to the participant in every refusal)', { name: 'reason', required: true, minlength: 1, maxlength: 500, rows: 2 })}<button type="submit" class="danger">Suspend<span class="skip"> ${p.dipId}</span></button></form>`;
  const which = [{ value: 'current', label: `current (SHA-256 ${p.certificateFingerprint.slice(0, 16)}…)` }, ...(p.previousCertificateValidUntil ? [{ value: 'previous', label: `previous (accepted until ${p.previousCertificateValidUntil})` }] : [])];
  return html`<h2>State</h2>${state}
<h2>Certificate</h2>
<p>Current certificate: SHA-256 <code>${p.certificateFingerprint}</code>, valid until ${p.certificateNotAfter}${p.previousCertificateValidUntil ? `; the one it replaced is accepted for signing until ${p.previousCertificateValidUntil}` : ''}.</p>
<form method="post" action="${base}/certificate">${csrf}
${textarea('renew-csr', "New certificate signing request from the participant (PEM)", { name: 'csr', required: true, rows: 6 })}
${input('renew-overlap', 'Days the current certificate stays accepted for signing', { type: 'number', name: 'overlapDays', min: 0, max: 90, value: 7 })}
<button type="submit">Issue and register<span class="skip"> a new certificate for ${p.dipId}</span></button></form>
<form method="post" action="${base}/revoke">${csrf}
${select('revoke-which', 'Certificate to revoke', which, 'current', { name: 'which' })}
${select('revoke-why', 'Reason', REVOCATION_REASONS.map((r) => ({ value: r, label: r })), 'superseded', { name: 'reason' })}
<button type="submit" class="danger">Revoke<span class="skip"> a certificate of ${p.dipId}</span></button></form>
<h2>Offboard</h2>
${offboardRefusal === null ? offboardForm(p.dipId, csrf, base) : html`<p class="muted">Not yours to offboard: ${offboardRefusal}.</p>`}`;
}

function offboardForm(dipId: string, csrf: Html, base: string): Html {
  return html`<details><summary>Offboard ${dipId}…</summary>
<p class="muted">As <code>dip offboard</code> and POST /admin/participants/{dipId}/offboard: its certificates are revoked, its registration, API key and webhooks removed, what is queued for it dead-lettered (senders told); its messages, journal and this page stay readable. It cannot be undone: registering it again is a new registration.</p>
<form method="post" action="${base}/offboard">${csrf}
${textarea('offboard-reason', 'Reason for offboarding (journalled)', { name: 'reason', required: true, minlength: 1, maxlength: OFFBOARD_REASON_MAX, rows: 2 })}
<div><input type="checkbox" id="offboard-confirm" name="confirm" value="yes" required> <label for="offboard-confirm" class="inline-label">I confirm: ${dipId} is offboarded for good</label></div>
<button type="submit" class="danger">Offboard<span class="skip"> ${dipId}</span></button></form></details>`;
}

/** The offboarding API's reason limit (src/api/admin-register.ts). */
const OFFBOARD_REASON_MAX = 500;

/** What the DIP keeps of an offboarded participant (its profile's rescission) and the journal's entries on it. */
export interface OffboardedView {
  dipId: string;
  rescinded: { at: number; by: string; roles: string[]; organisation: string; certificateFingerprint: string };
  /** The `participant.offboard` entry's reason; null when the journal no longer holds it. */
  reason: string | null;
  history: Html;
}

/**
 * An offboarded participant's page: what it was, when, by whom and why it was offboarded, and its history
 * (the journal's entries on it, its messages in the audit); no action, for none applies to it any more.
 */
export function offboardedParticipant(v: OffboardedView): Html {
  const r = v.rescinded;
  return html`<p>${badge('bad', 'offboarded')} at ${isoOrDash(r.at)} by ${r.by}: ${v.reason ?? '(the reason is no longer in the journal)'}. Its certificates are revoked and its registration, API key and webhooks removed; its messages and journal are kept.</p>
${facts([
    ['Organisation', r.organisation],
    ['Roles it held', r.roles.join(', ') || 'none'],
    ['Certificate (SHA-256)', html`<code>${r.certificateFingerprint}</code>`],
    ['Offboarded', isoOrDash(r.at)],
    ['By', r.by],
    ['Why', v.reason ?? '—'],
  ])}
<h2>History</h2>
<p><a href="/operator/audit?sender=${v.dipId}">Messages ${v.dipId} sent (audit)</a> · <a href="/operator/journal?target=${v.dipId}">Its journal entries</a></p>
${v.history}`;
}

/** Journal entries (GET /admin/journal) as a table: who did what to what, with the state before and after. */
export function journalTable(caption: string, entries: ReadonlyArray<{ at: string; actor: string; action: string; target: string; before?: unknown; after?: unknown; status: number | null }>, empty: string): Html {
  const json = (v: unknown) => (v === null || v === undefined ? '' : html`<code>${JSON.stringify(v)}</code>`);
  const rows = entries.map((e) => html`<tr><td>${e.at}</td><td>${e.actor}</td><td><code>${e.action}</code></td><td>${e.target}</td><td>${json(e.before)}</td><td>${json(e.after)}</td><td class="num">${e.status ?? ''}</td></tr>`);
  return table(caption, ['When', 'Actor', 'Action', 'Target', 'Before', 'After', 'Answer'], rows, empty);
}

export async function participantAction(api: OperatorApi, dipId: string, action: string, req: PortalReq): Promise<Outcome> {
  const path = { params: { path: { dipId } } };
  const b = req.body;
  if (action === 'suspend') {
    const done = await api.POST('/admin/participants/{dipId}/suspend', { ...path, body: { reason: field(b, 'reason') } });
    return done.data ? { flash: { kind: 'ok', text: `${dipId} suspended: its calls are refused, messages for it held` }, status: 200, shown: null } : refused('not suspended', done.response.status, done.error);
  }
  if (action === 'reactivate') {
    const done = await api.POST('/admin/participants/{dipId}/reactivate', path);
    return done.data ? { flash: { kind: 'ok', text: `${dipId} reactivated: its calls are accepted, held messages delivered` }, status: 200, shown: null } : refused('not reactivated', done.response.status, done.error);
  }
  if (action === 'offboard') {
    // The confirmation is the portal's (the API has none): an offboarding cannot be undone.
    if (field(b, 'confirm') !== 'yes') return { flash: { kind: 'error', text: `${dipId} not offboarded: tick the confirmation first` }, status: 400, shown: null };
    const done = await api.POST('/admin/participants/{dipId}/offboard', { ...path, body: { reason: field(b, 'reason') } });
    if (!done.data) return refused('not offboarded', done.response.status, done.error);
    const d = done.data;
    const more = [d.clientWebhooksRemoved.length ? `${d.clientWebhooksRemoved.length} webhook(s) it registered for its clients removed` : '', d.nominationsWithdrawn.length ? `nominations by ${d.nominationsWithdrawn.join(', ')} withdrawn` : ''].filter(Boolean);
    return { flash: { kind: 'ok', text: `${dipId} offboarded: its certificates revoked, registration, API key and webhooks removed${more.length ? `; ${more.join('; ')}` : ''}` }, status: 200, shown: null };
  }
  if (action === 'certificate') {
    const overlapDays = Number(field(b, 'overlapDays') || '7');
    const done = await api.POST('/admin/pki/participants/{dipId}/certificate', { ...path, body: { csr: field(b, 'csr'), overlapDays } });
    if (!done.data) return refused('no certificate issued', done.response.status, done.error);
    const until = done.data.previousValidUntil ? `; the previous one is accepted for signing until ${done.data.previousValidUntil}` : '';
    return { flash: { kind: 'ok', text: `a new certificate is registered for ${dipId}${until}` }, status: 200, shown: html`<h2>Issued</h2>${codeBlock('Issued certificate (PEM)', done.data.certificate)}` };
  }
  const which = field(b, 'which') === 'previous' ? 'previous' : 'current';
  const reason = REVOCATION_REASONS.find((r) => r === field(b, 'reason')) ?? 'unspecified';
  const done = await api.POST('/admin/pki/participants/{dipId}/revoke', { ...path, body: { which, reason: reason as 'unspecified' } });
  return done.data ? { flash: { kind: 'ok', text: `${dipId}'s ${which} certificate revoked (${reason}): refused from the next request` }, status: 200, shown: null } : refused('not revoked', done.response.status, done.error);
}
