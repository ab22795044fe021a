import { DIP_ID_PATTERN, type Participant, type ParticipantProfile } from '../domain/participant.js';
import { isEmailAddress } from '../domain/onboarding.js';
import type { JournalEntry, OperatorJournal } from '../ports/operator-journal.js';
import type { PortalAccount } from '../ports/portal-accounts.js';
import type { RegistryStore } from '../ports/registry.js';
import { hashApiKey, newApiKey } from '../security/api-key.js';
import type { ParticipantLifecycle } from './participant-lifecycle.js';
import { actorOf } from './portal-accounts.js';
import { RefusedError } from './refused.js';
import { changeProfile, rotateParticipantCertificate } from './participants.js';
import { dropFormerProviderWebhooks, type RemovedWebhook } from './webhook-config.js';
import type { Registry } from './registry.js';

/** What a participant sees of itself (GET /participants/{id}). */
export interface SelfView {
  dipId: string;
  organisation: string;
  roles: string[];
  /** Roles the central register gives it now (null when the register does not list it). */
  registerRoles: string[] | null;
  optionalRoles: string[];
  /** Roles it may sign up for itself. */
  availableOptionalRoles: string[];
  channels: string[];
  /** Channels it may opt into. */
  optInChannels: string[];
  connectionProvider: string | null;
  certificateFingerprint: string;
  previousCertificateValidUntil: string | null;
  previousApiKeyValidUntil: string | null;
}

export interface SelfServiceDeps {
  registry: Registry;
  lifecycle: ParticipantLifecycle;
  store: Pick<RegistryStore, 'participants' | 'setConnectionProvider' | 'setCertificate' | 'setApiKeyHash' | 'records' | 'putRecord' | 'webhooks' | 'deleteWebhook'>;
  journal: OperatorJournal;
  now(): number;
  /** Roles participants may sign up for themselves (set by the operator). */
  optionalRoles(): Promise<string[]>;
  /** Channels whose settings allow opting in. */
  optInChannels(): string[];
  /** Issues a certificate from the environment's CA for a CSR, bound to the DIP ID. */
  issueCertificate(csrPem: string, dipId: string, organisation: string): Promise<string>;
  trustedCaPems(): string[];
}

/**
 * Who acts: a participant's own signed call or its DIP Connection Provider's (journalled as
 * `participant:<DIP ID>`), or one of the participant's users in the user portal (journalled by name,
 * `user:<DIP ID>:<username>`, as the portals' other acts are).
 */
export type SelfServiceActor = Participant | Pick<PortalAccount, 'username' | 'participantDipId'>;

const iso = (ms: number | undefined | null): string | null => (ms === undefined || ms === null ? null : new Date(ms).toISOString());
const MAX_OVERLAP_MS = 90 * 86_400_000;

/**
 * Participant self-service (the portals sit on it): optional roles and channels, DIP Connection Provider
 * nominations, API key rotation with an overlap, a new certificate from a CSR. A role change never issues
 * a new API key. Every change is journalled with who made it (SelfServiceActor).
 */
export class SelfService {
  constructor(private readonly deps: SelfServiceDeps) {}

  async view(p: Participant): Promise<SelfView> {
    const { profile } = this.deps.registry.profile(p.dipId);
    return {
      dipId: p.dipId,
      organisation: p.organisation,
      roles: p.roles,
      registerRoles: await this.deps.lifecycle.registerRoles(p.dipId),
      optionalRoles: profile.optionalRoles,
      availableOptionalRoles: await this.deps.optionalRoles(),
      channels: profile.channels,
      optInChannels: this.deps.optInChannels(),
      connectionProvider: p.connectionProvider,
      certificateFingerprint: p.certificateFingerprint,
      previousCertificateValidUntil: iso(p.previous?.validUntil),
      previousApiKeyValidUntil: iso(profile.previousApiKey?.validUntil),
    };
  }

  async joinRole(p: Participant, role: string, by: SelfServiceActor = p): Promise<SelfView> {
    if (!(await this.deps.optionalRoles()).includes(role)) throw new RefusedError(403, `${role} is not an optional role participants may sign up for (${(await this.deps.optionalRoles()).join(', ') || 'none'})`);
    if (p.roles.includes(role)) throw new RefusedError(409, `${p.dipId} already holds ${role}`);
    await this.profile(p, by, 'participant.role.join', role, (pr) => ({ ...pr, optionalRoles: [...new Set([...pr.optionalRoles, role])].sort() }));
    await this.deps.lifecycle.setRoles(p.dipId, (roles) => [...new Set([...roles, role])].sort(), this.actor(by), 'participant.roles');
    return this.view(this.current(p));
  }

