import type { PortalRealm } from '../ports/portal-accounts.js';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { PortalAccount } from '../ports/portal-accounts.js';
import { csrfMatches, type SessionClaims } from '../security/portal-session.js';
import type { PortalDeps } from './deps.js';
import { hidden, html, page, when, type Flash, type Html, type Nav } from './html.js';

/** The two portals: each its own cookie, sign-in and accounts (participants' users, or operators). */
export interface Realm {
  kind: PortalRealm;
  cookie: string;
  base: string;
  title: string;
  nav: Nav[];
}

/** A realm's main navigation: each page's path below `base` ('' its start page) and its label. */
export const navBelow = (base: string, pages: ReadonlyArray<readonly [path: string, label: string]>): Nav[] => pages.map(([path, label]) => ({ href: `${base}/${path}`, label }));

/**
 * A session lasts a working day at most, and ends sooner when left unused for the idle limit (config
 * `portal.sessionIdleMinutes`); sign-out ends it (and every other session of the account) at once.
 */
export const SESSION_MS = 8 * 3_600_000;

/** A page renews the session's cookie (its `seenAt`) when the last renewal is older than this. */
const RENEW_AFTER_MS = 60_000;

/** The idle limit of a portal session, in milliseconds. */
export const idleLimitMs = (deps: Pick<PortalDeps, 'config'>): number => deps.config.portal.sessionIdleMinutes * 60_000;

export type Form = Record<string, string | string[] | undefined>;

export interface Signed {
  account: PortalAccount;
  claims: SessionClaims;
}

/** A form field as one string ('' when absent; the first when given several times). */
export function field(form: unknown, name: string): string {
  const v = (form as Form | undefined)?.[name];
  return (Array.isArray(v) ? v[0] : v) ?? '';
}

/** A form field given any number of times (checkboxes). */
export function fields(form: unknown, name: string): string[] {
  const v = (form as Form | undefined)?.[name];
  return v === undefined ? [] : Array.isArray(v) ? v : [v];
}

export function cookieValue(req: FastifyRequest, name: string): string | undefined {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const [k, ...v] = part.trim().split('=');
    if (k === name) return v.join('=');
  }
  return undefined;
}

/**
 * `__Host-` cookies are only accepted over HTTPS, for the whole site and never a wider domain; HttpOnly
 * keeps them from scripts; SameSite=Strict keeps them off requests started by other sites.
 */
export function setSessionCookie(reply: FastifyReply, realm: Realm, token: string, maxAgeS: number): void {
  reply.header('set-cookie', `${realm.cookie}=${token}; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=${maxAgeS}`);
}

/** The realm's device cookie (src/security/device-cookie.ts): one per portal, kept across sign-outs. */
export const deviceCookieName = (realm: Realm): string => `${realm.cookie}-device`;

/** Sets the realm's device cookie beside the session's (the same attributes; Fastify appends a second set-cookie). */
export function setDeviceCookie(reply: FastifyReply, realm: Realm, token: string, maxAgeS: number): void {
  reply.header('set-cookie', `${deviceCookieName(realm)}=${token}; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=${maxAgeS}`);
}

/**
 * Who a request is from, for the activity log, without reading the store: the name its session cookie
 * carries, or on a sign-in the name it tries (its answer, 303 or 401, says whether it got in).
 */
export function namedCaller(deps: Pick<PortalDeps, 'sessions' | 'clock' | 'config'>, req: FastifyRequest, realm: Realm): string | null {
  const tried = req.method === 'POST' && req.url.split('?')[0] === `${realm.base}/sign-in` ? field(req.body, 'username').trim().toLowerCase().slice(0, 64) : '';
  const name = tried || liveClaims(deps, req, realm)?.username;
  return name ? `${realm.kind}:${name}` : null;
}

