import { isDeepStrictEqual } from 'node:util';
import type { ChannelDefinition } from '../catalogue/catalogue.js';
import { obfuscationWarnings, type ObfuscationWarning } from '../catalogue/obfuscation-check.js';
import type { JsonSchema } from '../catalogue/types.js';
import type { ObfuscationRules } from '../domain/obfuscation.js';
import { shortRetention, type ChannelAvailability, type ChannelOverride, type ChannelSettingsDoc } from '../domain/channel.js';
import { DIP_ID_PATTERN, ROLE_PATTERN } from '../domain/participant.js';
import type { Clock } from '../ports/clock.js';
import type { OperatorJournal } from '../ports/operator-journal.js';
import { RecordConflictError, type RegistryStore, type StoredRecord } from '../ports/registry.js';
import type { Channel } from './channels.js';
import { CHANNEL_RECORD, channelVersion, type ChannelSettingsVersion, type Registry } from './registry.js';
import { RefusedError } from './refused.js';

/** What `PATCH /admin/channels/{id}` takes: each override given replaces the one in force; `null` drops it (back to the catalogue). */
export interface ChannelChange {
  settings?: { [K in keyof ChannelOverride]?: ChannelOverride[K] | null };
  optIn?: boolean;
  note?: string;
  /** The version the change was made against; refused with 409 when another change came first. */
  expectedVersion?: number;
}

/** A channel as the operator sees it: its settings version, and the routing they give. */
export interface ChannelView {
  channel: string;
  name: string;
  version: number;
  state: ChannelAvailability;
  optIn: boolean;
  note: string;
  changedAt: string | null;
  changedBy: string | null;
  settings: ChannelOverride;
  inForce: { senderRoles: string[]; receiverRoles: string[]; alwaysRoles: string[]; alwaysParticipants: string[]; securityPattern: number; staleAfterMinutes: number };
  /**
   * What the settings do that the operator may not mean, taken as they are: an obfuscation rule that
   * removes a field the channel's published schema requires, masks a value whose constraints 'x' breaks,
   * or names nothing (src/catalogue/obfuscation-check.ts). Empty when none.
   */
  warnings: string[];
}

/** A channel's obfuscation rules at a moment, and the settings version they belong to (0: the configuration file's; `since`: when that version was made). */
export interface RulesInForce {
  rules: ObfuscationRules;
  version: number;
  since: number | null;
}

export interface ChannelSettingsDeps {
  registry: Registry;
  store: Pick<RegistryStore, 'putRecord' | 'recordHistory'>;
  journal: OperatorJournal;
  clock: Clock;
  definition(id: string): ChannelDefinition | undefined;
  definitions(): ChannelDefinition[];
  /** The channel's published message schema (the catalogue in force), which obfuscation rules are checked against. */
  schema(id: string): JsonSchema | undefined;
  /** The overrides of the configuration file: a channel's first settings version starts from them. */
  configured: Readonly<Record<string, ChannelOverride>>;
  /** The channel as routing builds it from the settings in force. */
  channel(id: string): Channel | undefined;
  /** After a change is in force here: a resumed channel's held deliveries start again. */
  afterChange(channel: string, state: ChannelAvailability): void;
}

const ROLE_LISTS = ['senderRoles', 'receiverRoles', 'alwaysRoles'] as const;

/**
 * Channel management while the DIP runs (spec 5.3): change a channel's overrides, pause, resume, withdraw
 * and restore it, each change validated before it applies, kept as a new version (registry records, so
 * every node applies it from the change feed, no restart), journalled with who made it, and reversible.
 */
export class ChannelSettings {
  constructor(private readonly deps: ChannelSettingsDeps) {}

  /** The overrides in force: a channel's stored settings replace the configuration file's for that channel. */
  overrides(): Record<string, ChannelOverride> {
    const stored = Object.fromEntries(this.deps.registry.allChannelSettings().map((v) => [v.channel, v.settings]));
    return { ...this.deps.configured, ...stored };
  }

