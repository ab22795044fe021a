import { CONTINUATION_HEADER } from '../security/continuation-token.js';
import { Readable } from 'node:stream';
import { Agent, request, type Dispatcher } from 'undici';
import { requestedUrl } from '../domain/callback-url.js';
import { parseSequence, SEQUENCE_HEADER } from '../domain/sequence.js';
import type { StandardResponse } from '../domain/standard-response.js';
import { notFromDip, Signer, verifyDipSignature } from '../security/signature.js';

export interface DipClientOptions {
  /** e.g. https://localhost:8443 */
  baseUrl: string;
  apiKey: string;
  /** The participant's key and certificate: used for mutual TLS and to sign each request. */
  keyPem: string;
  certPem: string;
  /** CA that issued the DIP's server certificate. */
  caPem: string;
  connections?: number;
  /** The participant's clock, for the signature date (default: the system clock). */
  now?: () => Date;
  /**
   * The CAs the DIP's signing certificate chains to (the environment's CA): when given, replayPages() takes
   * a page only when it is the DIP's as received (answerNotFromDip: its bytes, status and continuation
   * token), so a page whose token was swapped on the way is refused, not followed. Unset: not checked.
   */
  answerCas?: string[];
}

export interface DipAnswer<T = StandardResponse> {
  status: number;
  body: T;
  headers: Record<string, string | undefined>;
  /**
   * The answer's bytes as received, and the URL requested (and signed): what a pull or replay answer's
   * X-DIP-* signature covers, with the request's method (README "Pull instead of webhooks").
   */
  raw: Buffer;
  url: string;
}

/** A replay or requeue filter; what is left out goes as null (the published MessageRequest requires the field). */
export interface ReplayFilter {
  datetimeFrom?: string | null;
  datetimeTo?: string | null;
  eventCode?: string | null;
  MPAN?: string | null;
  transactionIDs?: string[];
  version?: string | null;
}

function messageRequest(f: ReplayFilter): object {
  return { datetimeFrom: null, datetimeTo: null, eventCode: null, MPAN: null, version: null, ...f };
}

/** A publication as a withdrawal answers it (the API's metadata, `withdrawn` saying who, when and why). */
export interface WithdrawnPublication {
  publicationID: string;
  withdrawn: { at: string; by: string; reason: string };
  [field: string]: unknown;
}

/** The header a 206 replay answer names the next page in, and the next request sends back (README "Replay and requeue at scale"). */
export { CONTINUATION_HEADER };

/** One page of a replay, as replayPages() yields it. */
export interface ReplayPage {
  /** The replayed copies on this page (none on an empty last page: api.emptyReplay `empty-array` or `no-content`). */
  messages: unknown[];
  /** The token this page was asked for with (undefined: the first page). */
  continuation: string | undefined;
}

/** One page of a publications listing (GET /dip-channel/{id}/publications): its publications and the token it was asked with. */
export interface PublicationListingPage {
  publications: Array<Record<string, unknown>>;
  /** The token this page was asked for with (undefined: the first page). */
  continuation: string | undefined;
}

/**
 * A paged read (a replay, a publications listing) that stopped before its last page: the DIP refused a page
 * (`answer`) or could not be reached (`cause`). `continuation` (undefined: from the start) asks for the page
 * that failed, so nothing is lost or repeated.
 */
