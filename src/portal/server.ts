import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { useAnswerDeadlines } from '../security/answer-deadlines.js';
import { PORTAL_CSS } from './assets.js';
import { clientDeadlines } from '../security/listener-deadlines.js';
import type { PortalDeps } from './deps.js';
import type { PortalAccount } from '../ports/portal-accounts.js';
import { html } from './html.js';
import { registerOperatorPortal, OPERATOR_REALM } from './operator-pages.js';
import { accountPage, choosePasswordPage, cookieValue, deviceCookieName, enrolmentAction, enrolmentPage, field, guarded, namedCaller, refuse, render, sameOrigin, SESSION_MS, setDeviceCookie, setSessionCookie, signedIn, signInFromThisPortal, signInPage, type Form, type Realm } from './session.js';
import { DEVICE_COOKIE_MS } from '../security/device-cookie.js';
import type { SignIn } from '../pipeline/portal-accounts.js';
import { registerUserPortal } from './user-pages.js';
import { registerApplyPages, registerMailConfirmPages } from './apply-pages.js';
import { USER_REALM } from './user-realm.js';
import { listenerContext, serveRenewedCertificate, type ListenerCertificate } from '../security/server-certificate.js';
import { csrfMatches } from '../security/portal-session.js';
import { addressList, clientAddress } from '../security/address-list.js';
import { loggedUrl } from '../domain/activity.js';

/** The portal a path belongs to. */
const realmOf = (url: string): Realm => (url.startsWith(OPERATOR_REALM.base) ? OPERATOR_REALM : USER_REALM);

/**
 * Pages carry no script and load nothing from elsewhere: the style sheet is the only other resource. So
 * the policy can forbid everything else, which makes an injected script or a framed page inert.
 */
export const CONTENT_SECURITY_POLICY = "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/** The most fields a form body may have: the portals' largest form has a few dozen (checkbox lists). */
const MAX_FORM_FIELDS = 1000;

const SECURITY_HEADERS: Record<string, string> = {
  'content-security-policy': CONTENT_SECURITY_POLICY,
  'strict-transport-security': 'max-age=31536000',
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  // same-origin, not no-referrer: with no-referrer the browser sends "Origin: null" on form posts, and the
  // origin check needs the real one; other sites still get no referrer.
  'referrer-policy': 'same-origin',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
  'permissions-policy': 'camera=(), microphone=(), geolocation=(), payment=()',
};

/**
 * A refusal of the listener's own (over a cap or a rate, stopping, unrecorded) as a page of the portal the
 * address is in, for a person reading it in a browser: what happened, what to do, and the way back.
 */
function listenerRefusal(req: FastifyRequest, reply: FastifyReply, status: number, title: string, what: string, text: string): FastifyReply {
  const realm = realmOf(req.url);
  return render(reply, status, realm, req, undefined, title, html`<p>${what}</p><p><a href="${realm.base}/">Back to the start page</a></p>`, { kind: 'error', text });
}

/**
 * The answer to a request on a connection over the portal listener's cap per client address (config
 * `portal.maxConnectionsPerAddress`; the cap itself is src/api/connection-cap.ts, wired on this listener
 * in src/assemble/listeners.ts, as this layer imports no api): the limit and the address named, and what
 * to do (the listener closes a connection left idle after Fastify's keep-alive timeout, 72 s). The
 * connection closes after it, so the page's style sheet may not come: it reads without.
 */
export function overCapPage(req: FastifyRequest, reply: FastifyReply, over: { who: string; open: number; max: number }): FastifyReply {
  const what = 'The portal serves a limited number of connections at once from one network address, which browsers on one network often share. Connections a browser leaves idle are closed after about a minute: wait a moment, then reload the page.';
  return listenerRefusal(req, reply, 429, 'Too many connections', what, `too many connections: ${over.open} connections from ${over.who} are open to the portal; at most ${over.max} at once`);
}

/**
 * The answer to a request over the portal listener's request rate per client address (config
 * `portal.rateLimit`; the limit itself is useAddressRate in src/api/activity.ts, wired in
 * src/assemble/listeners.ts): the limit, and when to try again (Retry-After is already set).
 */
