import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import type { KV } from '@nats-io/kv';
import type { CoordinationHealth, LeaseIncarnationRecords, LostNode, LostNodeRecords, PeerClockOffset } from '../../ports/backend.js';
import type { Cancel, Clock } from '../../ports/clock.js';
import type { QueueLeases } from '../../ports/leases.js';
import type { Logger } from '../../ports/logger.js';
import type { QueueRef } from '../../ports/message-log.js';
import type { ConnectionFollower } from './connection.js';
import { FailureLog } from './failure-log.js';
import { IncarnationFence } from './fence.js';
import { queueToken } from './names.js';

export interface LeaseSettings {
  /** How long a lease lasts unless renewed: how long a dead node's queues wait before another takes them. */
  ttlMs: number;
  /**
   * Allowance for clocks of different nodes disagreeing: a lease is taken over only this long after its
   * holder's expiry, and a holder stops working a queue this long before it.
   */
  skewMs: number;
}

export const DEFAULT_LEASES: LeaseSettings = { ttlMs: 6_000, skewMs: 1_000 };

/**
 * A process's id among the cluster's nodes: its name (the host's, unless storage.nats.nodeName names it)
 * and a random part made at start. The name tells an operator which machine an alarm or a lease is about;
 * the random part keeps the id unique per process, since two processes holding leases under one id (two
 * on one host, or a restarted one beside its frozen predecessor) would each take the other's as its own.
 */
export const nodeId = (name: string = hostname()): string => `${name}-${randomBytes(4).toString('hex')}`;
/** The name part of a node id (nodeId's `name`): the same across the node's restarts. */
const nodeName = (node: string): string => node.replace(/-[0-9a-f]{8}$/, '');

/** What a lease's value says (JSON): who holds it, until when (the holder's clock). */
export interface LeaseValue {
  node: string;
  expiresAt: number;
}

interface Held {
  queue: QueueRef;
  revision: number;
  /**
   * Until when this node may work the queue, on its steady clock: the start of its last renewal (or claim)
   * that the bucket took, plus the lease less the skew allowance. Not its wall clock: one stepped back
   * (NTP, an operator's `date -s`) kept a holder whose renewals failed working the queue that much longer.
   */
  validUntil: number;
  wakes: Subscription;
}

const encode = (v: LeaseValue): string => JSON.stringify(v);
const decode = (b: Uint8Array): LeaseValue | undefined => {
  try {
    const v = JSON.parse(new TextDecoder().decode(b)) as Partial<LeaseValue>;
    return typeof v.node === 'string' && typeof v.expiresAt === 'number' ? { node: v.node, expiresAt: v.expiresAt } : undefined;
  } catch {
    return undefined;
  }
};

/** A KV key's last operation deleted it (a released lease). */
const isDeleted = (op: string): boolean => op === 'DEL' || op === 'PURGE';

/**
 * Queue leases in a JetStream KV bucket (replicated like the rest of the cluster's JetStream state), in
 * the manner of a Kubernetes Lease: the value names the holder and its expiry; every change is a
 * compare-and-set on the key's revision, so two nodes can never both take or renew the same lease. The
 * holder renews every third of the lease; a node that cannot renew in time stops working the queue
 * before anyone may take it over (its expiry less the skew allowance, against the taker's expiry plus it).
 *
 * Wake-ups travel on core NATS, one subject per queue, which the holder subscribes to while it holds the
 * lease: `<prefix>.wake.<recipient>.<channel>`.
 */
