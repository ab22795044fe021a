/** One HTTP POST of a delivery batch to a recipient's callback URL. */
export interface WebhookCall {
  /**
   * The URL requested, already in the form the HTTP client sends it (requestedUrl() of the callback URL):
   * the signature in `headers` covers this very string, so the transport must request it unchanged.
   */
  url: string;
  body: Buffer;
  headers: Record<string, string>;
  timeoutMs: number;
  /** How much of the answer's body is kept (default 64 KiB): a 207 names each message of the call. */
  maxAnswerBytes?: number;
}

export type WebhookOutcome =
  | {
      kind: 'answered';
      status: number;
      retryAfter: string | undefined;
      /** The start of the answer's body: a refusing recipient's StandardResponse is relayed to the sender. */
      body: string;
      /** The body went on past maxAnswerBytes or the call's deadline: `body` is only its start. */
      truncated?: boolean;
      latencyMs: number;
    }
  /** No HTTP answer: connection refused or reset, TLS failure, timeout. Always retried. */
  | { kind: 'failed'; error: string; latencyMs: number };

export interface WebhookTransport {
  post(call: WebhookCall): Promise<WebhookOutcome>;
  close(): Promise<void>;
}

/** Signs what the DIP sends (the X-DIP-* headers), off the event loop. */
export interface OutboundSigner {
  sign(method: string, url: string, body: Buffer): Promise<Record<string, string>>;
}
