/** Why a register feed could not be read: the URL may not be called, the feed is too large, or the endpoint failed. */
export type RegisterFetchProblem = 'refused' | 'too-large' | 'upstream';

export class RegisterFetchError extends Error {
  constructor(
    readonly problem: RegisterFetchProblem,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'RegisterFetchError';
  }
}

/** Where the central register's feed is read from (its HTTP endpoint); nothing is applied here. */
export interface RegisterSource {
  /** The feed as parsed JSON; RegisterFetchError when it cannot be had. `headers` carry the endpoint's credentials. */
  fetch(url: string, headers: Readonly<Record<string, string>>): Promise<unknown>;
  close(): Promise<void>;
}