  /** Every channel's obfuscation rules in force that break its published schema or hide nothing (logged at start). */
  obfuscationWarnings(): Array<ObfuscationWarning & { channel: string }> {
    return Object.entries(this.overrides()).flatMap(([channel, o]) => this.warningsFor(channel, o).map((w) => ({ channel, ...w })));
  }

  private warningsFor(channel: string, o: ChannelOverride): ObfuscationWarning[] {
    const schema = o.obfuscation && Object.keys(o.obfuscation).length > 0 ? this.deps.schema(channel) : undefined;
    return schema ? obfuscationWarnings(schema, o.obfuscation!) : [];
  }

  availability(id: string): ChannelAvailability {
    return this.deps.registry.channelSettings(id)?.state ?? 'active';
  }

  list(): ChannelView[] {
    return this.deps.definitions().map((d) => this.view(d));
  }

  show(id: string): ChannelView {
    return this.view(this.known(id));
  }

  async history(id: string): Promise<Array<ChannelSettingsVersion & { changedAt: string }>> {
    this.known(id);
    return (await this.deps.store.recordHistory(CHANNEL_RECORD, id)).map((r) => ({ ...channelVersion(r), changedAt: new Date(r.at).toISOString() }));
  }

  /**
   * The obfuscation rules in force on a channel at a moment: those of the last settings version made by
   * then, else the configuration file's (version 0: the DIP keeps no earlier configuration file, so it is
   * taken to be the one read now). A copy made then was obfuscated with these, whatever the rules are now.
   */
  async obfuscationAt(id: string, at: number): Promise<RulesInForce> {
    this.known(id);
    const then = (await this.deps.store.recordHistory(CHANNEL_RECORD, id)).filter((r) => r.at <= at).reduce<StoredRecord | undefined>((last, r) => (last && last.version > r.version ? last : r), undefined);
    if (!then) return { rules: this.deps.configured[id]?.obfuscation ?? {}, version: 0, since: null };
    return { rules: (then.doc as ChannelSettingsDoc).settings.obfuscation ?? {}, version: then.version, since: then.at };
  }

  async change(id: string, change: ChannelChange, by: string): Promise<ChannelView> {
    const current = await this.current(id, change.expectedVersion);
    // A patch that names no override and no opt-in ({"note": …}, {"settings": {}}) is refused rather than
    // kept as a version that changes nothing: it is most likely a mistake (a field misplaced or misspelt).
    if (Object.keys(change.settings ?? {}).length === 0 && change.optIn === undefined) {
      throw new RefusedError(400, `nothing to change on ${id}: name overrides under settings, or optIn (a note is kept with a change, not alone)`);
    }
    const settings: ChannelOverride = { ...current.settings };
    for (const [k, v] of Object.entries(change.settings ?? {}) as Array<[keyof ChannelOverride, unknown]>) {
      if (v === null) delete settings[k];
      else (settings as Record<string, unknown>)[k] = v;
    }
    validate(this.known(id), settings);
    const optIn = change.optIn ?? current.optIn;
    // The same settings and opt-in as in force: answered with the channel as it is, and no new version,
    // so applying a change twice (a retried script, `dip channel set` run again) leaves one version. It
    // is still journalled, as a no-op with the settings before and after (the same): an auditor expects
    // every change an operator attempted to be there, including one that found nothing to change.
    if (optIn === current.optIn && isDeepStrictEqual(settings, current.settings)) {
      const state = { ...current };
      await this.deps.journal.append({ at: this.deps.clock.now(), actor: by, action: 'channel.change.no-op', target: id, before: state, after: state, status: null });
      return this.show(id);
    }
    return this.put(id, current, { ...current, settings, optIn, note: change.note ?? '' }, 'channel.change', by);
  }