export class PagesInterrupted extends Error {
  constructor(
    message: string,
    readonly continuation: string | undefined,
    readonly answer: DipAnswer<unknown> | undefined,
    options?: { cause: unknown },
  ) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** A publications listing that stopped before its last page: publicationPages(…, continuation) resumes it. */
export class ListingInterrupted extends PagesInterrupted {}

/** A replay that stopped before its last page: the same filter sent again with `continuation` resumes it. */
export class ReplayInterrupted extends PagesInterrupted {}

/**
 * Why a pull or replay answer is not the DIP's, as received, or null when it is (README "Pull instead of
 * webhooks"): its X-DIP-* signature verifies over the answer's own string (`RESPONSE <status>;METHOD;url;
 * date;hash;continuation`, answerStringToSign) for the `method` request this client sent to `answer.url`,
 * with the X-Continuation-Token received (empty when none came), the hash is that of the bytes as received,
 * the date is within `maxSkewMs`, and the signer is the DIP (its certificate chains to one of `trustedCas`
 * and names no participant: notFromDip, as a webhook receiver checks). An empty answer (`[]`) without a
 * continuation token comes unsigned and passes as such.
 */
export function answerNotFromDip(method: string, answer: DipAnswer<unknown>, trustedCas: string[], now = new Date(), maxSkewMs = 300_000): string | null {
  const continuation = answer.headers[CONTINUATION_HEADER] ?? null;
  // An empty answer (nothing to pull or replay) is not signed: it vouches for no message, and names no next page.
  if (answer.status === 200 && continuation === null && answer.raw.toString('utf8') === '[]' && answer.headers['x-dip-signature'] === undefined) return null;
  const r = verifyDipSignature({ method, url: answer.url, body: answer.raw, headers: answer.headers, now, maxSkewMs, answer: { status: answer.status, continuation } });
  if (!r.ok) return `${r.reason}: ${r.detail}`;
  return notFromDip(r.certificate, trustedCas);
}

/**
 * Every page of a paged read, in order: follows the 206 answers' continuation tokens until the answer that
 * ends it, from `continuation` on when given. `page` reads a 200, 204 or 206 answer's page (null: not one;
 * a string: why the answer is refused). Throws `Interrupted` naming the token that asks again for the page
 * that failed: a 206 without a token would end the read early and silently, and the same token again would
 * page for ever (a faulty DIP or proxy).
 */
async function* followPages<A extends DipAnswer<unknown>, P>(
  continuation: string | undefined,
  ask: (token: string | undefined) => Promise<A>,
  page: (answer: A, token: string | undefined) => P | string | null,
  Interrupted: new (message: string, continuation: string | undefined, answer: DipAnswer<unknown> | undefined, options?: { cause: unknown }) => PagesInterrupted,
): AsyncGenerator<P, void, undefined> {
  let token = continuation;
  for (;;) {
    let answer: A;
    try {
      answer = await ask(token);
    } catch (err) {
      throw new Interrupted(`the DIP could not be reached: ${(err as Error).message}`, token, undefined, { cause: err });
    }
    const more = answer.status === 206;
    const next = answer.headers[CONTINUATION_HEADER];
    const read = answer.status === 200 || answer.status === 204 || more ? page(answer, token) : null;
    if (typeof read === 'string') throw new Interrupted(read, token, answer);
    if (read === null) throw new Interrupted(`the DIP answered ${answer.status}`, token, answer);
    if (more && next === undefined) throw new Interrupted(`the DIP answered 206 without ${CONTINUATION_HEADER}`, token, answer);
    yield read;
    if (!more) return;
    // eslint-disable-next-line security/detect-possible-timing-attacks -- the client compares two tokens it was given; no secret is checked here
    if (next === token) throw new Interrupted('the DIP answered 206 with the token it was sent', token, answer);
    token = next;
  }
}

/**
 * A participant's side of the DIP API 2.1.0: every call over mutual TLS, signed with the X-DIP-* headers.
 * The CLI, the tests, the simulator and the benchmarks all talk to the DIP through this one client.
 */
export class DipClient {
  private readonly agent: Agent;
  private readonly signer: Signer;
  /** The last signature date this client used (ms): see signingDate(). */
  private lastSigned = Number.NEGATIVE_INFINITY;

  constructor(private readonly opts: DipClientOptions) {
    this.signer = new Signer(opts.keyPem, opts.certPem);
    this.agent = new Agent({
      connections: opts.connections ?? 8,
      keepAliveTimeout: 60_000,
      connect: { ca: opts.caPem, cert: opts.certPem, key: opts.keyPem },
    });
  }

