import type { Participant } from '../domain/participant.js';
import type { RoutingDirectory } from '../domain/routing.js';
import type { Cancel } from '../ports/clock.js';
import type { Logger } from '../ports/logger.js';
import type { RegistryStore, Webhook } from '../ports/registry.js';
import { hashApiKey } from '../security/api-key.js';

const hookKey = (recipient: string, channel: string): string => `${recipient}\u0000${channel}`;

/**
 * The in-memory view of participants and webhooks the hot path reads. It reloads whenever the store's
 * change feed reports a change (made here, on another node, or by the CLI from another process).
 */
export class Registry implements RoutingDirectory {
  private byDipId = new Map<string, Participant>();
  private byKeyHash = new Map<string, Participant>();
  private byKnownKey = new Map<string, Participant>();
  private byRole = new Map<string, Participant[]>();
  /** Who nominated each DIP Connection Provider (looked up on every request a provider makes). */
  private byProvider = new Map<string, Participant[]>();
  private hooks = new Map<string, Webhook>();
  private version = -1;
  private unwatch: Cancel | null = null;
  private readonly listeners: Array<() => void> = [];

  constructor(
    private readonly store: RegistryStore,
    private readonly logger?: Logger,
  ) {}

  /** Loads now, then follows the store's change feed. */
  async start(): Promise<void> {
    await this.refresh();
    this.unwatch = this.store.watch(() => {
      this.refresh().catch((err: unknown) => {
        // The previous view stays in force; the next change (or request for an unknown key) tries again.
        this.logger?.error({ err }, 'could not reload the participant registry');
      });
    });
  }

  stop(): void {
    this.unwatch?.();
  }

  /** Called after a change, e.g. when webhooks change and idle queues may now be deliverable. */
  onChange(listener: () => void): void {
    this.listeners.push(listener);
  }

  /** Reloads if anything changed since the last load (a cheap version check otherwise). */
  async refresh(): Promise<void> {
    const version = await this.store.version();
    if (version === this.version) return;
    const [participants, hooks] = await Promise.all([this.store.participants(), this.store.webhooks()]);
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
    this.byKeyHash = byKeyHash;
    this.byKnownKey = new Map();
    this.byRole = byRole;
    this.byProvider = byProvider;
    this.hooks = new Map(hooks.map((h) => [hookKey(h.recipientDipId, h.channel), h]));
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
   * Who a caller may act as: itself, and, when it is a DIP Connection Provider, exactly the participants
   * that nominated it. Undefined when `dipId` is neither.
   */
  actingAs(caller: Participant, dipId: string): Participant | undefined {
    if (dipId === caller.dipId) return caller;
    const nominee = this.byDipId.get(dipId);
    return nominee?.connectionProvider === caller.dipId ? nominee : undefined;
  }

  /** The caller and every participant that nominated it as connection provider. */
  identitiesOf(caller: Participant): Participant[] {
    return [caller, ...(this.byProvider.get(caller.dipId) ?? [])];
  }

  byApiKey(apiKey: string): Participant | undefined {
    // Known keys are remembered (until the next reload) so a request costs no hash; unknown ones never are.
    const known = this.byKnownKey.get(apiKey);
    if (known) return known;
    const found = this.byKeyHash.get(hashApiKey(apiKey));
    if (found) this.byKnownKey.set(apiKey, found);
    return found;
  }

  holdersOf(role: string): readonly Participant[] {
    return this.byRole.get(role) ?? [];
  }

  webhook(recipientDipId: string, channel: string): Webhook | undefined {
    return this.hooks.get(hookKey(recipientDipId, channel));
  }
}
