import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { PULL_ACKNOWLEDGED } from '../../ports/archive.js';
import type { QueueRef } from '../../ports/message-log.js';
import { CopyUnmakeable, CopyWithheld, leadingCopies } from '../../pipeline/recipient-copy.js';
import { STATUS_CHANNEL } from '../../pipeline/status.js';
import { copiesWithin } from '../../pipeline/delivery-body.js';
import { newAttemptId } from '../../domain/attempt-id.js';
import { MSG } from '../../domain/response-codes.js';
import { judgeAck, pulledMark } from '../../domain/pull-positions.js';
import { ACKNOWLEDGED_HEADER, formatSequence, SEQUENCE_HEADER } from '../../domain/sequence.js';
import type { ApiDeps, RoutePluginOptions } from '../deps.js';
import { admitted, recipientScope } from '../guard.js';
import { PAUSED_RETRY_AFTER_SECONDS } from '../../pipeline/ingest.js';
import { ACK_SCHEMA, compileReadQueryRouteSchema, publishedSchema } from '../schemas.js';
import { readQuery, unknownParameter, type RawQuery } from '../query.js';
import { providerFor, sendSigned, sendStandard } from '../request.js';
import { setAsideEntries, setAsideHelp, setAsideUnseen, type SetAsideRun } from '../../pipeline/set-aside-unseen.js';
import { clipHelp, standardResponse } from '../../domain/standard-response.js';
import { answers, channelRecipientParams, egressArray, GUARDED, preSerialised, recipientParams, signatureHeaders, signedAnswer } from '../route-schemas.js';

type Route = { Params: { id: string; recipientId: string }; Querystring: RawQuery };
interface PullQuery {
  maxMessageCount?: string;
  maxPayloadSize?: string;
}
const PULL_PARAMETERS = ['maxMessageCount', 'maxPayloadSize'] as const;

/**
 * Pull consumption (spec 5.4), an OpenDIP extension in the published style, for a recipient with no
 * webhook on the channel: GET .../pull/{recipient-id} returns the oldest unacknowledged messages
 * (the egress array, positions in X-OpenDIP-Sequence); POST .../ack/{recipient-id} {"sequence": n}
 * moves the durable position. Until acknowledged, the same messages come back: at-least-once. An
 * acknowledgement may not pass what a pull handed out (src/domain/pull-positions.ts). The status messages
 * addressed to a participant are pulled the same way, at /statusmessage/pull and /ack.
 */
