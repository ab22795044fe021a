import { randomBytes } from 'node:crypto';
import { readClaim, registerCheck, type ApplicationStatus, type ClaimField, type ClaimInput, type OnboardingApplication, type OnboardingClaim, type RegisterCheck } from '../domain/onboarding.js';
import type { Participant } from '../domain/participant.js';
import type { Clock } from '../ports/clock.js';
import type { Logger } from '../ports/logger.js';
import type { Mailer } from '../ports/mailer.js';
import type { OnboardingApplications } from '../ports/onboarding.js';
import type { OperatorJournal } from '../ports/operator-journal.js';
import type { RegistryStore } from '../ports/registry.js';
import { secretHash } from '../security/api-key.js';
import { csrProblem } from '../security/pki.js';
import type { ParticipantLifecycle } from './participant-lifecycle.js';
import { AlreadyRegistered, onboardParticipant } from './participants.js';
import { firstPasswordLapse, USERNAME_PATTERN, type PortalAccountService } from './portal-accounts.js';
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
  lifecycle: Pick<ParticipantLifecycle, 'entries' | 'kick' | 'updateProfile'>;
  registry: Pick<Registry, 'participant' | 'refresh'>;
  registryStore: Pick<RegistryStore, 'participants' | 'upsertParticipant' | 'insertParticipant' | 'webhooks' | 'deleteWebhook' | 'records' | 'putRecord'>;
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

