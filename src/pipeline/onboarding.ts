import { randomBytes } from 'node:crypto';
import { readClaim, registerCheck, type ApplicationStatus, type ClaimField, type ClaimInput, type OnboardingApplication, type RegisterCheck } from '../domain/onboarding.js';
import type { Clock } from '../ports/clock.js';
import type { Logger } from '../ports/logger.js';
import type { Mailer } from '../ports/mailer.js';
import type { OnboardingApplications } from '../ports/onboarding.js';
import type { OperatorJournal } from '../ports/operator-journal.js';
import type { RegistryStore } from '../ports/registry.js';
import { secretHash } from '../security/api-key.js';
import { csrProblem } from '../security/pki.js';
import type { ParticipantLifecycle } from './participant-lifecycle.js';
import { onboardParticipant } from './participants.js';
import { USERNAME_PATTERN, type PortalAccountService } from './portal-accounts.js';
import { RefusedError } from './refused.js';
import type { Registry } from './registry.js';

const TOKEN_PREFIX = 'dipverify_';
/**
 * Unconfirmed applications allowed per one waiting for the operators (onboarding.maxWaiting): anyone can make
 * them (one live per contact address), so they have a bound of their own, roomier, and never fill the operators' queue.
 */
const UNVERIFIED_PER_WAITING = 4;

export interface OnboardingDeps {
  store: OnboardingApplications;
  mailer: Mailer;
  clock: Clock;
  logger: Logger;
  journal: Pick<OperatorJournal, 'append'>;
  lifecycle: Pick<ParticipantLifecycle, 'entries' | 'kick'>;
  registry: Pick<Registry, 'participant' | 'refresh'>;
  registryStore: Pick<RegistryStore, 'participants' | 'upsertParticipant' | 'webhooks' | 'deleteWebhook'>;
  accounts: Pick<PortalAccountService, 'createEnrollingAtFirstSignIn' | 'account'>;
  /** A participant certificate from this environment's CA for the CSR, bound to the DIP ID (src/assemble/participants.ts). */
  issueCertificate(csrPem: string, dipId: string, organisation: string): Promise<string>;
  /** The user portal's address as the contact reaches it (config publicUrl's host, or the listener's). */
  portalUrl(): string;
  maxWaiting: number;
  linkMs: number;
}

/** The answer to an application, the same whatever the DIP knows of the MPIDs claimed (it tells nobody whether they exist). */
export type ApplyOutcome = { sent: true } | { problems: Partial<Record<ClaimField, string>> } | { full: true } | { mailFailed: true };

export interface ApplicationView {
  application: OnboardingApplication;
  /** The claim against the register as it is now (null for decided applications: what was decided is in the application). */
  check: RegisterCheck | null;
  /** The register's DIP ID is a registered participant already: its administrator adds users in the user portal. */
  alreadyRegistered: boolean;
}

export interface Approval {
  application: OnboardingApplication;
  roles: string[];
  certificatePem: string;
  /** The participant API key: shown this once, to the operator, who hands it over (as `dip participant add` prints it). */
  apiKey: string;
  /** The invitation e-mail was accepted by the SMTP server; else why not (the account exists; its first password is lost). */
  invitation: { sent: true } | { sent: false; problem: string };
}

/**
 * A company onboarding itself (spec 5.12.1 "User Onboarding"): it applies on the user portal's public form;
 * the contact proves the address with a one-time link; only then operators see it, check the claim against
 * the central register (spec 5.7.1) and approve (the participant registered with the register's roles, its
 * certificate issued from the application's CSR, the contact's portal account made and the contact invited
 * by e-mail) or reject it (the reason e-mailed). Decisions are journalled.
 */
export class Onboarding {
  constructor(private readonly deps: OnboardingDeps) {}

  async apply(input: ClaimInput): Promise<ApplyOutcome> {
    const read = readClaim(input);
    if ('problems' in read) return read;
    const { claim } = read;
    const weak = await csrProblem(claim.csrPem);
    if (weak !== null) return { problems: { csrPem: `certificate signing request: ${weak}` } };
    const now = this.deps.clock.now();
    const token = `${TOKEN_PREFIX}${randomBytes(32).toString('base64url')}`;
    const application: OnboardingApplication = {
      ...claim,
      id: randomBytes(9).toString('base64url'),
      status: 'unverified',
      createdAt: now,
      verifyTokenHash: secretHash(token),
      verifyExpiresAt: now + this.deps.linkMs,
      verifiedAt: null,
      decidedAt: null,
      decidedBy: null,
      reason: null,
      dipId: null,
      username: null,
    };
    if (!(await this.deps.store.create(application, { pending: this.deps.maxWaiting, unverified: this.deps.maxWaiting * UNVERIFIED_PER_WAITING }, now))) {
      this.deps.logger.warn({ maxWaiting: this.deps.maxWaiting }, 'onboarding application refused: as many are waiting as allowed (onboarding.maxWaiting, or unconfirmed ones)');
      return { full: true };
    }
    const link = `${this.deps.portalUrl()}/portal/apply/verify?token=${encodeURIComponent(token)}`;
    try {
      // Nothing the applicant wrote: the DIP's own sender must not carry a stranger's text (a phishing relay).
      await this.deps.mailer.send(
        claim.contactEmail,
        'Confirm your application to use the DIP',
        `An application to use the Data Integration Platform was made with this address as its contact (application ${application.id}).\n\nTo send it to the DIP's operators, open this link by ${new Date(application.verifyExpiresAt).toISOString()}:\n\n${link}\n\nIf you did not apply, ignore this message: nothing is done without the link.\n`,
      );
    } catch (err) {
      this.deps.logger.error({ err, application: application.id }, 'onboarding: the verification e-mail could not be sent; the application is forgotten');
      // Its link reached nobody: kept, it would only hold a place among the unverified until it expired.
      await this.deps.store.forget(application.id);
      return { mailFailed: true };
    }
    return { sent: true };
  }

