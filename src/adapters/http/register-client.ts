import { errors, request, type Agent } from 'undici';
import { RegisterFetchError, type RegisterSource } from '../../ports/register-source.js';
import { DestinationRefusedError, type WebhookDestinations } from '../../security/webhook-destinations.js';
import { destinationCheckedAgent } from './webhook-client.js';
import { shownUrl } from '../../domain/url-secrets.js';

const TIMEOUT_MS = 30_000;

/** Reads a body up to `max` bytes and refuses the rest as it streams in (the connection is dropped, nothing kept). */
async function readWithin(body: AsyncIterable<Buffer> & { destroy(err?: Error): unknown }, max: number, tooLarge: () => RegisterFetchError): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    size += chunk.length;
    if (size > max) {
      const err = tooLarge();
      body.destroy(err);
      throw err;
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

/**
 * The register's HTTP endpoint, called through the destination-checked agent (src/adapters/http/webhook-client.ts):
 * internal networks (loopback, private ranges, link-local, cloud metadata) are refused in every
 * environment unless `register.allowList` names them, before connecting and again after each name
 * resolves. The body is read as it streams and refused past `maxBytes`; no redirect is followed.
 */
export class HttpRegisterSource implements RegisterSource {
  private readonly agent: Agent;

  constructor(
    private readonly destinations: Pick<WebhookDestinations, 'checkUrl' | 'checkHost' | 'lookup'>,
    private readonly maxBytes: number,
  ) {
    this.agent = destinationCheckedAgent({ destinations, connectionsPerOrigin: 1, keepAliveTimeout: 5_000 });
  }

  async fetch(url: string, headers: Readonly<Record<string, string>>): Promise<unknown> {
    const refused = await this.destinations.checkUrl(url);
    if (refused !== null) throw new RegisterFetchError('refused', `url: ${refused} (register.allowList lists the exceptions)`);
    const tooLarge = () => new RegisterFetchError('too-large', `the feed is larger than ${this.maxBytes / 1_048_576} MB (register.maxFeedMb): nothing applied`);
    // Error texts reach the operator's answer, the journal and the logs: they name the URL in its shown form.
    const shown = shownUrl(url);
    let text: string;
    try {
      const res = await request(url, { headers: { ...headers }, headersTimeout: TIMEOUT_MS, bodyTimeout: TIMEOUT_MS, dispatcher: this.agent });
      if (res.statusCode !== 200) {
        await res.body.dump();
        throw new RegisterFetchError('upstream', `${shown} answered ${res.statusCode}: nothing applied`);
      }
      const declared = Number(res.headers['content-length']);
      if (Number.isFinite(declared) && declared > this.maxBytes) {
        res.body.destroy();
        throw tooLarge();
      }
      text = (await readWithin(res.body, this.maxBytes, tooLarge)).toString('utf8');
    } catch (e) {
      if (e instanceof RegisterFetchError) throw e;
      if (e instanceof DestinationRefusedError) throw new RegisterFetchError('refused', `url: ${e.message} (register.allowList lists the exceptions)`);
      const cause = e instanceof errors.UndiciError ? `${e.code}: ${e.message}` : (e as Error).message;
      throw new RegisterFetchError('upstream', `could not read the register feed from ${shown}: ${cause}; nothing applied`, { cause: e });
    }
    try {
      return JSON.parse(text) as unknown;
    } catch {
      throw new RegisterFetchError('upstream', `${shown} did not answer JSON: nothing applied`);
    }
  }

  async close(): Promise<void> {
    await this.agent.close();
  }
}