/** Written by the reachability probe, read by nobody (lease keys are queue tokens, which never take this form). */
const PROBE_KEY = 'probe_reachable';
export class NatsQueueLeases implements QueueLeases, ConnectionFollower {
  readonly shared = true;
  readonly claimEveryMs: number;
  private readonly held = new Map<string, Held>();
  /** Leases seen held by other nodes, and until when on the steady clock: no need to ask the bucket again before then. */
  private readonly others = new Map<string, number>();
  private readonly wakeListeners: Array<(q: QueueRef) => void> = [];
  private readonly lostListeners: Array<(q: QueueRef) => void> = [];
  private readonly stopRenewing: Cancel;
  /** Queues another node handed over: every node hears of them (the holder's own wake subject has no other listener). */
  private readonly handOvers: Subscription;
  /** The other nodes heard from (each says how many leases it holds at every renewal), and until when they count. */
  private readonly peers = new Map<string, { held: number; until: number }>();
  /**
   * Every other node heard from since this one started, and when it was heard last, until it says it is
   * leaving (a stop), returns (a new id of the same name, first heard after it was last heard: a restart,
   * restarts()) or an operator says it was removed (forgetNode). One silent beyond forgetAfterMs is lost (lostNodes).
   */
  private readonly seen = new Map<string, number>();
  /** Where lost nodes are recorded for every node (remember); null: not recorded (tests of the leases alone). */
  private records: LostNodeRecords | null = null;
  /** The nodes recorded lost as this node last wrote or read them: each change to lostNodes() is written once. */
  private readonly recordedLost = new Set<string>();
  /** Lost nodes an operator said were removed (forgetNode here, or its leaving roll call in their name heard). */
  private readonly removedNodes = new Set<string>();
  private recording: Promise<void> | null = null;
  /**
   * Nodes known lost from the store only, not heard by this node: lost here once it has listened a lease
   * length and a roll call (a record may be wrong, or old: a node cut off from NATS found live ones lost,
   * or one came back unseen), so a live one is heard first and its record resolved, not alarmed on.
   */
  private readonly fromStore = new Set<string>();
  /** When each id in `seen` was first heard: an id of the same name first heard after another was last heard may be its restart (restarts()). */
  private readonly firstHeard = new Map<string, number>();
  /**
   * Ids that already stand for another node of their name, so are no restart of a lost one: the successor
   * of a node heard stopping (vacancies), or the restart of an id already paired with it. Several processes
   * of one host share a name: P1 stopping for a deploy while P2 lies dead, P1's new id said nothing of P2.
   */
  private readonly standsIn = new Set<string>();
  /**
   * When (steady clock) each node of a name said it was leaving (a stop) with no new id of that name heard
   * since: the next ones heard are their successors. Dropped forgetAfterMs after the stop (dropOldVacancies):
   * a node gone for good left one for ever, and a sibling's crash-restart long after filled it, so was no
   * restart and its lost id stayed raised until an operator removed it.
   */
  private readonly vacancies = new Map<string, number[]>();
  /**
   * How far each node's clock is ahead of this node's (negative: behind), from its roll calls: each says
   * its time when sent, less ours when heard, an underestimate by the message's transit (a receiver that
   * stalled, or roll calls buffered over a reconnect, read as far behind). So the estimate is the largest
   * sample of the last lease length (offsetWindowMs), and applies only while the node is heard from
   * (clockOf). A lease's expiry is the holder's time: a holder whose clock is behind this node's has its
   * leases read that much later (expiryHere), so a skew beyond the allowance does not make a live holder's
   * lease look expired here. What is shown and warned of is the estimate nearest zero that every sample
   * allows, each sample's delay discounted by how late this node's event loop ran when it was read
   * (shownOffset). `at`, `heardAt`: this node's steady clock (a wall clock stepped back kept a sample alive).
   */
  private readonly clocks = new Map<string, { samples: Array<{ offsetMs: number; lateMs: number; at: number }>; heardAt: number; warned: boolean }>();
  /**
   * Nodes whose last roll call said a time beyond offsetCapMs from this node's: not applied to their
   * leases (clocks has no sample of it), but shown (clockOffset) and logged once, not at every roll call,
   * while it lasts. Forgotten like the others, forgetAfterMs after it was heard (`at`: the steady clock). `takes`: that roll call
   * said the node takes queues and is not leaving (only such a node ahead is yielded to, yieldingTo).
   */
  private readonly unbelieved = new Map<string, { offsetMs: number; at: number; takes: boolean }>();
  /** How often every node says its roll call (and renews its leases). */
  private readonly rollCallEveryMs: number;
  /**
   * When this node began to listen to roll calls (its start, or its connection's last reconnect: roll
   * calls sent while it was away were missed): until a lease length and a roll call later, a holder not
   * heard from may be alive.
   */
  private listeningSince: number;
  /** listeningSince on the steady clock (heardAt's fallback for a holder not heard from). */
  private listeningSinceSteady: number;
  /**
   * When each node's roll call (any: taking, not, leaving) was last heard, on this node's steady clock.
   * A holder renews its leases right after saying its roll call, on the same timer: one silent a lease
   * length and the allowance here stopped working its queues by then (Held.validUntil), whatever either
   * clock says. Forgotten after forgetAfterMs (a node not heard counts as silent since listeningSince).
   * `steady`: its roll call said the node works its leases by its own steady clock (Held.validUntil), as
   * this version does; a node of the version before worked them until their expiry by its wall clock.
   */
  private readonly heardAt = new Map<string, { at: number; steady: boolean }>();
  /**
   * Each lease held by another node as this node first read it at its current revision, on the steady
   * clock: a revision unchanged for a lease length and the allowance was not renewed, so its holder has
   * stopped working the queue, whatever its clock or this one's says (a holder that yields, or one whose
   * roll calls are heard while its renewals fail). Forgotten once the lease is taken or seen free.
   */
  private readonly observed = new Map<string, { revision: number; at: number }>();
  private readonly roll: Subscription;
  /** Claims under way: counted with the leases held when deciding whether a balance hand-over is for this node. */
  private acquiring = 0;
  /** When this node last gave a lease away for balance. */
  private balancedAt = Number.NEGATIVE_INFINITY;
  /** Whether this node takes queues now (willTake). */
  private taking = true;
  private renewing: Promise<void> | null = null;
  private probing: Promise<void> | null = null;
  /**
   * Bumped at every disconnect and reconnect of the connection: a probe's answer counts only if no such
   * event came while it waited (a probe sent before a reconnect, timing out after it, says nothing of now).
   */
  private connectionEpoch = 0;
  /** The bucket did not answer this node's last probe, or the connection is down: since when, and why (null: it answers). */
  private unreachable: { since: number; reason: string } | null = null;
  private closed = false;
  /** Claims that failed for want of an answer (not a lost race): logged when they start, a minute apart, and when they stop. */
  private readonly claimFailures: FailureLog;
  /** Which incarnation of the leases bucket this node works in, and whether it may claim (shared with the alarm notifier lease). */
  readonly fence: IncarnationFence;

  constructor(
    private readonly nc: NatsConnection,
    private readonly kv: KV,
    private readonly prefix: string,
    private readonly clock: Clock,
    private readonly settings: LeaseSettings = DEFAULT_LEASES,
    private readonly logger?: Logger,
    /** This node's id (nodeId): the holder its lease values name. */
    readonly node: string = nodeId(),
    /**
     * Elapsed time, never stepped (monotonicClock in production; a test's own clock): how long this node
     * may work a lease since it was renewed, and how long a holder has been silent or its lease unchanged.
     */
    private readonly steady: Clock = clock,
    /**
     * How late this process's event loop runs now, ms (the event-loop gauge's recent worst; 0 in a test
     * that says nothing of it): a roll call read now may have waited here that long (shownOffset).
     */
    private readonly loopLateMs: () => number = () => 0,
  ) {
    this.claimEveryMs = Math.max(250, Math.floor(settings.ttlMs / 2));
    this.fence = new IncarnationFence(`${prefix}_leases`, settings, clock, steady, logger);
    this.fence.onChange(() => this.generationChanged());
    this.rollCallEveryMs = Math.max(100, Math.floor(settings.ttlMs / 3));
    this.claimFailures = new FailureLog(clock, logger, 'could not claim a queue lease', 'queue leases can be claimed again');
    this.handOvers = nc.subscribe(`${prefix}.handover`, {
      callback: (_err, msg) => {
        const handOver = handedOver(msg.string());
        if (!handOver || handOver.node === this.node) return;
        // A balance hand-over is for a node holding fewer than the giver has left (a claim pass takes it otherwise).
        if (handOver.balance && this.held.size + this.acquiring >= handOver.giverHolds) return;
        // Seen held by the node that let it go: look at the bucket again now, not when that lease would have ended.
        this.others.delete(queueToken(handOver.queue));
        for (const l of this.wakeListeners) l(handOver.queue);
      },
    });
    this.listeningSince = clock.now();
    this.listeningSinceSteady = steady.now();
    this.roll = nc.subscribe(`${prefix}.nodes`, {
      callback: (_err, msg) => {
        const heard = rollCall(msg.string());
        if (!heard || heard.node === this.node) return;
        this.heardSteady(heard.node, heard.steady);
        if (heard.now !== undefined) this.heardClock(heard.node, heard.now, heard.taking && !heard.leaving);
        this.heardNode(heard.node, heard.leaving);
        // A node that takes no queues (its store out of reach, stopping) has no share.
        if (heard.leaving || !heard.taking) this.peers.delete(heard.node);
        else this.peers.set(heard.node, { held: heard.held, until: this.clock.now() + this.settings.ttlMs });
      },
    });
    // Due by elapsed time: a wall clock stepped back must not hold the renewals (and roll calls) back.
    this.stopRenewing = steady.every(this.rollCallEveryMs, () => {
      this.announce(false);
      this.renewing ??= this.renewAll().finally(() => {
        this.renewing = null;
      });
      // Apart from the renewals (a probe waiting out a request timeout must not hold them), and whether or
      // not this node holds a lease: a node holding none still says that none can be claimed.
      this.probing ??= this.startProbe();
      this.recordLostNodes();
    });
  }

