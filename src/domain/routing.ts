import { capacityCode, copyRoles, type ChannelRouting } from './channel.js';
import type { MessageHeader } from './message.js';
import type { SkippedHolder } from './mpan-lookup.js';
import type { Participant } from './participant.js';
import { MSG, type MsgText } from './response-codes.js';

export interface RoutingDirectory {
  participant(dipId: string): Participant | undefined;
  holdersOf(role: string): readonly Participant[];
}

export type RoutingDecision =
  | {
      ok: true;
      primary: string[];
      secondary: string[];
      always: string[];
      recipients: string[];
      /**
       * Per recipient, the capacity it was routed in (src/domain/channel.ts capacityCode): what its copy
       * is obfuscated for. One reached by several routes: the union of their capacities.
       */
      capacities: Record<string, string>;
      /**
       * Holders the MPAN lookup named who cannot receive in their capacity and get no copy by another
       * route, while others do: the message goes to the others, and these are told of (unreachedHolder).
       */
      unreached: Array<{ holder: SkippedHolder; code: MsgText; help: string }>;
      /**
       * Participants the channel names to always receive who are not registered (MSG1035), while others
       * receive: the message goes to the others, and the sender is told, as for `unreached`, but not
       * which participant (`dipId` is for the operators' log: src/pipeline/left-out-log.ts).
       */
      alwaysLeftOut: Array<{ dipId: string; code: MsgText; help: string }>;
    }
  | { ok: false; code: MsgText; help: string };

/**
 * A channel the DIP itself receives (IF-015, answered by the DIP Replay Service): no participant holds
 * the DIP's role, so the message goes to the internal recipient whose queue the DIP consumes. A sender may
 * name the DIP as primary recipient, and no one else: the message is not for another participant.
 */
export function routeToDip(channel: ChannelRouting, header: MessageHeader, dipId: string, internalRecipient: string): RoutingDecision {
  const others = header.primaryRecipients.filter((id) => id !== dipId);
  if (others.length > 0) {
    return { ok: false, code: MSG.routingError, help: `A0.primaryRecipients: ${channel.interfaceId} is answered by the DIP (${dipId}) itself and goes to no participant; name none, or only the DIP (named: ${others.join(', ')})` };
  }
  return { ok: true, primary: [], secondary: [], always: [], recipients: [internalRecipient], capacities: {}, unreached: [], alwaysLeftOut: [] };
}

/** What MPAN lookup found for the message (computed beforehand; routing itself stays pure). */
export interface SecondaryLookup {
  /** The channel takes secondary (MPAN) routing. */
  enabled: boolean;
  recipients: string[];
  /** The roles each recipient is reached in (its slots'); one missing: the roles it holds that receive on the channel. */
  capacities?: ReadonlyMap<string, readonly string[]>;
  /** Holders the lookup named who cannot receive in their capacity (not registered, or without the role). */
  skipped?: readonly SkippedHolder[];
}

/**
 * Works out who receives a message: the sender's named primary recipients (each must exist and hold a
 * role that receives on the channel), the MPAN lookup's (secondary) recipients, and "always": the
 * participants the channel names and every holder of its always-roles. The sender never receives its
 * own message; a recipient reached by two routes gets one copy, made for both capacities (capacityCode).
 */