/** The claims of the request's session cookie while it is in force: signed, before its end, used within the idle limit. */
function liveClaims(deps: Pick<PortalDeps, 'sessions' | 'clock' | 'config'>, req: FastifyRequest, realm: Realm): SessionClaims | undefined {
  const now = deps.clock.now();
  const claims = deps.sessions.read(cookieValue(req, realm.cookie), now);
  // Left unused longer than the idle limit (or issued before there was one): ended, as if expired.
  return claims && typeof claims.seenAt === 'number' && now - claims.seenAt < idleLimitMs(deps) ? claims : undefined;
}

export async function signedIn(deps: PortalDeps, req: FastifyRequest, realm: Realm): Promise<Signed | undefined> {
  const claims = liveClaims(deps, req, realm);
  if (!claims) return undefined;
  // More than portal.maxSessionsPerUser sessions of the person started since this one: it has ended.
  const account = await deps.accounts.fromSession(claims, realm.kind, deps.config.portal.maxSessionsPerUser);
  if (!account) return undefined;
  // An operator's portal session lasts only while its operator account is in force: disabled, it ends at
  // once (some pages read stores directly, not through the operator API that would refuse it).
  if (realm.kind === 'operator' && !(await deps.operatorApi(account.username).GET('/admin/whoami')).data) return undefined;
  return { account, claims };
}

/** A POST from a page of this site: the browser's Origin, when it sends one, must be this portal's. */
export function sameOrigin(req: FastifyRequest): boolean {
  const origin = req.headers.origin;
  return origin === undefined || origin === `https://${req.headers.host ?? ''}`;
}

/**
 * A sign-in form (either step) from this portal: no session and so no CSRF token guards it, so another site
 * could sign a browser in to the attacker's account (login CSRF). Its Origin must be this portal's; a
 * request without one must carry Sec-Fetch-Site `same-origin` or `none` (a browser that left Origin out
 * still sends that: OWASP CSRF cheat sheet, Fetch Metadata); one with neither header is refused.
 */
export function signInFromThisPortal(req: FastifyRequest): boolean {
  if (req.headers.origin !== undefined) return sameOrigin(req);
  const site = req.headers['sec-fetch-site'];
  return site === 'same-origin' || site === 'none';
}

export function render(reply: FastifyReply, status: number, realm: Realm, req: FastifyRequest, signed: Signed | undefined, title: string, body: Html, flash?: Flash): FastifyReply {
  return reply
    .code(status)
    .type('text/html; charset=utf-8')
    .send(
      page({
        title,
        portal: realm.title,
        nav: signed ? realm.nav : [],
        path: req.url,
        user: signed ? { name: `${signed.account.displayName}${signed.account.participantDipId ? ` (${signed.account.participantDipId})` : ''}`, signOutAction: `${realm.base}/sign-out`, accountHref: `${realm.base}/account`, csrf: signed.claims.csrf } : undefined,
        flash,
        body,
      }),
    );
}

export function refuse(reply: FastifyReply, realm: Realm, req: FastifyRequest, signed: Signed | undefined, status: number, help: string): FastifyReply {
  const title = status === 404 ? 'Not found' : status === 403 ? 'Not allowed' : 'Cannot do that';
  return render(reply, status, realm, req, signed, title, html`<p><a href="${realm.base}/">Back to the start page</a></p>`, { kind: 'error', text: help });
}

/**
 * Wraps a page handler: a signed-in account of the realm is required (else to the sign-in page), and
 * every POST must carry the session's CSRF token and come from this origin.
 */
export function guarded<T>(deps: PortalDeps, realm: Realm, handler: (req: FastifyRequest, reply: FastifyReply, signed: Signed) => Promise<T>) {
  return async (req: FastifyRequest, reply: FastifyReply): Promise<T | FastifyReply> => {
    const signed = await signedIn(deps, req, realm);
    if (!signed) {
      if (req.method === 'GET') return reply.redirect(`${realm.base}/sign-in`, 303);
      return refuse(reply, realm, req, undefined, 401, 'your session has ended: sign in again');
    }
    if (req.method === 'POST' && (!sameOrigin(req) || !csrfMatches(signed.claims.csrf, field(req.body, '_csrf')))) {
      return refuse(reply, realm, req, signed, 403, 'the form was not sent from this portal page (CSRF check failed): reload the page and try again');
    }
    renewSession(deps, realm, reply, signed);
    return handler(req, reply, signed);
  };
}