export function overRatePage(req: FastifyRequest, reply: FastifyReply, over: { retryAfterSeconds: number; settings: { requestsPerSecond: number; burst: number } }): FastifyReply {
  const what = `The portal answers a limited number of requests a second from one network address, which browsers on one network often share. Wait ${over.retryAfterSeconds} seconds, then reload the page or send the form again.`;
  return listenerRefusal(req, reply, 429, 'Too many requests', what, `too many requests from your network address: at most ${over.settings.requestsPerSecond} a second (bursts of ${over.settings.burst}); try again in ${over.retryAfterSeconds} s`);
}

/**
 * The user portal (/portal, participants' users) and the operator portal (/operator), on their own HTTPS
 * listener. Not on the participant listener: that one demands a client certificate at the handshake,
 * which people in browsers do not have, and loosening it to "optional" would weaken the participant API
 * for everyone. Not on the operator API's listener: that one is bound to the loopback interface. The
 * portal listener uses the DIP's TLS server certificate and accepts no other credential than a session
 * cookie from a password + TOTP sign-in.
 */
/**
 * The portals' query strings: one value per name, the first (a parameter given twice would reach the
 * pages as an array, and a page that trims it failed with a 500). Null prototype, so a parameter named
 * __proto__ is just a parameter.
 */
export function firstQueryValues(query: string): Record<string, string> {
  const out = Object.create(null) as Record<string, string>;
  for (const [k, v] of new URLSearchParams(query)) if (!(k in out)) Object.defineProperty(out, k, { value: v, enumerable: true });
  return out;
}

/**
 * The page a stopping portal answers every request with (useGracefulStop, wired with the listener in
 * src/assemble/listeners.ts: 503, Retry-After, the connection closed), in place of Fastify's bare JSON: a
 * person in a browser is told that nothing of what they sent was done, and to try again shortly.
 */
export function stoppingPage(req: FastifyRequest, reply: FastifyReply, help: string): FastifyReply {
  return listenerRefusal(req, reply, 503, 'Stopping', 'The portal is being restarted. Wait a few seconds, then reload the page or send the form again.', help);
}

/** A request refused because the API activity log's backlog is full (src/api/activity.ts): a page, as stopping. */
export function unrecordedPage(req: FastifyRequest, reply: FastifyReply, help: string): FastifyReply {
  return listenerRefusal(req, reply, 503, 'Try again shortly', 'The portal cannot record requests in its audit log at the moment, and serves none it cannot record. Wait a few seconds, then reload the page or send the form again.', help);
}

/**
 * The portals' listener. `onCreated` runs on the instance before any page is added: the assembly records
 * the pages served there (src/api/operations.ts recordOperations), which this layer may not import.
 */