export const pullRoutes: FastifyPluginAsync<RoutePluginOptions> = async (app, { deps }) => {
  const tags = ['Pull consumption (OpenDIP)'];
  const pullSchema = {
    operationId: 'pullMessages',
    tags,
    summary: 'Read the oldest unacknowledged messages of a channel (OpenDIP)',
    description: `For a recipient with no webhook on the channel. The same messages come back until acknowledged; ${SEQUENCE_HEADER} gives their positions (first-last), X-OpenDIP-Acknowledged the position acknowledged so far.`,
    params: channelRecipientParams,
    headers: signatureHeaders,
    // Documentation only (compileReadQueryRouteSchema): readQuery reads the names in any case, wholeParam the values.
    querystring: {
      type: 'object',
      properties: {
        maxMessageCount: { type: 'string', description: 'At most this many messages (1 to 10,000; default from the configuration)' },
        maxPayloadSize: { type: 'string', description: 'At most this many KB of messages (1 to 1,048,576; default from the configuration; at least one message is given). The DIP answers at most its delivery.maxPullAnswerKb (32,768 unless configured otherwise) whatever is asked: the rest is the next pull\'s' },
      },
    },
    response: answers([...GUARDED, 409], { 200: signedAnswer(preSerialised(200, egressArray('The messages, oldest first, signed by the DIP (X-DIP-* headers, over the answer\'s own string)'))) }),
  };
  // A pull hands out what it answers (the position a later acknowledgement may reach is written): a HEAD,
  // which Fastify would run through the same handler and answer without the body, would hand out messages
  // nobody read, and an acknowledgement would then mark them delivered. So GET only: HEAD is 405.
  const GET_ONLY = { exposeHeadRoute: false } as const;
  // The counts are read by readQuery, in any case, as the publications routes read theirs.
  const PULL_OPTIONS = { ...GET_ONLY, validatorCompiler: compileReadQueryRouteSchema } as const;
  app.get<Route>('/dip-channel/:id/pull/:recipientId', { ...PULL_OPTIONS, config: { access: 'recipient' }, schema: pullSchema }, async (req, reply) => {
    const { caller, channel } = recipientScope(req);
    if (channel.availability === 'paused') {
      reply.header('retry-after', String(PAUSED_RETRY_AFTER_SECONDS));
      return sendStandard(deps, reply, 503, caller.dipId, MSG.processingFailed, `${channel.interfaceId} is paused by the DIP operator (maintenance): its deliveries are held until it resumes`);
    }
    return pull(deps, req, reply, { recipientDipId: caller.dipId, channel: channel.interfaceId });
  });

  const ackSchema = {
    operationId: 'acknowledgeMessages',
    tags,
    summary: 'Acknowledge pulled messages up to a position (OpenDIP)',
    description: `Moves the durable position to \`sequence\`: every message up to it counts as delivered (read by the recipient). Acknowledge the last position of the ${SEQUENCE_HEADER} you processed. \`sequence\` may not pass the last position a pull handed out (or the acknowledged position, when webhook deliveries took it further): a larger one is refused (400, MSG1001, naming the sequence, the last position handed out and the acknowledged one) and nothing moves, so messages no pull handed out are never marked delivered. At or below the acknowledged position: 200, nothing changes. Messages in the range acknowledged that the DIP set aside before the acknowledgement (gone stale while pulled, refused: dead letters, their senders told "not delivered") are named in the 200 answer: the first entry MSG0000 says how many and which positions, then one entry per run of consecutive positions set aside for the same reason (the first one's transactionID, MSG1000, the positions, how many, the last one's transactionID and why): every one in the range, however many. The range is from the previous acknowledgement (or webhook delivery) to this one, so each is named once: by the acknowledgement whose range holds it, and again only by that same acknowledgement sent again (its answer lost); not by a later one, nor by one behind the position. A \`sequence\` that is not a whole number from 0 to 9007199254740991 (Number.MAX_SAFE_INTEGER: a larger one would be read rounded): 400, MSG1001. With a webhook registered for the messages: 409, as a pull.`,
    params: channelRecipientParams,
    headers: signatureHeaders,
    body: ACK_SCHEMA,
    response: answers([200, ...GUARDED, 409]),
  };
  app.post<Route & { Body: { sequence: number } }>('/dip-channel/:id/ack/:recipientId', { config: { access: 'recipient' }, schema: ackSchema }, async (req, reply) => {
    const { caller, channel } = recipientScope(req);
    return acknowledge(deps, reply, { recipientDipId: caller.dipId, channel: channel.interfaceId }, req.body.sequence);
  });

  // Status messages (spec 5.5.8: dead letters reported back to their sender) for a sender with no
  // status-message webhook: the same pull and acknowledgement on the participant's STATUS queue.
  const statusTags = ['Status Messages'];
  // Status messages are StandardResponse entries (what POST /statusmessage takes and a status webhook is sent), not messages.
  // The published array has minItems 1; a pull with nothing waiting answers [].
  const { minItems: _atLeastOne, ...statusArray } = publishedSchema('StandardResponseArray');
  const statusPullAnswers = answers([...GUARDED, 409], { 200: signedAnswer(preSerialised(200, { ...statusArray, description: 'The status messages (StandardResponseArray entries; [] when none wait), oldest first, signed by the DIP (X-DIP-* headers, over the answer\'s own string)' })) });
  app.get<Route>(
    '/statusmessage/pull/:recipientId',
    { ...PULL_OPTIONS, config: { access: 'self' }, schema: { ...pullSchema, operationId: 'pullStatusMessages', tags: statusTags, summary: 'Read the oldest unacknowledged status messages (OpenDIP)', description: `For a participant with no status-message webhook (POST /statusmessage/config). The same messages come back until acknowledged; ${SEQUENCE_HEADER} gives their positions.`, params: recipientParams, response: statusPullAnswers } },
    async (req, reply) => pull(deps, req, reply, { recipientDipId: admitted(req).caller.dipId, channel: STATUS_CHANNEL }),
  );
  app.post<Route & { Body: { sequence: number } }>(
    '/statusmessage/ack/:recipientId',
    { config: { access: 'self' }, schema: { ...ackSchema, operationId: 'acknowledgeStatusMessages', tags: statusTags, summary: 'Acknowledge pulled status messages up to a position (OpenDIP)', params: recipientParams } },
    async (req, reply) => acknowledge(deps, reply, { recipientDipId: admitted(req).caller.dipId, channel: STATUS_CHANNEL }, req.body.sequence),
  );
};

