import type { QueueRef } from './message-log.js';
import type { AlarmCondition } from './alarms.js';

/**
 * Who works which recipient queue. Several DIP nodes share the queues, and each queue must be worked by
 * exactly one of them at a time (one call in flight per queue keeps its order). A node works a queue
 * only while it holds the queue's lease; a lease its holder stops renewing (the node died) is taken over
 * by another node within seconds. The embedded default grants every lease to its single process.
 */
export interface QueueLeases {
  /**
   * True when leases are shared with other nodes: Delivery then claims queues it does not hold on a short
   * timer (takeover), and gives up leases of queues it has left idle.
   */
  readonly shared: boolean;
  /** How often to look for queues whose holder has gone (null: never needed). */
  readonly claimEveryMs: number | null;
  /** Takes the queue's lease if it is free or its holder let it expire; true when this node holds it now. */
  acquire(queue: QueueRef): Promise<boolean>;
  /** Whether this node holds the queue's lease (and may deliver from it) right now. */
  holds(queue: QueueRef): boolean;
  /**
   * Gives the lease up (the queue went idle, or the node stops). `handOver`: the queue still has work this
   * node cannot do (its store is out of reach) or should not (`balance`): every other node is told at
   * once, and takes it if it can, instead of waiting to see the lease expire. `balance`: given up because
   * this node holds more than its share; only a node holding fewer leases than this one has left takes it
   * at once, and this node does not take it back for a while (else a claim pass anywhere finds it).
   */
  release(queue: QueueRef, options?: { handOver?: boolean; balance?: boolean }): Promise<void>;
  /**
   * How many of the queues this node holds are beyond its fair share of the queues held by the nodes it
   * hears from (the total over the nodes, rounded up): Delivery hands that many over, so one node's fault
   * touches a share of the recipients and every node's delivery capacity is used. 0 when not shared.
   */
  surplus(): number;
  /**
   * Whether this node takes queues now (false while its store is out of reach, and once it stops): a
   * node that takes none is left out of the others' shares, else they would hand it queues it refuses.
   */
  willTake(taking: boolean): void;
  /**
   * Tells whichever node holds the queue that something arrived. Best effort: a lost wake-up only delays
   * delivery until the holder's next sweep.
   */
  wake(queue: QueueRef): void;
  /** Another node woke a queue (this node may hold it, or take it if it is free). */
  onWake(listener: (queue: QueueRef) => void): void;
  /** A lease this node held could not be renewed in time (or was taken over): stop working that queue. */
  onLost(listener: (queue: QueueRef) => void): void;
  /** Releases every lease held and stops renewing. */
  close(): Promise<void>;
}

/** A shared condition as the notifier last told the subscribers of it, and when its summary was read. */
export interface NotifiedAlarm {
  condition: AlarmCondition;
  asOf: number;
}

/**
 * The one node of a cluster that sends the notices of shared alarm conditions: those read from what every
 * node shares (dead letters, queues, certificates), which every node finds alike. Each node evaluates them
 * (GET /admin/alarms answers on any node), but only the holder of this lease tells the subscribers, so a
 * change is notified once, not once per node. The lease carries what was notified: a node that takes it
 * over (its holder died or stopped) sends what changed since, not everything again and not nothing.
 * Absent in one process (its own memory says what was notified: no lease, no I/O).
 */
export interface AlarmNotifierLease {
  /**
   * Takes the lease if it is free or its holder let it expire, and says what its holders have notified;
   * null while another node holds it (or the lease cannot be read: no node can claim it then, so notices
   * wait rather than go twice).
   */
  turn(): Promise<Map<string, NotifiedAlarm> | null>;
  /** What this node has now notified (kept in the lease for whoever holds it next); false if the lease was taken over meanwhile. */
  record(notified: Map<string, NotifiedAlarm>): Promise<boolean>;
  /** Gives the lease up at once (keeping what was notified), so another node takes over at its next evaluation. */
  close(): Promise<void>;
}
