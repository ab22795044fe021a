import { randomBytes } from 'node:crypto';
import type { PortalRealm } from '../ports/portal-accounts.js';
import { keyFromFile, readToken, signToken } from './portal-session.js';

/** How long a browser stays known after a successful sign-in in it (each sign-in issues a new cookie). */
export const DEVICE_COOKIE_MS = 90 * 86_400_000;

/** What a device cookie says: the account it signed in (its realm and name), a nonce of its own (its failures are counted by it), and its end. */
export interface DeviceClaims {
  /** Absent on cookies issued before the realms: read as none (the next sign-in in the browser issues one). */
  realm: PortalRealm;
  username: string;
  nonce: string;
  expiresAt: number;
}

/**
 * OWASP's device cookies ("Slow Down Online Guessing Attacks with Device Cookies"): a browser that signed
 * in to an account (password and TOTP) is given a cookie naming the account and a nonce, HMAC-signed with
 * a key of the data directory (every node of a cluster shares it). A sign-in presenting one for its name
 * is trusted: the name's and the address's waits do not hold it (src/security/sign-in-throttle.ts), so a
 * stranger failing against the name, or behind the same proxy, does not keep the owner's own browser out.
 */
export class DeviceCookies {
  constructor(private readonly key: Buffer) {}

  /** The key in `file`, made on first use (readable by the DIP's account only). */
  static fromFile(file: string): DeviceCookies {
    return new DeviceCookies(keyFromFile(file));
  }

  issue(realm: PortalRealm, username: string, nowMs: number): string {
    const claims: DeviceClaims = { realm, username, nonce: randomBytes(16).toString('base64url'), expiresAt: nowMs + DEVICE_COOKIE_MS };
    return signToken(this.key, claims);
  }

  /**
   * The claims of a device cookie this DIP issued for an account of `realm`, unexpired and well formed;
   * undefined otherwise (the portals share the key: one portal's cookie is no other's).
   */
  read(realm: PortalRealm, token: string | undefined, nowMs: number): DeviceClaims | undefined {
    const claims = readToken<DeviceClaims>(this.key, token, nowMs);
    return claims && claims.realm === realm && typeof claims.username === 'string' && typeof claims.nonce === 'string' ? claims : undefined;
  }
}
