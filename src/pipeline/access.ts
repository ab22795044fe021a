import { receivesOn } from '../domain/channel.js';
import type { Participant } from '../domain/participant.js';
import { MSG, type MsgText } from '../domain/response-codes.js';
import type { Channel } from './channels.js';
import type { Registry } from './registry.js';

/**
 * Who may act on what, once the caller is known: one rule for every door into the DIP. The participant
 * API (src/api/guard.ts) calls it after authenticating a signed call; the user portal calls it for a
 * signed-in user's participant. So a portal user reaches exactly what its participant's API key reaches.
 *
 *  - 'participant': any registered participant;
 *  - 'self': the participant named by `recipientId`, or its DIP Connection Provider;
 *  - 'recipient': that, and it receives on `channelId` (a receiving or always-routed role, or named to
 *    always receive).
 */
export type Access = 'participant' | 'self' | 'recipient';

export interface Scope {
  /** The participant the call acts as (the caller, or the participant it connects for). */
  caller: Participant;
  /** The channel named, for 'recipient' access. */
  channel: Channel | null;
  /** Who proved the call: the caller itself, or the DIP Connection Provider acting for it (logged and journalled as the one who acted). */
  authenticated: Participant;
}

export type Authorisation = ({ ok: true } & Scope) | { ok: false; status: 403 | 404; callerDipId: string; message: MsgText; help: string };

export function authorise(
  registry: Pick<Registry, 'actingAs' | 'dipIdInAnyCase' | 'refusalNote'>,
  channelOf: (id: string) => Channel | undefined,
  authenticated: Participant,
  access: Access,
  target: { recipientId?: string; channelId?: string },
): Authorisation {
  if (access === 'participant') return { ok: true, caller: authenticated, channel: null, authenticated };
  const recipientId = target.recipientId ?? '';
  // A path's recipient-id is read in any case, as its channel: the reference's ingress enforces no case on URLs.
  const named = registry.dipIdInAnyCase(recipientId);
  const caller = registry.actingAs(authenticated, named);
  if (!caller) {
    return { ok: false, status: 403, callerDipId: authenticated.dipId, message: MSG.processingFailed, help: `recipient-id ${recipientId} is not the caller ${authenticated.dipId}${registry.refusalNote(named)}` };
  }
  if (access === 'self') return { ok: true, caller, channel: null, authenticated };
  const channel = channelOf(target.channelId ?? '');
  if (!channel) {
    return { ok: false, status: 404, callerDipId: caller.dipId, message: MSG.interfaceIdInvalid, help: `dip-channel '${target.channelId ?? ''}' is not a channel of this DIP` };
  }
  if (!receivesOn(channel, caller)) {
    const help = `${caller.dipId} holds ${caller.roles.join(', ')}; only ${channel.receiverRoles.join(', ')} receive on ${channel.interfaceId}`;
    return { ok: false, status: 403, callerDipId: caller.dipId, message: MSG.processingFailed, help };
  }
  return { ok: true, caller, channel, authenticated };
}
