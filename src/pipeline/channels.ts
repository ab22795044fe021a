import type { Catalogue, ChannelDefinition } from '../catalogue/catalogue.js';
import { defaultAlwaysRoles, type ChannelAvailability, type ChannelOverride, type ChannelRouting } from '../domain/channel.js';
import type { ObfuscationRules } from '../domain/obfuscation.js';
import type { SecurityCategory } from '../catalogue/security-category.js';
import type { SecurityPattern } from './patterns.js';

/** A channel as the pipeline uses it: the catalogue's definition with the operator's overrides applied. */
export interface Channel extends ChannelRouting {
  definition: ChannelDefinition;
  workflowStarter: boolean;
  staleAfterMs: number;
  obfuscation: ObfuscationRules;
  /** Recipients are also looked up by MPAN (secondary routing). */
  secondaryRouting: boolean;
  /** Messages on this channel change who is responsible for an MPAN: they feed the lookup. */
  mpanFeed: boolean;
  /** Where the date to address by is (path under payload); the time of receipt when absent. */
  addressingDatePath: string | undefined;
  /** Spec 5.2.2: 1 (signed) by default, as on the live DIP; 2 and 3 encrypt the CustomBlock (0 runs as 1). */
  securityPattern: SecurityPattern;
  /** Set by the operator while the DIP runs (src/pipeline/channel-settings.ts); `active` unless changed. */
  availability: ChannelAvailability;
}

/**
 * Registration channels whose messages appoint or de-appoint suppliers, service providers and MDRs (the
 * registration service's MDR outcomes ride on IF-035 and IF-036). Not the data service's requests to an
 * MDR (IF-061 to IF-063): their sender is not the registration service, and as a feed any SDS could name
 * any MDR, and in M0 any distributor, for any MPAN; an operator can opt in with `mpanFeed`.
 */
export const DEFAULT_MPAN_FEEDS = new Set(['IF-001', 'IF-002', 'IF-003', 'IF-035', 'IF-036', 'IF-037']);

/**
 * Consumption is addressed by its settlement day (spec 5.5.14), so late, defaulted or rejected data
 * reaches whoever was responsible that day, not whoever is today (after a change of supplier or data
 * service the new party would get the old one's consumption): the data service's (IF-021), the
 * market-wide data service's defaults (IF-013) and refusals (IF-014), and what an MDR retrieved for
 * the smart data service (IF-064). IF-016 is not: a replay goes to the data service that asked for it.
 */
export const DEFAULT_ADDRESSING_DATES: Readonly<Record<string, string>> = {
  'IF-013': 'CustomBlock.B920List[0].settlementDayConsumptionPeriods[0].settlementDay.settlementDayDate',
  'IF-014': 'CustomBlock.B900.settlementDayConsumptionPeriods[0].settlementDay.settlementDayDate',
  'IF-021': 'CustomBlock.B900.settlementDayConsumptionPeriods[0].settlementDay.settlementDayDate',
  'IF-064': 'CustomBlock.B941List[0].settlementDay.settlementDayDate',
};

/**
 * Requests that open a workflow answered on other channels (appointment, MPAN relationship, supplier
 * maintained data, consumption amendment, direct contract, consumption replay): the DIP gives each a
 * workflow correlation ID. OpenDIP's reading of spec 5.5.5, not a published list; operators can change it.
 */
export const DEFAULT_WORKFLOW_STARTERS = new Set(['IF-015', 'IF-019', 'IF-025', 'IF-027', 'IF-031', 'IF-038']);

/**
 * `suggestedCategory`: the catalogue's suggested security category, passed only when the operator opted
 * in (`applySuggestedSecurityCategories`); it decides the pattern where the channel's configuration does not.
 */