/** A participant an operator created (Onboarding.create): as an approval, without an application. */
export interface Creation {
  dipId: string;
  roles: string[];
  /** Roles the register gives that the operator did not name: granted all the same (roles follow the register). */
  rolesNotNamed: string[];
  username: string;
  certificatePem: string;
  apiKey: string;
  invitation: Approval['invitation'];
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
    const organisation = check.companyName ?? application.companyName;
    const { username, certificatePem } = await this.prepared(application, dipId, organisation, usernameGiven);
    const now = this.deps.clock.now();
    const decided = await this.deps.store.decide(id, { status: 'approved', decidedAt: now, decidedBy: actor, reason: null, dipId, username });
    if (!decided) throw new RefusedError(409, `application ${id} was decided meanwhile`);
    const done = await this.registerAndInvite(
      { claim: application, dipId, roles: check.registerRoles, organisation, certificatePem, username, actor, what: `onboarding ${id}`, how: `the DIP's operators approved the application of ${application.companyName}` },
      async () => {
        // Nothing registered: the application is pending again, to be approved (or rejected) anew; nothing journalled.
        const back = await this.deps.store.undecide(id, now).catch((e: unknown) => e as Error);
        return back instanceof Error || back === undefined ? `; it could not be put back to pending (${back instanceof Error ? back.message : 'no longer this approval'}) and stays approved with nothing registered` : '; it is pending again';
      },
      (participant) => ({
        at: now,
        actor,
        action: 'onboarding.approve',
        target: id,
        before: { companyName: application.companyName, mpids: application.mpids, claimedRoles: application.roles, contactEmail: application.contactEmail },
        after: { dipId, roles: participant.roles, rolesNotInRegister: check.rolesNotInRegister, rolesNotClaimed: check.rolesNotClaimed, certificateFingerprint: participant.certificateFingerprint, username },
        status: null,
      }),
    );
    return { application: decided, roles: done.participant.roles, certificatePem, apiKey: done.apiKey, invitation: done.invitation };
  }

  /**
   * An operator creates a participant in the operator portal (spec 5.12.2 "Create User"), as approving an
   * application would: the MPIDs must all be registered, now, under one DIP ID of the central register,
   * which gives the roles; a role named that the register does not give that DIP ID is refused (never
   * granted by hand: the register is the authority, and its feed would take it away again). Its
   * certificate is issued for the company's CSR (the key never leaves the company); its first portal
   * administrator is made and invited by e-mail; journalled as `participant.create`.
   */
  async create(input: ClaimInput & { username?: string }, actor: string): Promise<Creation> {
    const read = readClaim(input);
    if ('problems' in read) throw new RefusedError(400, Object.values(read.problems).join('; '));
    const { claim } = read;
    const weak = await csrProblem(claim.csrPem);
    if (weak !== null) throw new RefusedError(400, `certificate signing request: ${weak}`);
    const check = registerCheck(claim, await this.deps.lifecycle.entries(), this.deps.clock.now());
    if (check.problem !== null || check.dipId === null) throw new RefusedError(409, `not created: ${check.problem ?? 'no DIP ID'}`);
    const dipId = check.dipId;
    if (check.rolesNotInRegister.length > 0) {
      throw new RefusedError(400, `roles: the central register does not give ${dipId} the role${check.rolesNotInRegister.length > 1 ? 's' : ''} ${check.rolesNotInRegister.join(', ')} now (it gives ${check.registerRoles.join(', ')}): roles come from the register`);
    }
    // This node's registry may be stale (registered on another node a moment ago): read the store first.
    // The registration itself is insert-only, so a form sent twice at once cannot re-register it either.
    await this.deps.registry.refresh();
    if (this.deps.registry.participant(dipId) !== undefined) throw new RefusedError(409, new AlreadyRegistered(dipId).message);
    const organisation = check.companyName ?? claim.companyName;
    const { username, certificatePem } = await this.prepared(claim, dipId, organisation, input.username);
    const now = this.deps.clock.now();
    const done = await this.registerAndInvite(
      { claim, dipId, roles: check.registerRoles, organisation, certificatePem, username, actor, what: `creating ${dipId}`, how: `the DIP's operators registered ${claim.companyName}` },
      async () => '; nothing was registered',
      (participant) => ({
        at: now,
        actor,
        action: 'participant.create',
        target: dipId,
        before: null,
        after: { organisation, mpids: claim.mpids, roles: participant.roles, rolesNotNamed: check.rolesNotClaimed, certificateFingerprint: participant.certificateFingerprint, username, contactEmail: claim.contactEmail },
        status: null,
      }),
    );
    return { dipId, roles: done.participant.roles, rolesNotNamed: check.rolesNotClaimed, username, certificatePem, apiKey: done.apiKey, invitation: done.invitation };
  }

  /** What can refuse before anything is written: the contact's username (free, well-formed) and the certificate for the CSR. */
  private async prepared(claim: OnboardingClaim, dipId: string, organisation: string, usernameGiven: string | undefined): Promise<{ username: string; certificatePem: string }> {
    const username = (usernameGiven ?? defaultUsername(claim.contactEmail, dipId)).trim().toLowerCase();
    if (!USERNAME_PATTERN.test(username)) throw new RefusedError(400, `username '${username.slice(0, 64)}' must be 3 to 64 lower-case letters, digits, '.', '_' or '-'`);
    // Taken among participants' users only: an operator's name is another realm's, and not told here.
    if (await this.deps.accounts.account('user', username)) throw new RefusedError(409, `username '${username}' is taken: give another`);
    try {
      return { username, certificatePem: await this.deps.issueCertificate(claim.csrPem, dipId, organisation) };
    } catch (e) {
      throw new RefusedError(409, `no certificate could be issued for the CSR: ${(e as Error).message}`);
    }
  }

  /**
   * Registers the participant with the register's roles and its certificate, makes the contact its first
   * portal administrator, journals, and e-mails the invitation: the one path for approval and creation.
   */
  private async registerAndInvite(
    r: { claim: OnboardingClaim; dipId: string; roles: string[]; organisation: string; certificatePem: string; username: string; actor: string; what: string; how: string },
    undo: () => Promise<string>,
    entry: (participant: Participant) => Parameters<OnboardingDeps['journal']['append']>[0],
  ): Promise<{ participant: Participant; apiKey: string; invitation: Approval['invitation'] }> {
    const { claim, dipId, username } = r;
    let registered: Awaited<ReturnType<typeof onboardParticipant>>;
    try {
      registered = await onboardParticipant(this.deps.registryStore, { dipId, roles: r.roles, organisation: r.organisation, certificatePem: r.certificatePem, onlyNew: true });
    } catch (err) {
      if (err instanceof AlreadyRegistered) throw new RefusedError(409, `${err.message}${await undo()}`);
      throw new Error(`${r.what}: ${dipId} could not be registered: ${(err as Error).message}${await undo()}`, { cause: err });
    }
    const { participant, apiKey } = registered;
    let made: Awaited<ReturnType<PortalAccountService['createEnrollingAtFirstSignIn']>>;
    try {
      await this.deps.registry.refresh();
      // Roles follow the register from here on (effective dates, optional roles), as for every participant.
      this.deps.lifecycle.kick();
      made = await this.deps.accounts.createEnrollingAtFirstSignIn({ username, displayName: claim.contactName, participantDipId: dipId, admin: true, createdBy: r.actor });
      if ('problem' in made) throw new Error(made.problem);
    } catch (err) {
      // Registered: a retry would issue a second API key, so the rest is done by hand, and said exactly.
      throw new Error(
        `${r.what}: ${dipId} is registered but its first portal account '${username}' could not be made: ${(err as Error).message}. ` +
          `Finish by hand: make that account, administrator of ${dipId} (POST /admin/portal/accounts, or the operator portal's accounts page), and send its first password to ${claim.contactEmail}; ` +
          `and give ${dipId} a new API key, the one made never shown (dip participant add --dip-id ${dipId} with its certificate from the participant list prints one)`,
        { cause: err },
      );
    }
    await this.deps.journal.append(entry(participant));
    // Maintenance notices reach its administrators from the start (spec 5.13.5); they may opt out. Not kept,
    // the participant is registered all the same: its administrator gives the address on the portal.
    await this.deps.lifecycle.updateProfile(dipId, r.actor, (profile) => ({ ...profile, maintenanceEmail: claim.contactEmail })).catch((err: unknown) => {
      this.deps.logger.error({ err, dipId }, "the first administrator's address for maintenance notices could not be kept: they give it on the user portal's Maintenance page");
    });
    const invitation = await this.mail(
      claim.contactEmail,
      'Your DIP account',
      `${claim.contactName},\n\n${r.how}: it is registered as participant ${dipId} with the roles ${participant.roles.join(', ')} (from the central register).\n\nSign in to the user portal at ${this.deps.portalUrl()}/portal/sign-in with\n\n  username: ${username}\n  first password: ${made.password}\n\nThe first password is for your first sign-in only: ${firstPasswordLapse(made.passwordExpiresAt)}. At that first sign-in you choose your own password and set up an authenticator app; the first password then stops working. You are your company's portal administrator: you add its other users. Notices of the DIP's maintenance windows are e-mailed to this address; change or stop that on the portal's Maintenance page.\n\nYour participant certificate, issued for the key of your certificate signing request, is on the portal's Certificates page. The DIP's operators hand you the participant API key separately.\n`,
    );
    return { participant, apiKey, invitation };
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