  private startProbe(): Promise<void> {
    const probing: Promise<void> = this.probe().finally(() => {
      if (this.probing === probing) this.probing = null;
    });
    return probing;
  }

  /**
   * The connection is lost (followConnection): health need not wait for a probe to time out. Unavailable
   * the moment the client sees it, not one to two probe intervals plus the request timeout later (6.3 s
   * measured with kill -9). A server that stops answering without closing the connection (SIGSTOP, a hung
   * host) raises no event until the client's pings give up: the probe's timeout finds it first.
   */
  connectionLost(server: string): void {
    if (this.closed) return;
    this.connectionEpoch += 1;
    this.markUnreachable(`NATS JetStream (${this.prefix}_leases): the connection to ${server} was lost, reconnecting`);
  }

  /**
   * Back: probe at once, and health is ok only once JetStream answers that probe (reconnected is not yet
   * answering: a restarted server may still be recovering its streams). A probe waiting since before the
   * reconnect would count for nothing (its epoch is old): ask anew.
   */
  connectionBack(): void {
    if (this.closed) return;
    this.connectionEpoch += 1;
    this.listeningSince = this.clock.now();
    this.listeningSinceSteady = this.steady.now();
    this.probing = this.startProbe();
  }

  private markUnreachable(reason: string, err?: unknown): void {
    if (!this.unreachable) this.logger?.error({ err, reason }, 'NATS JetStream does not answer: no queue lease can be claimed or renewed, delivery stops on every node until it does');
    this.unreachable = { since: this.unreachable?.since ?? this.clock.now(), reason };
  }

  /** Whether the leases bucket took this node's last probe's write (README "Operating the DIP"). */
  health(): CoordinationHealth {
    return this.unreachable ? { state: 'unavailable', ...this.unreachable } : { state: 'ok' };
  }

  /**
   * One write to the bucket (a key no lease takes), as a claim or a renewal is: it lands only where the
   * stream has a leader and a quorum of its replicas. Not a read: with two of three servers killed, the
   * survivor answered reads (and stream info, the incarnation) without its quorum, so a node found
   * coordination ok 8-12 s into the outage and said so for the rest of it while no lease could be
   * renewed or claimed (a fault campaign; test/faults/nats-quorum.fault.ts).
   */
  private async probe(): Promise<void> {
    const epoch = this.connectionEpoch;
    try {
      await this.kv.put(PROBE_KEY, this.node);
      await this.fence.check();
      if (epoch !== this.connectionEpoch) return;
      if (this.unreachable) this.logger?.info({ since: this.unreachable.since }, 'NATS JetStream answers again: queue leases can be claimed and renewed');
      this.unreachable = null;
    } catch (err) {
      if (this.closed || epoch !== this.connectionEpoch) return;
      this.markUnreachable(`NATS JetStream (${this.prefix}_leases): ${(err as Error).message}`, err);
      // The buckets may be gone rather than JetStream silent: created again if so (the next probe finds the new one).
      await this.fence.restore();
    }
  }

  /**
   * Follows which incarnation of the leases bucket this node works in (IncarnationFence.track): `read`
   * answers its id (bucketIncarnation), `restore` creates the buckets again when their streams are gone,
   * `records` say whether the bucket was created again lately (a node started then is fenced too). Called
   * once, at start (openNatsCoordination).
   */
  async trackGeneration(read: () => Promise<string>, restore: () => Promise<boolean>, records?: LeaseIncarnationRecords): Promise<void> {
    await this.fence.track(read, restore, records, this.node);
  }

  /**
   * The leases bucket was found created again (IncarnationFence.check, which set the fence): every lease
   * held in it is gone, so this node stops working every queue now. Every node finds out at its next
   * probe (a roll call), or at its next claim, whose write is checked to have landed in the incarnation it
   * knows (acquire).
   */
  private generationChanged(): void {
    this.others.clear();
    this.observed.clear();
    this.logger?.error(
      { bucket: `${this.prefix}_leases`, held: this.held.size, claimsAgainInMs: this.fence.fenceMs },
      'the queue leases bucket was created again: this node stops working its queues, and claims none until every holder before has stopped',
    );
    for (const [key, h] of [...this.held]) this.lost(key, h, 'the leases bucket was created again');
  }

  surplus(): number {
    // After giving leases away, wait a lease's length (three roll calls) before judging again: until the
    // takers have said what they took, their counts are old, and a second judgement would give away more.
    if (this.clock.now() < this.balancedAt + this.settings.ttlMs) return 0;
    return Math.max(0, this.held.size - this.share());
  }

