import type { FastifyReply, FastifyRequest } from 'fastify';
import { receivesOn } from '../../domain/channel.js';
import type { Participant } from '../../domain/participant.js';
import { MSG } from '../../domain/response-codes.js';
import { authenticate } from '../../pipeline/authenticate.js';
import type { Channel } from '../../pipeline/channels.js';
import type { ApiDeps } from '../deps.js';
import { evidence, sendStandard } from '../request.js';

export interface RecipientScope {
  caller: Participant;
  channel: Channel;
}

/**
 * For the per-recipient resources (pubconfig, replay, requeue): the caller must be the recipient named
 * in the URL and receive on the channel (a receiving or always-routed role, or named to always receive). Whatever IDs a caller puts in a URL, it only
 * ever reaches its own queues. Sends the refusal itself and returns null when the call may not proceed.
 */
export async function authoriseRecipient(
  deps: ApiDeps,
  req: FastifyRequest<{ Params: { id: string; recipientId: string } }>,
  reply: FastifyReply,
): Promise<RecipientScope | null> {
  const caller = await authenticateAs(deps, req, reply, req.params.recipientId);
  if (!caller) return null;
  const channel = deps.channel(req.params.id);
  if (!channel) {
    void sendStandard(deps, reply, 404, caller.dipId, MSG.interfaceIdInvalid, `dip-channel '${req.params.id}' is not a channel of this DIP`);
    return null;
  }
  if (!receivesOn(channel, caller)) {
    void sendStandard(
      deps,
      reply,
      403,
      caller.dipId,
      MSG.processingFailed,
      `${caller.dipId} holds ${caller.roles.join(', ')}; only ${channel.receiverRoles.join(', ')} receive on ${channel.interfaceId}`,
    );
    return null;
  }
  return { caller, channel };
}

/**
 * Authenticates the call and resolves the participant it acts as: the recipient-id of the URL, which must
 * be the caller or, for a DIP Connection Provider, a participant that nominated it. Sends the refusal
 * itself and returns null otherwise.
 */
export async function authenticateAs(deps: ApiDeps, req: FastifyRequest, reply: FastifyReply, recipientId: string): Promise<Participant | null> {
  const auth = await authenticate(deps.registry, evidence(deps, req), new Date(deps.clock.now()), deps.config.maxClockSkewSeconds * 1000);
  if (!auth.ok) {
    void sendStandard(deps, reply, auth.status, null, MSG.processingFailed, auth.help);
    return null;
  }
  const acting = deps.registry.actingAs(auth.participant, recipientId);
  if (!acting) {
    void sendStandard(deps, reply, 403, auth.participant.dipId, MSG.processingFailed, `recipient-id ${recipientId} is not the caller ${auth.participant.dipId}`);
    return null;
  }
  return acting;
}

/** Parses a JSON body for the small configuration resources; null (and a 400 sent) when it is not JSON. */
export function jsonBody(deps: ApiDeps, req: FastifyRequest, reply: FastifyReply, recipientId: string): unknown {
  const raw = Buffer.isBuffer(req.body) ? req.body.toString('utf8') : '';
  try {
    return JSON.parse(raw) as unknown;
  } catch (e) {
    void sendStandard(deps, reply, 400, recipientId, MSG.schemaFailure, `the body is not valid JSON: ${(e as Error).message}`);
    return null;
  }
}