export function buildPortalServer(deps: PortalDeps, tls: ListenerCertificate, onCreated?: (app: FastifyInstance) => void): FastifyInstance {
  // The participant listener's deadlines (config `http`) here too: anyone on the network reaches this listener.
  const deadlines = clientDeadlines(deps.config.http);
  const app = Fastify({
    https: { ...listenerContext(tls.inForce()), ...deadlines.https },
    requestTimeout: deadlines.requestTimeout,
    logger: false,
    // Stopping is answered with a page (stoppingPage, by useGracefulStop), not Fastify's bare 503.
    return503OnClosing: false,
    bodyLimit: 256 * 1024,
    routerOptions: {
      ignoreTrailingSlash: true,
      maxParamLength: 200,
      querystringParser: firstQueryValues,
    },
    // An address Fastify cannot route (a malformed percent-encoding, an over-long segment) gets a page
    // too, with the pages' headers, instead of Fastify's JSON echoing the address.
    frameworkErrors: (error, req, reply) => {
      for (const [k, v] of Object.entries(SECURITY_HEADERS)) reply.header(k, v);
      reply.header('cache-control', 'no-store');
      const realm = realmOf(req.url);
      void refuse(reply, realm, req, undefined, error.code === 'FST_ERR_MAX_PARAM_LENGTH' ? 404 : 400, 'the address is not one of the portal\'s pages (it could not be read)');
    },
  });
  onCreated?.(app);
  // A renewed server certificate is served from the next handshake.
  serveRenewedCertificate(app.server, tls, listenerContext, 'portal', deps.logger);
  // Every request, signed in or not, in the API activity log (spec 5.8.1) with the person it is from;
  // pages are not kept (HTML with personal data), only that they were answered.
  deps.recordActivity?.(app, (req) => namedCaller(deps, req, realmOf(req.url)));
  // A publication downloaded from the user portal is bounded as on the API's listeners: by the reader taking bytes.
  useAnswerDeadlines(app, deps.config.http, deps.clock, (url, sent) => deps.logger.warn({ url: loggedUrl(url), sentBytes: sent, idleMs: deps.config.http.downloadIdleTimeoutMs }, 'portal download cut off: the client took no byte for the idle timeout'));
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, (_req, body, done) => {
    // One pass, and no more fields than a form of the portals has: parsed before any session or CSRF
    // check, so a body of thousands of fields must cost no more than reading it.
    const values = new Map<string, string[]>();
    let fields = 0;
    for (const [k, v] of new URLSearchParams(body as string)) {
      if ((fields += 1) > MAX_FORM_FIELDS) {
        done(Object.assign(new Error(`a form has at most ${MAX_FORM_FIELDS} fields`), { statusCode: 413 }), undefined);
        return;
      }
      const all = values.get(k);
      if (all) all.push(v);
      else values.set(k, [v]);
    }
    // A null-prototype object: a field named __proto__ is just a field.
    const form = Object.create(null) as Form;
    for (const [k, all] of values) Object.defineProperty(form, k, { value: all.length === 1 ? all[0] : all, enumerable: true });
    done(null, form);
  });
  app.addHook('onSend', async (_req, reply, payload) => {
    for (const [k, v] of Object.entries(SECURITY_HEADERS)) reply.header(k, v);
    if (!reply.hasHeader('cache-control')) reply.header('cache-control', 'no-store');
    return payload;
  });
  app.setErrorHandler((error: Error & { statusCode?: number }, req, reply) => {
    const status = error.statusCode && error.statusCode >= 400 && error.statusCode < 500 ? error.statusCode : 500;
    if (status >= 500) deps.logger.error({ err: error, url: loggedUrl(req.url) }, 'portal request failed');
    const realm = realmOf(req.url);
    return refuse(reply, realm, req, undefined, status, status >= 500 ? 'something went wrong on the DIP: the operator has the details in the log' : error.message);
  });
  app.setNotFoundHandler((req, reply) => {
    const realm = realmOf(req.url);
    return refuse(reply, realm, req, undefined, 404, `there is no page ${req.url.split('?')[0]}`);
  });

  // The operator portal only to the operators' networks (config portal.operatorAllowList): to anyone else
  // it does not exist. Judged on the route matched (a percent-encoded /%6Fperator is the same route), before
  // any body is read.
  const operatorClient = addressList(deps.config.portal.operatorAllowList, 'portal.operatorAllowList');
  if (operatorClient) {
    app.addHook('onRequest', async (req, reply) => {
      if (!req.routeOptions.url?.startsWith(OPERATOR_REALM.base) || operatorClient(req.raw.socket)) return undefined;
      return refuse(reply, OPERATOR_REALM, req, undefined, 404, `there is no page ${req.url.split('?')[0]}`);
    });
  }
  app.get('/assets/portal.css', async (_req, reply) => reply.header('cache-control', 'public, max-age=3600').type('text/css; charset=utf-8').send(PORTAL_CSS));
  // No icon of its own: the pages name an empty data: icon, and a browser that asks anyway gets nothing, not a 404 logged as an error.
  app.get('/favicon.ico', async (_req, reply) => reply.header('cache-control', 'public, max-age=86400').code(204).send());
  app.get('/', async (_req, reply) => reply.redirect('/portal/', 303));
  for (const realm of [USER_REALM, OPERATOR_REALM]) registerSignIn(app, deps, realm);
  registerApplyPages(app, deps);
  registerMailConfirmPages(app, deps);
  registerUserPortal(app, deps);
  registerOperatorPortal(app, deps);
  return app;
}

/**
 * What a sign-in step (the sign-in, and the enrolment's confirmation) checks beside the credential,
 * before it changes anything: the realm's accounts only, so an enrolment begun in one portal is no
 * enrolment in the other and no session of the other; an operator only while its operator account (and
 * so its role) is in force; a participant's user only while the participant is registered (its pages
 * would refuse every request: no secret is set up, no session opened, for nothing).
 */
