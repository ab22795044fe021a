/** Report buckets, in UTC. */
export const GRANULARITIES = ['minute', 'hour', 'day', 'month'] as const;
export type Granularity = (typeof GRANULARITIES)[number];

/**
 * What a counted report covers: originals (not replays or requeues) received in [fromMs, toMs), with the
 * filters as MessageTraces reads them; with a recipient named, only that recipient's copies.
 */
export interface CountQuery {
  fromMs: number;
  toMs: number;
  granularity: Granularity;
  /** Messages on any of these channels (interface IDs as stored; each counted once); absent or empty, every channel. */
  channels?: readonly string[];
  sender?: string;
  recipient?: string;
  /**
   * A participant's view: the messages it sent, whole, and of others' messages those with a copy for it,
   * with that copy only. Absent: the operator's (everything).
   */
  viewer?: string;
  /** The DIP's own ID: what it sends itself (status and test messages) was not received, so is not counted in. */
  dipId: string;
}

/**
 * One bucket's counts: messages in (by receipt), copies out (by delivery, else receipt), errors (copies
 * dead-lettered, requeued or discarded, by their dead letter) and copies pending (by receipt).
 */
export interface BucketCounts {
  bucketMs: number;
  in: number;
  out: number;
  errors: number;
  pending: number;
}

/**
 * Exact statistics of one bucket's latencies (ms): percentiles are nearest-rank (the value at rank
 * ceil(q * count), 1-based, in ascending order). Null with a count of 0.
 */
export interface LatencyAggregate {
  count: number;
  min: number | null;
  max: number | null;
  sum: number | null;
  p50: number | null;
  p90: number | null;
  p99: number | null;
}

/**
 * One bucket (by receipt) of every message counted: end-to-end latency (receipt to the delivering call's
 * end) of its delivered copies, and the DIP's own processing time (receipt to the first call, at least 0).
 */
export interface BucketLatency {
  bucketMs: number;
  endToEnd: LatencyAggregate;
  dipProcessing: LatencyAggregate;
}

/**
 * Throughput and latency counted where the messages are (spec 5.11.1), so a period of any size is
 * answered without reading its messages out: a national day is tens of millions. The same rules as the
 * traces MessageTraces answers (src/adapters/trace-rows.ts): every engine answers the same as a fold of
 * its traces would.
 */
export interface ReportCounts {
  /** Buckets with anything counted, oldest first. */
  counts(query: CountQuery): Promise<BucketCounts[]>;
  /** Buckets holding a message counted, oldest first. */
  latency(query: CountQuery): Promise<BucketLatency[]>;
}
