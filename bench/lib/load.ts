import { Agent, request } from 'undici';
import { Signer } from '../../src/security/signature.js';
import { buildIF021, mpanCore } from '../../src/sim/messages.js';
import type { Credentials } from './market.js';
import { sleep, hostNow } from './util.js';

const PLACEHOLDER = 'QQQQBENCHSUFFIXQQQQ';

/**
 * IF-021 messages as the simulator builds them (src/sim/messages.ts), made cheap to mint in bulk: a few
 * dozen templates (different MPANs) are serialised once and only the sender unique reference's last
 * segment changes, to `p<phase>x<index>` so the receivers can tell which message arrived.
 */
export class MessageFactory {
  private readonly templates: Array<[string, string]> = [];

  constructor(senderDipId: string, primaryRecipients: string[], variants = 32) {
    const now = new Date();
    for (let v = 0; v < variants; v++) {
      const item = buildIF021({ senderDipId, senderRole: 'SDS', primaryRecipients, uniqueSuffix: PLACEHOLDER, mpan: mpanCore(`bench-${v}`), now });
      const parts = JSON.stringify(item).split(PLACEHOLDER);
      if (parts.length !== 2) throw new Error('MessageFactory: the placeholder must occur exactly once');
      this.templates.push([parts[0]!, parts[1]!]);
    }
  }

  item(phase: number, index: number): string {
    const [a, b] = this.templates[index % this.templates.length]!;
    return `${a}p${phase}x${index}${b}`;
  }

  /** A JSON array of `count` messages, indices first … first+count-1. */
  body(phase: number, first: number, count: number): string {
    const items: string[] = new Array<string>(count);
    for (let i = 0; i < count; i++) items[i] = this.item(phase, first + i);
    return `[${items.join(',')}]`;
  }

  /** Bytes of one serialised message. */
  get itemBytes(): number {
    return Buffer.byteLength(this.item(0, 0));
  }
}

export interface Prepared {
  /** Which sender of the pool signed it (and must send it). */
  sender: number;
  body: string;
  headers: Record<string, string>;
  first: number;
  count: number;
}

export interface Answer {
  status: number;
  text: string;
  /** Connection resets met (and retried) on the way. */
  resets: number;
}

/**
 * The load generator's participant side. It does what DipClient.submit does (mutual TLS on kept-alive
 * connections, X-DIP-* signature with the participant's key), with signing split from sending so a
 * benchmark can sign before its clock starts.
 */
export class Sender {
  readonly agent: Agent;
  private readonly signer: Signer;
  readonly url: string;

  constructor(
    baseUrl: string,
    private readonly cred: Credentials,
    caPem: string,
    connections: number,
  ) {
    this.url = `${baseUrl}/dip-channel/IF-021`;
    this.signer = new Signer(cred.keyPem, cred.certPem);
    this.agent = new Agent({ connections, pipelining: 1, keepAliveTimeout: 60_000, connect: { ca: caPem, cert: cred.certPem, key: cred.keyPem } });
  }

  async prepare(body: string, first: number, count: number, sender = 0): Promise<Prepared> {
    const sig = await this.signer.sign('POST', this.url, body);
    return { sender, body, headers: { 'content-type': 'application/json', 'x-api-key': this.cred.apiKey, ...sig }, first, count };
  }

  /**
   * Sends a prepared request. A connection reset before any answer is retried (at most twice), as an
   * adapter would: the DIP answers every request it has read, so a reset means it was not processed.
   */
  async post(p: Prepared): Promise<Answer> {
    let resets = 0;
    for (;;) {
      try {
        const res = await request(this.url, { method: 'POST', body: p.body, headers: p.headers, dispatcher: this.agent, headersTimeout: 120_000, bodyTimeout: 120_000 });
        const text = await res.body.text();
        return { status: res.statusCode, text, resets };
      } catch (e) {
        const err = e as Error & { code?: string };
        if (resets < 2 && (err.code === 'ECONNRESET' || err.code === 'UND_ERR_SOCKET' || err.code === 'EPIPE')) {
          resets++;
          continue;
        }
        return { status: 0, text: `${err.code ?? ''} ${err.message}`, resets };
      }
    }
  }

  async close(): Promise<void> {
    await this.agent.close();
  }
}

/**
 * Several data services sending at once, requests dealt round-robin. Spreading the load matters: the
 * DIP limits each participant's request rate (fair use), as a real market of many senders would not notice.
 */
export class SenderPool {
  readonly senders: Sender[];
  private readonly factories: MessageFactory[];
  private next = 0;