  /** The contact opened the link: the application goes to the operators. Undefined: the link is used, expired or none. */
  async verify(token: string): Promise<OnboardingApplication | undefined> {
    if (!token.startsWith(TOKEN_PREFIX) || token.length > 200) return undefined;
    const now = this.deps.clock.now();
    const verified = await this.deps.store.verify(secretHash(token), now);
    if (verified) {
      await this.deps.journal.append({ at: now, actor: `applicant:${verified.contactEmail}`, action: 'onboarding.verify', target: verified.id, before: null, after: { companyName: verified.companyName, mpids: verified.mpids, roles: verified.roles }, status: null });
    }
    return verified;
  }

  list(status: Exclude<ApplicationStatus, 'unverified'>): Promise<OnboardingApplication[]> {
    return this.deps.store.list(status);
  }

  /** One application an operator may see (verified), with the register check. */
  async view(id: string): Promise<ApplicationView> {
    const application = await this.seen(id);
    if (application.status !== 'pending') return { application, check: null, alreadyRegistered: false };
    const check = registerCheck(application, await this.deps.lifecycle.entries(), this.deps.clock.now());
    return { application, check, alreadyRegistered: check.dipId !== null && this.deps.registry.participant(check.dipId) !== undefined };
  }

  /**
   * Registers the participant the register names for the claimed MPIDs, with the register's roles (not the
   * claim's), its certificate issued for the application's CSR; makes the contact its first administrator
   * in the user portal and e-mails the invitation. Everything that can refuse is checked before the
   * application is claimed as approved (one conditional write: of two operators at once, one approves).
   */
  async approve(id: string, actor: string, usernameGiven?: string): Promise<Approval> {
    const { application, check, alreadyRegistered } = await this.view(id);
    if (application.status !== 'pending' || !check) throw new RefusedError(409, `application ${id} was ${application.status} at ${new Date(application.decidedAt ?? 0).toISOString()} by ${application.decidedBy ?? '?'}`);
    if (check.problem !== null || check.dipId === null) throw new RefusedError(409, `application ${id} cannot be approved: ${check.problem ?? 'no DIP ID'}`);
    const dipId = check.dipId;
    if (alreadyRegistered) throw new RefusedError(409, `${dipId} is a registered participant already: its administrators add users in the user portal (reject this application with that reason)`);
    const username = (usernameGiven ?? defaultUsername(application.contactEmail, dipId)).trim().toLowerCase();
    if (!USERNAME_PATTERN.test(username)) throw new RefusedError(400, `username '${username.slice(0, 64)}' must be 3 to 64 lower-case letters, digits, '.', '_' or '-'`);
    if (await this.deps.accounts.account(username)) throw new RefusedError(409, `username '${username}' is taken: give another`);
    const organisation = check.companyName ?? application.companyName;
    let certificatePem: string;
    try {
      certificatePem = await this.deps.issueCertificate(application.csrPem, dipId, organisation);
    } catch (e) {
      throw new RefusedError(409, `no certificate could be issued for the application's CSR: ${(e as Error).message}`);
    }
    const now = this.deps.clock.now();
    const decided = await this.deps.store.decide(id, { status: 'approved', decidedAt: now, decidedBy: actor, reason: null, dipId, username });
    if (!decided) throw new RefusedError(409, `application ${id} was decided meanwhile`);
    let registered: Awaited<ReturnType<typeof onboardParticipant>>;
    try {
      registered = await onboardParticipant(this.deps.registryStore, { dipId, roles: check.registerRoles, organisation, certificatePem });
    } catch (err) {
      // Nothing registered: the application is pending again, to be approved (or rejected) anew; nothing journalled.
      const back = await this.deps.store.undecide(id, now).catch((e: unknown) => e as Error);
      const left = back instanceof Error || back === undefined ? `; it could not be put back to pending (${back instanceof Error ? back.message : 'no longer this approval'}) and stays approved with nothing registered` : '; it is pending again';
      throw new Error(`onboarding ${id}: ${dipId} could not be registered: ${(err as Error).message}${left}`, { cause: err });
    }
    const { participant, apiKey } = registered;
    let made: Awaited<ReturnType<PortalAccountService['createEnrollingAtFirstSignIn']>>;
    try {
      await this.deps.registry.refresh();
      // Roles follow the register from here on (effective dates, optional roles), as for every participant.
      this.deps.lifecycle.kick();
      made = await this.deps.accounts.createEnrollingAtFirstSignIn({ username, displayName: application.contactName, participantDipId: dipId, admin: true, createdBy: actor });
      if ('problem' in made) throw new Error(made.problem);
    } catch (err) {
      // Registered: a retry would issue a second API key, so the rest is done by hand, and said exactly.
      throw new Error(
        `onboarding ${id}: ${dipId} is registered (application approved) but its first portal account '${username}' could not be made: ${(err as Error).message}. ` +
          `Finish by hand: make that account, administrator of ${dipId} (POST /admin/portal/accounts, or the operator portal's accounts page), and send its first password to ${application.contactEmail}; ` +
          `and give ${dipId} a new API key, the one made never shown (dip participant add --dip-id ${dipId} with its certificate from the participant list prints one)`,
        { cause: err },
      );
    }
    await this.deps.journal.append({
      at: now,
      actor,
      action: 'onboarding.approve',
      target: id,
      before: { companyName: application.companyName, mpids: application.mpids, claimedRoles: application.roles, contactEmail: application.contactEmail },
      after: { dipId, roles: participant.roles, rolesNotInRegister: check.rolesNotInRegister, rolesNotClaimed: check.rolesNotClaimed, certificateFingerprint: participant.certificateFingerprint, username },
      status: null,
    });
    const invitation = await this.mail(
      application.contactEmail,
      'Your DIP account',
      `${application.contactName},\n\nthe DIP's operators approved the application of ${application.companyName}: it is registered as participant ${dipId} with the roles ${participant.roles.join(', ')} (from the central register).\n\nSign in to the user portal at ${this.deps.portalUrl()}/portal/sign-in with\n\n  username: ${username}\n  first password: ${made.password}\n\nAt that first sign-in you choose your own password and set up an authenticator app; the first password then stops working. You are your company's portal administrator: you add its other users.\n\nYour participant certificate, issued for the key of your certificate signing request, is on the portal's Certificates page. The DIP's operators hand you the participant API key separately.\n`,
    );
    return { application: decided, roles: participant.roles, certificatePem, apiKey, invitation };
  }