  submit(channel: string, items: unknown[] | string): Promise<DipAnswer> {
    return this.call('POST', `/dip-channel/${channel}`, typeof items === 'string' ? items : JSON.stringify(items));
  }

  setWebhook(channel: string, recipientId: string, config: { callbackURL: string; maxMessageCount?: number; maxPayloadSize?: number }): Promise<DipAnswer> {
    return this.call('POST', `/dip-channel/${channel}/pubconfig/${recipientId}`, JSON.stringify(config));
  }

  deleteWebhook(channel: string, recipientId: string): Promise<DipAnswer<StandardResponse | null>> {
    return this.call('DELETE', `/dip-channel/${channel}/pubconfig/${recipientId}`, '');
  }

  /**
   * One page of a replay: the first, or the one `continuation` (the X-Continuation-Token of a 206 answer
   * to the same filter) names. A 206 answer means more pages follow: replayPages() follows them all.
   */
  replay(channel: string, recipientId: string, filter: ReplayFilter, continuation?: string): Promise<DipAnswer<unknown>> {
    return this.call('POST', `/dip-channel/${channel}/replay/${recipientId}`, JSON.stringify(messageRequest(filter)), continuation === undefined ? {} : { [CONTINUATION_HEADER]: continuation });
  }

  /**
   * Every page of a replay, in order, one at a time (so no more than a page, 1,000 messages, is held):
   * follows the 206 answers' continuation tokens until the 200 (or 204) that ends it. From `continuation`
   * on when given: the token a ReplayInterrupted named, to resume. Throws ReplayInterrupted when a page
   * is refused or not answered, naming the token that asks for that page again.
   */
  async *replayPages(channel: string, recipientId: string, filter: ReplayFilter, continuation?: string): AsyncGenerator<ReplayPage, void, undefined> {
    yield* followPages(
      continuation,
      (token) => this.replay(channel, recipientId, filter, token),
      (answer, token) => {
        // A page of messages is taken only as the DIP signed it, with the token it names next.
        const forged = this.opts.answerCas && (answer.status === 200 || answer.status === 206) ? answerNotFromDip('POST', answer, this.opts.answerCas, this.opts.now?.()) : null;
        if (forged) return `the answer is not the DIP's: ${forged}`;
        if (answer.status === 204) return { messages: [], continuation: token };
        return Array.isArray(answer.body) ? { messages: answer.body as unknown[], continuation: token } : null;
      },
      ReplayInterrupted,
    );
  }

  /**
   * One page of the publications listed on a channel (`query`: type, version, from, to, effectiveOn, limit),
   * the first or the one `continuation` names: a 206 answer's X-Continuation-Token, sent back with the same
   * query. publicationPages() follows them all.
   */
  listPublications(channel: string, query: Record<string, string> = {}, continuation?: string): Promise<DipAnswer<{ publications: Array<Record<string, unknown>> }>> {
    const search = new URLSearchParams(query).toString();
    return this.call('GET', `/dip-channel/${channel}/publications${search === '' ? '' : `?${search}`}`, '', continuation === undefined ? {} : { [CONTINUATION_HEADER]: continuation });
  }

  /**
   * Every page of a publications listing, in order: follows the 206 answers' continuation tokens until the
   * 200 that ends it (a listing cut at `limit` is a 206; only following it lists every publication). From
   * `continuation` on when given. Throws ListingInterrupted when a page is refused or not answered, naming
   * the token that asks for that page again.
   */
  async *publicationPages(channel: string, query: Record<string, string> = {}, continuation?: string): AsyncGenerator<PublicationListingPage, void, undefined> {
    yield* followPages(
      continuation,
      (token) => this.listPublications(channel, query, token),
      (answer, token) => (Array.isArray(answer.body?.publications) ? { publications: answer.body.publications, continuation: token } : null),
      ListingInterrupted,
    );
  }