  constructor(baseUrl: string, creds: Credentials[], caPem: string, connectionsEach: number, primaryRecipients: string[]) {
    this.senders = creds.map((c) => new Sender(baseUrl, c, caPem, connectionsEach));
    this.factories = creds.map((c) => new MessageFactory(c.dipId, primaryRecipients));
  }

  get size(): number {
    return this.senders.length;
  }

  /** Signs a request carrying messages first … first+count-1 of `phase`, for the next sender in turn. */
  prepare(phase: number, first: number, count: number): Promise<Prepared> {
    const s = this.next++ % this.senders.length;
    return this.senders[s]!.prepare(this.factories[s]!.body(phase, first, count), first, count, s);
  }

  post(p: Prepared): Promise<Answer> {
    return this.senders[p.sender]!.post(p);
  }

  async close(): Promise<void> {
    await Promise.all(this.senders.map((s) => s.close()));
  }
}

/** Signs many requests with bounded concurrency (the RSA work runs on libuv's thread pool). */
export async function prepareAll(pool: SenderPool, phase: number, groups: Array<{ first: number; count: number }>, concurrency = 16): Promise<Prepared[]> {
  const out: Prepared[] = new Array<Prepared>(groups.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < groups.length) {
        const i = next++;
        const g = groups[i]!;
        out[i] = await pool.prepare(phase, g.first, g.count);
      }
    }),
  );
  return out;
}

export interface ClosedLoopResult {
  requests: number;
  /** Requests by answer status (0: no answer), and connection resets retried. */
  statuses: Record<string, number>;
  resets: number;
  accepted: number;
  refused: number;
  elapsedMs: number;
  t0: number;
  errors: string[];
  requestLatencyMs: number[];
}

/**
 * Closed loop: `concurrency` requests in flight at all times, each sent as soon as the previous one on
 * its lane is answered, until `durationMs` has passed or the supply of prepared requests runs out.
 */
export async function closedLoop(pool: SenderPool, next: () => Promise<Prepared | undefined>, concurrency: number, durationMs: number): Promise<ClosedLoopResult> {
  const t0 = hostNow();
  const deadline = t0 + durationMs;
  let requests = 0;
  let accepted = 0;
  let refused = 0;
  let lastAnswer = t0;
  const errors: string[] = [];
  const requestLatencyMs: number[] = [];
  const statuses: Record<string, number> = {};
  let resets = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (hostNow() < deadline) {
        const p = await next();
        if (!p) return;
        const started = hostNow();
        const a = await pool.post(p);
        lastAnswer = hostNow();
        requestLatencyMs.push(lastAnswer - started);
        requests++;
        resets += a.resets;
        statuses[a.status] = (statuses[a.status] ?? 0) + 1;
        if (a.status === 201) accepted += p.count;
        else {
          refused += p.count;
          if (errors.length < 5) errors.push(`${a.status}: ${a.text.slice(0, 300)}`);
        }
      }
    }),
  );
  return { requests, statuses, resets, accepted, refused, elapsedMs: lastAnswer - t0, t0, errors, requestLatencyMs };
}

export interface OpenLoopOptions {
  pool: SenderPool;
  phase: number;
  /** Offered load, messages per second. */
  rate: number;
  /** How long to offer it (the loop may be stopped earlier). */
  durationMs: number;
  /** Messages per request at most (a real adapter sends what has accumulated, in small groups). */
  maxPerRequest: number;
  /** The generator wakes up this often and sends whatever has fallen due since. */
  tickMs: number;
  /** Sign every request before the clock starts, so the generator only sends while measuring. */
  presign: boolean;
  /** Called once the schedule is built (and signed), before the first message is sent. */
  beforeStart?: (capacity: number) => Promise<void>;
}

export interface OpenLoopRun {
  rate: number;
  /** Start of the offered window (epoch ms) and its planned end. */
  t0: number;
  windowEnd: number;
  /** Messages actually sent (scheduled up to the stop). */
  sent: number;
  requests: number;
  /** Per message: when the POST carrying it started, when it was answered, and the answer's status. */
  postStart: Float64Array;
  answeredAt: Float64Array;
  status: Uint16Array;
  errors: string[];
  /** Requests by answer status (0: no answer), and connection resets retried. */
  statuses: Record<string, number>;
  resets: number;
  /** How far behind its schedule the generator dispatched, at worst and on average (ms). */
  maxLagMs: number;
  meanLagMs: number;
  maxInFlight: number;
}

