/**
 * Which call delivered a copy, from its calls and its dead letter. A call answered 2xx delivered it unless
 * the copy was set aside since (a 207 naming it with a failure code, src/pipeline/queue-worker.ts): a dead
 * letter is not delivered; a requeued one is delivered by a 2xx call made after it was set aside. One rule
 * for every view of a journey (the user portal's, traces), so they cannot disagree.
 */
export function deliveringCall<A extends { verdict: string; startedAt: number }>(
  /** The calls that carried the copy, oldest first. */
  calls: readonly A[],
  /** Its dead letter, if it was ever set aside: `state` 'dead' while it lies there. */
  setAside: { state: string; at: number } | null,
): A | undefined {
  if (setAside?.state === 'dead') return undefined;
  return calls.find((a) => a.verdict === 'delivered' && (setAside === null || a.startedAt >= setAside.at));
}
