import { EventEmitter } from 'node:events';
import { createPrivateKey } from 'node:crypto';
import { ensureEncryptionKey } from './security/dip-encryption-key.js';
import { rootCertificates } from 'node:tls';
import { join } from 'node:path';
import { pino } from 'pino';
import { UndiciWebhookTransport } from './adapters/http/webhook-client.js';
import { SqliteStore } from './adapters/sqlite/store.js';
import { buildAdminServer, ensureAdminToken } from './api/admin.js';
import { buildServer } from './api/server.js';
import { RecipientCopies } from './pipeline/recipient-copy.js';
import { STATUS_CHANNEL, StatusMessages } from './pipeline/status.js';
import type { DeadLetterEvent } from './pipeline/delivery.js';
import type { QueueRef } from './ports/store.js';
import { CatalogueSource } from './pipeline/catalogue-source.js';
import type { DipConfig } from './config.js';
import { channelRouting, type Channel } from './pipeline/channels.js';
import { Delivery } from './pipeline/delivery.js';
import { Ingest, MPAN_LOOKUP_RECIPIENT } from './pipeline/ingest.js';
import { MpanDirectory } from './pipeline/mpan-directory.js';
import { changesFromMessage } from './domain/mpan-lookup.js';
import type { DipMessage } from './domain/message.js';
import type { Logger } from './pipeline/logger.js';
import { Registry } from './pipeline/registry.js';
import { Replay } from './pipeline/replay.js';
import { Retention } from './pipeline/retention.js';
import { ensurePki, type PkiMaterial } from './security/pki.js';
import { FileKeyEncryptionKey, Sealer, type KeyEncryptionKey } from './security/at-rest.js';
import { pathToFileURL } from 'node:url';
import { ReplayGuard } from './security/replay-guard.js';
import { RevocationWatcher } from './security/revocation.js';
import { expiringAll } from './security/expiry.js';
import { SigningKeyWatcher } from './security/signing-key.js';
import { clientTrustStore } from './security/trust-store.js';
import { WebhookDestinations } from './security/webhook-destinations.js';
import type { LookupFunction } from 'node:net';

export interface RunningDip {
  url: string;
  port: number;
  /** The PKI as loaded at start (the signing pair may have rotated since: see `signing`). */
  pki: PkiMaterial;
  /** The DIP's signing key in force. */
  signing: SigningKeyWatcher;
  adminPort: number;
  store: SqliteStore;
  /** 'dead-letter' (DeadLetterEvent): what alarms subscribe to. */
  events: EventEmitter;
  retention: Retention;
  close(): Promise<void>;
}

export const pkiDir = (config: DipConfig): string => join(config.dataDir, 'pki');

/**
 * The key-encryption key: a key file in the data directory by default. DIP_KMS_MODULE names an ES
 * module whose default export is a function returning a KeyEncryptionKey (wrap/unwrap through a KMS).
 */
async function keyEncryptionKey(config: DipConfig): Promise<KeyEncryptionKey> {
  const module = process.env.DIP_KMS_MODULE;
  if (!module) return new FileKeyEncryptionKey(join(config.dataDir, 'keys', 'kek.key'));
  const loaded = (await import(pathToFileURL(module).href)) as { default: (config: DipConfig) => KeyEncryptionKey | Promise<KeyEncryptionKey> };
  return loaded.default(config);
}
export const databaseFile = (config: DipConfig): string => join(config.dataDir, 'dip.db');

/** Logs never carry payloads or MPANs, whatever a future log line passes in. */
export function defaultLogger(): Logger {
  return pino({
    level: process.env.DIP_LOG_LEVEL ?? 'info',
    redact: { paths: ['payload', '*.payload', 'mpan', '*.mpan', 'MPANCore', '*.MPANCore', 'outbound', '*.outbound', 'body', '*.body'], censor: '[masked]' },
  });
}

/** What a test may substitute for the machine's own facilities. */
export interface StartOptions {
  /** Name resolution for webhook destinations (dns.lookup by default). */
  lookup?: LookupFunction;
}

