import type { ChannelSettingsDoc } from '../domain/channel.js';
import { emptyProfile, type Participant, type ParticipantProfile, type Suspension } from '../domain/participant.js';
import type { RoutingDirectory } from '../domain/routing.js';
import type { Cancel } from '../ports/clock.js';
import type { Logger } from '../ports/logger.js';
import type { RegistryStore, StoredRecord, Webhook } from '../ports/registry.js';
import { hashApiKey } from '../security/api-key.js';

const hookKey = (recipient: string, channel: string): string => `${recipient}\u0000${channel}`;

/** Record kinds the registry view loads with the participants (src/ports/registry.ts StoredRecord). */
export const PROFILE_RECORD = 'profile';
export const CHANNEL_RECORD = 'channel';

/** A channel's settings version in force, with who made it and when. */
export interface ChannelSettingsVersion extends ChannelSettingsDoc {
  channel: string;
  version: number;
  at: number;
  by: string;
}

export const channelVersion = (r: StoredRecord): ChannelSettingsVersion => ({ ...(r.doc as ChannelSettingsDoc), channel: r.key, version: r.version, at: r.at, by: r.by });

/**
 * The in-memory view of participants and webhooks the hot path reads. It reloads whenever the store's
 * change feed reports a change (made here, on another node, or by the CLI from another process).
 */
export class Registry implements RoutingDirectory {
  private byDipId = new Map<string, Participant>();
  /** DIP IDs by their lower-case form (null when two registered IDs differ only in case): a URL's recipient-id is read in any case. */
  private byLowerDipId = new Map<string, string | null>();
  private byKeyHash = new Map<string, Participant>();
  private byKnownKey = new Map<string, Participant>();
  private byRole = new Map<string, Participant[]>();
  /** Who nominated each DIP Connection Provider (looked up on every request a provider makes). */
  private byProvider = new Map<string, Participant[]>();
  private hooks = new Map<string, Webhook>();
  private profiles = new Map<string, { profile: ParticipantProfile; version: number }>();
  /** API keys a rotation replaced, by hash: accepted until their overlap ends. */
  private byPreviousKeyHash = new Map<string, { dipId: string; validUntil: number }>();
  private channelVersions = new Map<string, ChannelSettingsVersion>();
  private subscribersOf = new Map<string, string[]>();
  private version = -1;
  private unwatch: Cancel | null = null;
  private readonly listeners: Array<() => void> = [];

  constructor(
    private readonly store: RegistryStore,
    private readonly logger?: Logger,
    private readonly now: () => number = Date.now,
  ) {}

  /** Loads now, then follows the store's change feed (on SQLite a version check every `pollMs`, else its default). */
  async start(pollMs?: number): Promise<void> {
    await this.refresh();
    this.unwatch = this.store.watch(() => {
      this.refresh().catch((err: unknown) => {
        // The previous view stays in force; the next change (or request for an unknown key) tries again.
        this.logger?.error({ err }, 'could not reload the participant registry');
      });
    }, pollMs);
  }

  stop(): void {
    this.unwatch?.();
  }

  /** Called after a change, e.g. when webhooks change and idle queues may now be deliverable. */
  onChange(listener: () => void): void {
    this.listeners.push(listener);
  }

  /** The change-feed version this view was loaded at (-1 before the first load). */
  get loadedVersion(): number {
    return this.version;
  }

  /**
   * Reloads unless this view is already at `version` or newer: an ingest thread catching up with the main
   * thread's view before a request, so an operator's change (a paused channel, a new key) applies to the
   * next request whichever thread handles it.
   */
  async catchUp(version: number): Promise<void> {
    if (this.version < version) await this.refresh();
  }

