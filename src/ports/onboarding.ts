import type { ApplicationStatus, OnboardingApplication } from '../domain/onboarding.js';

/** A decision on a pending application (approved: the participant and account it made). */
export interface ApplicationDecision {
  status: 'approved' | 'rejected';
  decidedAt: number;
  decidedBy: string;
  reason: string | null;
  dipId: string | null;
  username: string | null;
}

/**
 * Companies' applications to use the DIP (src/domain/onboarding.ts). Every change that could race (two
 * applications against the cap, two clicks on one link, two operators deciding) is one conditional write.
 */
export interface OnboardingApplications {
  /**
   * Adds an unverified application unless `cap` applications are already waiting (unverified ones whose
   * link has not expired at `now`, and pending ones): counted and added in one transaction, so applications
   * made at once on several nodes never pass the cap together. Unverified applications whose link expired
   * are forgotten first. False: over the cap, nothing added.
   */
  create(application: OnboardingApplication, cap: number, now: number): Promise<boolean>;
  /**
   * Verifies the unverified application whose token hash this is, if its link has not expired at `now`: it
   * becomes pending and the token is used up. The application as changed; undefined when there is none.
   */
  verify(tokenHash: string, now: number): Promise<OnboardingApplication | undefined>;
  get(id: string): Promise<OnboardingApplication | undefined>;
  /** Applications of one status, oldest first. */
  list(status: ApplicationStatus): Promise<OnboardingApplication[]>;
  /** Decides the application only while it is pending. The application as changed; undefined when it was not pending (or is none). */
  decide(id: string, decision: ApplicationDecision): Promise<OnboardingApplication | undefined>;
  close(): Promise<void>;
}