export function route(
  channel: ChannelRouting,
  header: MessageHeader,
  dir: RoutingDirectory,
  secondaryLookup: SecondaryLookup = { enabled: false, recipients: [] },
): RoutingDecision {
  // The roles each recipient is reached in, over every route that reaches it (src/domain/channel.ts capacityCode).
  const capacity = new Map<string, string[]>();
  const primary: string[] = [];
  if (header.primaryRecipients.length > 0 && !channel.primaryRouting) {
    return { ok: false, code: MSG.routingError, help: `A0.primaryRecipients: channel ${channel.interfaceId} does not take primary routing` };
  }
  for (const id of header.primaryRecipients) {
    const p = dir.participant(id);
    if (!p) {
      return { ok: false, code: MSG.primaryRecipientInvalid, help: `A0.primaryRecipients: ${id} is not a registered DIP participant` };
    }
    if (!p.roles.some((r) => channel.receiverRoles.includes(r))) {
      return {
        ok: false,
        code: MSG.primaryRecipientRoleInvalid,
        help: `A0.primaryRecipients: ${id} holds ${p.roles.join(', ')}, none of which receives on ${channel.interfaceId} (receivers: ${channel.receiverRoles.join(', ')})`,
      };
    }
    if (!primary.includes(id)) primary.push(id);
    reachedAs(capacity, id, receivingRoles(channel, p.roles));
  }
  const always: string[] = [];
  // Named participants first (an operator's explicit choice); one not (yet) registered gets no copy, and
  // is named to the sender with the published code for it (MSG1035), as a secondary holder is.
  const unregistered: string[] = [];
  for (const id of channel.alwaysParticipants) {
    if (id === header.senderDipId || always.includes(id) || unregistered.includes(id)) continue;
    const p = dir.participant(id);
    if (p) {
      always.push(id);
      reachedAs(capacity, id, copyRoles(channel, p.roles));
    } else unregistered.push(id);
  }
  const unheldRoles: string[] = [];
  for (const role of channel.alwaysRoles) {
    const holders = dir.holdersOf(role);
    if (holders.length === 0) unheldRoles.push(role);
    for (const p of holders) {
      if (p.dipId === header.senderDipId) continue;
      if (!always.includes(p.dipId)) always.push(p.dipId);
      // An always role the channel has no receiving rule for (an operator's alwaysRoles may name one)
      // would hide nothing: its holder gets the copy of the roles it receives in, as a named one does.
      reachedAs(capacity, p.dipId, channel.receiverRoles.includes(role) ? [role] : copyRoles(channel, p.roles));
    }
  }
  for (const id of secondaryLookup.recipients) reachedAs(capacity, id, secondaryLookup.capacities?.get(id) ?? receivingRoles(channel, dir.participant(id)?.roles ?? []));
  const secondary = secondaryLookup.recipients.filter((id) => id !== header.senderDipId && !primary.includes(id));
  if (secondaryLookup.enabled && primary.length === 0) {
    // The sender left addressing to the DIP: without an MPAN, or with nobody responsible for it, the
    // message can only go to the always-routed roles, and if there are none it cannot go anywhere.
    if (header.mpan === null && always.length === 0) {
      return { ok: false, code: MSG.missingMpan, help: `M0.MPANCore: no primary recipients and no MPAN to look up the recipients on ${channel.interfaceId}` };
    }
    if (header.mpan !== null && secondary.length === 0 && always.length === 0) {
      return unresolvedMpan(channel, header.mpan, (secondaryLookup.skipped ?? []).filter((s) => s.dipId !== header.senderDipId));
    }
  }
  const recipients = [...primary.filter((id) => id !== header.senderDipId)];
  for (const id of [...secondary, ...always]) if (!recipients.includes(id)) recipients.push(id);
  if (recipients.length === 0) {
    // Named, but only the sender: not "empty", and the sender must learn why its own name reaches nobody.
    const named = primary.length > 0 ? `A0.primaryRecipients names only the sender ${header.senderDipId}, which never receives its own message,` : 'A0.primaryRecipients is empty';
    const none = `no recipient: ${named} and no participant holds an always-routed role (${channel.alwaysRoles.join(', ') || 'none'}) or is named to always receive on ${channel.interfaceId}`;
    // The always recipient the channel names that failed, with its published code: a named participant
    // not registered (MSG1035) first, as the entry to correct is the operator's; then a role nobody holds.
    const failed = unregistered[0] !== undefined ? alwaysUnregistered(channel) : unheldRoles.length > 0 ? alwaysRoleUnheld(channel, unheldRoles) : null;
    return failed ? { ok: false, code: failed.code, help: `${none}; ${failed.help}` } : { ok: false, code: MSG.routingError, help: none };
  }
  const unreached = (secondaryLookup.skipped ?? [])
    .filter((s) => s.dipId !== header.senderDipId && !recipients.includes(s.dipId))
    .map((s) => ({ holder: s, ...unreachedHolder(channel, header.mpan ?? '', s) }));
  // Accepted beside it: the route logs each (channel, DIP ID) for the operators, so the sender is told they are.
  const alwaysLeftOut = unregistered.map((id) => {
    const { code, help } = alwaysUnregistered(channel);
    return { dipId: id, code, help: `${help}; the DIP's operators are told` };
  });
  const kept: Array<[string, string]> = [];
  for (const id of recipients) {
    const roles = capacity.get(id);
    // None known (a participant holding no role at all): its copy keeps the rule of copyRoles without one.
    if (roles && roles.length > 0) kept.push([id, capacityCode(roles)]);
  }
  const capacities = Object.fromEntries(kept);
  return { ok: true, primary, secondary, always, recipients, capacities, unreached, alwaysLeftOut };
}

