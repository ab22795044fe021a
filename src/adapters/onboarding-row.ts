import type { OnboardingApplication } from '../domain/onboarding.js';

/**
 * An application as both SQL stores keep it: what is searched on in columns (status, the token's hash, the
 * link's expiry, the order), the whole application as JSON beside them.
 */
export interface ApplicationRow {
  id: string;
  status: string;
  verify_token_hash: string | null;
  verify_expires_at: number | string;
  created_at: number | string;
  doc: string;
}

export const fromApplicationRow = (r: ApplicationRow): OnboardingApplication => ({ ...(JSON.parse(r.doc) as OnboardingApplication), status: r.status as OnboardingApplication['status'], verifyTokenHash: r.verify_token_hash });

export const applicationColumns = (a: OnboardingApplication): [string, string, string | null, number, number, string] => [a.id, a.status, a.verifyTokenHash, a.verifyExpiresAt, a.createdAt, JSON.stringify(a)];

/** An approved application as it was before the approval (which failed before anything was registered): pending again. */
export const undecided = (a: OnboardingApplication): OnboardingApplication => ({ ...a, status: 'pending', decidedAt: null, decidedBy: null, reason: null, dipId: null, username: null });