  /** This node's fair share: the leases held by the nodes heard from within a lease's length, over those nodes, rounded up. */
  private share(): number {
    const now = this.clock.now();
    let total = this.held.size;
    for (const [node, p] of this.peers) {
      if (p.until <= now) this.peers.delete(node);
      else total += p.held;
    }
    return Math.ceil(total / (this.peers.size + 1));
  }

  willTake(taking: boolean): void {
    if (taking === this.taking) return;
    this.taking = taking;
    this.announce(false);
  }

  /** Tells the other nodes this one is here, how many leases it holds and whether it takes more (or that it is leaving). */
  private announce(leaving: boolean): void {
    try {
      // steady: this node stops working a lease by its steady clock, whatever its wall clock says (takeoverWait).
      this.nc.publish(`${this.prefix}.nodes`, JSON.stringify({ node: this.node, held: leaving ? 0 : this.held.size, taking: this.taking && this.yieldingTo() === undefined, leaving, now: this.clock.now(), steady: true }));
    } catch {
      // Best effort: the others stop counting this node a lease's length after they last heard it.
    }
  }

  /**
   * Takes the lost nodes recorded in the shared store as its own (a survivor restarted after a loss never
   * heard the lost node), and records the changes to lostNodes() there from now on. A recorded id of this
   * node's name may be its own before a restart or another process of its host (several share a name,
   * and an id is unique per process): it cannot tell which, so it neither resolves nor raises it. The
   * nodes that hear its roll call pair it with a lost id one for one, or not at all (restarts()); before,
   * it resolved every lost id of its name as returned.
   */
  async remember(records: LostNodeRecords): Promise<void> {
    for (const l of await records.lost()) {
      if (nodeName(l.node) === nodeName(this.node)) continue;
      if (!this.seen.has(l.node)) {
        this.seen.set(l.node, l.lastHeardAt);
        this.firstHeard.set(l.node, l.lastHeardAt);
        this.recordedLost.add(l.node);
        this.fromStore.add(l.node);
      }
    }
    this.records = records;
  }

  /** Writes what changed in lostNodes() since the last write (one write pass at a time; the next roll call tries again after a failure). */
  private recordLostNodes(): void {
    const records = this.records;
    // Cut off from NATS, this node hears nobody: every live node would look lost to it.
    // Nor before it has listened long enough to have heard every live node (lostNodes): a node recorded lost
    // that it has not found lost yet would be resolved.
    if (!records || this.recording || this.closed || this.unreachable !== null || !this.listenedLongEnough()) return;
    const lost = this.lostNodes();
    const found = lost.filter((l) => !this.recordedLost.has(l.node));
    const resolved = [...this.recordedLost].filter((node) => !lost.some((l) => l.node === node));
    if (found.length === 0 && resolved.length === 0) return;
    this.recording = (async () => {
      for (const l of found) {
        await records.recordLost(l, this.node);
        this.recordedLost.add(l.node);
      }
      for (const node of resolved) {
        await records.resolve(node, this.removedNodes.has(node) ? 'removed' : 'returned', this.node);
        this.recordedLost.delete(node);
        this.removedNodes.delete(node);
      }
    })()
      .catch((err: unknown) => this.logger?.warn({ err }, 'could not record the lost nodes in the store: tried again at the next roll call'))
      .finally(() => {
        this.recording = null;
      });
  }

  /**
   * Whether this node has listened to roll calls a lease length and a roll call (since its start or last
   * reconnect): every live node was heard by then. By elapsed time: a wall clock stepped forward had it
   * record and raise the stored lost nodes before a live one could be heard, stepped back that much later.
   */
  private listenedLongEnough(): boolean {
    return this.steady.now() - this.listeningSinceSteady > this.settings.ttlMs + this.rollCallEveryMs;
  }

  /** The nodes heard from once that have said nothing for forgetAfterMs (two lease lengths) without saying they were leaving. */
  lostNodes(): LostNode[] {
    // Silent by elapsed time (heardAt), not by this node's wall clock: one stepped +90 s made every live peer lost until it spoke again.
    // A node recorded lost in the store (never heard here: no heardAt) counts once this node has listened long enough.
    const listened = this.listenedLongEnough();
    const restarted = this.restarts();
    return this.silentNodes()
      .filter(([node]) => !restarted.has(node) && (listened || !this.fromStore.has(node)))
      .map(([node, lastHeardAt]) => ({ node, lastHeardAt }));
  }

  /** The ids in `seen` silent beyond forgetAfterMs (by elapsed time), the longest silent first. */
  private silentNodes(): Array<[string, number]> {
    const now = this.steady.now();
    return [...this.seen].filter(([node]) => now - (this.heardAt.get(node)?.at ?? Number.NEGATIVE_INFINITY) > this.forgetAfterMs).sort((a, b) => a[1] - b[1]);
  }

  /**
   * The silent ids (silentNodes) restarted under a new id, each with the id that restarted it: of the same
   * name, first heard after it was last heard, and standing for no other node (standsIn), one for one,
   * the earliest first. A supervisor restarting a crashed process gives it a new id (lost or not by then,
   * the old one is not lost); but several processes of one host share a name, so a new id stands for one
   * lost id at most, and not for any if it succeeds a node heard stopping.
   */
  private restarts(): Map<string, string> {
    const taken = new Set(this.standsIn);
    const pairs = new Map<string, string>();
    for (const [old, lastHeardAt] of this.silentNodes()) {
      let successor: string | undefined;
      for (const [other, first] of this.firstHeard) {
        if (other === old || taken.has(other) || first <= lastHeardAt || nodeName(other) !== nodeName(old)) continue;
        if (successor === undefined || first < (this.firstHeard.get(successor) ?? Number.POSITIVE_INFINITY)) successor = other;
      }
      if (successor !== undefined) {
        pairs.set(old, successor);
        taken.add(successor);
      }
    }
    return pairs;
  }

