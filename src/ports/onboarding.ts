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
   * Adds an unverified application within `limits`, counted and added in one transaction, so applications
   * made at once on several nodes never pass them together. First forgotten: unverified applications whose
   * link expired at `now`, and the live unverified one of the same contact address (case ignored), which
   * this one replaces: one address holds one link at a time. Then refused (false, nothing added or
   * forgotten) when `limits.pending` verified applications wait for the operators, or `limits.unverified`
   * unverified ones wait for their links (only verified ones are counted against the operators' queue, so
   * unconfirmed ones, which anyone can make, cannot shut the form for the operators' applicants alone).
   */
  create(application: OnboardingApplication, limits: { pending: number; unverified: number }, now: number): Promise<boolean>;
  /** Forgets an application while it is unverified (its link could not be sent). */
  forget(id: string): Promise<void>;
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
  /**
   * Puts an approved application back to pending (the approval failed before the participant was
   * registered), only while it is approved by `decidedAt`'s decision. The application as changed; undefined when it was not.
   */
  undecide(id: string, decidedAt: number): Promise<OnboardingApplication | undefined>;
  close(): Promise<void>;
}