  async setState(id: string, state: ChannelAvailability, by: string, note = '', expectedVersion?: number): Promise<ChannelView> {
    const current = await this.current(id, expectedVersion);
    if (current.state === state) throw new RefusedError(409, `${id} is already ${state}`);
    const action = state === 'paused' ? 'channel.pause' : state === 'withdrawn' ? 'channel.withdraw' : 'channel.resume';
    return this.put(id, current, { ...current, state, note }, action, by);
  }

  /**
   * Puts an earlier version's settings (overrides and opt-in) in force again, as a new version (history is
   * never rewritten). The channel's state stays as it is: pause, resume and withdraw are acts of their own,
   * and a rollback to a version taken during a pause would otherwise stop the channel's messages again
   * (503 to every sender) with only the answer's `state` saying so.
   */
  async rollback(id: string, toVersion: number, by: string, note = ''): Promise<ChannelView> {
    const current = await this.current(id, undefined);
    const target = (await this.deps.store.recordHistory(CHANNEL_RECORD, id)).find((r) => r.version === toVersion);
    if (!target) throw new RefusedError(404, `${id} has no settings version ${toVersion} (GET /admin/channels/${id}/history)`);
    const doc = target.doc as ChannelSettingsDoc;
    validate(this.known(id), doc.settings);
    return this.put(id, current, { ...doc, state: current.state, note: note || `rolled back to version ${toVersion}` }, 'channel.rollback', by);
  }

  private known(id: string): ChannelDefinition {
    const def = this.deps.definition(id);
    if (!def) throw new RefusedError(404, `${id} is not a channel of the catalogue in force (add new channels with \`dip catalogue import\`)`);
    return def;
  }

  /** The settings in force (the configuration file's when never changed), read fresh, at the version expected. */
  private async current(id: string, expectedVersion: number | undefined): Promise<ChannelSettingsDoc & { version: number }> {
    this.known(id);
    await this.deps.registry.refresh();
    const v = this.deps.registry.channelSettings(id);
    const version = v?.version ?? 0;
    if (expectedVersion !== undefined && expectedVersion !== version) {
      throw new RefusedError(409, `${id} is at version ${version}, not ${expectedVersion}: another change came first; read it again`);
    }
    if (!v) return { state: 'active', settings: { ...this.deps.configured[id] }, optIn: false, note: '', version };
    return { state: v.state, settings: v.settings, optIn: v.optIn, note: v.note, version };
  }

  private async put(id: string, before: ChannelSettingsDoc & { version: number }, doc: ChannelSettingsDoc, action: string, by: string): Promise<ChannelView> {
    const next: ChannelSettingsDoc = { state: doc.state, settings: doc.settings, optIn: doc.optIn, note: doc.note };
    const at = this.deps.clock.now();
    try {
      await this.deps.store.putRecord({ kind: CHANNEL_RECORD, key: id, doc: next, at, by }, before.version);
    } catch (e) {
      if (e instanceof RecordConflictError) throw new RefusedError(409, (e as Error).message);
      throw e;
    }
    const { version: _v, ...previous } = before;
    await this.deps.journal.append({ at, actor: by, action, target: id, before: { version: before.version, ...previous }, after: { version: before.version + 1, ...next }, status: null });
    await this.deps.registry.refresh();
    this.deps.afterChange(id, next.state);
    return this.show(id);
  }

  private view(def: ChannelDefinition): ChannelView {
    const v = this.deps.registry.channelSettings(def.interfaceId);
    const c = this.deps.channel(def.interfaceId);
    const settings = v?.settings ?? this.deps.configured[def.interfaceId] ?? {};
    return {
      channel: def.interfaceId,
      name: def.name,
      version: v?.version ?? 0,
      state: v?.state ?? 'active',
      optIn: v?.optIn ?? false,
      note: v?.note ?? '',
      changedAt: v ? new Date(v.at).toISOString() : null,
      changedBy: v?.by ?? null,
      settings,
      inForce: {
        senderRoles: c?.senderRoles ?? def.senderRoles,
        receiverRoles: c?.receiverRoles ?? def.receiverRoles,
        alwaysRoles: c?.alwaysRoles ?? [],
        alwaysParticipants: c?.alwaysParticipants ?? [],
        securityPattern: c?.securityPattern ?? 1,
        staleAfterMinutes: Math.round((c?.staleAfterMs ?? 0) / 60_000),
      },
      warnings: [...this.warningsFor(def.interfaceId, settings).map((w) => w.warning), ...retentionWarning(c?.staleAfterMs)],
    };
  }
}

