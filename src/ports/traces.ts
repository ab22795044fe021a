/** One recipient's copy of a message and what became of it. */
export interface TracedDelivery {
  recipient: string;
  seq: number;
  /** delivered: the queue moved past it without a dead letter; pending: still waiting; dead/requeued/discarded: its dead letter's state. */
  state: 'delivered' | 'pending' | 'dead' | 'requeued' | 'discarded';
  /** When the webhook call that delivered it ended (pull consumption: null). */
  deliveredAt: number | null;
  /** When the first call carrying it started: the DIP's own processing time ends here. */
  firstAttemptAt: number | null;
  /** Webhook calls, and a pull's acknowledgement (`pulled`: the recipient read them; no call was made). */
  attempts: Array<{ startedAt: number; latencyMs: number; status: number | null; verdict: string; error: string | null; pulled: boolean }>;
  deadLetter: { reason: string; status: number | null; detail: string; at: number } | null;
}

export interface TracedMessage {
  transactionId: string;
  channel: string;
  eventCode: string;
  sender: string;
  senderRole: string;
  senderUniqueReference: string | null;
  correlationId: string | null;
  receivedAt: number;
  /** The transaction ID this copy replays or requeues, null for an original. */
  replayOf: string | null;
  deliveries: TracedDelivery[];
  /**
   * The MPAN as the archive keeps it (a keyed hash when sealed at rest: the same for the same MPAN, not
   * readable), null for a message about none; only when `withMpan` is asked (processes linked by MPAN).
   */
  mpan?: string | null;
  /** Whom routing chose and why (A0 of the outbound copy); only when `withRouting` is asked. */
  routing?: { primary: string[]; secondary: string[]; always: string[] } | null;
  /**
   * Why the outbound copy could not be opened to read its routing (a damaged or swapped row, one sealed
   * under a data key not held): the routing is then null and the rest of the trace read as ever.
   */
  unreadable?: string;
}

export interface TraceQuery {
  fromMs: number;
  toMs: number;
  /** Messages on any of these channels (interface IDs as stored); absent or empty, every channel. */
  channels?: readonly string[];
  sender?: string;
  /** Only messages with a copy queued for this participant. */
  recipient?: string;
  transactionId?: string;
  correlationId?: string;
  /** A plain MPAN core; engines compare it as stored (a keyed hash with encryption at rest). */
  mpan?: string;
  limit: number;
  withRouting?: boolean;
  withMpan?: boolean;
}

/**
 * Messages with their copies, attempts and dead letters, read from the archive and delivery journal as
 * they already are (no storage of its own): what reports, traces and journeys are computed from.
 */
export interface MessageTraces {
  trace(query: TraceQuery): Promise<TracedMessage[]>;
}
