import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { ClaimField, ClaimInput } from '../domain/onboarding.js';
import { RateLimiter } from '../security/rate-limit.js';
import { sourceKey } from '../security/sign-in-throttle.js';
import { clientAddress } from '../security/address-list.js';
import type { PortalDeps } from './deps.js';
import { hidden, html, when, type Html } from './html.js';
import { field, refuse, render, signInFromThisPortal } from './session.js';
import { USER_REALM } from './user-realm.js';
import { CONFIRM_PATH, purposeOfScope, purposeOfToken, type MailPurpose } from '../pipeline/mail-recipients.js';

const R = USER_REALM;
const FIELDS: ReadonlyArray<{ name: ClaimField; label: string; hint: string; type?: string; autocomplete?: string; multiline?: boolean }> = [
  { name: 'companyName', label: 'Company name', hint: 'As registered.', autocomplete: 'organization' },
  { name: 'mpids', label: 'Market Participant IDs (MPIDs)', hint: 'The 4-letter MPIDs your company holds, separated by commas.' },
  { name: 'roles', label: 'DIP roles', hint: 'The roles your company holds, e.g. SUP, LDSO, separated by commas. The DIP grants the roles the central register gives your MPIDs.' },
  { name: 'contactName', label: 'Your name', hint: 'You become your company\'s first portal administrator.', autocomplete: 'name' },
  { name: 'contactEmail', label: 'Your e-mail address', hint: 'A link to confirm the application is sent here; nothing reaches the operators until it is opened.', type: 'email', autocomplete: 'email' },
  { name: 'csrPem', label: 'Certificate signing request (PEM)', hint: 'A PKCS#10 request for your participant certificate, for an RSA key of 2048 bits or more that stays with you (e.g. openssl req -new -newkey rsa:3072 -nodes -keyout dip.key -subj "/CN=your company").', multiline: true },
];

const emptyInput: ClaimInput = { companyName: '', mpids: '', roles: '', contactName: '', contactEmail: '', csrPem: '' };

function applyForm(given: ClaimInput, problems: Partial<Record<ClaimField, string>>): Html {
  const controls = FIELDS.map((f) => {
    const problem = problems[f.name];
    const described = problem ? `${f.name}-hint ${f.name}-problem` : `${f.name}-hint`;
    const control = f.multiline
      ? html`<textarea id="${f.name}" name="${f.name}" rows="8" required aria-describedby="${described}"${when(problem, () => html` aria-invalid="true"`)}>${given[f.name]}</textarea>`
      : html`<input type="${f.type ?? 'text'}" id="${f.name}" name="${f.name}" value="${given[f.name]}" required aria-describedby="${described}"${when(f.autocomplete, () => html` autocomplete="${f.autocomplete ?? ''}"`)}${when(problem, () => html` aria-invalid="true"`)}>`;
    return html`<label for="${f.name}">${f.label}</label>${control}<p class="muted" id="${f.name}-hint">${f.hint}</p>${when(problem, () => html`<p class="field-problem" id="${f.name}-problem">${problem ?? ''}</p>`)}`;
  });
  return html`<p>Apply for your company to use the Data Integration Platform. The DIP's operators check your application against the central register before they approve it. Already a participant? Ask your company's portal administrator for an account instead.</p>
<form method="post" action="${R.base}/apply" class="signin">${controls}<button type="submit">Apply</button></form>
<p><a href="${R.base}/sign-in">Sign in</a></p>`;
}

const verifyForm = (token: string): Html =>
  html`<p>Confirm your application to send it to the DIP's operators. You will hear from them by e-mail.</p>
<form method="post" action="${R.base}/apply/verify" class="signin">${hidden('token', token)}<button type="submit">Confirm application</button></form>`;

/**
 * The user portal's public pages for a company applying to use the DIP (spec 5.12.1 "User Onboarding"):
 * no sign-in. Abuse is bounded by the address's rate (config onboarding.applicationsPerAddressPerHour,
 * a token bucket per client address, an IPv6 one by its /64), the cap on applications waiting (the
 * store's), and the e-mail check: nothing reaches an operator before the contact opens the link. Every
 * answer to a well-formed application is the same, so the form tells nobody whether an MPID exists.
 * The link opens a page whose button confirms (a POST): a mail scanner that follows links confirms nothing.
 */