/**
 * A staleness in force below spec 5.4's 14 days: acknowledged (it is refused otherwise), or stored before
 * that was asked, but said with the channel and at every start either way.
 */
export function retentionWarning(staleAfterMs: number | undefined): string[] {
  const minutes = (staleAfterMs ?? Infinity) / 60_000;
  const short = shortRetention(minutes);
  return short ? [`staleAfterMinutes ${minutes} ${short}`] : [];
}

/** Refuses settings the routing could not run with, naming the field and why. */
function validate(def: ChannelDefinition, s: ChannelOverride): void {
  const bad = (field: string, why: string): never => {
    throw new RefusedError(400, `settings.${field}: ${why}`);
  };
  for (const list of ROLE_LISTS) {
    const roles = s[list];
    if (roles === undefined) continue;
    roles.forEach((r, i) => ROLE_PATTERN.test(r) || bad(`${list}[${i}]`, `'${r}' is not a role (3 to 5 capital letters, e.g. SUP)`));
  }
  if ((s.senderRoles ?? def.senderRoles).length === 0) bad('senderRoles', 'a channel needs at least one sending role');
  if ((s.receiverRoles ?? def.receiverRoles).length === 0 && (s.alwaysParticipants ?? []).length === 0) bad('receiverRoles', 'a channel needs at least one receiving role or always-routed participant');
  const receiving = s.receiverRoles ?? def.receiverRoles;
  (s.alwaysRoles ?? []).forEach((r, i) => receiving.includes(r) || bad(`alwaysRoles[${i}]`, `${r} is not a receiving role of the channel (${receiving.join(', ')})`));
  (s.alwaysParticipants ?? []).forEach((p, i) => DIP_ID_PATTERN.test(p) || bad(`alwaysParticipants[${i}]`, `'${p}' is not a DIP ID (10 letters or digits)`));
  for (const [role, paths] of Object.entries(s.obfuscation ?? {})) {
    if (!ROLE_PATTERN.test(role)) bad(`obfuscation.${role}`, 'keys are receiving roles');
    paths.forEach((p, i) => (p.length > 0 && !p.startsWith('.')) || bad(`obfuscation.${role}[${i}]`, 'a path under payload, e.g. CustomBlock.B900.name'));
  }
  if (s.staleAfterMinutes !== undefined && !(s.staleAfterMinutes > 0)) bad('staleAfterMinutes', 'must be more than 0');
  // As at start (src/config.ts): below spec 5.4's 14 days only when the operator says it is meant.
  const short = s.staleAfterMinutes === undefined ? null : shortRetention(s.staleAfterMinutes);
  if (short && s.allowShortRetention !== true) bad('staleAfterMinutes', `${s.staleAfterMinutes} ${short}; if that is meant, set settings.allowShortRetention: true`);
  if (s.archiveRetentionDays !== undefined && !(Number.isInteger(s.archiveRetentionDays) && s.archiveRetentionDays > 0)) bad('archiveRetentionDays', 'a whole number of days, 1 or more');
  if (s.securityPattern !== undefined && ![0, 1, 2, 3].includes(s.securityPattern)) bad('securityPattern', '0, 1, 2 or 3 (spec 5.2.2)');
  if (s.securityCategory !== undefined && ![1, 2, 3, 4].includes(s.securityCategory)) bad('securityCategory', '1, 2, 3 or 4 (spec 5.2.2)');
}