/**
 * Adds a route's roles to what a recipient is reached in. Module-level functions, not closures in route():
 * tsx, which runs the DIP, names each closure as it is made (a defineProperty per message).
 */
function reachedAs(capacity: Map<string, string[]>, id: string, roles: readonly string[]): void {
  const known = capacity.get(id);
  if (!known) capacity.set(id, [...roles]);
  else for (const r of roles) if (!known.includes(r)) known.push(r);
}

function receivingRoles(channel: Pick<ChannelRouting, 'receiverRoles'>, roles: readonly string[]): string[] {
  return roles.filter((r) => channel.receiverRoles.includes(r));
}

/**
 * A participant the channel names to always receive that is not registered: MSG1035. Not naming it: the
 * name is the operator's setting (channels.<id>.alwaysParticipants), not the sender's to know or correct,
 * and every sender on the channel would be told it (RoutingDecision.alwaysLeftOut keeps it for the log).
 */
function alwaysUnregistered(channel: ChannelRouting): { code: MsgText; help: string } {
  return { code: MSG.alwaysRecipientInvalid, help: `a participant channel ${channel.interfaceId} always sends to is not registered` };
}

/**
 * Always-routed roles no registered participant holds: MSG1036, naming them. Said only when the message
 * reaches nobody: beside other recipients it is not, as every channel always sends to the central
 * services by default, and a DIP where one is not registered yet would say so on every message.
 */
function alwaysRoleUnheld(channel: ChannelRouting, roles: readonly string[]): { code: MsgText; help: string } {
  const list = roles.join(', ');
  return { code: MSG.alwaysRecipientRoleInvalid, help: `channel ${channel.interfaceId} always sends to every ${list}, and no registered DIP participant holds ${roles.length > 1 ? 'any of them' : list}` };
}

/**
 * Why an MPAN's lookup reaches nobody: the holder it names is not a participant (MSG1033) or lacks the
 * role its capacity receives in (MSG1034), the published codes for a secondary recipient, so the entry to
 * correct is named; with no holder at all, nobody is responsible (MSG1038).
 */
function unresolvedMpan(channel: ChannelRouting, mpan: string, skipped: readonly SkippedHolder[]): { ok: false; code: MsgText; help: string } {
  // An unregistered holder first: the entry to correct is the lookup's, whatever the others' roles.
  const holder = skipped.find((s) => s.roles === undefined) ?? skipped[0];
  if (holder) return { ok: false, ...unreachedHolder(channel, mpan, holder) };
  return { ok: false, code: MSG.mpanUnresolved, help: `M0.MPANCore ${mpan}: no participant is responsible for it in a role that receives ${channel.interfaceId} on the addressing date` };
}

/**
 * Why a holder the MPAN lookup names cannot receive in its capacity: not a participant (MSG1033) or
 * without the role (MSG1034), the published codes for a secondary recipient, naming the entry to correct.
 */
export function unreachedHolder(channel: ChannelRouting, mpan: string, s: SkippedHolder): { code: MsgText; help: string } {
  const named = `M0.MPANCore ${mpan}: the MPAN lookup names ${s.dipId} as its ${s.slot} on the addressing date`;
  if (s.roles === undefined) return { code: MSG.secondaryRecipientInvalid, help: `${named}, which is not a registered DIP participant` };
  return {
    code: MSG.secondaryRecipientRoleInvalid,
    help: `${named}, which holds ${s.roles.join(', ') || 'no role'}, not ${s.wanted.join(' or ')}, the role receiving ${channel.interfaceId} in that capacity`,
  };
}