  async leaveRole(p: Participant, role: string, by: SelfServiceActor = p): Promise<SelfView> {
    const { profile } = this.deps.registry.profile(p.dipId);
    if (!profile.optionalRoles.includes(role)) throw new RefusedError(403, `${role} is not an optional role ${p.dipId} signed up for: roles from the central register change only there`);
    await this.profile(p, by, 'participant.role.leave', role, (pr) => ({ ...pr, optionalRoles: pr.optionalRoles.filter((r) => r !== role) }));
    const fromRegister = (await this.deps.lifecycle.registerRoles(p.dipId)) ?? [];
    if (!fromRegister.includes(role)) await this.deps.lifecycle.setRoles(p.dipId, (roles) => roles.filter((r) => r !== role), this.actor(by), 'participant.roles');
    return this.view(this.current(p));
  }

  async joinChannel(p: Participant, channel: string, by: SelfServiceActor = p): Promise<SelfView> {
    if (!this.deps.optInChannels().includes(channel)) throw new RefusedError(403, `${channel} does not take participants opting in (the operator allows it per channel)`);
    await this.profile(p, by, 'participant.channel.join', channel, (pr) => ({ ...pr, channels: [...new Set([...pr.channels, channel])].sort() }));
    return this.view(this.current(p));
  }

  async leaveChannel(p: Participant, channel: string, by: SelfServiceActor = p): Promise<SelfView> {
    if (!this.deps.registry.profile(p.dipId).profile.channels.includes(channel)) throw new RefusedError(404, `${p.dipId} has not opted into ${channel}`);
    await this.profile(p, by, 'participant.channel.leave', channel, (pr) => ({ ...pr, channels: pr.channels.filter((c) => c !== channel) }));
    return this.view(this.current(p));
  }

  /**
   * Nominates a DIP Connection Provider (a registered participant) to connect for it; null withdraws the
   * nomination. The webhooks the former provider registered for it go with the nomination (named in the
   * answer and the journal): its queues fall back to pull until it registers its own.
   */
  async nominate(p: Participant, provider: string | null, by: SelfServiceActor = p): Promise<SelfView & { removedWebhooks: RemovedWebhook[] }> {
    if (provider !== null) {
      if (!DIP_ID_PATTERN.test(provider)) throw new RefusedError(400, `connectionProvider '${provider}': a DIP ID (10 letters or digits)`);
      if (provider === p.dipId) throw new RefusedError(400, 'a participant cannot be its own connection provider');
      if (!this.deps.registry.participant(provider)) throw new RefusedError(404, `connectionProvider ${provider} is not a registered participant`);
    }
    // The same provider again changes nothing: dropping "the former provider's" webhooks would delete every
    // one registered before providers were recorded (registered_by NULL) though no provider changed.
    if (provider === p.connectionProvider) return { ...(await this.view(this.current(p))), removedWebhooks: [] };
    // The nomination first: the former provider's API access ends before its webhooks are looked for, so
    // it cannot register another in between. The nomination alone, and only while it is the one this call
    // was decided on: writing the row read earlier undid what another writer changed since (a certificate an
    // operator renewed), and replacing a nomination another administrator made meanwhile is theirs to see first.
    if (!(await this.deps.store.setConnectionProvider(p.dipId, p.connectionProvider, provider))) {
      await this.deps.registry.refresh();
      const now = this.deps.registry.participant(p.dipId);
      if (!now) throw new RefusedError(404, `${p.dipId} is not a registered participant`);
      throw new RefusedError(409, `${p.dipId}'s DIP Connection Provider changed meanwhile: it is now ${now.connectionProvider ?? 'none'}, not ${p.connectionProvider ?? 'none'} as read; look again and nominate again if still wanted`);
    }
    const removedWebhooks = await dropFormerProviderWebhooks(this.deps.store, { dipId: p.dipId, connectionProvider: provider }, p.connectionProvider !== null);
    await this.journal(p, by, provider ? 'participant.connection-provider.nominate' : 'participant.connection-provider.withdraw', { connectionProvider: p.connectionProvider }, { connectionProvider: provider, removedWebhooks });
    await this.deps.registry.refresh();
    return { ...(await this.view(this.current(p))), removedWebhooks };
  }