  /**
   * An operator says `node` was removed for good: every node forgets it, as if it had said it was leaving
   * (a leaving roll call in its name, which no live node sends for another). False when not lost here.
   */
  forgetNode(node: string): boolean {
    if (!this.lostNodes().some((l) => l.node === node)) return false;
    this.removedNodes.add(node);
    this.forget(node);
    this.recordLostNodes();
    try {
      this.nc.publish(`${this.prefix}.nodes`, JSON.stringify({ node, held: 0, taking: false, leaving: true }));
    } catch {
      // The others forget it when it returns, or when told again.
    }
    return true;
  }

  private heardNode(node: string, leaving: boolean): void {
    const name = nodeName(node);
    this.dropOldVacancies();
    if (leaving) {
      // Said in the name of a node lost here: an operator's word at another node (forgetNode).
      if (this.lostNodes().some((l) => l.node === node)) this.removedNodes.add(node);
      // A live node stopping (a deploy, a restart by hand): the next new id of its name is its successor.
      else if (this.seen.has(node)) this.vacancies.set(name, [...(this.vacancies.get(name) ?? []), this.steady.now()]);
      this.forget(node);
      return;
    }
    const now = this.clock.now();
    this.fromStore.delete(node);
    if (!this.seen.has(node)) {
      this.firstHeard.set(node, now);
      const [filled, ...rest] = this.vacancies.get(name) ?? [];
      if (filled !== undefined) this.standsIn.add(node);
      if (rest.length > 0) this.vacancies.set(name, rest);
      else this.vacancies.delete(name);
    }
    this.seen.set(node, now);
    // A lost id restarted is back (its record resolved), and one restarted before it was lost is forgotten
    // once silent as long as a lost one; its successor stands for it from then on.
    for (const [old, successor] of this.restarts()) {
      this.forget(old);
      this.standsIn.add(successor);
    }
  }

  /** Keeps the stops heard within forgetAfterMs (by elapsed time), of every name: one never filled is not kept for ever. */
  private dropOldVacancies(): void {
    const now = this.steady.now();
    for (const [name, stops] of this.vacancies) {
      const live = stops.filter((at) => now - at <= this.forgetAfterMs);
      if (live.length > 0) this.vacancies.set(name, live);
      else this.vacancies.delete(name);
    }
  }

  private forget(node: string): void {
    this.fromStore.delete(node);
    this.seen.delete(node);
    this.firstHeard.delete(node);
    this.standsIn.delete(node);
  }

  /** How far `node`'s clock is ahead of this node's (negative: behind), as estimated now (clockOf); undefined if not heard from lately. */
  clockOffsetOf(node: string): number | undefined {
    return this.clockOf(node);
  }

  /**
   * A peer heard from lately whose clock is ahead of this node's by more than offsetCapMs, or undefined.
   * Such a peer does not believe this node's clock either (its sample of it is as far beyond the cap): it
   * reads this node's leases by their own expiry, long past in its time, and takes them while this node
   * lives, which still works them by its own clock. So while it hears one this node holds and takes no
   * lease, and says in its roll call that it takes none: each queue is worked by the node ahead alone, not
   * by both (the `clock-skew` alarm tells the operator). Never from a sample behind: transit and a stalled
   * receiver only make a clock look further behind, never ahead. Nor from a peer whose last roll call
   * said it takes no queue (its own store out of reach, or itself yielding) or that it is leaving: nobody
   * would work the queues (while it is heard, or two lease lengths after it stopped).
   */
  private yieldingTo(now = this.steady.now()): string | undefined {
    for (const [node, u] of this.unbelieved) if (u.offsetMs > 0 && u.takes && now - u.at <= this.forgetAfterMs) return node;
    return undefined;
  }

  /**
   * The peer heard from lately whose clock is furthest from this node's, either way (believed: the
   * windowed estimate the leases apply; not believed: a last roll call beyond offsetCapMs), or null.
   */
  clockOffset(): PeerClockOffset | null {
    const now = this.steady.now();
    let worst: PeerClockOffset | null = null;
    const consider = (node: string, offsetMs: number, believed: boolean): void => {
      if (worst === null || Math.abs(offsetMs) > Math.abs(worst.offsetMs)) worst = { node, offsetMs, allowanceMs: this.settings.skewMs, believed };
    };
    for (const node of [...this.clocks.keys()]) {
      if (this.clockOf(node, now) === undefined) continue;
      const c = this.clocks.get(node);
      if (c) consider(node, shownOffset(c.samples), true);
    }
    for (const [node, u] of [...this.unbelieved]) {
      if (now - u.at > this.forgetAfterMs) this.unbelieved.delete(node);
      else consider(node, u.offsetMs, false);
    }
    return worst;
  }

  /** Samples are kept this long (steady clock): the estimate is the largest of them (transit only ever lowers one). */
  private get offsetWindowMs(): number {
    return this.settings.ttlMs;
  }

  /** A node silent this long no longer has its clock offset applied: two lease lengths (six roll calls missed). */
  private get forgetAfterMs(): number {
    return 2 * this.settings.ttlMs;
  }

  /** An offset beyond this (five lease lengths) is not a clock drifting but a bogus roll call: ignored. */
  private get offsetCapMs(): number {
    return 5 * this.settings.ttlMs;
  }

  /**
   * The windowed estimate of `node`'s offset: the largest sample heard within offsetWindowMs of the last;
   * undefined (and forgotten) once the node has been silent forgetAfterMs, so a dead node's last (or late)
   * sample delays the takeover of its leases by a bounded time at most. `now`: the steady clock.
   */
  private clockOf(node: string, now = this.steady.now()): number | undefined {
    const c = this.clocks.get(node);
    if (!c) return undefined;
    if (now - c.heardAt > this.forgetAfterMs) {
      this.clocks.delete(node);
      return undefined;
    }
    return Math.max(...c.samples.map((s) => s.offsetMs));
  }