/** Wires the embedded DIP together (the only place adapters meet the pipeline) and starts listening. */
export async function startDip(config: DipConfig, logger: Logger = defaultLogger(), options: StartOptions = {}): Promise<RunningDip> {
  const pki = await ensurePki(pkiDir(config), { environment: config.environment, hostnames: config.hostnames, ipAddresses: config.ipAddresses });
  // Client certificates must chain to the environment's CA, or to the configured trusted CAs (PRD). Read
  // first: a broken trustedCaFiles entry stops the start before anything is opened.
  const trust = clientTrustStore(config.trustedCaFiles, pki.ca.certPem);
  const store = new SqliteStore(databaseFile(config));
  // Encryption at rest: payloads and raw requests are sealed under data keys wrapped by the KEK.
  const sealer = await Sealer.open(await keyEncryptionKey(config), store);
  store.useSealer(sealer);
  const catalogue = new CatalogueSource(config.dataDir, logger);
  const defaultStaleMs = (config.staleAfterMinutes ?? config.retentionDays * 1440) * 60_000;
  // Every request and every delivered copy asks for its channel: built once per catalogue in force.
  let channelsOf = catalogue.current();
  const channels = new Map<string, Channel | undefined>();
  const channel = (id: string): Channel | undefined => {
    if (catalogue.current() !== channelsOf) {
      channelsOf = catalogue.current();
      channels.clear();
    }
    if (!channels.has(id)) {
      const def = channelsOf.channel(id);
      const suggested = def && config.applySuggestedSecurityCategories ? channelsOf.suggestedSecurityCategory(def.interfaceId)?.category : undefined;
      channels.set(id, def ? channelRouting(def, config.channels[def.interfaceId], defaultStaleMs, suggested) : undefined);
    }
    return channels.get(id);
  };
  for (const [id, o] of Object.entries(config.channels)) {
    if (o.securityPattern === 0) logger.info({ channel: id }, 'securityPattern 0 ("no security action") runs as pattern 1: in API 2.1.0 every request and webhook call is signed');
  }
  const registry = new Registry(store);
  const mpan = new MpanDirectory(store);
  // A bulk load or correction from the CLI bumps the registry version: drop what the cache holds.
  registry.onChange(() => mpan.invalidate());
  const events = new EventEmitter();
  const status = new StatusMessages(store, config.dipId);
  // Security patterns 2 and 3: the DIP's encryption key (inbound); recipients' keys come from their certificates.
  const encryption = await ensureEncryptionKey(pkiDir(config), pki.ca);
  const copies = new RecipientCopies((id) => (id === STATUS_CHANNEL ? undefined : channel(id)), registry);
  const outboundFor = (queue: QueueRef, outbound: string): string | Promise<string> => copies.copyFor(queue, outbound);
  await registry.start(500);
  catalogue.start(2000);
  if (config.warmCatalogue) catalogue.warm();

  // The signing key in force: `dip pki rotate-signing` replaces it while the DIP runs.
  const signing = new SigningKeyWatcher(pkiDir(config), pki.ca, pki.signing, logger);
  signing.start(config.signingKeyPollMs);
  // Outside DEV no webhook may point the DIP at internal networks, checked at registration and per connection.
  const destinations = new WebhookDestinations({ enforce: config.environment !== 'DEV', allowList: config.webhookAllowList, lookup: options.lookup });
  const transport = new UndiciWebhookTransport({
    destinations,
    // Recipients may use commercial certificates or the environment's own CA; the DIP's server
    // certificate doubles as its client certificate for recipients that ask for mutual TLS.
    ca: [...rootCertificates, pki.ca.certPem],
    cert: pki.server.certPem,
    key: pki.server.keyPem,
  });
  const delivery = new Delivery({
    log: store,
    registry,
    transport,
    signer: { sign: async (method, url, body) => ({ ...(await signing.current().sign(method, url, body)) }) },
    settings: {
      timeoutMs: config.delivery.timeoutMs,
      retry: { baseMs: config.delivery.retryBaseMs, capMs: config.delivery.retryCapMs },
      sweepIntervalMs: config.sweepIntervalSeconds * 1000,
    },
    staleAfterMs: (id) => (id === STATUS_CHANNEL ? config.retentionDays * 86_400_000 : (channel(id)?.staleAfterMs ?? defaultStaleMs)),
    outboundFor,
    // The MPAN lookup is maintained from the registration channels' own messages, through this queue.
    localConsumer: (queue) =>
      queue.recipientDipId === MPAN_LOOKUP_RECIPIENT
        ? async (entries) => mpan.apply(entries.flatMap((e) => changesFromMessage(JSON.parse(e.outbound) as DipMessage)))
        : undefined,
    onDeadLetter: (event) => {
      events.emit('dead-letter', event);
      returnToSender(event).catch((err: unknown) => logger.error({ err }, 'could not raise a status message'));
    },
    logger,
  });
  // Return to Sender (spec 5.5.9, 5.5.13 D): a refusing recipient's own answer is relayed when it gave one.
  const returnToSender = async (event: DeadLetterEvent): Promise<void> => {
    const relayed = event.answer === null ? undefined : recipientVerdict(event.answer);
    const queues = await status.fromDip(
      event.entry.transactionId,
      relayed?.message ?? 'MSG1000 - Message Processing Failed',
      relayed?.help ? `${event.detail}: ${relayed.help}` : event.detail,
    );
    delivery.notify(queues);
  };
  const ingest = new Ingest(
    {
      dipId: config.dipId,
      environment: config.environment,
      maxClockSkewMs: config.maxClockSkewSeconds * 1000,
      maxBatchMessages: config.maxBatchMessages,
    },
    { validate: (id, item, opts) => catalogue.current().validate(id, item, opts) },
    channel,
    registry,
    store,
    mpan,
    { dipKey: createPrivateKey(encryption.keyPem), recipientKey: (id) => copies.recipientKey(id) },
  );
  const replay = new Replay(store, copies);
  const revocation = await RevocationWatcher.open(pkiDir(config), pki.ca, logger);
  revocation.start(config.revocationPollMs);
  if (!trust.builtIn) {
    logger.info(
      { trustedCaFiles: config.trustedCaFiles, cas: trust.cas.length },
      'client certificates are verified against trustedCaFiles; revoked certificates are refused per request (the CRL of the built-in CA is not installed in the listener)',
    );
  }
  const app = buildServer(
    {
      config, logger, ingest, registry, webhooks: store, delivery, replay, status, queues: store, outboundFor, channel, destinations,
      // A getter: after a rotation GET /certificates/dip serves the signing certificate in force.
      certificates: { ca: pki.ca.certPem, get signing() { return signing.certificatePem(); }, encryption: encryption.certPem },
    },
    { key: pki.server.keyPem, cert: pki.server.certPem, ca: trust.cas },
    {
      replay: ReplayGuard.forClockSkew(config.maxClockSkewSeconds * 1000),
      // With a CRL installed OpenSSL wants one from every issuer in a client's chain: only the built-in
      // CA's own trust store can take it (the CRL is signed by that CA).
      revocation: trust.builtIn ? revocation : { revoked: (fingerprint256: string) => revocation.revoked(fingerprint256), crlPem: () => undefined, onCrl: () => {} },
    },
  );
  await app.listen({ port: config.port, host: config.host });
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : config.port;
  const admin = buildAdminServer({
    token: ensureAdminToken(config.dataDir),
    log: store,
    mpan,
    delivery,
    logger,
    sealer,
    pki: { config, pkiDir: pkiDir(config), participants: () => registry.participants() },
  });
  await admin.listen({ port: config.adminPort, host: '127.0.0.1' });
  const adminAddress = admin.server.address();
  const adminPort = typeof adminAddress === 'object' && adminAddress ? adminAddress.port : config.adminPort;
  await delivery.start();
  const retention = new Retention(
    store,
    {
      archiveRetentionMs: (id) => (config.channels[id]?.archiveRetentionDays ?? config.archiveRetentionDays) * 86_400_000,
      attemptsRetentionMs: config.archiveRetentionDays * 86_400_000,
      intervalMs: config.purgeIntervalSeconds * 1000,
      batchSize: 1000,
    },
    logger,
  );
  retention.start();
  // Expiring certificates: warned about at start, then once a day.
  const warnExpiring = (): void => {
    try {
      for (const c of expiringAll(pkiDir(config), config.trustedCaFiles, registry.participants())) {
        logger.warn({ certificate: c }, c.daysLeft < 0 ? `certificate of ${c.owner} has expired` : `certificate of ${c.owner} expires in ${c.daysLeft} days`);
      }
    } catch (err) {
      logger.error({ err }, 'could not check certificates for expiry');
    }
  };
  warnExpiring();
  const expiryTimer = setInterval(warnExpiring, 86_400_000);
  expiryTimer.unref();
  logger.info({ port, adminPort, dataDir: config.dataDir, environment: config.environment }, 'OpenDIP listening');

  let closed = false;
  return {
    url: `https://localhost:${port}`,
    port,
    adminPort,
    pki,
    signing,
    store,
    events,
    retention,
    async close() {
      if (closed) return;
      closed = true;
      clearInterval(expiryTimer);
      await retention.stop();
      await app.close();
      revocation.stop();
      signing.stop();
      await admin.close();
      await delivery.stop();
      await transport.close();
      registry.stop();
      catalogue.stop();
      await store.close();
    },
  };
}

/** The first entry of a StandardResponse a recipient answered with, if that is what it sent. */
function recipientVerdict(answer: string): { message: string; help: string | null } | undefined {
  try {
    const parsed = JSON.parse(answer) as { messageArray?: Array<{ message?: unknown; help?: unknown }> };
    const first = parsed.messageArray?.find((e) => typeof e.message === 'string' && /^[A-Z]{2,3}\d{4} - /.test(e.message));
    if (!first) return undefined;
    return { message: String(first.message).slice(0, 200), help: typeof first.help === 'string' ? first.help.slice(0, 400) : null };
  } catch {
    return undefined;
  }
}