  /** Rejects a pending application; the contact is e-mailed the reason. */
  async reject(id: string, actor: string, reason: string): Promise<{ application: OnboardingApplication; notice: Approval['invitation'] }> {
    const application = await this.seen(id);
    const now = this.deps.clock.now();
    const decided = await this.deps.store.decide(id, { status: 'rejected', decidedAt: now, decidedBy: actor, reason, dipId: null, username: null });
    if (!decided) throw new RefusedError(409, `application ${id} is ${application.status === 'pending' ? 'decided meanwhile' : application.status}: only a pending application is rejected`);
    await this.deps.journal.append({ at: now, actor, action: 'onboarding.reject', target: id, before: { companyName: application.companyName, mpids: application.mpids, roles: application.roles, contactEmail: application.contactEmail }, after: { reason }, status: null });
    const notice = await this.mail(application.contactEmail, 'Your application to use the DIP', `${application.contactName},\n\nthe DIP's operators did not approve the application of ${application.companyName}, for this reason:\n\n${reason}\n`);
    return { application: decided, notice };
  }

  /** An application operators may see: verified (an unverified one is nobody's yet: not found). */
  private async seen(id: string): Promise<OnboardingApplication> {
    const application = await this.deps.store.get(id);
    if (!application || application.status === 'unverified') throw new RefusedError(404, `no application ${id}`);
    return application;
  }

  private async mail(to: string, subject: string, text: string): Promise<Approval['invitation']> {
    try {
      await this.deps.mailer.send(to, subject, text);
      return { sent: true };
    } catch (err) {
      this.deps.logger.error({ err, subject }, 'onboarding: an e-mail to an applicant could not be sent');
      return { sent: false, problem: (err as Error).message };
    }
  }
}

/** The contact's sign-in name: the address's local part (what USERNAME_PATTERN allows of it) and the DIP ID. */
export function defaultUsername(email: string, dipId: string): string {
  const local = (email.split('@')[0] ?? '').toLowerCase().replace(/[^a-z0-9._-]/g, '').replace(/^[._-]+/, '').slice(0, 40);
  return `${local || 'admin'}.${dipId.toLowerCase()}`;
}