export function registerApplyPages(app: FastifyInstance, deps: PortalDeps): void {
  const settings = deps.config.onboarding;
  if (!settings.enabled) return;
  const perAddress = new RateLimiter({ requestsPerSecond: settings.applicationsPerAddressPerHour / 3600, burst: settings.applicationsPerAddressPerHour });
  const show = (reply: FastifyReply, req: FastifyRequest, status: number, given: ClaimInput, problems: Partial<Record<ClaimField, string>>, text?: string) =>
    render(reply, status, R, req, undefined, 'Apply to use the DIP', applyForm(given, problems), text ? { kind: 'error', text } : undefined);

  app.get(`${R.base}/apply`, async (req, reply) => show(reply, req, 200, emptyInput, {}));
  app.post(`${R.base}/apply`, async (req, reply) => {
    if (!signInFromThisPortal(req)) return refuse(reply, R, req, undefined, 403, 'the application form was not sent from this portal');
    const given: ClaimInput = { companyName: field(req.body, 'companyName'), mpids: field(req.body, 'mpids'), roles: field(req.body, 'roles'), contactName: field(req.body, 'contactName'), contactEmail: field(req.body, 'contactEmail'), csrPem: field(req.body, 'csrPem') };
    const rate = perAddress.take(sourceKey(clientAddress(req.raw.socket)), deps.clock.now());
    if (!rate.ok) {
      const seconds = Math.ceil(rate.retryAfterMs / 1000);
      reply.header('retry-after', String(seconds));
      return show(reply, req, 429, given, {}, `too many applications from your network address: try again in ${Math.ceil(seconds / 60)} minutes`);
    }
    const outcome = await deps.onboarding.apply(given);
    if ('problems' in outcome) return show(reply, req, 400, given, outcome.problems, `the application was not sent: ${Object.values(outcome.problems).join('; ')}`);
    if ('full' in outcome) return show(reply, req, 503, given, {}, 'the DIP takes no more applications at the moment: as many wait for its operators as it keeps. Try again in a day or two');
    if ('mailFailed' in outcome) return show(reply, req, 503, given, {}, 'the DIP could not send the confirmation e-mail at the moment: try again later');
    return render(reply, 200, R, req, undefined, 'Check your e-mail', html`<p>A link to confirm the application was sent to ${given.contactEmail.trim()}. Open it within ${settings.linkHours} hours: until then the operators do not see the application.</p>`, { kind: 'ok', text: 'application received: confirm it from your e-mail' });
  });

  app.get<{ Querystring: Record<string, string | undefined> }>(`${R.base}/apply/verify`, async (req, reply) => render(reply, 200, R, req, undefined, 'Confirm your application', verifyForm(req.query.token ?? '')));
  app.post(`${R.base}/apply/verify`, async (req, reply) => {
    if (!signInFromThisPortal(req)) return refuse(reply, R, req, undefined, 403, 'the confirmation was not sent from this portal');
    const verified = await deps.onboarding.verify(field(req.body, 'token'));
    if (!verified) return refuse(reply, R, req, undefined, 404, 'this link is not (or no longer) good: it was used already, or it expired. Apply again if you need to');
    deps.logger.info({ application: verified.id }, 'onboarding application verified by its contact');
    return render(reply, 200, R, req, undefined, 'Application confirmed', html`<p>Your application is with the DIP's operators. They will write to ${verified.contactEmail} when they have decided.</p>`, { kind: 'ok', text: 'application confirmed' });
  });
}

/** The confirmation pages' words, by what the address is asked to take (a report's owner and an alarm subscription's stop them differently). */
const CONFIRM_TEXT: Readonly<Record<MailPurpose, { title: string; asked: string; agree: string; agreed: string; after: (address: string) => Html }>> = {
  reports: {
    title: 'Agree to reports by e-mail',
    asked: "A user of the DIP's portal asked for reports to be e-mailed to your address. Agree, and they are sent on their schedule; until then nothing is.",
    agree: 'Agree to the reports',
    agreed: 'Reports agreed',
    after: (address) => html`<p>Reports will be e-mailed to ${address} on their schedule. Whoever asked for them can stop them by deleting the report.</p>`,
  },
  'alarm notices': {
    title: 'Agree to alarm notices by e-mail',
    asked: "A participant of the DIP asked for its alarm notices to be e-mailed to your address. Agree, and they are sent when its alarms are raised and resolved; until then nothing is.",
    agree: 'Agree to the alarm notices',
    agreed: 'Alarm notices agreed',
    after: (address) => html`<p>Alarm notices will be e-mailed to ${address} when they are raised and resolved. Whoever asked for them can stop them by deleting the alarm subscription.</p>`,
  },
};

/**
 * The page a saved report's or alarm subscription's confirmation e-mail links to (src/pipeline/mail-recipients.ts):
 * no sign-in (the address's holder has no account); opening it shows a button, and the button (a POST) agrees,
 * so a mail scanner that follows links agrees to nothing. Its words are the token's purpose's (the scope's once agreed).
 */
export function registerMailConfirmPages(app: FastifyInstance, deps: PortalDeps): void {
  const recipients = deps.savedReports.recipients;
  if (!recipients) return;
  app.get<{ Querystring: Record<string, string | undefined> }>(CONFIRM_PATH, async (req, reply) => {
    const token = req.query.token ?? '';
    const t = CONFIRM_TEXT[purposeOfToken(token) ?? 'reports'];
    return render(reply, 200, R, req, undefined, t.title, html`<p>${t.asked}</p>
<form method="post" action="${CONFIRM_PATH}" class="signin">${hidden('token', token)}<button type="submit">${t.agree}</button></form>`);
  });
  app.post(CONFIRM_PATH, async (req, reply) => {
    if (!signInFromThisPortal(req)) return refuse(reply, R, req, undefined, 403, 'the confirmation was not sent from this portal');
    const confirmed = await recipients.confirm(field(req.body, 'token'));
    if (!confirmed) return refuse(reply, R, req, undefined, 404, 'this link is not (or no longer) good: it was used already, or it expired');
    const what = purposeOfScope(confirmed.scope);
    deps.logger.info({ scope: confirmed.scope }, `${what}: an address agreed to take them`);
    const t = CONFIRM_TEXT[what];
    return render(reply, 200, R, req, undefined, t.agreed, t.after(confirmed.address), { kind: 'ok', text: 'agreed' });
  });
}
