import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { buildKeyTree, normaliseKeys, type KeyNode, type NormaliseProblem } from '../catalogue/key-case.js';
import type { JsonSchema } from '../catalogue/types.js';
import type { Participant } from '../domain/participant.js';
import { MSG } from '../domain/response-codes.js';
import { authorise, type Access, type Scope } from '../pipeline/access.js';
import { authenticate } from '../pipeline/authenticate.js';
import type { Channel } from '../pipeline/channels.js';
import type { ApiDeps } from './deps.js';
import { firstDuplicateName, nameGivenTwice } from '../security/json-depth.js';
import { firstLoneSurrogate, hasSurrogateEscape, loneSurrogateHelp } from '../security/json-strings.js';
import { compileRequestSchema } from './schemas.js';
import { evidence, sendStandard } from './request.js';

/**
 * Who may call a route (src/pipeline/access.ts: the one rule the portal applies too), once the API key,
 * mTLS certificate and signature agree on the caller. Whatever IDs a caller puts in a URL, it only ever
 * reaches its own queues and configuration.
 */
export type { Access };

export type Admitted = Scope;

declare module 'fastify' {
  interface FastifyContextConfig {
    /**
     * Set on every route that takes a signed call, except those whose pipeline reads the raw batch itself
     * (POST /dip-channel/{id}, /validate/{id}/{event}): the guard then authenticates before anything else.
     */
    access?: Access;
  }
  interface FastifyRequest {
    /** Set by the guard before validation on routes with `config.access`. */
    admitted: Admitted | null;
  }
}

/** The admitted caller of a guarded route (the guard ran: a handler never sees an unadmitted call). */
export function admitted(req: FastifyRequest): Admitted {
  if (!req.admitted) throw new Error(`${req.method} ${req.url}: route without config.access reads the caller`);
  return req.admitted;
}

/** The admitted caller of a 'recipient' route and the channel of its URL. */
export function recipientScope(req: FastifyRequest): { caller: Participant; channel: Channel } {
  const { caller, channel } = admitted(req);
  if (!channel) throw new Error(`${req.method} ${req.url}: only 'recipient' routes have a channel`);
  return { caller, channel };
}

const keyTrees = new WeakMap<object, KeyNode>();

/**
 * Every guarded request, before Fastify validates it against the route's body schema: authenticate
 * (the signature covers the raw bytes, so they are still raw here), then parse the JSON body and fold
 * its field names to the schema's case (ingress does not enforce case). A body that is not JSON, or
 * whatever JSON value it is that the schema refuses (null, 0, "", [], {} …), is answered 400 like any
 * other: no route reads a body the schema has not accepted.
 */
export function registerGuard(app: FastifyInstance, deps: ApiDeps): void {
  app.decorateRequest('admitted', null);
  app.setValidatorCompiler(compileRequestSchema);
  app.addHook('preValidation', async (req, reply) => {
    const access = req.routeOptions.config.access;
    if (!access) return;
    const who = await admit(deps, req, reply, access);
    if (!who) return reply;
    req.admitted = who;
    const schema = req.routeOptions.schema?.body as JsonSchema | undefined;
    if (!schema) return; // the operation takes no body: whatever came is ignored
    const raw = Buffer.isBuffer(req.body) ? req.body.toString('utf8') : '';
    let parsed: unknown;
    try {
      parsed = JSON.parse(raw);
    } catch (e) {
      return sendStandard(deps, reply, 400, who.caller.dipId, MSG.schemaFailure, `the body is not valid JSON: ${(e as Error).message}`);
    }
    // As for messages (src/pipeline/ingest.ts): a name given twice is read as its last value by JSON.parse alone.
    const duplicate = firstDuplicateName(raw);
    if (duplicate) return sendStandard(deps, reply, 400, who.caller.dipId, MSG.schemaFailure, nameGivenTwice(duplicate));
    // As for messages too: a lone surrogate is no text, and a status message carrying one is passed on to
    // its recipient (a strict reader refuses it there); looked for only where the body escapes a surrogate.
    const lone = Buffer.isBuffer(req.body) && hasSurrogateEscape(req.body) ? firstLoneSurrogate(parsed) : null;
    if (lone !== null) return sendStandard(deps, reply, 400, who.caller.dipId, MSG.schemaFailure, loneSurrogateHelp(lone));
    let tree = keyTrees.get(schema);
    if (!tree) {
      tree = buildKeyTree(schema);
      keyTrees.set(schema, tree);
    }
    const problems: NormaliseProblem[] = [];
    req.body = normaliseKeys(parsed, tree, problems);
    if (problems.length > 0) {
      const twice = problems.slice(0, 5).map((p) => `${p.path} is given twice (as "${p.key}" and in another case)`);
      return sendStandard(deps, reply, 400, who.caller.dipId, MSG.schemaFailure, `${twice.join('; ')}; field names are case-insensitive`);
    }
    return undefined;
  });
}

/** Sends the refusal itself and returns null when the call may not proceed. */
async function admit(deps: ApiDeps, req: FastifyRequest, reply: FastifyReply, access: Access): Promise<Admitted | null> {
  const auth = await authenticate(deps.registry, evidence(deps, req), new Date(deps.clock.now()), deps.config.maxClockSkewSeconds * 1000);
  deps.clockCheck?.dated(auth.dated);
  if (!auth.ok) {
    void sendStandard(deps, reply, auth.status, null, MSG.processingFailed, auth.help);
    return null;
  }
  const params = req.params as { id?: string; recipientId?: string };
  const scope = authorise(deps.registry, (id) => deps.channel(id), auth.participant, access, { recipientId: params.recipientId, channelId: params.id });
  if (!scope.ok) {
    void sendStandard(deps, reply, scope.status, scope.callerDipId, scope.message, scope.help);
    return null;
  }
  return { caller: scope.caller, channel: scope.channel, authenticated: scope.authenticated };
}
