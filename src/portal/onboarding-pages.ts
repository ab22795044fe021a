import type { FastifyReply } from 'fastify';
import type { OperatorApi } from '../openapi-client/index.js';
import type { PortalDeps } from './deps.js';
import { alertLine, badge, codeBlock, facts, html, input, isoOrDash, table, textarea, type Flash, type Html } from './html.js';
import { csrfField, field, refuse, render, type PortalReq, type Realm, type Signed } from './session.js';

interface Ctx {
  req: PortalReq;
  reply: FastifyReply;
  signed: Signed;
}

type Status = 'pending' | 'approved' | 'rejected';
const STATUSES: readonly Status[] = ['pending', 'approved', 'rejected'];
const list = (xs: readonly string[]): string => (xs.length ? xs.join(', ') : '—');
const problemOf = (error: unknown): string => (typeof error === 'object' && error !== null && 'error' in error && typeof error.error === 'string' ? error.error : 'refused');

/**
 * The operator portal's review queue of companies' applications (spec 5.12.1 "User Onboarding"), through the
 * operator API's /admin/onboarding/applications as the operator signed in (src/api/admin-onboarding.ts):
 * what a call refuses, the page says.
 */
export class OnboardingPages {
  constructor(
    private readonly realm: Realm,
    private readonly api: (deps: PortalDeps, c: Ctx) => OperatorApi,
  ) {}

  async list(deps: PortalDeps, c: Ctx): Promise<FastifyReply> {
    const asked = c.req.query.status ?? 'pending';
    const status = STATUSES.find((s) => s === asked);
    if (!status) return refuse(c.reply, this.realm, c.req, c.signed, 400, `status: one of ${STATUSES.join(', ')}`);
    const got = await this.api(deps, c).GET('/admin/onboarding/applications', { params: { query: { status } } });
    const tabs = html`<p>${STATUSES.map((s) => (s === status ? html`<strong>${s}</strong> ` : html`<a href="${this.realm.base}/applications?status=${s}">${s}</a> `))}</p>`;
    const rows = (got.data ?? []).map((a) => html`<tr><td><a href="${this.realm.base}/applications/${a.id}">${a.companyName}</a></td><td>${list(a.mpids)}</td><td>${list(a.roles)}</td><td>${a.contactName} &lt;${a.contactEmail}&gt;</td><td>${isoOrDash(Date.parse(a.verifiedAt ?? a.createdAt))}</td><td>${a.dipId ?? a.reason ?? ''}</td></tr>`);
    const body = html`<p class="muted">Companies that applied on the user portal's public form and confirmed their contact's e-mail address. Approving registers the participant the central register names for the MPIDs, with the register's roles.</p>${tabs}
${got.data ? table(`Applications ${status}, oldest first`, ['Company', 'MPIDs', 'Roles claimed', 'Contact', 'Confirmed', status === 'rejected' ? 'Reason' : 'DIP ID'], rows, 'None.') : alertLine(problemOf(got.error))}`;
    return render(c.reply, got.data ? 200 : got.response.status, this.realm, c.req, c.signed, 'Applications', body);
  }