function signInChecks(deps: PortalDeps, realm: Realm, req: FastifyRequest): { realm: Realm['kind']; eligible: (a: PortalAccount) => Promise<boolean> } & ThrottledBy {
  const by = throttledBy(deps, realm, req);
  if (realm.kind === 'user') return { ...by, eligible: async (a) => a.participantDipId !== null && deps.registry.participant(a.participantDipId) !== undefined };
  return { ...by, eligible: async (a) => (await deps.operatorApi(a.username).GET('/admin/whoami')).data !== undefined };
}

interface ThrottledBy {
  realm: Realm['kind'];
  source: string;
  device?: { username: string; nonce: string };
}

/**
 * What the sign-in throttles know of the client: its address (behind a reverse proxy, the proxy's), and
 * the realm's device cookie when it presents a valid one (trusted for the name it names).
 */
function throttledBy(deps: PortalDeps, realm: Realm, req: FastifyRequest): ThrottledBy {
  const source = clientAddress(req.raw.socket);
  const device = deps.devices.read(realm.kind, cookieValue(req, deviceCookieName(realm)), deps.clock.now());
  return device ? { realm: realm.kind, source, device: { username: device.username, nonce: device.nonce } } : { realm: realm.kind, source };
}

/** A sign-in step refused for failing too often: 429 with Retry-After (the sign-in page again), logged with the address. */
function throttledSignIn(deps: PortalDeps, realm: Realm, req: FastifyRequest, reply: FastifyReply, problem: string, retryAfterSeconds: number): FastifyReply {
  deps.logger.warn({ portal: realm.kind, source: clientAddress(req.raw.socket), retryAfterSeconds }, 'portal sign-in throttled: too many failures');
  reply.header('retry-after', String(retryAfterSeconds));
  return render(reply, 429, realm, req, undefined, 'Sign in', signInPage(realm, deps.config.onboarding.enabled), { kind: 'error', text: problem });
}

/**
 * A sign-in step's answer: refused (the sign-in page again), or a session cookie and the realm's start page.
 * The session is numbered among the person's (sessionNumber), which ends their oldest once they have more
 * than `portal.maxSessionsPerUser`.
 */
async function startSession(deps: PortalDeps, realm: Realm, req: FastifyRequest, reply: FastifyReply, result: SignIn, chosePassword: boolean): Promise<FastifyReply> {
  if (!result.ok && result.retryAfterSeconds !== undefined) return throttledSignIn(deps, realm, req, reply, result.problem, result.retryAfterSeconds);
  if (!result.ok) return render(reply, 401, realm, req, undefined, 'Sign in', signInPage(realm, deps.config.onboarding.enabled), { kind: 'error', text: result.problem });
  if (chosePassword) deps.logger.info({ username: result.account.username, portal: realm.kind }, 'portal: first password chosen (or changed) at sign-in');
  const seq = await deps.accounts.sessionNumber(realm.kind, result.account.username);
  const now = deps.clock.now();
  const { token } = deps.sessions.issue({ username: result.account.username, realm: realm.kind, epoch: result.account.sessionEpoch, expiresAt: now + SESSION_MS, seenAt: now, ...(seq === undefined ? {} : { seq }) });
  setSessionCookie(reply, realm, token, SESSION_MS / 1000);
  // A new device cookie at each sign-in (OWASP): this browser is now known for the account.
  setDeviceCookie(reply, realm, deps.devices.issue(realm.kind, result.account.username, now), DEVICE_COOKIE_MS / 1000);
  deps.logger.info({ username: result.account.username, portal: realm.kind, session: seq }, 'portal sign-in');
  return reply.redirect(`${realm.base}/`, 303);
}

