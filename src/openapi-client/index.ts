import createClient, { type Client } from 'openapi-fetch';
import type { paths as OperatorPaths } from './generated/operator-api.js';
import type { paths as ParticipantPaths } from './generated/participant-api.js';

/**
 * Typed clients of OpenDIP's APIs, their types generated from the OpenAPI documents the listeners
 * serve (`npm run api:generate` writes ./generated; test/api-client.test.ts fails when they are stale).
 * A route whose schema changes changes these types, so a caller that no longer fits (the portals) stops
 * compiling instead of failing at run time. Imports nothing of OpenDIP: the types are the contract.
 */
export type { OperatorPaths, ParticipantPaths };
/** Answers read as JSON (the reports' CSV variant is for `format=csv`, which these callers do not ask for). */
export type OperatorApi = Client<OperatorPaths, 'application/json'>;
/** The operator API's refusal: `{"error": "<what and why>"}`. */
export type OperatorError = import('./generated/operator-api.js').components['schemas']['OperatorError'];

/** What carries a request: `fetch` itself, or an in-process transport (the portals: Fastify inject). */
export type Transport = (request: Request) => Promise<Response>;

/** The origin requests are addressed to when the transport ignores it (in-process calls). */
export const IN_PROCESS_ORIGIN = 'http://in-process.invalid';

/** A client of the operator API over `transport`. */
export function operatorApi(transport: Transport, baseUrl = IN_PROCESS_ORIGIN): OperatorApi {
  return createClient<OperatorPaths, 'application/json'>({ baseUrl, fetch: transport });
}

/** The four headers of a signed call: the signing transport (DipClient.transport()) adds them to every request. */
type SignatureHeader = 'X-DIP-Signature' | 'X-DIP-Signature-Date' | 'X-DIP-Content-Hash' | 'X-DIP-Signature-Certificate';
type WithoutSignature<Op> = Op extends { parameters: { header: infer H } }
  ? Omit<Op, 'parameters'> & { parameters: Omit<Op['parameters'], 'header'> & { header?: Omit<H, SignatureHeader> } }
  : Op;
/** The participant API's paths as a caller over a signing transport writes them: the signature headers left to it. */
export type SignedParticipantPaths = { [P in keyof ParticipantPaths]: { [M in keyof ParticipantPaths[P]]: WithoutSignature<ParticipantPaths[P][M]> } };

/** The participant API: answers read as JSON. Every call must be signed: run it over a signing transport (DipClient.transport()). */
export type ParticipantApi = Client<SignedParticipantPaths, 'application/json'>;

/** A client of the participant API at `baseUrl` (the transport addresses the DIP itself; the path and query are what count). */
export function participantApi(transport: Transport, baseUrl = IN_PROCESS_ORIGIN): ParticipantApi {
  return createClient<SignedParticipantPaths, 'application/json'>({ baseUrl, fetch: transport });
}