  async one(deps: PortalDeps, c: Ctx, flash: Flash, status: number, shown: Html | null = null): Promise<FastifyReply> {
    const id = c.req.params.id ?? '';
    const got = await this.api(deps, c).GET('/admin/onboarding/applications/{id}', { params: { path: { id } } });
    if (!got.data) return refuse(c.reply, this.realm, c.req, c.signed, got.response.status, problemOf(got.error));
    const { application: a, check, alreadyRegistered } = got.data;
    const csrf = csrfField(c.signed);
    const claim = facts([
      ['Company', a.companyName],
      ['MPIDs claimed', list(a.mpids)],
      ['Roles claimed', list(a.roles)],
      ['Contact', `${a.contactName} <${a.contactEmail}> (confirmed ${isoOrDash(Date.parse(a.verifiedAt ?? a.createdAt))})`],
      ['Status', a.status === 'pending' ? badge('warn', 'pending') : a.status === 'approved' ? html`${badge('ok', 'approved')} ${a.dipId ?? ''} (${a.username ?? ''}) by ${a.decidedBy ?? ''}` : html`${badge('bad', 'rejected')} by ${a.decidedBy ?? ''}: ${a.reason ?? ''}`],
    ]);
    const register = check
      ? html`<h2>Register check</h2>${facts([
          ['DIP ID', check.dipId ?? (check.dipIds.length ? `none (the MPIDs are under ${list(check.dipIds)})` : 'none')],
          ["Register's company", check.companyName ?? '—'],
          ['Roles granted (the register\'s)', list(check.registerRoles)],
          ['Claimed, not in the register', list(check.rolesNotInRegister)],
          ['In the register, not claimed', list(check.rolesNotClaimed)],
          ['MPIDs the register lacks', list(check.unknownMpids)],
        ])}${check.problem ? alertLine(`cannot be approved: ${check.problem}`) : ''}${alreadyRegistered ? alertLine(`${check.dipId ?? ''} is a registered participant already: its administrators add users in the user portal`) : ''}`
      : '';
    const decide = a.status === 'pending'
      ? html`<h2>Decide</h2>
<form method="post" action="${this.realm.base}/applications/${a.id}/approve">${csrf}${input('username', 'Portal username of the contact (optional)', { maxlength: 64, pattern: '[a-z0-9][a-z0-9._\\-]{2,63}' })}<button type="submit">Approve</button></form>
<form method="post" action="${this.realm.base}/applications/${a.id}/reject">${csrf}${textarea('reason', 'Reason (e-mailed to the contact)', { required: true, minlength: 1, maxlength: 1000, rows: 3 })}<button type="submit" class="danger">Reject</button></form>`
      : '';
    const body = html`${shown ?? ''}${claim}${register}${decide}<h2>Certificate signing request</h2>${codeBlock('Certificate signing request', a.csrPem)}<p><a href="${this.realm.base}/applications">All applications</a></p>`;
    return render(c.reply, status, this.realm, c.req, c.signed, `Application of ${a.companyName}`, body, flash);
  }

  async approve(deps: PortalDeps, c: Ctx): Promise<FastifyReply> {
    const id = c.req.params.id ?? '';
    const username = field(c.req.body, 'username').trim();
    const done = await this.api(deps, c).POST('/admin/onboarding/applications/{id}/approve', { params: { path: { id } }, body: username ? { username } : {} });
    if (!done.data) return this.one(deps, c, { kind: 'error', text: `not approved: ${problemOf(done.error)}` }, done.response.status);
    const d = done.data;
    const mail = d.invitation.sent ? `the invitation was e-mailed to ${d.application.contactEmail}` : `the invitation could not be e-mailed (${d.invitation.problem ?? ''}): reset the account's authenticator to give it a new first password`;
    // The API key is answered once: shown here, to hand over, as `dip participant add` prints it.
    const shown = html`<h2>Participant API key</h2><p>Shown this once: hand it to the company over a channel you trust. The DIP keeps only its hash.</p>${codeBlock('Participant API key', d.apiKey)}`;
    return this.one(deps, c, { kind: 'ok', text: `approved: ${d.application.dipId ?? ''} registered with the roles ${d.roles.join(', ')}; ${mail}` }, 200, shown);
  }

  async reject(deps: PortalDeps, c: Ctx): Promise<FastifyReply> {
    const id = c.req.params.id ?? '';
    const done = await this.api(deps, c).POST('/admin/onboarding/applications/{id}/reject', { params: { path: { id } }, body: { reason: field(c.req.body, 'reason') } });
    if (!done.data) return this.one(deps, c, { kind: 'error', text: `not rejected: ${problemOf(done.error)}` }, done.response.status);
    return this.one(deps, c, { kind: 'ok', text: `rejected; ${done.data.notice.sent ? 'the reason was e-mailed to the contact' : `the reason could not be e-mailed: ${done.data.notice.problem ?? ''}`}` }, 200);
  }
}