  /** `takes`: the roll call said the node takes queues and is not leaving. */
  private heardClock(node: string, theirNow: number, takes: boolean): void {
    // The offset is of the wall clocks; how old a sample is, of the steady clock (a step moves no age).
    const now = this.steady.now();
    const sample = theirNow - this.clock.now();
    const lateMs = Math.max(0, this.loopLateMs());
    // Beyond the cap only by this node's lateness: no bogus time, but says nothing either (shownOffset).
    if (Math.abs(shownOffset([{ offsetMs: sample, lateMs }])) <= this.offsetCapMs && Math.abs(sample) > this.offsetCapMs) return;
    if (Math.abs(sample) > this.offsetCapMs) {
      if (!this.unbelieved.has(node)) {
        const yielding = sample > 0 ? ': this node holds and takes no queue lease while it hears that node take queues (it reads this node\'s leases as long expired)' : '';
        this.logger?.error(
          { node, offsetMs: sample, capMs: this.offsetCapMs },
          `node ${node} said a time ${sample} ms from this node's in its roll call, beyond the ${this.offsetCapMs} ms a clock offset is believed: ignored${yielding}; check the nodes' clocks (NTP)`,
        );
      }
      this.unbelieved.set(node, { offsetMs: sample, at: now, takes });
      if (sample > 0 && takes) for (const [key, h] of this.held) this.lost(key, h, `the clock of node ${node} is ${sample} ms ahead of this node's, beyond what the leases believe: it takes this node's leases`);
      return;
    }
    this.unbelieved.delete(node);
    const known = this.clocks.get(node);
    const samples = (known?.samples ?? []).filter((s) => now - s.at <= this.offsetWindowMs);
    samples.push({ offsetMs: sample, lateMs, at: now });
    const offsetMs = shownOffset(samples);
    // Behind is warned of only once the window's roll calls agree: any delay on the way (the peer's loop
    // between stamping and sending, NATS, this node's loop before its gauge has measured a start-up's
    // stall) makes one sample look behind, and the next prompt one corrects it (faults6: a node starting
    // under load warned of a peer 9.6 s and 14.7 s behind). Ahead is never a delay's doing: warned at once.
    const beyond = Math.abs(offsetMs) > this.settings.skewMs && (offsetMs > 0 || samples.length >= BEHIND_SAMPLES_TO_WARN);
    if (beyond && known?.warned !== true) {
      this.logger?.warn(
        { node, offsetMs, allowanceMs: this.settings.skewMs },
        `the clock of node ${node} is ${Math.abs(offsetMs)} ms ${offsetMs > 0 ? 'ahead of' : 'behind'} this node's, beyond the ${this.settings.skewMs} ms its leases allow for: ${
          offsetMs > 0 ? 'its queues wait that much longer to be taken over if it dies' : 'its leases are read that much later here, so they are not taken from it while it lives'
        }; check the nodes' time synchronisation (NTP)`,
      );
    }
    this.clocks.set(node, { samples, heardAt: now, warned: beyond });
    for (const n of this.clocks.keys()) this.clockOf(n, now);
  }

  /**
   * A lease value's expiry in this node's time (the alarm notifier lease reads its own with it): later by
   * how far the holder's clock is behind this node's (clockOf), never earlier. A skew may delay a
   * takeover, never hasten one: a holder whose clock runs ahead is waited for as before, until its own
   * expiry passes here. A holder not heard from (clockOf undefined) may be alive with its clock behind,
   * its roll call not yet come (this node just started): its lease counts until a lease length and a roll
   * call after this node began to listen. A live holder renews and says its roll call every roll-call
   * period, so any lease renewed by a node never heard was renewed by then at the latest, and (in real
   * time, whatever its clock says) has ended a lease length later. After that, a silent holder's lease
   * is read by its own expiry. (Nor longer than offsetCapMs past its own expiry: no offset beyond that is
   * believed, so a lease expired that long ago is no live holder's.)
   */
  expiryHere(value: LeaseValue): number {
    const offsetMs = this.clockOf(value.node);
    if (offsetMs === undefined) return Math.max(value.expiresAt, Math.min(this.listeningSince + this.settings.ttlMs + this.rollCallEveryMs, value.expiresAt + this.offsetCapMs));
    return value.expiresAt + Math.max(0, -offsetMs);
  }

  /**
   * How much longer (ms, 0: no longer) the holder of the lease at `key`, read at `revision`, may still be
   * working its queue, judged on this node's steady clock alone: a holder stops a lease length less the
   * allowance after its last renewal began (Held.validUntil), and it renews right after its roll call. So
   * it has stopped once either its roll call has not been heard for a lease length and the allowance, or
   * this revision has stood that long since this node first read it. The lease values' expiries are the
   * holders' wall clocks: a step of either clock beyond what the roll calls have told (a fault campaign's
   * +90 s: 15 positions delivered by two nodes at once) read a live lease as expired.
   */
  private mayStillWork(key: string, revision: number, holder: string): number {
    const now = this.steady.now();
    const seen = this.observed.get(key);
    if (seen?.revision !== revision) this.observed.set(key, { revision, at: now });
    const unchangedSince = seen?.revision === revision ? seen.at : now;
    // A holder not heard since this node began listening may say its roll call up to one period later.
    const silentSince = Math.max(this.heardAt.get(holder)?.at ?? Number.NEGATIVE_INFINITY, this.listeningSinceSteady + this.rollCallEveryMs);
    const stopsAfter = this.settings.ttlMs + this.settings.skewMs;
    return Math.max(0, Math.min(unchangedSince, silentSince) + stopsAfter - now);
  }

  private heardSteady(node: string, steady: boolean): void {
    const now = this.steady.now();
    this.heardAt.set(node, { at: now, steady });
    for (const [other, h] of this.heardAt) if (now - h.at > this.forgetAfterMs) this.heardAt.delete(other);
  }

  /**
   * How much longer (ms, 0: no longer) to leave another node's lease, read at `revision`. A holder heard
   * saying it works its leases by its steady clock has stopped once mayStillWork says so, whatever the
   * wall clocks say: the expiry, its wall clock, only delayed the takeover, by as much as this node's wall
   * clock was stepped back (a dead holder's queue waited 10 s longer after a step of -10 s). A holder of
   * the version before (its lease ends by its wall clock), or one not heard from, is also waited for until
   * its expiry here has passed.
   */
  private takeoverWait(key: string, revision: number, value: LeaseValue): number {
    const stopped = this.mayStillWork(key, revision, value.node);
    if (this.heardAt.get(value.node)?.steady === true) return stopped;
    return Math.max(this.expiryHere(value) + this.settings.skewMs - this.clock.now(), stopped);
  }

