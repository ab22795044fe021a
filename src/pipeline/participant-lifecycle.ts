import { ROLE_PATTERN, type Participant, type ParticipantProfile, type Suspension } from '../domain/participant.js';
import { parseRegisterFeed, rescindedAt, rolesAt, sameEntry, type RegisterEntry } from '../domain/register.js';
import type { Cancel, Clock } from '../ports/clock.js';
import type { Logger } from '../ports/logger.js';
import type { OperatorJournal } from '../ports/operator-journal.js';
import type { RegistryStore } from '../ports/registry.js';
import { changeProfile } from './participants.js';
import { PROFILE_RECORD, type Registry } from './registry.js';
import { RefusedError } from './refused.js';
import { dropFormerProviderWebhooks, dropWebhooksRegisteredBy, type RemovedWebhook } from './webhook-config.js';

export const REGISTER_RECORD = 'register';
const POLICY_RECORD = 'policy';
const OPTIONAL_ROLES = 'optional-roles';

export interface LifecycleDeps {
  registry: Registry;
  store: Pick<RegistryStore, 'records' | 'recordHistory' | 'putRecord' | 'participants' | 'upsertParticipant' | 'setConnectionProvider' | 'setRoles' | 'removeParticipant' | 'webhooks' | 'deleteWebhook'>;
  journal: OperatorJournal;
  clock: Clock;
  logger: Logger;
  /**
   * Revokes a certificate of the environment's CA (the TLS listener then refuses it at the handshake);
   * resolves false when the certificate is not the CA's (it is refused per request only: the participant is gone).
   */
  revoke(certificatePem: string, reason: string, actor: string): Promise<boolean>;
  /** After a participant's registration changed: its queues may now be undeliverable (dead-lettered). */
  afterChange(): void;
}

/** What an offboarding removed beyond the participant's own: the webhooks it registered for its clients as their provider. */
export interface OffboardResult {
  clientWebhooksRemoved: Array<RemovedWebhook & { recipientDipId: string }>;
  /** The clients whose nomination of it was withdrawn (each journalled as their own withdrawal is). */
  nominationsWithdrawn: string[];
}

export interface ApplyResult {
  participants: number;
  changed: string[];
  unchanged: number;
  withoutDipId: number;
  rolesChanged: Array<{ dipId: string; granted: string[]; revoked: string[] }>;
  rescinded: string[];
}

/**
 * A participant's life after onboarding, without an outage: the central register's feed (roles granted
 * and revoked with their effective dates, participants rescinded and offboarded), and what a participant
 * changes itself. Everything is a registry record or registration change, so every node follows it from
 * the change feed; every change is journalled with who made it (`register:<source>`, an operator, or the
 * participant).
 */
export class ParticipantLifecycle {
  private timer: Cancel | null = null;
  /** Passes and feeds run one at a time, in order: a feed's own pass names the feed as the actor. */
  private chain: Promise<unknown> = Promise.resolve();
  private kickQueued = false;

  constructor(private readonly deps: LifecycleDeps) {}

  /**
   * Re-derives roles from the register now and every minute (effective dates pass, a participant onboarded
   * by the CLI after its register entry arrived), and after every registry change.
   */
  start(intervalMs = 60_000): void {
    this.timer = this.deps.clock.every(intervalMs, () => this.kick());
    this.kick();
  }