function registerSignIn(app: FastifyInstance, deps: PortalDeps, realm: Realm): void {
  app.get(`${realm.base}/sign-in`, async (req, reply) => {
    if (await signedIn(deps, req, realm)) return reply.redirect(`${realm.base}/`, 303);
    return render(reply, 200, realm, req, undefined, 'Sign in', signInPage(realm, deps.config.onboarding.enabled));
  });
  app.post(`${realm.base}/sign-in`, async (req: FastifyRequest, reply: FastifyReply) => {
    if (!signInFromThisPortal(req)) return refuse(reply, realm, req, undefined, 403, 'the sign-in form was not sent from this portal');
    const username = field(req.body, 'username');
    // The form that chooses a password (choosePasswordPage) also sends it twice.
    const next = field(req.body, 'next');
    if (next !== '' && next !== field(req.body, 'repeat')) return render(reply, 400, realm, req, undefined, 'Choose your password', choosePasswordPage(realm, username), { kind: 'error', text: 'the two new passwords differ' });
    const result = await deps.accounts.signIn(username, field(req.body, 'password'), field(req.body, 'code'), { ...signInChecks(deps, realm, req), ...(next === '' ? {} : { chosenPassword: next }) });
    if (!result.ok && result.enrol) {
      const e = result.enrol;
      return render(reply, 200, realm, req, undefined, 'Set up your authenticator', enrolmentPage(realm, { token: e.token, choosePassword: e.choosePassword }, e));
    }
    if (!result.ok && result.enrolmentPending) return render(reply, 409, realm, req, undefined, 'Sign in', signInPage(realm, deps.config.onboarding.enabled), { kind: 'error', text: result.problem });
    if (!result.ok && result.choosePassword) {
      return render(reply, next === '' ? 200 : 400, realm, req, undefined, 'Choose your password', choosePasswordPage(realm, username), { kind: 'error', text: result.problem });
    }
    return startSession(deps, realm, req, reply, result, next !== '');
  });
  // The second step of a first sign-in: the enrolment token (hidden field) and a code of the new secret.
  app.post(enrolmentAction(realm), async (req: FastifyRequest, reply: FastifyReply) => {
    if (!signInFromThisPortal(req)) return refuse(reply, realm, req, undefined, 403, 'the sign-in form was not sent from this portal');
    const next = field(req.body, 'next');
    // `choose` only redraws the form after a refusal; whether a new password is required is the DIP's to decide.
    const again = (status: number, text: string) =>
      render(reply, status, realm, req, undefined, 'Set up your authenticator', enrolmentPage(realm, { token: field(req.body, 'token'), choosePassword: field(req.body, 'choose') === 'yes' }, null), { kind: 'error', text });
    if (next !== field(req.body, 'repeat')) return again(400, 'the two new passwords differ');
    const result = await deps.accounts.confirmEnrolment(field(req.body, 'token'), field(req.body, 'code'), { ...signInChecks(deps, realm, req), ...(next === '' ? {} : { chosenPassword: next }) });
    if (!result.ok && result.retryAfterSeconds !== undefined) return throttledSignIn(deps, realm, req, reply, result.problem, result.retryAfterSeconds);
    if (!result.ok) return again(result.choosePassword ? 400 : 401, result.problem);
    return startSession(deps, realm, req, reply, result, next !== '');
  });
  app.get(`${realm.base}/account`, guarded(deps, realm, async (req, reply, signed) => render(reply, 200, realm, req, signed, 'Your account', accountPage(realm, signed))));
  app.post(
    `${realm.base}/account`,
    guarded(deps, realm, async (req, reply, signed) => {
      const next = field(req.body, 'next');
      const problem = next !== field(req.body, 'repeat') ? 'the two new passwords differ' : await deps.accounts.changePassword(signed.account.username, field(req.body, 'current'), next, throttledBy(deps, realm, req));
      if (problem) return render(reply, 400, realm, req, signed, 'Your account', accountPage(realm, signed), { kind: 'error', text: problem });
      deps.logger.info({ username: signed.account.username, portal: realm.kind }, 'portal password changed');
      setSessionCookie(reply, realm, '', 0);
      return render(reply, 200, realm, req, undefined, 'Password changed', html`<p>Your password is changed and every session of yours has ended. <a href="${realm.base}/sign-in">Sign in again</a></p>`, { kind: 'ok', text: 'password changed' });
    }),
  );
  app.post(`${realm.base}/sign-out`, async (req, reply) => {
    const signed = await signedIn(deps, req, realm);
    // Only this portal's own form signs out: another site's POST would otherwise drop the cookie.
    if (signed && !(sameOrigin(req) && csrfMatches(signed.claims.csrf, field(req.body, '_csrf')))) return refuse(reply, realm, req, undefined, 403, 'the sign-out form was not sent from this portal');
    if (signed) await deps.accounts.signOutEverywhere(realm.kind, signed.account.username);
    setSessionCookie(reply, realm, '', 0);
    return render(reply, 200, realm, req, undefined, 'Signed out', html`<p>You are signed out. <a href="${realm.base}/sign-in">Sign in again</a></p>`);
  });
}
