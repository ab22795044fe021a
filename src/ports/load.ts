/**
 * How far behind this process runs, measured rather than guessed: delivery's fair share slows catch-up
 * while the process is pressed, and ingest answers 503 with Retry-After when it is overloaded.
 */
export interface LoadGauge {
  /** How late the event loop ran what was due, ms: the 99th percentile of recent samples (quick to rise). */
  delayP99Ms(): number;
  /** The mean lateness over the last whole measuring windows, ms: high only while the loop is behind throughout. */
  delayMeanMs(): number;
}