  holds(queue: QueueRef): boolean {
    const h = this.held.get(queueToken(queue));
    return h !== undefined && this.steady.now() < h.validUntil && this.yieldingTo() === undefined;
  }

  async acquire(queue: QueueRef): Promise<boolean> {
    if (this.closed) return false;
    const key = queueToken(queue);
    if (this.holds(queue)) return true;
    const stale = this.held.get(key);
    if (stale) this.lost(key, stale, 'expired before it could be renewed');
    if ((this.others.get(key) ?? 0) > this.steady.now() || this.yieldingTo() !== undefined || this.fence.fenced()) return false;
    // The incarnation this claim starts in, before any await: a probe may find the bucket created again
    // while the claim waits, fence this node and take the new id as its own, and the claim's write may land
    // in the new bucket. Checked against this, not against the id known after the write (which had
    // answered 'same' to such a write).
    const known = this.fence.current();
    this.acquiring += 1;
    try {
      const entry = await this.kv.get(key);
      const value = entry && !isDeleted(entry.operation) ? decode(entry.value) : undefined;
      const wait = entry && value && value.node !== this.node ? this.takeoverWait(key, entry.revision, value) : 0;
      let revision: number;
      if (!entry || isDeleted(entry.operation)) {
        revision = entry ? await this.kv.update(key, this.value(), entry.revision) : await this.kv.create(key, this.value());
      } else if (value && wait > 0) {
        // Looked at again by then, or sooner if the holder's clock offset stops applying (clockOf, by the steady clock).
        const offsetForgottenIn = (this.clocks.get(value.node)?.heardAt ?? Number.POSITIVE_INFINITY) + this.forgetAfterMs + 1 - this.steady.now();
        this.others.set(key, this.steady.now() + Math.min(wait, offsetForgottenIn));
        return false;
      } else {
        // Expired (its holder died or let go without deleting), unreadable, or ours from before: take it.
        revision = await this.kv.update(key, this.value(), entry.revision);
      }
      // The write may have landed in a bucket created again since this claim began (a key absent there is
      // free to create): the incarnation read after it is at least as new as the one it landed in. Another
      // than `known`, or a fence set meanwhile (a probe found it first): not held (its holders before may
      // still work the queue), undone.
      if (!(await this.fence.claimLanded(known))) {
        await this.kv.delete(key, { previousSeq: revision }).catch(() => undefined);
        return false;
      }
      // Only a write counts as claims working again: the read may be answered while writes fail (a
      // warning and a recovery line at every claim, before).
      this.claimFailures.succeeded();
      this.others.delete(key);
      this.observed.delete(key);
      this.hold(queue, key, revision);
      return true;
    } catch (err) {
      // Lost the race for it (someone else's create or update came first), or NATS is unreachable: not ours.
      if (!isConflict(err)) this.claimFailures.failed(err, { queue });
      this.others.set(key, this.steady.now() + Math.min(1_000, this.settings.ttlMs / 4));
      return false;
    } finally {
      this.acquiring -= 1;
    }
  }

  async release(queue: QueueRef, options: { handOver?: boolean; balance?: boolean } = {}): Promise<void> {
    const key = queueToken(queue);
    const h = this.held.get(key);
    if (!h) return;
    this.drop(key, h);
    // Not taken back by this node's next claim pass: it is for the others (two lease lengths).
    if (options.balance) {
      this.others.set(key, this.steady.now() + 2 * this.settings.ttlMs);
      this.balancedAt = this.clock.now();
    }
    await this.deleteOwn(key, h.revision);
    if (options.handOver && !this.closed) {
      try {
        const balance = options.balance === true;
        // How many the giver still holds: a node takes a balance hand-over only while it holds fewer, so a
        // burst of them spreads over the nodes rather than all going to the quickest.
        this.nc.publish(`${this.prefix}.handover`, JSON.stringify({ recipientDipId: queue.recipientDipId, channel: queue.channel, node: this.node, balance, giverHolds: this.held.size }));
      } catch {
        // Best effort: the others' claim passes find the queue once its lease has expired in their eyes.
      }
    }
  }

  /**
   * Deletes the lease if it is still this node's: by the revision it was held at or, when a renewal
   * landed after the lease was dropped here (its answer not yet come, so `revision` is the one before),
   * by the revision now in the bucket if that still names this node. Before, that delete failed and was
   * ignored: the lease stayed renewed for a lease length, and the node it was handed to read it as held
   * and left it (an idle queue has nothing pending for a claim pass to find). The giver held one fewer,
   * the taker none more: repeated (an event loop lagging under load keeps renewal answers late), the giver
   * shed queues until it held its share by the count, and no hand-over was left to make.
   */
  private async deleteOwn(key: string, revision: number): Promise<void> {
    try {
      // Only our own revision: a lease someone took over meanwhile is theirs to keep.
      await this.kv.delete(key, { previousSeq: revision });
    } catch (err) {
      if (!isConflict(err)) return; // NATS is away: the lease expires by itself.
      try {
        const entry = await this.kv.get(key);
        const value = entry && !isDeleted(entry.operation) ? decode(entry.value) : undefined;
        if (entry && value?.node === this.node) await this.kv.delete(key, { previousSeq: entry.revision });
      } catch {
        // Written again meanwhile (taken over), or NATS is away: the lease expires by itself.
      }
    }
  }

  wake(queue: QueueRef): void {
    if (this.closed) return;
    try {
      this.nc.publish(this.wakeSubject(queue));
    } catch {
      // Best effort: the holder's sweep finds the queue anyway.
    }
  }

  onWake(listener: (queue: QueueRef) => void): void {
    this.wakeListeners.push(listener);
  }

  onLost(listener: (queue: QueueRef) => void): void {
    this.lostListeners.push(listener);
  }

