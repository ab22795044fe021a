/**
 * How far behind this process runs, measured rather than guessed: ingest answers 503 with Retry-After
 * when it is overloaded. (Delivery's fair share follows the lateness of live calls instead.)
 */
export interface LoadGauge {
  /** The mean lateness over the last whole measuring windows, ms: high only while the loop is behind throughout. */
  delayMeanMs(): number;
}