  /**
   * A new API key (shown once); the one it replaces keeps working until the overlap ends. The swap (only while
   * the key is the one read: an overlap for a key an operator replaced meanwhile, a leak answered by
   * re-registering, would let the leaked key in again) and the overlap are one write, so no node refreshing
   * its registry in between refuses the old key, and a failure leaves neither. The journal says what was written.
   */
  async rotateApiKey(p: Participant, overlapMs: number): Promise<{ apiKey: string; previousValidUntil: string | null }> {
    if (!(overlapMs >= 0 && overlapMs <= MAX_OVERLAP_MS)) throw new RefusedError(400, `overlapHours: 0 to ${MAX_OVERLAP_MS / 3_600_000}`);
    const currentHash = (await this.deps.store.participants()).find((r) => r.participant.dipId === p.dipId)?.apiKeyHash;
    if (!currentHash) throw new RefusedError(404, `${p.dipId} is not registered`);
    const validUntil = this.deps.now() + overlapMs;
    const apiKey = newApiKey();
    const previousApiKey = overlapMs > 0 ? { hash: currentHash, validUntil } : null;
    const shown = (k: ParticipantProfile['previousApiKey']) => ({ previousApiKeyValidUntil: iso(k?.validUntil) });
    let before: ParticipantProfile['previousApiKey'] = null;
    await changeProfile(
      this.deps.store,
      p.dipId,
      this.actor(p),
      () => this.deps.now(),
      (pr) => {
        before = pr.previousApiKey;
        return { ...pr, previousApiKey };
      },
      async (record, expectedVersion) => {
        // Journalled in the rotation's own transaction: a crash after its commit cannot leave it unrecorded.
        const journal = this.entry(p, p, 'participant.api-key.rotate', shown(before), { ...shown(previousApiKey), apiKey: 'a new one issued' });
        if (!(await this.deps.store.setApiKeyHash(p.dipId, currentHash, hashApiKey(apiKey), record, expectedVersion, journal))) {
          throw new RefusedError(409, `${p.dipId}'s API key changed meanwhile (rotated or re-registered): read it again and rotate again if still wanted`);
        }
      },
    );
    await this.deps.registry.refresh();
    return { apiKey, previousValidUntil: iso(previousApiKey?.validUntil) };
  }

  /**
   * A certificate for the participant's CSR from the environment's CA, registered with an overlap for the one
   * it replaces; asked by the participant, or renewed for it by an operator (`by`: the operator's journal actor).
   */
  async newCertificate(p: Participant, csrPem: string, overlapMs: number, by: SelfServiceActor | string = p): Promise<{ certificate: string; fingerprint: string; previousValidUntil: string | null }> {
    let certificate: string;
    try {
      certificate = await this.deps.issueCertificate(csrPem, p.dipId, p.organisation);
    } catch (e) {
      throw new RefusedError(400, `csr: ${(e as Error).message}`);
    }
    const rotated = await rotateParticipantCertificate(this.deps.store, { dipId: p.dipId, certificatePem: certificate, overlapMs, trustedCaPems: this.deps.trustedCaPems(), now: new Date(this.deps.now()) });
    await this.journal(p, by, 'participant.certificate.rotate', { certificateFingerprint: p.certificateFingerprint }, { certificateFingerprint: rotated.certificateFingerprint, previousValidUntil: iso(rotated.previous?.validUntil) });
    await this.deps.registry.refresh();
    return { certificate, fingerprint: rotated.certificateFingerprint, previousValidUntil: iso(rotated.previous?.validUntil) };
  }

  /**
   * Where its administrators are e-mailed maintenance notices (spec 5.13.5), or null: they opted out.
   * The address is checked as an applicant's is; journalled as `participant.maintenance-email`.
   */
  async setMaintenanceEmail(p: Participant, email: string | null, by: SelfServiceActor): Promise<void> {
    if (email !== null && !isEmailAddress(email)) throw new RefusedError(400, 'e-mail: an address such as name@company.example');
    await this.profile(p, by, 'participant.maintenance-email', p.dipId, (pr) => ({ ...pr, maintenanceEmail: email }));
  }

  /** Who acted: the participant, the DIP Connection Provider that called for it (the target names the participant), or a portal user. */
  private actor(by: SelfServiceActor | string): string {
    if (typeof by === 'string') return by;
    return 'username' in by ? actorOf(by) : `participant:${by.dipId}`;
  }

  private current(p: Participant): Participant {
    return this.deps.registry.participant(p.dipId) ?? p;
  }

  private async profile(p: Participant, by: SelfServiceActor, action: string, target: string, change: (pr: ParticipantProfile) => ParticipantProfile): Promise<void> {
    const before = this.deps.registry.profile(p.dipId).profile;
    const after = await this.deps.lifecycle.updateProfile(p.dipId, this.actor(by), change);
    const { previousApiKey: _b, ...shownBefore } = before;
    const { previousApiKey: _a, ...shownAfter } = after;
    await this.deps.journal.append({ at: this.deps.now(), actor: this.actor(by), action, target: target === p.dipId ? p.dipId : `${p.dipId}/${target}`, before: shownBefore, after: shownAfter, status: null });
  }

  private async journal(p: Participant, by: SelfServiceActor | string, action: string, before: unknown, after: unknown): Promise<void> {
    await this.deps.journal.append(this.entry(p, by, action, before, after));
  }

  private entry(p: Participant, by: SelfServiceActor | string, action: string, before: unknown, after: unknown): Omit<JournalEntry, 'id'> {
    return { at: this.deps.now(), actor: this.actor(by), action, target: p.dipId, before, after, status: null };
  }
}