export interface OpenLoop {
  /** Messages that will be sent if the loop runs its full duration. */
  capacity: number;
  /** Resolves once every request sent has been answered. */
  done: Promise<OpenLoopRun>;
  /** Resolves when the offered window starts (t0). */
  started: Promise<number>;
  /** Stops offering new messages now. */
  stop(): void;
  /** Messages sent so far, and how many of them have been answered / accepted. */
  counts(): { sent: number; answered: number; accepted: number };
}

/**
 * Open loop: messages fall due at a fixed rate whatever the DIP answers. Every `tickMs` the messages
 * due since the last tick go out in requests of at most `maxPerRequest`, each on its own request even if
 * earlier ones are still unanswered (kept-alive connections, up to the agent's limit, then undici queues
 * them — that queueing counts in the latency, since the clock starts when the POST is issued).
 */
export async function openLoop(o: OpenLoopOptions): Promise<OpenLoop> {
  const ticks = Math.max(1, Math.round(o.durationMs / o.tickMs));
  const groups: Array<{ tick: number; first: number; count: number }> = [];
  let scheduled = 0;
  for (let k = 0; k < ticks; k++) {
    const target = Math.round((o.rate * (k + 1) * o.tickMs) / 1000);
    let due = target - scheduled;
    while (due > 0) {
      const c = Math.min(due, o.maxPerRequest);
      groups.push({ tick: k, first: scheduled, count: c });
      scheduled += c;
      due -= c;
    }
  }
  const capacity = scheduled;
  const prepared = o.presign ? await prepareAll(o.pool, o.phase, groups) : null;
  await o.beforeStart?.(capacity);

  const postStart = new Float64Array(capacity).fill(Number.NaN);
  const answeredAt = new Float64Array(capacity).fill(Number.NaN);
  const status = new Uint16Array(capacity);
  const errors: string[] = [];
  const statuses: Record<string, number> = {};
  let resets = 0;
  let stopped = false;
  let gi = 0;
  let sent = 0;
  let answered = 0;
  let acceptedCount = 0;
  let inFlight = 0;
  let maxInFlight = 0;
  let maxLag = 0;
  let lagSum = 0;
  const pending = new Set<Promise<void>>();
  const t0 = hostNow() + 20;
  let startedResolve: (t: number) => void = () => {};
  const started = new Promise<number>((r) => (startedResolve = r));

  const fire = (index: number): void => {
    const g = groups[index]!;
    const due = t0 + g.tick * o.tickMs;
    sent += g.count;
    const run = async () => {
      const p = prepared ? prepared[index]! : await o.pool.prepare(o.phase, g.first, g.count);
      const start = hostNow();
      const lag = start - due;
      maxLag = Math.max(maxLag, lag);
      lagSum += lag;
      postStart.fill(start, g.first, g.first + g.count);
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      const a = await o.pool.post(p);
      inFlight--;
      const at = hostNow();
      answeredAt.fill(at, g.first, g.first + g.count);
      status.fill(a.status, g.first, g.first + g.count);
      answered += g.count;
      if (a.status === 201) acceptedCount += g.count;
      statuses[a.status] = (statuses[a.status] ?? 0) + 1;
      resets += a.resets;
      if (a.status !== 201 && errors.length < 5) errors.push(`${a.status}: ${a.text.slice(0, 300)}`);
    };
    const promise = run().finally(() => pending.delete(promise));
    pending.add(promise);
  };

  const done = new Promise<OpenLoopRun>((resolve) => {
    const finish = async () => {
      while (pending.size > 0) await Promise.all([...pending]);
      const fired = gi;
      resolve({
        rate: o.rate,
        t0,
        windowEnd: t0 + o.durationMs,
        sent,
        requests: fired,
        postStart,
        answeredAt,
        status,
        errors,
        statuses,
        resets,
        maxLagMs: maxLag,
        meanLagMs: fired > 0 ? lagSum / fired : 0,
        maxInFlight,
      });
    };
    const pump = () => {
      const now = hostNow();
      while (!stopped && gi < groups.length && t0 + groups[gi]!.tick * o.tickMs <= now) fire(gi++);
      if (stopped || gi >= groups.length) {
        void finish();
        return;
      }
      setTimeout(pump, Math.max(0, t0 + groups[gi]!.tick * o.tickMs - hostNow()));
    };
    void sleep(Math.max(0, t0 - hostNow())).then(() => {
      startedResolve(t0);
      pump();
    });
  });
  return {
    capacity,
    done,
    started,
    stop() {
      stopped = true;
    },
    counts: () => ({ sent, answered, accepted: acceptedCount }),
  };
}
