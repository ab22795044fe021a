/**
 * A service's refusal of what it was asked (an operator's change, a participant's self-service call):
 * the status the API answers and what is wrong. Nothing was changed. One class for every service, since
 * each answers a refusal the same way (the operator API's {"error"}, the participant API's StandardResponse).
 */
export class RefusedError extends Error {
  constructor(
    readonly status: 400 | 403 | 404 | 409,
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
  return e instanceof Error && 'status' in e && typeof e.status === 'number' ? { status: e.status, message: e.message } : null;
}