/**
 * A page used: the cookie again with `seenAt` now (at most once a minute), so the idle limit counts from
 * the last use; its Max-Age is what is left of the session's absolute life, which never moves.
 */
function renewSession(deps: PortalDeps, realm: Realm, reply: FastifyReply, signed: Signed): void {
  const now = deps.clock.now();
  if (now - (signed.claims.seenAt ?? 0) < RENEW_AFTER_MS) return;
  const { token } = deps.sessions.renew(signed.claims, now);
  setSessionCookie(reply, realm, token, Math.max(1, Math.floor((signed.claims.expiresAt - now) / 1000)));
}

/** The hidden CSRF field every form carries. */
export function csrfField(signed: Signed): Html {
  return hidden('_csrf', signed.claims.csrf);
}

/** A page request: the query string and the URL's parameters as strings. */
export type PortalReq = FastifyRequest<{ Querystring: Record<string, string | undefined>; Params: Record<string, string> }>;

/** A handler's answer when it has already answered (a refusal), as opposed to a value to go on with. */
export const isReply = (v: unknown): v is FastifyReply => typeof v === 'object' && v !== null && 'sent' in v && 'code' in v;

/**
 * The route registrar for one realm's pages: each is `guarded`, then `context` makes the handler's context
 * from the signed-in account (or refuses).
 */
export function pageRoutes<C>(app: FastifyInstance, deps: PortalDeps, realm: Realm, context: (req: PortalReq, reply: FastifyReply, signed: Signed) => C | FastifyReply) {
  return (path: string, method: 'GET' | 'POST', handler: (c: C) => Promise<FastifyReply>, options: { streamedAnswer?: boolean } = {}): void => {
    app.route({
      method,
      url: `${realm.base}${path}`,
      // A download (a publication's bytes): a reader that stops is cut off (useAnswerDeadlines).
      ...(options.streamedAnswer ? { config: { streamedAnswer: true } } : {}),
      handler: guarded(deps, realm, async (req, reply, signed) => {
        const c = context(req as PortalReq, reply, signed);
        return isReply(c) ? c : handler(c);
      }),
    });
  };
}

/** Sign-in and sign-out for a realm. */
/** A signed-in person's own account: the password change form (the administrator chose the first password). */
export function accountPage(realm: Realm, signed: Signed): Html {
  return html`<p>Signed in as <strong>${signed.account.username}</strong>. Changing your password signs you out everywhere.</p>
<form method="post" action="${realm.base}/account" class="signin">${csrfField(signed)}
<label for="current">Current password</label><input type="password" id="current" name="current" autocomplete="current-password" required>
<label for="next">New password (12 characters or more)</label><input type="password" id="next" name="next" autocomplete="new-password" minlength="12" maxlength="200" required>
<label for="repeat">New password again</label><input type="password" id="repeat" name="repeat" autocomplete="new-password" minlength="12" maxlength="200" required>
<button type="submit">Change password</button>
</form>`;
}

/**
 * The first sign-in of an account whose password its administrator chose: the sign-in again, with a new
 * password (the code typed before was not used up). Nothing typed before is put back in the page.
 */
export function choosePasswordPage(realm: Realm, username: string): Html {
  return html`<p>Your administrator chose your first password and saw it. Choose your own to sign in: only you will know it.</p>
<form method="post" action="${realm.base}/sign-in" class="signin">
<label for="username">Username</label><input type="text" id="username" name="username" autocomplete="username" value="${username.slice(0, 64)}" required>
<label for="password">Current password</label><input type="password" id="password" name="password" autocomplete="current-password" required>
<label for="code">Code from your authenticator app</label><input type="text" id="code" name="code" inputmode="numeric" autocomplete="one-time-code" pattern="[0-9]{6}" maxlength="6" required>
<label for="next">New password (12 characters or more)</label><input type="password" id="next" name="next" autocomplete="new-password" minlength="12" maxlength="200" required>
<label for="repeat">New password again</label><input type="password" id="repeat" name="repeat" autocomplete="new-password" minlength="12" maxlength="200" required>
<button type="submit">Choose password and sign in</button>
</form>`;
}

