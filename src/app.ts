import { rootCertificates } from 'node:tls';
import { join } from 'node:path';
import { pino } from 'pino';
import { UndiciWebhookTransport } from './adapters/http/webhook-client.js';
import { SqliteStore } from './adapters/sqlite/store.js';
import { buildServer } from './api/server.js';
import { CatalogueSource } from './pipeline/catalogue-source.js';
import type { DipConfig } from './config.js';
import { channelRouting } from './pipeline/channels.js';
import { Delivery } from './pipeline/delivery.js';
import { Ingest } from './pipeline/ingest.js';
import type { Logger } from './pipeline/logger.js';
import { Registry } from './pipeline/registry.js';
import { Replay } from './pipeline/replay.js';
import { ensurePki, type PkiMaterial } from './security/pki.js';
import { Signer } from './security/signature.js';

export interface RunningDip {
  url: string;
  port: number;
  pki: PkiMaterial;
  store: SqliteStore;
  close(): Promise<void>;
}

export const pkiDir = (config: DipConfig): string => join(config.dataDir, 'pki');
export const databaseFile = (config: DipConfig): string => join(config.dataDir, 'dip.db');

/** Wires the embedded DIP together (the only place adapters meet the pipeline) and starts listening. */
export async function startDip(config: DipConfig, logger: Logger = pino({ level: process.env.DIP_LOG_LEVEL ?? 'info' })): Promise<RunningDip> {
  const pki = await ensurePki(pkiDir(config), { environment: config.environment, hostnames: config.hostnames, ipAddresses: config.ipAddresses });
  const store = new SqliteStore(databaseFile(config));
  const catalogue = new CatalogueSource(config.dataDir, logger);
  const channel = (id: string) => {
    const def = catalogue.current().channel(id);
    return def ? channelRouting(def, config.channels[def.interfaceId]) : undefined;
  };
  const registry = new Registry(store);
  await registry.start(500);
  catalogue.start(2000);

  const signer = new Signer(pki.signing.keyPem, pki.signing.certPem);
  const transport = new UndiciWebhookTransport({
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
    signer: { sign: async (method, url, body) => ({ ...(await signer.sign(method, url, body)) }) },
    settings: {
      timeoutMs: config.delivery.timeoutMs,
      retry: { baseMs: config.delivery.retryBaseMs, capMs: config.delivery.retryCapMs },
      retentionMs: config.retentionDays * 86_400_000,
    },
    logger,
  });
  const ingest = new Ingest(
    {
      dipId: config.dipId,
      environment: config.environment,
      maxClockSkewMs: config.maxClockSkewSeconds * 1000,
      maxBatchMessages: config.maxBatchMessages,
    },
    { validate: (id, item) => catalogue.current().validate(id, item) },
    channel,
    registry,
    store,
  );
  const replay = new Replay(store);
  const app = buildServer(
    { config, logger, ingest, registry, webhooks: store, delivery, replay, channel },
    { key: pki.server.keyPem, cert: pki.server.certPem, ca: [pki.ca.certPem] },
  );
  await app.listen({ port: config.port, host: config.host });
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : config.port;
  await delivery.start();
  logger.info({ port, dataDir: config.dataDir, environment: config.environment }, 'OpenDIP listening');

  let closed = false;
  return {
    url: `https://localhost:${port}`,
    port,
    pki,
    store,
    async close() {
      if (closed) return;
      closed = true;
      await app.close();
      await delivery.stop();
      await transport.close();
      registry.stop();
      catalogue.stop();
      await store.close();
    },
  };
}
