/**
 * A service's refusal of what it was asked (an operator's change, a participant's self-service call):
 * the status the API answers and what is wrong. Nothing was changed. One class for every service, since
 * each answers a refusal the same way (the operator API's {"error"}, the participant API's StandardResponse).
 */
export class RefusedError extends Error {
  constructor(
    /** 429: asked while the DIP is doing as much of it as it allows at once (answered with a Retry-After). */
    readonly status: 400 | 403 | 404 | 409 | 429,
    message: string,
  ) {
    super(message);
  }
}

/**
 * The status and message to answer for `e`, or null when it is no refusal (a fault: rethrown, answered
 * 500). Any Error carrying a numeric status counts, not RefusedError alone: the domain's RegisterFeedError
 * (400) is answered the same way, and the domain cannot import this module.
 */
export function refusalOf(e: unknown): { status: number; message: string } | null {
  // A 4xx only: a library's error carrying a 5xx status (an HTTP client's, say) is a fault, answered 500 without its text.
  return e instanceof Error && 'status' in e && typeof e.status === 'number' && e.status >= 400 && e.status < 500 ? { status: e.status, message: e.message } : null;
}
