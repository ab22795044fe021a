import { createHash, randomBytes } from 'node:crypto';

/** API keys are stored only as SHA-256 hashes: a stolen database does not hand out credentials. */
export function hashApiKey(apiKey: string): string {
  return createHash('sha256').update(apiKey, 'utf8').digest('hex');
}

/** A new API key: 192 random bits, shown once to its owner. */
export function newApiKey(): string {
  return `dip_${randomBytes(24).toString('base64url')}`;
}
