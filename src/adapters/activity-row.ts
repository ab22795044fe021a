import type { ChainedActivity } from '../domain/activity.js';

/** An activity log record as both SQL stores keep it (snake_case columns). */
export interface ActivityRow {
  chain: string;
  seq: number;
  at: number;
  request_id: string;
  listener: string;
  caller: string | null;
  acting_for: string | null;
  remote: string | null;
  method: string;
  url: string;
  status: number | null;
  duration_ms: number;
  response_body: string | null;
  prev_hash: string;
  hash: string;
}

export const fromActivityRow = (r: ActivityRow): ChainedActivity => ({
  chain: r.chain,
  seq: r.seq,
  at: r.at,
  requestId: r.request_id,
  listener: r.listener,
  caller: r.caller,
  // Set only when the caller acted for another, as the record was appended (see activityHash).
  ...(r.acting_for !== null ? { actingFor: r.acting_for } : {}),
  remote: r.remote,
  method: r.method,
  url: r.url,
  status: r.status,
  durationMs: r.duration_ms,
  responseBody: r.response_body,
  prevHash: r.prev_hash,
  hash: r.hash,
});

/** A chain's row: where its writer stands, and where retention cut it. */
export interface ChainRow {
  chain: string;
  head_seq: number;
  head_hash: string;
  anchor_seq: number;
  anchor_hash: string;
}

export const fromChainRow = (c: ChainRow) => ({ chain: c.chain, head: { seq: c.head_seq, hash: c.head_hash }, anchor: { seq: c.anchor_seq, hash: c.anchor_hash } });
