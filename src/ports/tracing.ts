/**
 * Distributed tracing of the road (OpenTelemetry, README "OpenTelemetry traces"): what the pipeline tells
 * a tracer about one POST and about each delivery attempt. Off by default; then the pipeline holds no
 * tracer at all and creates nothing on the road (every call site is guarded by `tracer?.`).
 *
 * Times are epoch milliseconds with sub-millisecond precision from `now()`, the tracer's own clock: a
 * span measures real elapsed time, whatever clock the pipeline's logic runs on.
 */
export interface MessageTracer {
  now(): number;
  /** One POST /dip-channel/{id}, accepted or refused, after its answer is decided. */
  ingested(t: IngestTrace): void;
  /** One webhook call carrying these messages to one recipient, after it ended. */
  attempted(t: DeliveryTrace): void;
}

export interface IngestTrace {
  channel: string;
  /** The authenticated sender, null when authentication failed. */
  sender: string | null;
  status: number;
  /** The MSG code of the refusal (`MSG1001`), null when accepted. */
  refusal: string | null;
  /** The accepted messages' transaction IDs (empty when refused): each gets a trace of its own. */
  transactionIds: string[];
  /** When the request arrived, when its body was in hand (receive), and when each phase ended (null: not reached). */
  receivedAt: number;
  handledAt: number;
  authenticatedAt: number | null;
  validatedAt: number | null;
  committedAt: number | null;
  answeredAt: number;
}

export interface DeliveryTrace {
  channel: string;
  recipient: string;
  /** The messages the call carried, in queue order. */
  transactionIds: string[];
  /** 1 for the first call offering the oldest of them, 2 for the first retry, … */
  attempt: number;
  /** The HTTP status answered, null when no answer came. */
  status: number | null;
  verdict: 'delivered' | 'retry' | 'rejected';
  /**
   * The messages of a delivered call that its 207 answer refused (spec 5.5.9: set aside, returned to their
   * senders), each with the response code it was refused with (`RCP1021`); absent or empty when none.
   */
  refusals?: Array<{ transactionId: string; code: string }>;
  startedAt: number;
  endedAt: number;
}
