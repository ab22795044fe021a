import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { request } from 'undici';
import { adminTokenFile } from '../api/admin.js';
import type { DipConfig } from '../config.js';
import { ENROLMENT_ENDED, ENROLMENT_JUST_FINISHED } from '../pipeline/portal-accounts.js';
import { writePrivateFile } from './private-output.js';

/** What `dip login` keeps: the session token and when it ends. */
interface StoredSession {
  token: string;
  expiresAt: string;
  name: string;
}

/**
 * Where `dip login` keeps the operator's session for the DIP on this admin port: $DIP_OPERATOR_SESSION,
 * else ~/.config/opendip/operator-session-<adminPort>.json (mode 0600: it is a bearer token).
 */
export function sessionFile(config: DipConfig): string {
  return process.env.DIP_OPERATOR_SESSION?.trim() || join(process.env.XDG_CONFIG_HOME?.trim() || join(homedir(), '.config'), 'opendip', `operator-session-${config.adminPort}.json`);
}

export function saveSession(config: DipConfig, session: StoredSession): string {
  const file = sessionFile(config);
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  writePrivateFile(file, `${JSON.stringify(session)}\n`);
  return file;
}

export function forgetSession(config: DipConfig): void {
  rmSync(sessionFile(config), { force: true });
}

function storedSession(config: DipConfig): StoredSession | undefined {
  const file = sessionFile(config);
  if (!existsSync(file)) return undefined;
  const s = JSON.parse(readFileSync(file, 'utf8')) as StoredSession;
  if (Date.parse(s.expiresAt) <= Date.now()) throw new Error(`the session of ${s.name} ended at ${s.expiresAt}: sign in again with dip login`);
  return s;
}

/**
 * The operator's credential, in this order: DIP_OPERATOR_TOKEN (an automation account's token), the
 * session `dip login` stored, else the bootstrap token from the data directory (which the DIP accepts only
 * until the first admin account exists).
 */
function operatorToken(config: DipConfig): string {
  const named = process.env.DIP_OPERATOR_TOKEN?.trim();
  if (named) return named;
  const session = storedSession(config);
  if (session) return session.token;
  try {
    return readFileSync(adminTokenFile(config.dataDir), 'utf8').trim();
  } catch {
    throw new Error(`no operator credential: dip login, or set DIP_OPERATOR_TOKEN (an automation account), or start the DIP (dip serve) with this DIP_DATA_DIR so that ${adminTokenFile(config.dataDir)} exists`);
  }
}

type Method = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

