import { createHash, randomBytes } from 'node:crypto';

/**
 * A bearer secret as it is stored: hex SHA-256 of its UTF-8 (API keys, automation accounts' tokens,
 * enrolment tokens), so a stolen database does not hand out credentials. The secrets are random (192 bits
 * or more), so a plain hash needs no salt nor stretching.
 */
export function secretHash(secret: string): string {
  return createHash('sha256').update(secret, 'utf8').digest('hex');
}

/** API keys are stored only as their secretHash. */
export const hashApiKey = secretHash;

/** A new API key: 192 random bits, shown once to its owner. */
export function newApiKey(): string {
  return `dip_${randomBytes(24).toString('base64url')}`;
}
