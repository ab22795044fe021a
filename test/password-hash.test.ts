import { describe, expect, it } from 'vitest';
import { hashPassword, passwordScheme, PBKDF2_ITERATIONS, verifyPassword } from '../src/security/portal-credentials.js';

/**
 * Password hashes (SECURITY.md "Cryptography and FIPS 140-2"): scrypt, or under a FIPS-mode Node (whose FIPS
 * provider has no scrypt) PBKDF2-HMAC-SHA-256, an approved KDF (SP 800-132). Each stored hash says its scheme.
 */
describe('portal password hashes', () => {
  it('hashes with scrypt outside FIPS mode and with PBKDF2-HMAC-SHA-256 under it', () => {
    expect(passwordScheme(false)).toBe('scrypt');
    expect(passwordScheme(true)).toBe('pbkdf2-sha256');
  });

  it('verifies a PBKDF2-HMAC-SHA-256 hash, with its iteration count in it, and refuses a wrong password', async () => {
    const stored = await hashPassword('correct horse battery', 'pbkdf2-sha256');
    expect(stored).toMatch(new RegExp(`^pbkdf2-sha256\\$${PBKDF2_ITERATIONS}\\$[A-Za-z0-9_-]{22}\\$[A-Za-z0-9_-]{43}$`));
    expect(PBKDF2_ITERATIONS).toBeGreaterThanOrEqual(600_000);
    expect(await verifyPassword('correct horse battery', stored)).toBe(true);
    expect(await verifyPassword('correct horse batterz', stored)).toBe(false);
    // Two hashes of one password differ (a salt of their own).
    expect(await hashPassword('correct horse battery', 'pbkdf2-sha256')).not.toBe(stored);
  });

  it('still verifies scrypt hashes stored before, and refuses what is not a hash it knows', async () => {
    const old = await hashPassword('an older password', 'scrypt');
    expect(old.startsWith('scrypt$32768$8$1$')).toBe(true);
    expect(await verifyPassword('an older password', old)).toBe(true);
    expect(await verifyPassword('another password', old)).toBe(false);
    expect(await verifyPassword('x', 'md5$abc$def')).toBe(false);
    expect(await verifyPassword('x', 'pbkdf2-sha256$0$c2FsdA$aGFzaA')).toBe(false);
  });
});