  async close(): Promise<void> {
    this.closed = true;
    this.stopRenewing();
    this.announce(true);
    this.handOvers.unsubscribe();
    this.roll.unsubscribe();
    await this.renewing;
    await this.recording;
    await Promise.all([...this.held.values()].map((h) => this.release(h.queue)));
  }

  private value(): string {
    return encode({ node: this.node, expiresAt: this.clock.now() + this.settings.ttlMs });
  }

  private wakeSubject(queue: QueueRef): string {
    return `${this.prefix}.wake.${queueToken(queue)}`;
  }

  private hold(queue: QueueRef, key: string, revision: number): void {
    const wakes = this.nc.subscribe(this.wakeSubject(queue), {
      callback: () => {
        for (const l of this.wakeListeners) l(queue);
      },
    });
    this.held.set(key, { queue, revision, validUntil: this.steady.now() + this.settings.ttlMs - this.settings.skewMs, wakes });
  }

  private drop(key: string, h: Held): void {
    this.held.delete(key);
    h.wakes.unsubscribe();
  }

  private lost(key: string, h: Held, why: string): void {
    if (this.held.get(key) !== h) return;
    this.drop(key, h);
    this.logger?.warn({ queue: h.queue, why }, 'queue lease lost: this node stops working the queue');
    for (const l of this.lostListeners) l(h.queue);
  }

  private async renewAll(): Promise<void> {
    // A lease past its end is lost, not renewed: a renewal is only ever sent while the lease is valid, so a
    // write that lands late (within the request timeout) lands within a bounded time of it (IncarnationFence).
    const ended = this.steady.now();
    for (const [key, h] of [...this.held]) if (ended >= h.validUntil) this.lost(key, h, 'expired before it could be renewed');
    await Promise.all(
      [...this.held.entries()].map(async ([key, h]) => {
        const startedAt = this.steady.now();
        try {
          const revision = await this.kv.update(key, this.value(), h.revision);
          if (this.held.get(key) === h) {
            h.revision = revision;
            h.validUntil = startedAt + this.settings.ttlMs - this.settings.skewMs;
          }
        } catch (err) {
          if (isConflict(err)) this.lost(key, h, 'taken over by another node');
          // NATS unreachable: keep working until the lease's own end, then stop (others may take it then).
          else if (this.steady.now() >= h.validUntil) this.lost(key, h, `not renewed in time: ${(err as Error).message}`);
        }
      }),
    );
    // Leases whose end passed while a renewal was slow are lost even without an answer.
    const now = this.steady.now();
    for (const [key, h] of this.held) if (now >= h.validUntil) this.lost(key, h, 'expired before it could be renewed');
  }
}

/** JetStream refused a compare-and-set: another writer's revision came first. */
export function isConflict(err: unknown): boolean {
  const message = err instanceof Error ? err.message : String(err);
  return /wrong last sequence|key exists|10071/.test(message) || (err as { api_error?: { err_code?: number } })?.api_error?.err_code === 10071;
}

/** The queue a hand-over names, who let it go, why, and how many leases it still holds; undefined for anything else on the subject. */
function handedOver(text: string): { queue: QueueRef; node: string | undefined; balance: boolean; giverHolds: number } | undefined {
  try {
    const v = JSON.parse(text) as Partial<QueueRef> & { node?: unknown; balance?: unknown; giverHolds?: unknown };
    if (typeof v.recipientDipId !== 'string' || typeof v.channel !== 'string') return undefined;
    return {
      queue: { recipientDipId: v.recipientDipId, channel: v.channel },
      node: typeof v.node === 'string' ? v.node : undefined,
      balance: v.balance === true,
      giverHolds: typeof v.giverHolds === 'number' ? v.giverHolds : Number.POSITIVE_INFINITY,
    };
  } catch {
    return undefined;
  }
}

/** A node's roll call: who, how many leases it holds, whether it takes more, whether it is leaving, whether it works its leases by its steady clock; undefined for anything else. */
function rollCall(text: string): { node: string; held: number; taking: boolean; leaving: boolean; steady: boolean; now?: number } | undefined {
  try {
    const v = JSON.parse(text) as { node?: unknown; held?: unknown; taking?: unknown; leaving?: unknown; now?: unknown; steady?: unknown };
    if (typeof v.node !== 'string' || typeof v.held !== 'number' || !Number.isInteger(v.held) || v.held < 0) return undefined;
    // Its clock (absent from a node of a version before): a number of milliseconds since the epoch.
    const now = typeof v.now === 'number' && Number.isFinite(v.now) ? v.now : undefined;
    return { node: v.node, held: v.held, taking: v.taking !== false, leaving: v.leaving === true, steady: v.steady === true, ...(now === undefined ? {} : { now }) };
  } catch {
    return undefined;
  }
}

/** Roll calls within the offset window (three a lease length) that must agree before a peer is warned of as behind. */
const BEHIND_SAMPLES_TO_WARN = 3;

/**
 * The offset a node's samples show (ms, its clock ahead of this node's; negative: behind), nearest zero.
 * Sound because a roll call's delay only ever lowers a sample: it says the time its sender had when
 * sent, read here later, so the true offset is at least each sample (at least the largest: the sample of
 * least delay, as NTP takes the sample of least round trip). A sample read while this node's event loop
 * ran `lateMs` late may have waited here up to that long, so it shows the node behind by at most
 * `-(offsetMs + lateMs)`: a late loop can make a peer look behind, never ahead. The offset shown is the
 * value nearest zero within those bounds: a peer ahead by its largest sample; behind by no more than the
 * least any sample allows once its lateness is discounted. (The leases apply the largest sample alone,
 * clockOf, the side on which they wait longer, never shorter; this is what is warned of and alarmed on.
 * An overloaded host read its peers' roll calls 10.6 s late, and warned that their clocks were behind.)
 */
function shownOffset(samples: ReadonlyArray<{ offsetMs: number; lateMs: number }>): number {
  const least = Math.max(...samples.map((s) => s.offsetMs));
  if (least >= 0) return least;
  const most = Math.min(...samples.map((s) => s.offsetMs + s.lateMs));
  return Math.min(0, Math.max(least, most));
}