  requeue(channel: string, recipientId: string, filter: ReplayFilter): Promise<DipAnswer> {
    return this.call('POST', `/dip-channel/${channel}/requeue/${recipientId}`, JSON.stringify(messageRequest(filter)));
  }

  /** POST /statusmessage: tell the senders of messages this participant received about a problem with them. */
  statusMessage(entries: object[]): Promise<DipAnswer> {
    return this.call('POST', '/statusmessage', JSON.stringify(entries));
  }

  setStatusWebhook(recipientId: string, config: { callbackURL: string; maxMessageCount?: number; maxPayloadSize?: number }): Promise<DipAnswer> {
    return this.call('POST', `/statusmessage/config/${recipientId}`, JSON.stringify(config));
  }

  /** Pull consumption: the oldest unacknowledged messages and their queue positions. */
  async pull(channel: string, recipientId: string, maxMessageCount = 100): Promise<DipAnswer<unknown[]> & { firstSeq: number | null; lastSeq: number | null }> {
    const answer = await this.call<unknown[]>('GET', `/dip-channel/${channel}/pull/${recipientId}?maxMessageCount=${maxMessageCount}`, '');
    const seq = parseSequence(answer.headers[SEQUENCE_HEADER]);
    return { ...answer, firstSeq: seq?.first ?? null, lastSeq: seq?.last ?? null };
  }

  ack(channel: string, recipientId: string, sequence: number): Promise<DipAnswer> {
    return this.call('POST', `/dip-channel/${channel}/ack/${recipientId}`, JSON.stringify({ sequence }));
  }

  /**
   * The URL requested for a path, as undici sends it (requestedUrl()): the signature must cover that
   * string, since the DIP rebuilds it from the Host header and request target it receives (a base URL
   * with `:443`, or a path with a space or an empty `?`, is not sent as written).
   */
  private target(path: string): string {
    const written = `${this.opts.baseUrl.replace(/\/$/, '')}${path}`;
    // Unparseable: undici refuses it too, with its own error; nothing is sent.
    return requestedUrl(written) ?? written;
  }

  /** Sends a signed call; `headers` may override or add headers (tests use it to forge requests). */
  async call<T = StandardResponse>(method: string, path: string, body: string, headers: Record<string, string> = {}): Promise<DipAnswer<T>> {
    const url = this.target(path);
    const signature = await this.signer.sign(method, url, body, this.signingDate());
    const res = await request(url, {
      method: method as 'POST' | 'GET' | 'DELETE',
      body: body === '' ? undefined : body,
      dispatcher: this.agent,
      headers: { 'content-type': 'application/json', 'x-api-key': this.opts.apiKey, ...signature, ...headers },
    });
    return this.answer<T>(res, url);
  }

  /**
   * A fetch-shaped transport that sends each request signed as this participant, over its mutual-TLS
   * connection: the typed participant client (src/openapi-client, participantApi) runs over it. The
   * request's own headers go out with the call's (an X-Continuation-Token sent back), and the answer is given
   * as received, its headers and its very bytes: what a signed answer's X-DIP-* headers cover, and the token
   * a 206 names, for the caller to verify (answerNotFromDip) and follow.
   */
  transport(): (request: Request) => Promise<Response> {
    return async (request) => {
      const url = new URL(request.url);
      const answer = await this.call<unknown>(request.method, `${url.pathname}${url.search}`, request.body ? await request.text() : '', Object.fromEntries(request.headers));
      const headers = Object.entries(answer.headers).filter((e): e is [string, string] => e[1] !== undefined && !HOP_BY_HOP.has(e[0]));
      return new Response(answer.raw.length === 0 ? null : new Uint8Array(answer.raw), { status: answer.status, headers });
    };
  }