/** Sends a call to the operator's API of the DIP running on this machine; `token` null: no credential (signing in). */
async function send(config: DipConfig, method: Method, path: string, body: unknown, token: string | null): Promise<{ status: number; text: string }> {
  const res = await request(`http://127.0.0.1:${config.adminPort}${path}`, {
    method,
    headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.statusCode, text: await res.body.text() };
}

/** The answer's body, or the refusal as an error carrying it. */
function answerOf(res: { status: number; text: string }): unknown {
  if (res.status >= 300) throw new Error(`admin API answered ${res.status}: ${res.text}`);
  return res.text === '' ? null : (JSON.parse(res.text) as unknown);
}

async function call(config: DipConfig, method: Method, path: string, body: unknown, token: string | null): Promise<unknown> {
  return answerOf(await send(config, method, path, body, token));
}

/** Calls the operator's API as the operator (see operatorToken). */
export function adminCall(config: DipConfig, method: Method, path: string, body?: unknown): Promise<unknown> {
  return call(config, method, path, body, operatorToken(config));
}

/** The TOTP enrolment a first sign-in is answered with (POST /admin/session, 403 totpEnrolment). */
export interface TotpEnrolmentOffer {
  token: string;
  secret: string;
  otpauthUri: string;
  expiresAt: string;
  newPasswordRequired: boolean;
}

/** What the person answers an enrolment with: a code of the new secret, and their own password where one is required. */
export interface EnrolmentAnswer {
  code: string;
  newPassword?: string;
}

/**
 * Why an enrolment's answer was refused, so the person is asked again with the same token (a new sign-in
 * would find the enrolment under way, 409, until it expires): what the DIP said, and whether the password
 * must be chosen again (it was not acceptable) or only the code typed again.
 */
export interface EnrolmentRefusal {
  error: string;
  passwordAgain: boolean;
}

/**
 * Shows the enrolment and answers it (`refusal` undefined: the first time), and again after each refusal
 * of the answer, with the same token.
 */
export type EnrolmentPrompt = (offer: TotpEnrolmentOffer, refusal?: EnrolmentRefusal) => Promise<EnrolmentAnswer>;

function enrolmentOffer(text: string): TotpEnrolmentOffer | undefined {
  const body = JSON.parse(text) as { totpEnrolment?: Partial<TotpEnrolmentOffer> } | null;
  const e = body?.totpEnrolment;
  if (!e || typeof e.token !== 'string' || typeof e.secret !== 'string' || typeof e.otpauthUri !== 'string' || typeof e.expiresAt !== 'string') return undefined;
  return { token: e.token, secret: e.secret, otpauthUri: e.otpauthUri, expiresAt: e.expiresAt, newPasswordRequired: e.newPasswordRequired === true };
}

/** A refusal's body as the operator API sends it ({"error": …} and what goes with it), or its text. */
function refusalOf(text: string): { error: string; passwordChangeRequired: boolean; pendingUntil?: string } {
  try {
    const body = JSON.parse(text) as { error?: unknown; passwordChangeRequired?: unknown; pendingUntil?: unknown } | null;
    return {
      error: typeof body?.error === 'string' ? body.error : text,
      passwordChangeRequired: body?.passwordChangeRequired === true,
      ...(typeof body?.pendingUntil === 'string' ? { pendingUntil: body.pendingUntil } : {}),
    };
  } catch {
    return { error: text, passwordChangeRequired: false };
  }
}

/**
 * POST /admin/session: name, password and TOTP code (and a new password, which replaces the current one)
 * for a session token, stored for the commands that follow. An account without a second factor is
 * answered with a TOTP enrolment instead: `enrol` shows it and gets the code (and password) that
 * POST /admin/session/enrolment confirms it with, which signs in. A wrong code or a password the DIP does
 * not take is asked for again with the same token, until the enrolment expires (by `now`, the caller's
 * clock); a sign-in throttled for failing (429) is asked again after its wait: the enrolment stays pending on the DIP whatever happens
 * here, so giving up its token would leave the person refused (409) until it expires.
 */
export async function login(
  config: DipConfig,
  sign: { name: string; password: string; code: string; newPassword?: string },
  enrol: EnrolmentPrompt,
  now: () => number = Date.now,
): Promise<{ file: string; expiresAt: string; enrolled: boolean }> {
  const { name, password, code, newPassword } = sign;
  let res = await send(config, 'POST', '/admin/session', { name, password, ...(code === '' ? {} : { code }), ...(newPassword === undefined ? {} : { newPassword }) }, null);
  if (res.status === 409) {
    const { error, pendingUntil } = refusalOf(res.text);
    // The enrolment in the way was finished between the DIP's two looks (pendingUntil is then its now):
    // the authenticator is set up, so waiting is no answer; signing in with a code from it is.
    if (error.startsWith(ENROLMENT_JUST_FINISHED)) {
      throw new Error(`${error}\nthe authenticator of ${name} was set up by another sign-in a moment ago: sign in with a code from it (dip login --name ${name})`);
    }
    throw new Error(
      `${error}\nan earlier first sign-in of ${name} (dip login, or the operator portal) is still setting up an authenticator: finish it there, or run dip login again after ${pendingUntil ?? 'it ends (10 minutes from its start)'}`,
    );
  }
  if (res.status === 403 && refusalOf(res.text).passwordChangeRequired) {
    // Signing in (the account has its factor): nothing is pending, so signing in again is the way on.
    throw new Error(`admin API answered 403: ${res.text}\nchoose your own password: dip login --name ${name} --new-password`);
  }
  const offer = res.status === 403 ? enrolmentOffer(res.text) : undefined;
  if (offer) {
    let refusal: EnrolmentRefusal | undefined;
    for (;;) {
      const answer = await enrol(offer, refusal);
      res = await send(config, 'POST', '/admin/session/enrolment', { token: offer.token, code: answer.code, ...(answer.newPassword === undefined ? {} : { newPassword: answer.newPassword }) }, null);
      // 429: too many failures, a short wait (Retry-After, named in the error): the code is asked for again.
      if (res.status < 300 || ![400, 401, 403, 429].includes(res.status)) break;
      const { error, passwordChangeRequired } = refusalOf(res.text);
      // Reset, disabled or otherwise ended on the DIP before its local expiry: no code can finish it.
      if (res.status === 401 && error.startsWith(ENROLMENT_ENDED)) throw new Error(`${error}\nthe authenticator was not set up: sign in again (dip login) to be given a new secret`);
      if (now() >= Date.parse(offer.expiresAt)) throw new Error(`${error}\nthe authenticator enrolment ended at ${offer.expiresAt}: sign in again (dip login) to be given a new secret`);
      // A 400 names the field it refused (body/newPassword …); a 403 is the password choice refused.
      refusal = { error, passwordAgain: passwordChangeRequired || error.includes('newPassword') };
    }
  }
  const session = answerOf(res) as { token: string; expiresAt: string };
  return { file: saveSession(config, { token: session.token, expiresAt: session.expiresAt, name }), expiresAt: session.expiresAt, enrolled: offer !== undefined };
}
