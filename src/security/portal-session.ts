import type { PortalRealm } from '../ports/portal-accounts.js';
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { existsSync, linkSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';

/** What a portal session cookie carries: who, which epoch of their sessions, until when, and its CSRF token. */
export interface SessionClaims {
  username: string;
  /**
   * Whose accounts `username` is among (PortalRealm): the portals share a signing key, so the cookie says
   * which portal's account it is. Absent on sessions issued before the realms: refused (signed in again).
   */
  realm?: PortalRealm;
  epoch: number;
  expiresAt: number;
  csrf: string;
  /**
   * The portals': when the session was last used (the sign-in, then each page that renewed the cookie),
   * for their idle limit (config `portal.sessionIdleMinutes`). Absent on operator-API sessions.
   */
  seenAt?: number;
  /**
   * The portals': the session's number among the account's (PortalAccounts.countSession), so that the
   * oldest ends once the person has more than `portal.maxSessionsPerUser`. Absent on operator-API
   * sessions and on portal sessions issued before the cap (they end at their expiry).
   */
  seq?: number;
}

/**
 * Portal sessions as signed tokens (HMAC-SHA256 over the claims), so every node of a cluster that shares
 * the data directory's key accepts them without a session table. Revocation is by epoch: sign-out and
 * disabling raise the account's epoch, and a token from an older epoch is refused.
 */
export class SessionSigner {
  constructor(private readonly key: Buffer) {}

  /** The key in `file`, made on first use (readable by the DIP's account only). */
  static fromFile(file: string): SessionSigner {
    return new SessionSigner(keyFromFile(file));
  }

  issue(claims: Omit<SessionClaims, 'csrf'>): { token: string; claims: SessionClaims } {
    const full: SessionClaims = { ...claims, csrf: randomBytes(18).toString('base64url') };
    return { token: this.sign(full), claims: full };
  }

  /**
   * The same session, used at `nowMs`: its name, epoch, absolute expiry and CSRF token unchanged (forms
   * already on screen in other tabs still pass), only `seenAt` moved on.
   */
  renew(claims: SessionClaims, nowMs: number): { token: string; claims: SessionClaims } {
    const renewed: SessionClaims = { ...claims, seenAt: nowMs };
    return { token: this.sign(renewed), claims: renewed };
  }

  private sign(claims: SessionClaims): string {
    return signToken(this.key, claims);
  }

  /** The claims of a token this signer issued and that has not expired; undefined otherwise. */
  read(token: string | undefined, nowMs: number): SessionClaims | undefined {
    return readToken<SessionClaims>(this.key, token, nowMs);
  }
}

/** Claims as a token: base64url JSON, a dot, its HMAC-SHA256 under `key`. */
export function signToken(key: Buffer, claims: object): string {
  const body = Buffer.from(JSON.stringify(claims)).toString('base64url');
  return `${body}.${mac(key, body)}`;
}

/** The claims of a token signed with `key` whose `expiresAt` is after `nowMs`; undefined otherwise (the MAC compared in constant time). */
export function readToken<T extends { expiresAt: number }>(key: Buffer, token: string | undefined, nowMs: number): T | undefined {
  if (!token || token.length > 2048) return undefined;
  const [body, given] = token.split('.');
  if (!body || !given) return undefined;
  const expected = Buffer.from(mac(key, body));
  const g = Buffer.from(given);
  if (g.length !== expected.length || !timingSafeEqual(g, expected)) return undefined;
  let claims: T;
  try {
    claims = JSON.parse(Buffer.from(body, 'base64url').toString('utf8')) as T;
  } catch {
    return undefined;
  }
  return typeof claims?.expiresAt === 'number' && claims.expiresAt > nowMs ? claims : undefined;
}

const mac = (key: Buffer, body: string): string => createHmac('sha256', key).update(body).digest('base64url');

/**
 * A 256-bit key kept in `file` (the data directory, shared by every node of a cluster), made on first use
 * and readable by the DIP's account only. Two nodes making it at once: each writes a whole key to a file of
 * its own and links it into place, so the name only ever appears with a whole key (the first link wins,
 * both read it). Written in place ('wx'), the loser could read the name while it was still empty, and
 * would have signed sessions with an empty key anyone can compute.
 */
export function keyFromFile(file: string): Buffer {
  if (!existsSync(file)) {
    const own = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
    writeFileSync(own, randomBytes(32).toString('base64url'), { mode: 0o600, flag: 'wx' });
    try {
      linkSync(own, file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    } finally {
      unlinkSync(own);
    }
  }
  const text = readFileSync(file, 'utf8').trim();
  // Node's decoder drops what is not base64url, so a hand-placed token of other characters was read as other
  // bytes: the token the other nodes were given (those bytes re-encoded) was not the one placed.
  const wanted = "it must hold at least 32 random bytes in base64url (e.g. `openssl rand 32 | basenc --base64url | tr -d =`); restore it from a node's copy, or remove it on every node to make a new one";
  if (!/^[\w-]*$/.test(text)) throw new Error(`${file} holds characters other than base64url's (A-Z a-z 0-9 - _): ${wanted}`);
  const key = Buffer.from(text, 'base64url');
  if (key.length < 32) throw new Error(`${file} holds no 256-bit key (${key.length} bytes): ${wanted}`);
  return key;
}

/** A submitted CSRF token equals the session's (constant time). */
export function csrfMatches(expected: string, given: unknown): boolean {
  if (typeof given !== 'string') return false;
  const a = Buffer.from(expected);
  const b = Buffer.from(given);
  return a.length === b.length && timingSafeEqual(a, b);
}