/** The 409 of a pull or an acknowledgement on a queue its recipient has a webhook for (pushed, not pulled), or null. */
function pushedInstead(deps: ApiDeps, reply: FastifyReply, queue: QueueRef): FastifyReply | null {
  if (!deps.registry.webhook(queue.recipientDipId, queue.channel)) return null;
  const where = queue.channel === STATUS_CHANNEL ? 'your status-message webhook; DELETE /statusmessage/config' : 'your webhook; DELETE the pubconfig';
  return sendStandard(deps, reply, 409, queue.recipientDipId, MSG.processingFailed, `messages on ${queue.channel} are pushed to ${where} to pull instead`);
}

/** The oldest unacknowledged messages of a queue, unless its recipient has a webhook for them. */
async function pull(deps: ApiDeps, req: FastifyRequest<Route>, reply: FastifyReply, queue: QueueRef): Promise<FastifyReply> {
  const pushed = pushedInstead(deps, reply, queue);
  if (pushed) return pushed;
  // A misspelt name (maxMesageCount) is refused, as on the publications routes: ignored, it gave the default page.
  const unknown = unknownParameter(req.query, PULL_PARAMETERS, 'a parameter of a pull');
  if (unknown) return sendStandard(deps, reply, 400, queue.recipientDipId, MSG.schemaFailure, unknown.error);
  const q = readQuery<PullQuery>(req.query, PULL_PARAMETERS);
  if ('error' in q) return sendStandard(deps, reply, 400, queue.recipientDipId, MSG.schemaFailure, q.error);
  const max = wholeParam(q.maxMessageCount, deps.config.delivery.defaultMaxMessageCount, 10_000);
  const maxKb = wholeParam(q.maxPayloadSize, deps.config.delivery.defaultMaxPayloadKb, 1_048_576);
  if (typeof max === 'string') return sendStandard(deps, reply, 400, queue.recipientDipId, MSG.schemaFailure, `maxMessageCount (query string) ${max}`);
  if (typeof maxKb === 'string') return sendStandard(deps, reply, 400, queue.recipientDipId, MSG.schemaFailure, `maxPayloadSize (query string) ${maxKb}`);
  const state = await deps.queues.queueState(queue);
  const { ackedSeq } = state;
  // From the settled position: a webhook call sent before the webhook was removed and not yet answered has
  // settled nothing, so its messages are handed out again at the same positions (at-least-once; README,
  // "For recipients"). Not waited for: the call may be under way on another node or delivery process.
  // Accepted as the range says, answered at most delivery.maxPullAnswerKb (a page; the rest follows the acknowledgement).
  const maxBytes = Math.min(maxKb, deps.config.delivery.maxPullAnswerKb) * 1024;
  const read = await deps.queues.readQueue(queue, ackedSeq, max, maxBytes);
  // Up to a copy that cannot be opened (QueueEntry.unreadable): the queue's worker dead-letters it on its sweep.
  const unreadable = read.findIndex((e) => e.unreadable !== undefined);
  const entries = unreadable === -1 ? read : read.slice(0, unreadable);
  // Up to a copy that cannot be made, as a webhook call is.
  const { copies, failure } = await leadingCopies((q, source) => deps.copies.copyFor(q, source), queue, entries);
  if (failure !== null && copies.length === 0) {
    // The recipient's certificate is revoked or expired (a connection provider may still pull for it):
    // nothing is handed out encrypted to it, the messages wait for its new certificate. The puller is told
    // what comes of its next pull: no acknowledgement is owed, and nothing is lost meanwhile.
    if (failure instanceof CopyWithheld) return sendStandard(deps, reply, 409, queue.recipientDipId, MSG.processingFailed, `${failure.message}; pull again once it has: they come in order, encrypted to it, none lost`);
    // No copy can be made of the oldest at all: its queue's worker sets it aside as a dead letter (and tells
    // its sender), as for a webhook; woken now, so the next pull goes on past it.
    if (!(failure instanceof CopyUnmakeable)) throw failure;
    deps.delivery.notify([queue]);
    const seq = entries[0]!.seq;
    return sendStandard(deps, reply, 409, queue.recipientDipId, MSG.processingFailed, `the message at position ${seq} cannot be made for ${queue.recipientDipId}: ${failure.message}; it is set aside as a dead letter and its sender told: pull again`);
  }
  // maxPayloadSize counts the copies as answered (re-encrypted for pattern 2, larger than stored): copiesWithin.
  const fit = copiesWithin(copies.map((c) => Buffer.byteLength(c, 'utf8')), maxBytes);
  const handed = entries.slice(0, fit);
  // Only on an answer that hands the copies out: a 409 that withheld them names no sequence to acknowledge.
  if (handed.length > 0) reply.header(SEQUENCE_HEADER, formatSequence(handed[0]!.seq, handed.at(-1)!.seq));
  reply.header(ACKNOWLEDGED_HEADER, String(ackedSeq));
  // Durable before the answer leaves: its acknowledgement may reach another node, which checks it
  // against the store. One write per pull that hands out something new; none for the same range again.
  const mark = pulledMark(state, handed.at(-1)?.seq);
  if (mark !== null) await deps.queues.markPulled(queue, mark);
  return sendSigned(deps, req, reply, 200, `[${copies.slice(0, fit).join(',')}]`);
}