  /** Re-derives roles from the register soon (one pass at a time; a pass already waiting covers this one). */
  kick(): void {
    if (this.kickQueued) return;
    this.kickQueued = true;
    void this.exclusive(() => {
      this.kickQueued = false;
      return this.reconcile('register:effective-dates');
    }).catch((err: unknown) => this.deps.logger.error({ err }, 'could not apply the register to the participants'));
  }

  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.chain.then(fn, fn);
    this.chain = run.catch(() => undefined);
    return run;
  }

  stop(): void {
    this.timer?.();
  }

  async entries(): Promise<RegisterEntry[]> {
    return (await this.deps.store.records(REGISTER_RECORD)).map((r) => r.doc as RegisterEntry);
  }

  /**
   * Applies a feed idempotently: each DIP ID's entry is replaced by the feed's when it differs (a new
   * version, journalled), then roles and rescissions follow from the entries. With `snapshot` the feed is
   * the whole register: a DIP ID it no longer lists has its rows ended now (and is rescinded).
   * `offboardRefusal`: why the caller may not offboard (rescinding revokes certificates), or null if it may;
   * a feed that would then rescind a registered participant is refused whole (403), nothing applied.
   */
  apply(feed: unknown, source: string, snapshot = false, offboardRefusal: string | null = null): Promise<ApplyResult> {
    const parsed = parseRegisterFeed(feed); // refused before anything is queued
    return this.exclusive(() => this.applyNow(parsed, source, snapshot, offboardRefusal));
  }

  private async applyNow({ entries, withoutDipId }: ReturnType<typeof parseRegisterFeed>, source: string, snapshot: boolean, offboardRefusal: string | null): Promise<ApplyResult> {
    const now = this.deps.clock.now();
    const actor = `register:${source}`;
    const current = new Map((await this.deps.store.records(REGISTER_RECORD)).map((r) => [r.key, r]));
    if (snapshot) {
      const listed = new Set(entries.map((e) => e.dipId));
      for (const [dipId, r] of current) {
        if (listed.has(dipId)) continue;
        const doc = r.doc as RegisterEntry;
        entries.push({ ...doc, rows: doc.rows.map((row) => ({ ...row, to: row.to === null || row.to > now ? now : row.to })) });
      }
    }
    if (offboardRefusal !== null) {
      // Decided before anything is written, on the entries as reconcile would read them after this feed.
      const after = new Map([...[...current].map(([k, r]) => [k, r.doc as RegisterEntry] as const), ...entries.map((e) => [e.dipId, e] as const)]);
      const registered = (await this.deps.store.participants()).map((r) => r.participant.dipId);
      const wouldRescind = registered.filter((dipId) => {
        const entry = after.get(dipId);
        return entry !== undefined && rescindedAt(entry, now);
      });
      if (wouldRescind.length) throw new RefusedError(403, `${offboardRefusal}; this feed would rescind ${wouldRescind.sort().join(', ')}, so nothing was applied`);
    }
    const changed: string[] = [];
    for (const entry of entries) {
      const was = current.get(entry.dipId);
      if (was && sameEntry(was.doc as RegisterEntry, entry)) continue;
      await this.deps.store.putRecord({ kind: REGISTER_RECORD, key: entry.dipId, doc: entry, at: now, by: actor }, was?.version ?? 0);
      await this.deps.journal.append({ at: now, actor, action: 'register.update', target: entry.dipId, before: was?.doc ?? null, after: entry, status: null });
      changed.push(entry.dipId);
    }
    const applied = await this.reconcile(actor);
    return { participants: entries.length, changed, unchanged: entries.length - changed.length, withoutDipId, ...applied };
  }

  /**
   * Brings every registered participant's roles in line with the register at this moment; offboards the
   * rescinded. Decided from the store as read now, never from the registry's cache: a pass that found the
   * cache already right wrote nothing, though another writer had changed the roles since the cache was read
   * (wrong until the next pass, a minute on). Each change is a compare-and-set against the roles it was
   * decided on; on a conflict the roles and the profile (a role joined or left meanwhile) are read again.
   */
  private async reconcile(actor: string): Promise<Pick<ApplyResult, 'rolesChanged' | 'rescinded'>> {
    const now = this.deps.clock.now();
    const entries = await this.entries();
    const registered = new Map((await this.deps.store.participants()).map((r) => [r.participant.dipId, r.participant]));
    const profiles = new Map((await this.deps.store.records(PROFILE_RECORD)).map((r) => [r.key, r.doc as ParticipantProfile]));
    const rolesChanged: ApplyResult['rolesChanged'] = [];
    const rescinded: string[] = [];
    for (const entry of entries) {
      const p = registered.get(entry.dipId);
      if (!p) continue; // not onboarded yet (no certificate): its roles apply when it is
      if (rescindedAt(entry, now)) {
        await this.offboardNow(entry.dipId, actor, 'rescinded from the central register');
        rescinded.push(entry.dipId);
        continue;
      }
      // The roles as stored when they already are the target's, in whatever order: nothing to write.
      const target = (current: string[], profile: ParticipantProfile | undefined) => {
        const next = [...new Set([...rolesAt(entry, now), ...(profile?.optionalRoles ?? [])])].sort();
        return next.length === new Set(current).size && next.every((r) => current.includes(r)) ? current : next;
      };
      const { before, roles } = await this.setRoles(
        p.dipId,
        async (current, attempt) =>
          target(current, attempt === 0 ? profiles.get(p.dipId) : ((await this.deps.store.records(PROFILE_RECORD)).find((r) => r.key === p.dipId)?.doc as ParticipantProfile | undefined)),
        actor,
        'participant.roles',
        p.roles,
      );
      const granted = roles.filter((r) => !before.includes(r));
      const revoked = before.filter((r) => !roles.includes(r));
      if (granted.length || revoked.length) rolesChanged.push({ dipId: p.dipId, granted, revoked });
    }
    if (rolesChanged.length || rescinded.length) {
      await this.deps.registry.refresh();
      this.deps.afterChange();
    }
    return { rolesChanged, rescinded };
  }

  /**
   * Offboards a participant: its certificates revoked (refused at the TLS handshake), its registration and
   * API key removed, its webhooks removed and those it registered for its clients as their DIP Connection
   * Provider (their queues wait to be pulled), what is queued for it dead-lettered (senders told); its profile
   * keeps what it was, and the archive keeps its messages.
   */
  offboard(dipId: string, actor: string, reason: string): Promise<OffboardResult> {
    return this.exclusive(() => this.offboardNow(dipId, actor, reason));
  }

  private async offboardNow(dipId: string, actor: string, reason: string): Promise<OffboardResult> {
    await this.deps.registry.refresh();
    const p = this.deps.registry.participant(dipId);
    if (!p) {
      // Its profile keeps the offboarding (registration removed, history kept): a second one is a conflict
      // with what was done, not an unknown name, and the operator is told when and by whom.
      const done = this.deps.registry.profile(dipId).profile.rescinded;
      if (done) throw new RefusedError(409, `${dipId} was already offboarded at ${new Date(done.at).toISOString()} by ${done.by}`);
      throw new RefusedError(404, `${dipId} is not a registered participant`);
    }
    const webhooks = (await this.deps.store.webhooks()).filter((w) => w.recipientDipId === dipId).map((w) => w.channel);
    const certificates = [p.certificatePem, ...(p.previous ? [p.previous.certificatePem] : [])];
    const revoked: boolean[] = [];
    for (const pem of certificates) revoked.push(await this.deps.revoke(pem, 'cessationOfOperation', actor));
    const at = this.deps.clock.now();
    await this.updateProfile(dipId, actor, (profile) => ({
      ...profile,
      previousApiKey: null,
      rescinded: { at, by: actor, roles: p.roles, organisation: p.organisation, certificateFingerprint: p.certificateFingerprint },
    }));
    const clientWebhooksRemoved = await dropWebhooksRegisteredBy(this.deps.store, dipId);
    const nominationsWithdrawn = await this.withdrawNominationsOf(dipId, actor, at);
    await this.deps.store.removeParticipant(dipId);
    await this.deps.journal.append({
      at,
      actor,
      action: 'participant.offboard',
      target: dipId,
      before: { roles: p.roles, organisation: p.organisation, certificateFingerprint: p.certificateFingerprint, webhooks },
      after: { reason, certificatesRevoked: revoked.filter(Boolean).length, certificatesNotFromThisCa: revoked.filter((r) => !r).length, webhooksRemoved: webhooks.length, clientWebhooksRemoved, nominationsWithdrawn },
      status: null,
    });
    await this.deps.registry.refresh();
    this.deps.afterChange();
    return { clientWebhooksRemoved, nominationsWithdrawn };
  }

  /**
   * Withdraws every nomination of an offboarded provider. Left in place, they named a DIP ID that
   * `dip participant add` may register again, which would then act as every former client at once.
   */
  private async withdrawNominationsOf(provider: string, actor: string, at: number): Promise<string[]> {
    const clients = (await this.deps.store.participants()).filter((r) => r.participant.connectionProvider === provider).map((r) => r.participant.dipId);
    const withdrawn: string[] = [];
    for (const dipId of clients.sort((x, y) => x.localeCompare(y))) {
      // The nomination alone, and only while it still names the provider: a client's row written back from
      // the list read above would undo what another writer changed since (a certificate rotated, roles the
      // register moved), and a client that nominated another provider meanwhile keeps it and its webhooks.
      if (!(await this.deps.store.setConnectionProvider(dipId, provider, null))) continue;
      const removedWebhooks = await dropFormerProviderWebhooks(this.deps.store, { dipId, connectionProvider: null }, true);
      await this.deps.journal.append({ at, actor, action: 'participant.connection-provider.withdraw', target: dipId, before: { connectionProvider: provider }, after: { connectionProvider: null, removedWebhooks, reason: `${provider} offboarded` }, status: null });
      withdrawn.push(dipId);
    }
    return withdrawn;
  }

  /**
   * Suspends a registered participant (spec 5.12.2 "Manage User"): its calls are refused 403 with the reason
   * and what is queued for it is held (src/pipeline/queue-rules.ts) until it is reactivated; nothing else changes.
   */
  async suspend(dipId: string, actor: string, reason: string): Promise<Suspension> {
    const p = this.registered(dipId);
    const was = this.deps.registry.suspended(dipId);
    if (was) throw new RefusedError(409, `${dipId} was already suspended at ${new Date(was.at).toISOString()} by ${was.by}: ${was.reason}`);
    const suspended: Suspension = { at: this.deps.clock.now(), by: actor, reason };
    await this.updateProfile(dipId, actor, (profile) => ({ ...profile, suspended }));
    await this.deps.journal.append({ at: suspended.at, actor, action: 'participant.suspend', target: dipId, before: { suspended: null, roles: p.roles }, after: { suspended }, status: null });
    this.deps.afterChange();
    return suspended;
  }

  /** Ends a suspension: calls are accepted again and the held queues delivered. */
  async reactivate(dipId: string, actor: string): Promise<void> {
    this.registered(dipId);
    const was = this.deps.registry.suspended(dipId);
    if (!was) throw new RefusedError(409, `${dipId} is not suspended`);
    await this.updateProfile(dipId, actor, (profile) => ({ ...profile, suspended: null }));
    await this.deps.journal.append({ at: this.deps.clock.now(), actor, action: 'participant.reactivate', target: dipId, before: { suspended: was }, after: { suspended: null }, status: null });
    this.deps.afterChange();
  }

  /**
   * Revokes a participant's registered certificate (its current one, or the one a rotation replaced while
   * its overlap lasts): refused from the next handshake and request. The registration stays: a participant
   * whose current certificate is revoked connects again once a new one is issued for its CSR.
   */
  async revokeCertificate(dipId: string, which: 'current' | 'previous', reason: string, actor: string): Promise<{ fingerprint: string }> {
    const p = this.registered(dipId);
    const cert = which === 'current' ? { pem: p.certificatePem, fingerprint: p.certificateFingerprint } : p.previous ? { pem: p.previous.certificatePem, fingerprint: p.previous.certificateFingerprint } : null;
    if (!cert) throw new RefusedError(409, `${dipId} has no previous certificate (no rotation's overlap is running)`);
    if (!(await this.deps.revoke(cert.pem, reason, actor))) throw new RefusedError(409, `${dipId}'s ${which} certificate was not issued by this environment's CA: revoke it at the CA that issued it (its CRL, crlFiles)`);
    await this.deps.journal.append({ at: this.deps.clock.now(), actor, action: 'participant.certificate.revoke', target: dipId, before: { which, certificateFingerprint: cert.fingerprint }, after: { reason }, status: null });
    return { fingerprint: cert.fingerprint };
  }

  private registered(dipId: string): Participant {
    const p = this.deps.registry.participant(dipId);
    if (!p) throw new RefusedError(404, `${dipId} is not a registered participant`);
    return p;
  }

  /**
   * Changes a participant's roles (never its API key, nor anything else of its registration), journalled with
   * the roles granted and revoked. `change` is given the roles as stored now (`read` on the first attempt, when
   * the caller has just read them) and the attempt, and written only while they still are (a compare-and-set):
   * a change another writer made meanwhile is read again and `change` asked again, never undone, as
   * changeProfile does for profiles. Answers the roles before and as stored now.
   */
  async setRoles(
    dipId: string,
    change: (roles: string[], attempt: number) => string[] | Promise<string[]>,
    actor: string,
    action: string,
    read?: string[],
  ): Promise<{ before: string[]; roles: string[] }> {
    for (let attempt = 0; ; attempt++) {
      const current = attempt === 0 && read ? read : (await this.deps.store.participants()).find((r) => r.participant.dipId === dipId)?.participant.roles;
      if (!current) throw new RefusedError(404, `${dipId} is not a registered participant`);
      const roles = await change(current, attempt);
      if (roles.length === current.length && roles.every((r, i) => r === current[i])) return { before: current, roles };
      if (await this.deps.store.setRoles(dipId, current, roles)) {
        await this.deps.journal.append({
          at: this.deps.clock.now(),
          actor,
          action,
          target: dipId,
          before: { roles: current },
          after: { roles, granted: roles.filter((r) => !current.includes(r)), revoked: current.filter((r) => !roles.includes(r)) },
          status: null,
        });
        await this.deps.registry.refresh();
        return { before: current, roles };
      }
      if (attempt >= 4) throw new RefusedError(409, `${dipId}'s roles kept changing meanwhile: try again`);
    }
  }

  /** Changes a profile against the version read, again on a conflict (another node changed it meanwhile). */
  async updateProfile(dipId: string, actor: string, change: (p: ParticipantProfile) => ParticipantProfile): Promise<ParticipantProfile> {
    const next = await changeProfile(this.deps.store, dipId, actor, () => this.deps.clock.now(), change);
    await this.deps.registry.refresh();
    return next;
  }

  /** Roles participants may sign up for themselves (spec 5.7.1 "optional roles"), set by the operator. */
  async optionalRoles(): Promise<string[]> {
    const r = (await this.deps.store.records(POLICY_RECORD)).find((x) => x.key === OPTIONAL_ROLES);
    return (r?.doc as { roles?: string[] } | undefined)?.roles ?? [];
  }

  async setOptionalRoles(roles: string[], actor: string): Promise<string[]> {
    const bad = roles.find((r) => !ROLE_PATTERN.test(r));
    if (bad !== undefined) throw new RefusedError(400, `roles: '${bad}' is not a role (3 to 5 capital letters)`);
    const current = (await this.deps.store.records(POLICY_RECORD)).find((x) => x.key === OPTIONAL_ROLES);
    const next = [...new Set(roles)].sort();
    await this.deps.store.putRecord({ kind: POLICY_RECORD, key: OPTIONAL_ROLES, doc: { roles: next }, at: this.deps.clock.now(), by: actor }, current?.version ?? 0);
    await this.deps.journal.append({ at: this.deps.clock.now(), actor, action: 'policy.optional-roles', target: '', before: current?.doc ?? null, after: { roles: next }, status: null });
    return next;
  }

  /** The register's roles for a participant now (null when the register does not list it). */
  async registerRoles(dipId: string): Promise<string[] | null> {
    const entry = (await this.entries()).find((e) => e.dipId === dipId);
    return entry ? rolesAt(entry, this.deps.clock.now()) : null;
  }
}