export function channelRouting(def: ChannelDefinition, override: ChannelOverride | undefined, defaultStaleMs: number, suggestedCategory?: SecurityCategory): Channel {
  const receiverRoles = override?.receiverRoles ?? def.receiverRoles;
  return {
    definition: def,
    interfaceId: def.interfaceId,
    publicationId: def.publicationId,
    senderRoles: override?.senderRoles ?? def.senderRoles,
    receiverRoles,
    alwaysRoles: override?.alwaysRoles ?? defaultAlwaysRoles(receiverRoles),
    alwaysParticipants: override?.alwaysParticipants ?? [],
    primaryRouting: def.routingModes.includes('primary'),
    workflowStarter: override?.workflowStarter ?? DEFAULT_WORKFLOW_STARTERS.has(def.interfaceId),
    staleAfterMs: override?.staleAfterMinutes !== undefined ? override.staleAfterMinutes * 60_000 : defaultStaleMs,
    obfuscation: override?.obfuscation ?? {},
    secondaryRouting: def.routingModes.includes('secondary'),
    mpanFeed: override?.mpanFeed ?? DEFAULT_MPAN_FEEDS.has(def.interfaceId),
    addressingDatePath: override?.addressingDate ?? DEFAULT_ADDRESSING_DATES[def.interfaceId],
    securityPattern: patternInForce(override, suggestedCategory),
    availability: 'active',
  };
}

/**
 * The pattern a channel runs: the configured `securityPattern`, else the pattern the configured (or, when
 * opted in, suggested) security category prefers, else 1 (signed) as on the live DIP. Pattern 0 ("no
 * security action", spec 5.2.2) runs as pattern 1: in API 2.1.0 the X-DIP-* signature belongs to every
 * request and webhook call, not to a channel's data (it names the caller, guards against replays and is
 * the archived evidence against repudiation), and every participant's adapter signs and verifies it.
 */
export function patternInForce(override: Pick<ChannelOverride, 'securityPattern' | 'securityCategory'> | undefined, suggestedCategory?: SecurityCategory): SecurityPattern {
  const configured = override?.securityPattern;
  if (configured !== undefined) return configured === 0 ? 1 : configured;
  return preferredPattern(override?.securityCategory ?? suggestedCategory);
}

/** Spec 5.2.2's preferred pattern per security category: public data signed, the rest encrypted via the DIP. */
export function preferredPattern(category: SecurityCategory | undefined): SecurityPattern {
  return category === undefined || category === 1 ? 1 : 2;
}

/** What changes while the DIP runs besides the overrides: a channel paused or withdrawn, participants that opted in. */
export interface ChannelRuntime {
  availability(id: string): ChannelAvailability;
  subscribers(id: string): readonly string[];
}

/**
 * The channels in force: the catalogue's definitions with the operator's overrides, built once per
 * catalogue in force and again after each change of the operator's settings (`invalidate`): every request
 * and every delivered copy asks for its channel.
 */
export class ChannelDirectory {
  private builtFrom: Catalogue | null = null;
  private readonly channels = new Map<string, Channel>();

  constructor(
    private readonly catalogue: () => Catalogue,
    private readonly overrides: () => Readonly<Record<string, ChannelOverride>>,
    private readonly defaultStaleMs: number,
    /** Opted in: channels without a configured pattern or category take the catalogue's suggested category. */
    private readonly applySuggestedCategories = false,
    private readonly runtime?: ChannelRuntime,
  ) {}

  get(id: string): Channel | undefined {
    const current = this.catalogue();
    if (current !== this.builtFrom) {
      this.builtFrom = current;
      this.channels.clear();
    }
    // Channel IDs are matched whatever their case: one entry per channel, not per spelling.
    const key = id.toUpperCase();
    const known = this.channels.get(key);
    if (known) return known;
    // An ID that names no channel is not kept: callers choose IDs, and each kept miss would be memory they own.
    const def = current.channel(id);
    if (!def) return undefined;
    const suggested = this.applySuggestedCategories ? current.suggestedSecurityCategory(def.interfaceId)?.category : undefined;
    const channel = this.withRuntime(channelRouting(def, this.overrides()[def.interfaceId], this.defaultStaleMs, suggested));
    this.channels.set(key, channel);
    return channel;
  }

  private withRuntime(channel: Channel): Channel {
    if (!this.runtime) return channel;
    const subscribers = this.runtime.subscribers(channel.interfaceId);
    return {
      ...channel,
      availability: this.runtime.availability(channel.interfaceId),
      alwaysParticipants: subscribers.length ? [...new Set([...channel.alwaysParticipants, ...subscribers])] : channel.alwaysParticipants,
    };
  }

  /** Every channel of the catalogue in force, in the catalogue's order. */
  all(): Channel[] {
    return this.catalogue()
      .channels()
      .map((d) => this.get(d.interfaceId))
      .filter((c): c is Channel => c !== undefined);
  }

  /** Drops what was built, e.g. after the operator changed an override. */
  invalidate(): void {
    this.channels.clear();
  }
}