/** Moves a queue's durable position to `sequence`; what it passes is delivered, as reports and journeys count it. */
async function acknowledge(deps: ApiDeps, reply: FastifyReply, queue: QueueRef, sequence: number): Promise<FastifyReply> {
  // Pushed to a webhook, whose deliveries settle the queue: no pull hands out what an acknowledgement would settle.
  const pushed = pushedInstead(deps, reply, queue);
  if (pushed) return pushed;
  const state = await deps.queues.queueState(queue);
  const decision = judgeAck(state, sequence);
  // Past what any pull handed out: those messages were never read, and acknowledging them would lose them.
  if (decision.kind === 'refused') return sendStandard(deps, reply, 400, queue.recipientDipId, MSG.schemaFailure, decision.help);
  // Only one past the settled position delivers anything: one at or behind it (a repeat, or another puller
  // of the queue, on another node say, went further) is no error, and journals nothing.
  if (decision.kind === 'advance') {
    // The recipient has read them: their delivery (spec 5.11.1, latency "to the time the recipient reads
    // the message"), journalled before the position moves. The other order could lose it: a journal write
    // failing after the settle is answered 503, and the ack sent again finds nothing left to acknowledge.
    // An ack sent again after a 503 is a new attempt with an ID of its own: when the first one's record
    // went through (a lost answer, or the settle failed), the journal holds the range twice.
    const startedAt = deps.clock.now();
    await deps.journal.recordAttempt({ attemptId: newAttemptId(startedAt, deps.randomBytes), queue, firstSeq: state.ackedSeq + 1, lastSeq: sequence, url: PULL_ACKNOWLEDGED, startedAt, latencyMs: 0, status: null, verdict: 'delivered', error: null });
  }
  // Settled and recorded as the recipient's acknowledged position in one step, which says where the positions
  // it accounts for begin: what the DIP set aside among them (gone stale while pulled: its sender told "not
  // delivered") is named in the answer, once, or the recipient believes it delivered them (set-aside-unseen.ts).
  // One behind the recipient's acknowledged position moves nothing; one at the settled position, only the
  // recipient's (nothing, for a recipient that never had a message: it has no queue).
  const from = await deps.queues.acknowledge(queue, sequence);
  const setAside = await setAsideUnseen(deps.deadLetters, queue, from, sequence);
  return sendAcknowledged(deps, reply, queue, decision.kind === 'unchanged' ? decision.help : `acknowledged up to ${sequence}`, setAside);
}

/**
 * An acknowledgement's 200: MSG0000 with its help, then an entry per message in its range the DIP set aside
 * (its transaction ID, MSG1000 and why): still 200, the position moved, but not all of it was delivered.
 */
function sendAcknowledged(deps: ApiDeps, reply: FastifyReply, queue: QueueRef, said: string, setAside: readonly SetAsideRun[]): FastifyReply {
  if (setAside.length === 0) return sendStandard(deps, reply, 200, queue.recipientDipId, MSG.success, said);
  const provider = providerFor(reply.request, queue.recipientDipId);
  const entries = [{ message: MSG.success, help: clipHelp(setAsideHelp(said, setAside)) }, ...setAsideEntries(setAside)].map((e) => ({ ...e, DIPConnectionProviderID: provider }));
  return reply.code(200).send(standardResponse(new Date(deps.clock.now()), deps.config.dipId, queue.recipientDipId, entries));
}

/** A whole-number query parameter from 1 to `most` (absent: the default), or why the value is not one. */
function wholeParam(value: string | undefined, fallback: number, most: number): number | string {
  if (value === undefined) return fallback;
  const n = /^\d{1,10}$/.test(value) ? Number(value) : NaN;
  return n >= 1 && n <= most ? n : `must be a whole number from 1 to ${most.toLocaleString('en-GB')}, not '${value.slice(0, 40)}'`;
}
