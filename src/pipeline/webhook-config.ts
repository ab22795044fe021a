import type { Delivery } from './delivery.js';
import type { Registry } from './registry.js';
import type { RegistryStore, Webhook } from '../ports/registry.js';
import type { OperatorJournal } from '../ports/operator-journal.js';
import type { WebhookDestinations } from '../security/webhook-destinations.js';
import { callbackUrlShapeProblem, plainHttpProblem } from '../domain/callback-url.js';
import { carriesCredentials, shownUrl } from '../domain/url-secrets.js';

/** Published WebhookConfig: callbackURL, maxMessageCount, maxPayloadSize (KB); every field optional. */
export interface WebhookConfigBody {
  callbackURL?: string;
  maxMessageCount?: number;
  maxPayloadSize?: number;
}

const WEBHOOK_LIMITS = { maxMessageCount: 10_000, maxPayloadKb: 1_048_576, maxUrlLength: 2048 } as const;

/** What the DIP needs of a webhook beyond the published schema, or why it cannot use this one. */
export function webhookConfigProblem(body: WebhookConfigBody, environment: string): string | null {
  const url = body.callbackURL;
  if (url === undefined) return 'callbackURL is required: the DIP needs an address to deliver to';
  if (!/^https?:\/\//i.test(url)) return carriesCredentials(url) ? 'callbackURL must be an http(s) URL (and carry no user name or password)' : `callbackURL must be an http(s) URL, not '${url.slice(0, 80)}'`;
  if (url.length > WEBHOOK_LIMITS.maxUrlLength) return `callbackURL must be at most ${WEBHOOK_LIMITS.maxUrlLength} characters long`;
  // A password in the URL would be stored, shown to operators and echoed in answers: the DIP proves
  // itself to the endpoint with its TLS client certificate and its signature instead.
  if (carriesCredentials(url)) return 'callbackURL must not carry a user name or password: the DIP authenticates with its TLS client certificate and signs every call';
  const plain = plainHttpProblem('callbackURL', url, environment);
  if (plain) return plain;
  // Refused now, with the reason, rather than accepted and every message to it dead-lettered later.
  const shape = callbackUrlShapeProblem(url);
  if (shape) return shape;
  const count = body.maxMessageCount;
  if (count !== undefined && (!Number.isInteger(count) || count < 1 || count > WEBHOOK_LIMITS.maxMessageCount)) {
    return `maxMessageCount must be a whole number from 1 to ${WEBHOOK_LIMITS.maxMessageCount} (messages per webhook call), not ${count}`;
  }
  const size = body.maxPayloadSize;
  if (size !== undefined && (size < 1 || size > WEBHOOK_LIMITS.maxPayloadKb)) return `maxPayloadSize must be from 1 to ${WEBHOOK_LIMITS.maxPayloadKb} (KB per webhook call)`;
  return null;
}

export interface WebhookConfigDeps {
  environment: string;
  defaults: { maxMessageCount: number; maxPayloadKb: number };
  registry: Pick<Registry, 'refresh'>;
  webhooks: Pick<RegistryStore, 'putWebhook' | 'deleteWebhook' | 'webhooks'>;
  delivery: Pick<Delivery, 'notify'>;
  destinations: Pick<WebhookDestinations, 'checkUrl'>;
  /**
   * Each change is journalled (spec 8.3) with the webhook before and after, its URL in its shown form
   * (shownUrl: a key in its query is never written); absent: not journalled (tests of the rules alone).
   */
  operatorJournal?: { journal: Pick<OperatorJournal, 'append'>; now: () => number };
}

/** A webhook as the journal records it: never its URL's key. */
const journalled = (w: Webhook | undefined) => (w ? { url: shownUrl(w.url), maxMessageCount: w.maxMessageCount, maxPayloadKb: w.maxPayloadKb, registeredBy: w.registeredBy } : null);

async function journalWebhook(deps: WebhookConfigDeps, actor: string, action: 'webhook.set' | 'webhook.remove', recipientDipId: string, channel: string, before: Webhook | undefined, after: Webhook | undefined): Promise<void> {
  if (!deps.operatorJournal) return;
  const { journal, now } = deps.operatorJournal;
  await journal.append({ at: now(), actor, action, target: `${recipientDipId}/${channel}`, before: journalled(before), after: journalled(after), status: null });
}

const registered = async (deps: WebhookConfigDeps, recipientDipId: string, channel: string): Promise<Webhook | undefined> =>
  deps.operatorJournal ? (await deps.webhooks.webhooks()).find((w) => w.recipientDipId === recipientDipId && w.channel === channel) : undefined;

export type WebhookConfigOutcome = { ok: true; help: string } | { ok: false; help: string };

/**
 * Registers a recipient's webhook for one of its queues (a channel's, or its status messages'): the
 * OpenDIP rules, the destination check (no internal networks outside DEV), then stored and delivery
 * woken. The participant API (pubconfig, status config) and the user portal both call this. `registeredBy`:
 * the DIP ID of the authenticated caller (the recipient, or its connection provider acting for it).
 */
export async function configureWebhook(
  deps: WebhookConfigDeps,
  recipientDipId: string,
  channel: string,
  body: WebhookConfigBody,
  registeredBy: string,
  actor = `participant:${registeredBy}`,
): Promise<WebhookConfigOutcome> {
  const problem = webhookConfigProblem(body, deps.environment);
  if (problem || body.callbackURL === undefined) return { ok: false, help: problem ?? 'callbackURL is required' };
  const internal = await deps.destinations.checkUrl(body.callbackURL);
  if (internal) return { ok: false, help: `callbackURL: ${internal}` };
  const before = await registered(deps, recipientDipId, channel);
  const hook: Webhook = {
    recipientDipId,
    channel,
    url: body.callbackURL,
    maxMessageCount: body.maxMessageCount ?? deps.defaults.maxMessageCount,
    maxPayloadKb: Math.floor(body.maxPayloadSize ?? deps.defaults.maxPayloadKb),
    registeredBy,
  };
  await deps.webhooks.putWebhook(hook);
  await journalWebhook(deps, actor, 'webhook.set', recipientDipId, channel, before, hook);
  await deps.registry.refresh();
  deps.delivery.notify([{ recipientDipId, channel }]);
  // The answer is kept in the activity log, which operators read: a key in the URL's query is not repeated.
  return { ok: true, help: `webhook for ${channel} set to ${shownUrl(body.callbackURL)}` };
}

/** Removes the recipient's webhook for a queue (idempotent: none registered is the same end state). */
export async function removeWebhook(deps: WebhookConfigDeps, recipientDipId: string, channel: string, actor: string): Promise<void> {
  const before = await registered(deps, recipientDipId, channel);
  await deps.webhooks.deleteWebhook(recipientDipId, channel);
  // Idempotent: removing none changes nothing, and is no act to journal.
  if (before) await journalWebhook(deps, actor, 'webhook.remove', recipientDipId, channel, before, undefined);
  await deps.registry.refresh();
}

/** A webhook a changed nomination removed, as the participant and the journal are told of it. */
export interface RemovedWebhook {
  channel: string;
  /** As shown to operators: a key in its query is not repeated. */
  url: string;
  /** Null: registered before OpenDIP recorded who did. */
  registeredBy: string | null;
}

/**
 * After a participant's DIP Connection Provider nomination changed (withdrawn, or another nominated):
 * removes the participant's webhooks registered by anyone but itself and its provider now, so a former
 * provider, which lost its API access with the nomination, stops receiving the participant's messages
 * too. Their queues fall back to pull (nothing is lost: the messages wait). A webhook registered before
 * OpenDIP recorded who did goes too when the participant had a provider (`hadProvider`): it may be the
 * provider's, and a participant re-registers its own more easily than it gets back what leaked.
 */
export async function dropFormerProviderWebhooks(
  store: Pick<RegistryStore, 'webhooks' | 'deleteWebhook'>,
  participant: { dipId: string; connectionProvider: string | null },
  hadProvider: boolean,
): Promise<RemovedWebhook[]> {
  const stays = (w: Webhook) => (w.registeredBy === null ? !hadProvider : w.registeredBy === participant.dipId || w.registeredBy === participant.connectionProvider);
  return (await removeWebhooks(store, (await store.webhooks()).filter((w) => w.recipientDipId === participant.dipId && !stays(w)))).map(removedWebhook);
}

/**
 * Before a participant leaves the DIP (offboarded, rescinded): removes the webhooks it registered on other
 * participants' queues as their DIP Connection Provider, as the end of each nomination would, so their
 * messages never go on to an organisation no longer on the DIP. Their queues fall back to pull.
 */
export async function dropWebhooksRegisteredBy(store: Pick<RegistryStore, 'webhooks' | 'deleteWebhook'>, dipId: string): Promise<Array<RemovedWebhook & { recipientDipId: string }>> {
  const leaving = (await store.webhooks()).filter((w) => w.registeredBy === dipId && w.recipientDipId !== dipId);
  return (await removeWebhooks(store, leaving)).map((w) => ({ recipientDipId: w.recipientDipId, ...removedWebhook(w) }));
}

const removedWebhook = (w: Webhook): RemovedWebhook => ({ channel: w.channel, url: shownUrl(w.url), registeredBy: w.registeredBy });

/** Deletes the webhooks, in recipient then channel order: those deleted (another node may have been first). */
async function removeWebhooks(store: Pick<RegistryStore, 'deleteWebhook'>, leaving: readonly Webhook[]): Promise<Webhook[]> {
  const removed: Webhook[] = [];
  for (const w of [...leaving].sort((a, b) => a.recipientDipId.localeCompare(b.recipientDipId) || a.channel.localeCompare(b.channel))) {
    if (await store.deleteWebhook(w.recipientDipId, w.channel)) removed.push(w);
  }
  return removed;
}

/** The WebhookConfigDeps of a DIP's configuration and services. */
export function webhookConfigDeps(
  config: { environment: string; delivery: { defaultMaxMessageCount: number; defaultMaxPayloadKb: number } },
  services: Omit<WebhookConfigDeps, 'environment' | 'defaults'>,
): WebhookConfigDeps {
  return {
    environment: config.environment,
    defaults: { maxMessageCount: config.delivery.defaultMaxMessageCount, maxPayloadKb: config.delivery.defaultMaxPayloadKb },
    ...services,
  };
}