  /** Reloads if anything changed since the last load (a cheap version check otherwise). */
  async refresh(): Promise<void> {
    const version = await this.store.version();
    if (version === this.version) return;
    const [participants, hooks, profiles, channels] = await Promise.all([
      this.store.participants(),
      this.store.webhooks(),
      this.store.records(PROFILE_RECORD),
      this.store.records(CHANNEL_RECORD),
    ]);
    const byDipId = new Map<string, Participant>();
    const byKeyHash = new Map<string, Participant>();
    const byRole = new Map<string, Participant[]>();
    const byProvider = new Map<string, Participant[]>();
    const add = (map: Map<string, Participant[]>, key: string, p: Participant) => map.set(key, [...(map.get(key) ?? []), p]);
    for (const { participant, apiKeyHash } of participants) {
      byDipId.set(participant.dipId, participant);
      byKeyHash.set(apiKeyHash, participant);
      for (const role of participant.roles) add(byRole, role, participant);
      if (participant.connectionProvider !== null) add(byProvider, participant.connectionProvider, participant);
    }
    this.byDipId = byDipId;
    const byLowerDipId = new Map<string, string | null>();
    for (const dipId of byDipId.keys()) byLowerDipId.set(dipId.toLowerCase(), byLowerDipId.has(dipId.toLowerCase()) ? null : dipId);
    this.byLowerDipId = byLowerDipId;
    this.byKeyHash = byKeyHash;
    this.byKnownKey = new Map();
    this.byRole = byRole;
    this.byProvider = byProvider;
    this.hooks = new Map(hooks.map((h) => [hookKey(h.recipientDipId, h.channel), h]));
    this.profiles = new Map(profiles.map((r) => [r.key, { profile: r.doc as ParticipantProfile, version: r.version }]));
    this.byPreviousKeyHash = new Map();
    const subscribers = new Map<string, string[]>();
    for (const { profile } of this.profiles.values()) {
      if (profile.rescinded || !byDipId.has(profile.dipId)) continue;
      if (profile.previousApiKey) this.byPreviousKeyHash.set(profile.previousApiKey.hash, { dipId: profile.dipId, validUntil: profile.previousApiKey.validUntil });
      for (const c of profile.channels) subscribers.set(c, [...(subscribers.get(c) ?? []), profile.dipId]);
    }
    this.subscribersOf = subscribers;
    this.channelVersions = new Map(channels.map((r) => [r.key, channelVersion(r)]));
    this.version = version;
    for (const l of this.listeners) l();
  }

  participant(dipId: string): Participant | undefined {
    return this.byDipId.get(dipId);
  }

  participants(): Participant[] {
    return [...this.byDipId.values()];
  }

  /**
   * The active participants: the one place that decides whether a registered participant may act on the
   * DIP now. Every door asks it (the API's identify(), a connection provider acting for a client, the
   * nominee lists of pull and publication downloads, the user portal's pages), so a state added tomorrow
   * (today: an operator's suspension) is refused on every path at once. Null: it may; else why not, in
   * the words every refusal gives. The participant's queues are another matter (src/pipeline/queue-rules.ts).
   */
  refusal(dipId: string): string | null {
    const s = this.suspended(dipId);
    return s ? suspensionHelp(dipId, s) : null;
  }

  /** A registered participant that may act now (refusal() is null), else undefined. */
  active(dipId: string): Participant | undefined {
    const p = this.byDipId.get(dipId);
    return p && this.refusal(dipId) === null ? p : undefined;
  }

  /**
   * The participant an API key names, when it may act now; else why not (401: no participant has it;
   * 403: refusal()). What identify() and every other authenticating door build on.
   */
  callerByApiKey(apiKey: string): { ok: true; participant: Participant } | { ok: false; status: 401 | 403; help: string } {
    const p = this.byApiKey(apiKey);
    if (!p) return { ok: false, status: 401, help: 'X-API-Key is not recognised' };
    const refused = this.refusal(p.dipId);
    return refused === null ? { ok: true, participant: p } : { ok: false, status: 403, help: refused };
  }

  /**
   * Who a caller may act as: itself, and, when it is a DIP Connection Provider, exactly the active
   * participants that nominated it (one refused is refused through its provider too). Undefined when
   * `dipId` is neither. The caller's own standing is identify()'s to refuse.
   */
  actingAs(caller: Participant, dipId: string): Participant | undefined {
    if (dipId === caller.dipId) return caller;
    const nominee = this.active(dipId);
    return nominee?.connectionProvider === caller.dipId ? nominee : undefined;
  }

  /** Why a caller may not act as `dipId`, when that participant may not act now (for the refusal's help), else ''. */
  refusalNote(dipId: string): string {
    const refused = this.byDipId.has(dipId) ? this.refusal(dipId) : null;
    return refused === null ? '' : `: ${refused}`;
  }

  /**
   * The registered DIP ID a URL names in any case (the reference: ingress does not enforce the case of
   * URLs): the ID itself when registered so, else the one registered ID equal to it ignoring case.
   */
  dipIdInAnyCase(dipId: string): string {
    return this.byDipId.has(dipId) ? dipId : (this.byLowerDipId.get(dipId.toLowerCase()) ?? dipId);
  }

  /** The caller and every active participant that nominated it as connection provider. */
  identitiesOf(caller: Participant): Participant[] {
    return [caller, ...this.nomineesOf(caller)];
  }

