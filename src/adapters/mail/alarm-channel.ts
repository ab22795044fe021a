import { request, type Agent } from 'undici';
import { plainHttpProblem, requestedUrl } from '../../domain/callback-url.js';
import { shownUrl } from '../../domain/url-secrets.js';
import type { AlarmChannel, AlarmNotice, MaintenanceEvent, NoticeSigner } from '../../ports/alarms.js';
import { API_VERSION_HEADERS } from '../../domain/api-version.js';
import type { WebhookDestinations } from '../../security/webhook-destinations.js';
import { destinationCheckedAgent } from '../http/webhook-client.js';
import { SmtpMailer, type SmtpSettings } from './smtp-mailer.js';

export type { SmtpSettings };

/**
 * Alarm and maintenance notices by e-mail over SMTP (nodemailer) and by webhook (a JSON POST, signed with
 * the X-DIP-* headers over a notice's own string, `NOTICE;` and a call's). Without SMTP settings e-mail subscriptions are refused at
 * sending time with the reason logged.
 */
export class SmtpAlarmChannel implements AlarmChannel {
  private readonly mailer: SmtpMailer;
  /** Alarm webhooks obey the message webhooks' destination rules on every connection (SSRF, DNS rebinding). */
  private readonly agent: Agent;

  constructor(
    smtp: SmtpSettings | null,
    /** Required: DEV passes rules that are not enforced, so no channel is ever built without them. */
    destinations: Pick<WebhookDestinations, 'checkHost' | 'lookup'>,
    /**
     * The DIP's key over a notice's own string: an unsigned notice could be forged by anyone who learns the
     * URL (a RESOLVED notice hiding a live alarm), and one signed as a delivery would verify as a delivery
     * at another recipient's message webhook that a participant subscribed.
     */
    private readonly signer: NoticeSigner,
    /**
     * The DIP's environment: outside DEV a notice goes over TLS only. Subscribing checks it too, but a
     * subscription made before that rule (or stored by other means) must not be sent notices in clear.
     */
    private readonly environment: string,
  ) {
    this.agent = destinationCheckedAgent({ destinations, connectionsPerOrigin: 1, keepAliveTimeout: 5_000 });
    this.mailer = new SmtpMailer(smtp);
  }

  async email(to: string, subject: string, text: string): Promise<void> {
    await this.mailer.send(to, subject, text);
  }

  async webhook(url: string, notice: AlarmNotice | MaintenanceEvent): Promise<void> {
    // The URL signed is the URL requested, as for webhook calls: the subscriber rebuilds it from the request
    // it received, which is the client's serialisation of the URL, not the text subscribed.
    const requested = requestedUrl(url);
    if (requested === null) throw new Error(`webhook ${shownUrl(url)} is not a URL that can be called: subscribe with a new one`);
    const plain = plainHttpProblem('webhookUrl', url, this.environment);
    if (plain !== null) throw Object.assign(new Error(`webhook ${shownUrl(url)} not called: ${plain}; subscribe again with an https URL`), { code: 'EPLAINHTTP' });
    const body = Buffer.from(JSON.stringify(notice));
    const headers = await this.signer.signNotice('POST', requested, body);
    headers['content-type'] = 'application/json';
    // The version its body follows, as every message webhook call says it (README "API versions").
    Object.assign(headers, API_VERSION_HEADERS);
    const res = await request(requested, { method: 'POST', headers, body, headersTimeout: 10_000, bodyTimeout: 10_000, dispatcher: this.agent });
    await res.body.dump();
    if (res.statusCode >= 300) throw new Error(`webhook ${shownUrl(url)} answered ${res.statusCode}`);
  }

  async close(): Promise<void> {
    await this.mailer.close();
    await this.agent.close();
  }
}