  private async answer<T = StandardResponse>(res: Dispatcher.ResponseData, url: string): Promise<DipAnswer<T>> {
    const raw = Buffer.from(await res.body.arrayBuffer());
    const text = raw.toString('utf8');
    return { status: res.statusCode, body: (text === '' ? null : JSON.parse(text)) as T, headers: flatHeaders(res.headers), raw, url };
  }

  /**
   * Publishes a large payload (Pattern B) from a stream: the signature covers `sha256` (base64 SHA-256 of
   * the bytes, computed beforehand), and the bytes stream as they are read. `query` carries the metadata
   * (type, version, format, compression, effectiveFrom, effectiveTo, fileName, description, public).
   */
  async publish(channel: string, query: Record<string, string>, body: AsyncIterable<Uint8Array> | Buffer, sha256: string, length?: number): Promise<DipAnswer> {
    const url = this.target(`/dip-channel/${channel}/publications?${new URLSearchParams(query).toString()}`);
    const signature = await this.signer.signHash('POST', url, sha256, this.signingDate());
    const res = await request(url, {
      method: 'POST',
      body: Buffer.isBuffer(body) ? body : Readable.from(body),
      dispatcher: this.agent,
      headers: {
        'content-type': 'application/octet-stream',
        'x-api-key': this.opts.apiKey,
        ...(length !== undefined ? { 'content-length': String(length) } : {}),
        ...signature,
      },
    });
    return this.answer(res, url);
  }

  /**
   * Withdraws a publication this participant published (the wrong file, or the wrong channel): POST
   * /dip-channel/{id}/publications/{publication-id}/withdraw, an OpenDIP route. `reason` (1 to 500
   * characters) is said in every later 410 and in the withdrawal notice its recipients are sent. 200: the
   * StandardResponse with the publication as it now is; 404 for an ID that is not one of its own; 409 when
   * withdrawn already.
   */
  withdrawPublication(channel: string, publicationId: string, reason: string): Promise<DipAnswer<StandardResponse & { publication?: WithdrawnPublication }>> {
    return this.call('POST', `/dip-channel/${channel}/publications/${encodeURIComponent(publicationId)}/withdraw`, JSON.stringify({ reason }));
  }

  /** A signed GET whose body is streamed to the caller (a publication's content): status, headers and the body stream. */
  async download(path: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: Record<string, string | undefined>; body: Readable }> {
    const url = this.target(path);
    const signature = await this.signer.sign('GET', url, '', this.signingDate());
    const res = await request(url, { method: 'GET', dispatcher: this.agent, headers: { 'x-api-key': this.opts.apiKey, ...signature, ...headers } });
    return { status: res.statusCode, headers: flatHeaders(res.headers), body: res.body };
  }

  /**
   * The date to sign a request with: now, unless this client already signed with that millisecond (or one
   * just after it), then the millisecond after the last. The signature covers method, URL, date and body
   * hash and RSA PKCS#1 v1.5 is deterministic, so two identical requests signed in one millisecond (parallel
   * downloads of one publication) carried the same X-DIP-Signature and the DIP refused all but the first
   * as replays. Only a clock within a second behind the last date is moved on: a clock set back further
   * (a test's) is taken as it is.
   */
  private signingDate(): Date {
    let ms = (this.opts.now?.() ?? new Date()).getTime();
    if (ms <= this.lastSigned && this.lastSigned - ms < 1000) ms = this.lastSigned + 1;
    this.lastSigned = ms;
    return new Date(ms);
  }

  async close(): Promise<void> {
    await this.agent.close();
  }
}

/** Headers of one connection's framing, not of the answer: a Response rebuilt from the bytes sets its own. */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'content-length']);

function flatHeaders(headers: Record<string, string | string[] | undefined>): Record<string, string | undefined> {
  return Object.fromEntries(Object.entries(headers).map(([k, v]) => [k, Array.isArray(v) ? v.join(', ') : v]));
}
