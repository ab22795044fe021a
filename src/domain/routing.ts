import type { ChannelRouting } from './channel.js';
import type { MessageHeader } from './message.js';
import type { Participant } from './participant.js';
import { MSG, type MsgText } from './response-codes.js';

export interface RoutingDirectory {
  participant(dipId: string): Participant | undefined;
  holdersOf(role: string): readonly Participant[];
}

export type RoutingDecision =
  | { ok: true; primary: string[]; always: string[]; recipients: string[] }
  | { ok: false; code: MsgText; help: string };

/**
 * Works out who receives a message: the sender's named primary recipients (each must exist and hold a
 * role that receives on the channel) and every holder of the channel's always-roles. The sender never
 * receives its own message; a recipient reached by two routes gets one copy.
 */
export function route(channel: ChannelRouting, header: MessageHeader, dir: RoutingDirectory): RoutingDecision {
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
  }
  const always: string[] = [];
  for (const role of channel.alwaysRoles) {
    for (const p of dir.holdersOf(role)) {
      if (p.dipId !== header.senderDipId && !always.includes(p.dipId)) always.push(p.dipId);
    }
  }
  const recipients = [...primary.filter((id) => id !== header.senderDipId)];
  for (const id of always) if (!recipients.includes(id)) recipients.push(id);
  if (recipients.length === 0) {
    return { ok: false, code: MSG.routingError, help: `no recipient: A0.primaryRecipients is empty and no participant holds an always-routed role (${channel.alwaysRoles.join(', ') || 'none'}) on ${channel.interfaceId}` };
  }
  return { ok: true, primary, always, recipients };
}