  /** The active participants that nominated the caller as their connection provider: it reads what they may. */
  nomineesOf(caller: Participant): Participant[] {
    return (this.byProvider.get(caller.dipId) ?? []).filter((p) => this.refusal(p.dipId) === null);
  }

  /**
   * Why the caller may not act now for each participant that nominated it and may not act (refusal()): a
   * provider refused for want of its clients is told why they are refused, not only what it holds itself.
   */
  refusedNomineesOf(caller: Participant): Array<{ participant: Participant; refusal: string }> {
    return (this.byProvider.get(caller.dipId) ?? []).flatMap((p) => {
      const refused = this.refusal(p.dipId);
      return refused === null ? [] : [{ participant: p, refusal: refused }];
    });
  }

  /**
   * The registered participant an API key names, whatever its standing: who made a call, for the activity
   * log and the rate limits. Whether it may act is callerByApiKey()'s.
   */
  byApiKey(apiKey: string): Participant | undefined {
    // Known keys are remembered (until the next reload) so a request costs no hash; unknown ones never are.
    const known = this.byKnownKey.get(apiKey);
    if (known) return known;
    const hash = hashApiKey(apiKey);
    const found = this.byKeyHash.get(hash);
    if (found) this.byKnownKey.set(apiKey, found);
    if (found || this.byPreviousKeyHash.size === 0) return found;
    // A key a rotation replaced works until its overlap ends (never remembered: the end is checked each time).
    const previous = this.byPreviousKeyHash.get(hash);
    return previous && this.now() <= previous.validUntil ? this.byDipId.get(previous.dipId) : undefined;
  }

  /** What the DIP keeps beside the registration (self-service choices, a rotated key, a rescission), and its version. */
  profile(dipId: string): { profile: ParticipantProfile; version: number } {
    return this.profiles.get(dipId) ?? { profile: emptyProfile(dipId), version: 0 };
  }

  /**
   * A participant ID as the registry spells it, whatever the case it is given in: registered, or offboarded
   * (its messages stay in the archive, and reports on them are still asked for). Undefined for an ID never
   * registered.
   */
  spelling(dipId: string): string | undefined {
    if (this.byDipId.has(dipId) || this.rescinded(dipId)) return dipId;
    const lower = dipId.toLowerCase();
    for (const id of this.byDipId.keys()) if (id.toLowerCase() === lower) return id;
    for (const [id, { profile }] of this.profiles) if (profile.rescinded && !this.byDipId.has(id) && id.toLowerCase() === lower) return id;
    return undefined;
  }

  /**
   * Why a registered participant is suspended, or null: its state, as the operator sees it and as its
   * queues are held. Whether it may act is refusal()'s alone.
   */
  suspended(dipId: string): Suspension | null {
    return this.profiles.get(dipId)?.profile.suspended ?? null;
  }

  /** The registered participants' administrators' addresses for maintenance notices (not those who opted out). */
  maintenanceContacts(): Array<{ dipId: string; email: string }> {
    const found: Array<{ dipId: string; email: string }> = [];
    for (const [dipId, { profile }] of this.profiles) {
      if (this.byDipId.has(dipId) && profile.maintenanceEmail) found.push({ dipId, email: profile.maintenanceEmail });
    }
    return found;
  }

  /** Rescinded participants are offboarded: what is still queued for them is dead-lettered, never delivered. */
  rescinded(dipId: string): boolean {
    return !this.byDipId.has(dipId) && this.profiles.get(dipId)?.profile.rescinded != null;
  }

  /** The operator's settings version in force for a channel, if it was ever changed while running. */
  channelSettings(channel: string): ChannelSettingsVersion | undefined {
    return this.channelVersions.get(channel);
  }

  allChannelSettings(): ChannelSettingsVersion[] {
    return [...this.channelVersions.values()];
  }

  /** Participants that opted into a channel themselves (self-service). */
  subscribers(channel: string): readonly string[] {
    return this.subscribersOf.get(channel) ?? [];
  }

  holdersOf(role: string): readonly Participant[] {
    return this.byRole.get(role) ?? [];
  }

  webhook(recipientDipId: string, channel: string): Webhook | undefined {
    return this.hooks.get(hookKey(recipientDipId, channel));
  }
}

/** The refusal's words for a suspended participant, the same whoever calls for it. */
export function suspensionHelp(dipId: string, s: Suspension): string {
  return `${dipId} is suspended by the DIP operator since ${new Date(s.at).toISOString()} (${s.reason}): messages for it are held until it is reactivated; ask the DIP operator`;
}
