import { getFips, pbkdf2 as pbkdf2Cb, randomBytes, scrypt as scryptCb, timingSafeEqual, type ScryptOptions } from 'node:crypto';
import { Secret, TOTP } from 'otpauth';

/**
 * Portal sign-in: a password (scrypt, or PBKDF2 under FIPS mode; node:crypto) and a TOTP code (RFC 6238
 * through otpauth, the codes every authenticator app shows). Both are checked on every sign-in; neither
 * alone is enough.
 */

// OWASP's scrypt minimum (N=2^17, r=8, p=1) costs ~128 MiB and ~0.3 s per check on these machines;
// 2^15 keeps a sign-in under 0.1 s of CPU while still costing an attacker 32 MiB per guess.
const SCRYPT = { N: 32_768, r: 8, p: 1, keyLength: 32, maxmem: 64 * 1024 * 1024 } as const;
/**
 * PBKDF2-HMAC-SHA-256 iterations: OWASP's recommendation for it (2023). About 0.3 s of CPU per check on
 * these machines (scrypt's: 0.2 s); memory-cheap, so weaker against GPUs than scrypt: used only where
 * scrypt cannot be, under FIPS mode (SECURITY.md, "Cryptography and FIPS 140-2").
 */
export const PBKDF2_ITERATIONS = 600_000;
const PBKDF2_KEY_LENGTH = 32;

/** How new passwords are hashed. */
export type PasswordScheme = 'scrypt' | 'pbkdf2-sha256';

/** scrypt, unless Node runs in FIPS mode: its FIPS provider has no scrypt, PBKDF2 is an approved KDF (SP 800-132). */
export function passwordScheme(fips: boolean = getFips() === 1): PasswordScheme {
  return fips ? 'pbkdf2-sha256' : 'scrypt';
}

function scrypt(password: string, salt: Buffer, keyLength: number, options: ScryptOptions): Promise<Buffer> {
  return new Promise((resolve, reject) => scryptCb(password, salt, keyLength, options, (err, key) => (err ? reject(err) : resolve(key))));
}

function pbkdf2(password: string, salt: Buffer, iterations: number, keyLength: number): Promise<Buffer> {
  return new Promise((resolve, reject) => pbkdf2Cb(password, salt, iterations, keyLength, 'sha256', (err, key) => (err ? reject(err) : resolve(key))));
}

/**
 * `scrypt$N$r$p$salt$hash` or `pbkdf2-sha256$iterations$salt$hash` (base64url): the scheme and its
 * parameters travel with the hash, so they can be raised later and old hashes still verify.
 */
export async function hashPassword(password: string, scheme: PasswordScheme = passwordScheme()): Promise<string> {
  const salt = randomBytes(16);
  if (scheme === 'pbkdf2-sha256') {
    const key = await pbkdf2(password, salt, PBKDF2_ITERATIONS, PBKDF2_KEY_LENGTH);
    return [scheme, PBKDF2_ITERATIONS, salt.toString('base64url'), key.toString('base64url')].join('$');
  }
  const key = await scrypt(password, salt, SCRYPT.keyLength, { N: SCRYPT.N, r: SCRYPT.r, p: SCRYPT.p, maxmem: SCRYPT.maxmem });
  return ['scrypt', SCRYPT.N, SCRYPT.r, SCRYPT.p, salt.toString('base64url'), key.toString('base64url')].join('$');
}

/** Whether `password` is the one `stored` was made from, whichever scheme made it (a scrypt hash cannot be checked under FIPS mode: it throws). */
export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const [kind, ...fields] = stored.split('$');
  let key: Buffer;
  let expected: Buffer;
  if (kind === 'pbkdf2-sha256') {
    const [iterations, salt, hash] = fields;
    const rounds = Number(iterations);
    if (!salt || !hash || !Number.isSafeInteger(rounds) || rounds < 1) return false;
    expected = Buffer.from(hash, 'base64url');
    key = await pbkdf2(password, Buffer.from(salt, 'base64url'), rounds, expected.length);
  } else if (kind === 'scrypt') {
    const [n, r, p, salt, hash] = fields;
    if (!salt || !hash) return false;
    expected = Buffer.from(hash, 'base64url');
    key = await scrypt(password, Buffer.from(salt, 'base64url'), expected.length, { N: Number(n), r: Number(r), p: Number(p), maxmem: SCRYPT.maxmem });
  } else {
    return false;
  }
  return timingSafeEqual(key, expected);
}

/** What a new password must be: long enough that the TOTP code is a second factor, not the only one. */
export function passwordProblem(password: string): string | null {
  if (password.length < 12) return 'the password must be at least 12 characters long';
  if (password.length > 200) return 'the password must be at most 200 characters long';
  return null;
}

/** A password for a new account, shown once to the administrator who made it. */
export function newPassword(): string {
  return randomBytes(15).toString('base64url');
}

const PERIOD_S = 30;

function totp(secretBase32: string, label = 'user', issuer = 'OpenDIP'): TOTP {
  return new TOTP({ issuer, label, algorithm: 'SHA1', digits: 6, period: PERIOD_S, secret: Secret.fromBase32(secretBase32) });
}

/** A new TOTP secret (160 bits, base32, as authenticator apps take it). */
export function newTotpSecret(): string {
  return new Secret({ size: 20 }).base32;
}

/** The otpauth:// URI an authenticator app imports (also shown as text for manual entry). */
export function totpUri(secretBase32: string, username: string, issuer: string): string {
  return totp(secretBase32, username, issuer).toString();
}

/** The code for a moment (tests and the CLI's enrolment check). */
export function totpCode(secretBase32: string, atMs: number): string {
  return totp(secretBase32).generate({ timestamp: atMs });
}

/**
 * The time step a code belongs to when it is right now (one step of clock drift either way), and newer
 * than `lastStep` (a code is good once); null otherwise.
 */
export function acceptTotp(secretBase32: string, code: string, nowMs: number, lastStep: number): number | null {
  if (!/^\d{6}$/.test(code)) return null;
  const delta = totp(secretBase32).validate({ token: code, timestamp: nowMs, window: 1 });
  if (delta === null) return null;
  const step = Math.floor(nowMs / 1000 / PERIOD_S) + delta;
  return step > lastStep ? step : null;
}