/**
 * A first sign-in has no code yet (the password alone starts setting up the authenticator, in both
 * portals: every account is made without one), so the code field is not required. The user portal links to
 * the application form only when the DIP takes applications (`onboarding.enabled`): a link to a 404 otherwise.
 */
export function signInPage(realm: Realm, applyOpen: boolean): Html {
  return html`<form method="post" action="${realm.base}/sign-in" class="signin">
<label for="username">Username</label><input type="text" id="username" name="username" autocomplete="username" required>
<label for="password">Password</label><input type="password" id="password" name="password" autocomplete="current-password" required>
<label for="code">Code from your authenticator app</label><input type="text" id="code" name="code" inputmode="numeric" autocomplete="one-time-code" pattern="[0-9]{6}" maxlength="6" aria-describedby="code-hint">
<p class="muted" id="code-hint">Signing in for the first time, or was your authenticator reset? Leave the code empty: you set up your authenticator app next.</p>
<button type="submit">Sign in</button>
</form>${when(realm.kind === 'user' && applyOpen, () => html`<p>Your company does not use the DIP yet? <a href="${realm.base}/apply">Apply to use the DIP</a></p>`)}`;
}

/** Where a first sign-in's TOTP enrolment is confirmed. */
export const enrolmentAction = (realm: Realm): string => `${realm.base}/sign-in/enrolment`;

/**
 * The second step of a first sign-in: the new secret to add to an authenticator app (shown this once,
 * as text and as an otpauth:// link an app on the same device opens), and the form that confirms it with
 * a code (the enrolment token in a hidden field) and, where the administrator chose the password, a new
 * one. `offer` null: the form again after a refusal, without the secret (the DIP does not show it twice).
 */
export function enrolmentPage(realm: Realm, form: { token: string; choosePassword: boolean }, offer: { secret: string; uri: string; expiresAt: number } | null): Html {
  const shown = offer
    ? html`<p>Your account has no second factor yet. Add this secret to your authenticator app (open the link on the device that has the app, or type the secret in), then type the code the app shows. It is shown this once.</p>
<dl class="facts"><dt>Secret</dt><dd><code id="totp-secret">${offer.secret}</code></dd>
<dt>Link for the app</dt><dd><a id="totp-uri" href="${offer.uri}">${offer.uri}</a></dd>
<dt>Set up by</dt><dd>${new Date(offer.expiresAt).toISOString()}</dd></dl>`
    : html`<p>Type the code your authenticator app shows for the secret shown before, by the time shown with it. Lost it? Sign in again after then to be given a new one.</p>`;
  return html`${shown}
<form method="post" action="${enrolmentAction(realm)}" class="signin">${hidden('token', form.token)}${hidden('choose', form.choosePassword ? 'yes' : 'no')}
<label for="code">Code from your authenticator app</label><input type="text" id="code" name="code" inputmode="numeric" autocomplete="one-time-code" pattern="[0-9]{6}" maxlength="6" required>
${form.choosePassword
  ? html`<p>Your administrator chose your first password and saw it. Choose your own: only you will know it.</p>
<label for="next">New password (12 characters or more)</label><input type="password" id="next" name="next" autocomplete="new-password" minlength="12" maxlength="200" required>
<label for="repeat">New password again</label><input type="password" id="repeat" name="repeat" autocomplete="new-password" minlength="12" maxlength="200" required>`
  : ''}
<button type="submit">Confirm and sign in</button>
</form>`;
}
