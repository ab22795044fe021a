import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { request } from 'undici';
import { adminTokenFile } from '../api/admin.js';
import type { DipConfig } from '../config.js';

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
  writeFileSync(file, `${JSON.stringify(session)}\n`, { mode: 0o600 });
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

function enrolmentOffer(text: string): TotpEnrolmentOffer | undefined {
  const body = JSON.parse(text) as { totpEnrolment?: Partial<TotpEnrolmentOffer> } | null;
  const e = body?.totpEnrolment;
  if (!e || typeof e.token !== 'string' || typeof e.secret !== 'string' || typeof e.otpauthUri !== 'string' || typeof e.expiresAt !== 'string') return undefined;
  return { token: e.token, secret: e.secret, otpauthUri: e.otpauthUri, expiresAt: e.expiresAt, newPasswordRequired: e.newPasswordRequired === true };
}

/**
 * POST /admin/session: name, password and TOTP code (and a new password, which replaces the current one)
 * for a session token, stored for the commands that follow. An account without a second factor is
 * answered with a TOTP enrolment instead: `enrol` shows it and gets the code (and password) that
 * POST /admin/session/enrolment confirms it with, which signs in.
 */
export async function login(
  config: DipConfig,
  sign: { name: string; password: string; code: string; newPassword?: string },
  enrol: (offer: TotpEnrolmentOffer) => Promise<EnrolmentAnswer>,
): Promise<{ file: string; expiresAt: string; enrolled: boolean }> {
  const { name, password, code, newPassword } = sign;
  let res = await send(config, 'POST', '/admin/session', { name, password, ...(code === '' ? {} : { code }), ...(newPassword === undefined ? {} : { newPassword }) }, null);
  const offer = res.status === 403 ? enrolmentOffer(res.text) : undefined;
  if (offer) {
    const answer = await enrol(offer);
    res = await send(config, 'POST', '/admin/session/enrolment', { token: offer.token, code: answer.code, ...(answer.newPassword === undefined ? {} : { newPassword: answer.newPassword }) }, null);
  }
  const session = answerOf(res) as { token: string; expiresAt: string };
  return { file: saveSession(config, { token: session.token, expiresAt: session.expiresAt, name }), expiresAt: session.expiresAt, enrolled: offer !== undefined };
}
