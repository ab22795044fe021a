import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { IncomingMessage } from 'node:http';
import { readFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import type { ConnectionsExhausted } from '../pipeline/connections-exhausted.js';
import { MSG } from '../domain/response-codes.js';
import type { ApiDeps } from './deps.js';
import { senderKey } from './overload.js';
import { drained, sendStandard, tlsPeer } from './request.js';
import { clientAddress } from '../security/address-list.js';

/**
 * Retry-After on a connection refused over the cap: the client's connections already open take the
 * request at once; a new one is taken as soon as one of them closes.
 */
export const CONNECTION_RETRY_AFTER_SECONDS = 1;

/** The cap's state, read at every scrape (src/pipeline/metrics.ts, watchConnections). */
export interface ConnectionStats {
  /** Connections open within the caps, all clients together (a refused one, answered and closing, is not counted). */
  open: number;
  /** Connections refused since the start because their client already had its cap open. */
  refused: number;
}

/** Whom a connection is counted against, and how a refusal names them. */
export interface CapHolder {
  /** Connections with the same key share one cap. */
  key: string;
  /** The recipientID of a refusal (the participant's DIP ID; null when anonymous). */
  caller: string | null;
  /** Who holds the connections already open, in the refusal's help ("1000000001", "the address 192.0.2.7"). */
  who: string;
}

/**
 * A participant, on the participant listener: keyed as the overload guard's fair share keys a sender
 * (senderKey: every DIP ID its certificate names, sorted; a certificate naming none, its fingerprint), so
 * the two limits count the same sender; keyed by the first DIP ID alone, a certificate naming A and B and
 * one naming B and A held a cap each. A refusal names the first DIP ID, as the activity log names the
 * caller. Read once for the socket's life at the end of the handshake (src/api/request.ts).
 */
export function participantHolder(socket: Socket): CapHolder {
  const identity = tlsPeer(socket);
  const caller = identity?.ids[0] ?? null;
  const key = senderKey(socket);
  if (caller !== null) return { key, caller, who: identity!.ids.length > 1 ? [...identity!.ids].sort().join(', ') : caller };
  return { key, caller: null, who: `the certificate ${identity?.peer?.fingerprint256 ?? 'presented'}` };
}

/** The client's address as one host is known by (src/security/address-list.ts). */
export { clientAddress };

/** A client address, on the anonymous listener, which knows nothing else of its callers. */
export function addressHolder(socket: Socket): CapHolder {
  const address = clientAddress(socket);
  return { key: `a:${address}`, caller: null, who: `the address ${address}` };
}

/** Why a request on a connection over the cap is refused, for the listener's own answer to say. */
export interface OverCap {
  /** The holder's recipientID (CapHolder.caller). */
  caller: string | null;
  /** Who holds the connections already open (CapHolder.who). */
  who: string;
  /** Connections the holder had open when this one came. */
  open: number;
  /** The cap. */
  max: number;
}

/**
 * How a listener answers a request refused over the cap, in its own shape (the API's StandardResponse,
 * the portals' HTML page): the reply's status (429), Retry-After and Connection: close are already set.
 */
export type OverCapAnswer = (req: FastifyRequest, reply: FastifyReply, over: OverCap) => FastifyReply | Promise<FastifyReply>;

/** The API listeners' answer over the cap: a StandardResponse whose help names the limit and the holder. */
export function standardOverCap(deps: ApiDeps): OverCapAnswer {
  return (_req, reply, o) =>
    sendStandard(deps, reply, 429, o.caller, MSG.processingFailed, `too many connections: ${o.open} connections from ${o.who} are open; at most ${o.max} at once: reuse them (keep-alive)`);
}

/** Adds `by` to `key`'s count; gone at 0: the map holds the clients connected now, not every one ever seen. */
function count(counts: Map<string, number>, key: string, by: number): void {
  const n = (counts.get(key) ?? 0) + by;
  if (n > 0) counts.set(key, n);
  else counts.delete(key);
}

/**
 * At most `max` connections open at once per holder on a listener: per participant on the participant
 * listener (config `http.maxConnectionsPerClient`, holder participantHolder), per client address on the
 * anonymous one (`publications.anonymous.maxConnectionsPerAddress`, addressHolder) and on the portals'
 * (`portal.maxConnectionsPerAddress`, addressHolder); 0: no cap. Without it one certificate, or on the
 * listeners without one an address, could open thousands of kept-alive TLS connections and take the
 * file descriptors and memory every participant, the store and outbound webhook calls share.
 *
 * Counted once the handshake is done ('secureConnection'), down again when the connection closes. A
 * connection over the cap is not reset unanswered (a client would take that for a network fault and
 * open another): each request on it is answered 429 with Retry-After, in the listener's own shape
 * (`answer`), naming the limit, and the connection is closed after the answer.
 * Per process: each node of a cluster holds its own connections, and counts them.
 */
export function useConnectionCap(
  app: FastifyInstance,
  max: number,
  holderOf: (socket: Socket) => CapHolder,
  answer: OverCapAnswer,
  /** Whether a request still waits for a 100 Continue the listener has not sent (it sends none once refused). */
  awaitsContinue: (req: IncomingMessage) => boolean = () => false,
): () => ConnectionStats {
  const stats: ConnectionStats = { open: 0, refused: 0 };
  if (max <= 0) return () => ({ ...stats });
  const openBy = new Map<string, number>();
  /** Over-cap connections waiting for their request (to answer it 429), per holder. */
  const waitingBy = new Map<string, number>();
  /** Connections over the cap, with what their answers say. */
  const over = new WeakMap<Socket, OverCap>();
  app.server.on('secureConnection', (socket: Socket) => {
    // Destroyed by an earlier listener (a refused certificate, useCertificateAnswer): every listener still
    // hears the event, but such a socket holds no place.
    if (socket.destroyed) return;
    const { key, caller, who } = holderOf(socket);
    const open = openBy.get(key) ?? 0;
    if (open >= max) {
      stats.refused += 1;
      // At most as many again wait for their 429: past that a holder's connections are closed at the
      // handshake. Kept waiting without a bound, one participant's idle connections (opened and never
      // used) took every file descriptor until the header deadline: the fault campaign's 400 from one
      // certificate under a 256-descriptor limit left /health and the operator API unreachable.
      const waiting = waitingBy.get(key) ?? 0;
      if (waiting >= max) {
        socket.destroy();
        return;
      }
      waitingBy.set(key, waiting + 1);
      socket.once('close', () => count(waitingBy, key, -1));
      over.set(socket, { caller, who, open, max });
      // Kept open until its request comes, or until the header deadline (http.headersTimeoutMs) closes it
      // with a 408 as it closes any silent connection: not earlier, though it holds a file descriptor
      // meanwhile (at most `max` of them per holder). Closed sooner, it would lose the 429 of a client that sends its request later than that
      // (one that opens its connection before it has a request for it: a browser's preconnect, a warmed
      // pool) or whose request crosses the close on the wire: it meets a closed or reset connection, takes
      // that for a network fault, and opens another, itself over the cap. A 429 sent before any request
      // answers nothing (a client takes unasked-for bytes for a broken connection, and the request it then
      // writes is reset), and a cap on the over-cap sockets waiting would close those of a burst of parallel
      // requests in the moment before each request arrives. Nor does it hold more than anyone can: a socket
      // that never finishes its TLS handshake holds one for http.handshakeTimeoutMs with no certificate at
      // all. The header deadline bounds every silent connection, and is the setting to lower.
      // Test: hostile/connections ('a request that comes late').
      return;
    }
    openBy.set(key, open + 1);
    stats.open += 1;
    socket.once('close', () => {
      stats.open -= 1;
      count(openBy, key, -1);
    });
  });
  app.addHook('onRequest', async (req, reply) => {
    const refusal = over.get(req.raw.socket);
    if (!refusal) return;
    // The body still arriving is read and dropped first: the connection closes after this answer, and
    // closed with request bytes unread it would send a reset, which makes the client's kernel throw away
    // the answer it had received and not yet read (src/api/server.ts answerAndClose, for the same reason).
    // A sender waiting for 100 Continue sends no body: answered at once, not after the drain's idle pause.
    if (!awaitsContinue(req.raw)) await drained(req.raw);
    reply.header('retry-after', String(CONNECTION_RETRY_AFTER_SECONDS));
    // Node closes the connection once this answer is sent.
    reply.header('connection', 'close');
    reply.code(429);
    return answer(req, reply, refusal);
  });
  return () => ({ ...stats });
}

/** Headroom kept out of the participant listener's overall cap: a quarter of the open-file limit, at least this many. */
const FD_HEADROOM_MIN = 64;

/**
 * The participant listener's overall connection cap when `http.maxConnections` is unset: the process's
 * open-file limit less a quarter of it (at least FD_HEADROOM_MIN), kept for the operator listener, the
 * other listeners, the store's files and connections, and outbound webhook calls; never under 16. A
 * connection still in its handshake counts too (it holds a descriptor). 1024 descriptors: 768; 65,536:
 * 49,152. null when the limit is unknown (not Linux): no cap.
 */
export function participantConnectionLimit(openFiles: number | null): number | null {
  if (openFiles === null) return null;
  return Math.max(16, openFiles - Math.max(FD_HEADROOM_MIN, Math.ceil(openFiles / 4)));
}

/** This process's soft open-file limit (RLIMIT_NOFILE) from /proc/self/limits; null where there is none or it is unlimited. */
export function openFileLimit(limits: () => string = () => readFileSync('/proc/self/limits', 'utf8')): number | null {
  try {
    const soft = /^Max open files\s+(\d+)/m.exec(limits())?.[1];
    return soft === undefined ? null : Number(soft);
  } catch {
    return null;
  }
}

/** Why a connection was closed before its TLS handshake was done (dip_handshakes_refused_total's `reason`). */
export type HandshakeRefusal = 'address' | 'silent' | 'displaced';

/** The handshake guard's counts, read at every scrape (src/pipeline/metrics.ts, watchHandshakes). */
export type HandshakeStats = Record<HandshakeRefusal, number>;

export interface HandshakeLimits {
  /** The listener's overall cap (as useListenerCap sets it); 0: none. */
  max: number;
  /** Connections per client address from their accept; 0: no cap. */
  perAddress: number;
  /** A connection that has sent no byte this long after its accept is closed. */
  firstByteMs: number;
  /** The share of `max` (percent) connections still in their handshake may not take. */
  reservePercent: number;
}

/** A connection accepted and not yet through its handshake. */
interface InHandshake {
  socket: Socket;
  deadline: NodeJS.Timeout;
  /** Gives its place back (its address's and the listener's count), once: at its close, or when displaced. */
  release: () => void;
}

/**
 * What a listener that authenticates at the TLS handshake (the participant listener, mutual TLS) holds
 * against sockets that never authenticate. Its overall cap (useListenerCap) counts a connection from its
 * accept, before any certificate, and the caps per participant (useConnectionCap) only from the end of
 * the handshake: 110 bare TCP sockets sending nothing held every place of a cap of 100, and participants'
 * new connections were closed unanswered until the handshake deadline freed them. So, from the accept:
 *
 * - one client address holds at most `perAddress` connections (one more is closed at once: 'address');
 * - a connection that has sent no byte after `firstByteMs` is closed ('silent'): a TLS client speaks
 *   first, at once; the handshake deadline (http.handshakeTimeoutMs) still bounds one that has begun;
 * - connections still in their handshake take at most (100 - reservePercent) % of `max`, and at a full
 *   listener one place is kept free: past either, the oldest of them is closed for the new one
 *   ('displaced'), and `displaced` is told (the connections-exhausted alarm). A participant's new
 *   connection, which finishes its handshake in a few round trips, so always gets its turn; a flood
 *   must open connections faster than a handshake completes to keep one out.
 *
 * Keyed by the socket's remote address and port (unique among a listener's open connections), which the
 * TLS socket that 'secureConnection' gives reads from the same TCP connection.
 */
export function useHandshakeGuard(app: FastifyInstance, limits: HandshakeLimits, displaced: (why: string) => void): () => HandshakeStats {
  const stats: HandshakeStats = { address: 0, silent: 0, displaced: 0 };
  const byAddress = new Map<string, number>();
  /** In accept order (a Map iterates in insertion order): the first is the oldest. */
  const inHandshake = new Map<string, InHandshake>();
  const handshakeCap = limits.max > 0 ? Math.max(1, Math.floor((limits.max * (100 - limits.reservePercent)) / 100)) : Number.POSITIVE_INFINITY;
  let open = 0;
  const connectionKey = (socket: Socket) => `${socket.remoteAddress ?? ''}|${socket.remotePort ?? ''}`;
  /** Out of the handshakes: through it, closed or displaced (`socket`: only if it is still this one's entry). */
  const done = (key: string, socket?: Socket) => {
    const pending = inHandshake.get(key);
    if (!pending || (socket && pending.socket !== socket)) return;
    clearTimeout(pending.deadline);
    inHandshake.delete(key);
  };
  // Registered after the TLS server's own listener, which has wrapped the socket by now: destroying the raw
  // socket closes its TLS socket with it (a 'tlsClientError' the activity log records).
  app.server.on('connection', (socket: Socket) => {
    const address = clientAddress(socket);
    if (limits.perAddress > 0 && (byAddress.get(address) ?? 0) >= limits.perAddress) {
      stats.address += 1;
      socket.destroy();
      return;
    }
    count(byAddress, address, 1);
    open += 1;
    let held = true;
    const key = connectionKey(socket);
    const release = () => {
      if (!held) return;
      held = false;
      open -= 1;
      count(byAddress, address, -1);
      done(key, socket);
    };
    const deadline = setTimeout(() => {
      if (socket.bytesRead > 0 || !inHandshake.has(key)) return;
      stats.silent += 1;
      socket.destroy();
    }, limits.firstByteMs).unref();
    inHandshake.set(key, { socket, deadline, release });
    socket.once('close', release);
    for (;;) {
      const overShare = inHandshake.size > handshakeCap;
      if (!overShare && !(limits.max > 0 && open >= limits.max)) break;
      const oldest = inHandshake.values().next().value;
      if (oldest === undefined || oldest.socket === socket) break;
      stats.displaced += 1;
      // Out of the counts at once, not at its 'close' (which comes later): the loop sees the place it frees.
      oldest.release();
      oldest.socket.destroy();
      displaced(
        overShare
          ? `connections still in their TLS handshake hold their share of it (${handshakeCap} of ${limits.max}): the oldest closed for a new one`
          : `its cap of ${limits.max} connections at once is reached: the oldest connection still in its TLS handshake closed for a new one`,
      );
    }
  });
  app.server.on('secureConnection', (socket: Socket) => done(connectionKey(socket)));
  return () => ({ ...stats });
}

/**
 * Holds `app`'s listener to `max` connections at once, all clients together (0: none), and tells `exhausted`
 * each connection refused for it, and each accept that failed for want of file descriptors (which Node
 * otherwise reports as a server error no one logs).
 */
export function useListenerCap(app: FastifyInstance, listener: string, max: number, exhausted: Pick<ConnectionsExhausted, 'refused'> | undefined): void {
  if (max > 0) {
    app.server.maxConnections = max;
    app.server.on('drop', () => exhausted?.refused(listener, `its cap of ${max} connections at once is reached`));
  }
  app.server.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EMFILE' || err.code === 'ENFILE') exhausted?.refused(listener, `the process is out of file descriptors (${err.code})`);
  });
}
