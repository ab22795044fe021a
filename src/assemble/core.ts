import type { DipConfig } from '../config.js';
import type { Lifecycle } from '../lifecycle.js';
import { CatalogueSource } from '../pipeline/catalogue-source.js';
import { ChannelSettings, retentionWarning } from '../pipeline/channel-settings.js';
import { ChannelDirectory } from '../pipeline/channels.js';
import { MpanDirectory } from '../pipeline/mpan-directory.js';
import { RecipientCopies } from '../pipeline/recipient-copy.js';
import { Registry } from '../pipeline/registry.js';
import { STATUS_CHANNEL, StatusMessages } from '../pipeline/status.js';
import type { Backend } from '../ports/backend.js';
import type { Clock } from '../ports/clock.js';
import type { Logger } from '../ports/logger.js';
import { EncryptionKeyWatcher, ensureEncryptionKey } from '../security/dip-encryption-key.js';
import type { SharedEncryptionKey } from '../security/encryption-key-share.js';
import type { PkiMaterial } from '../security/pki.js';
import { RevocationWatcher } from '../security/revocation.js';
import { SigningKeyWatcher } from '../security/signing-key.js';

/** Intervals of startCore's change polls; registryMs undefined: the store's own (SQLite: 500 ms). */
export interface CorePolls {
  registryMs: number | undefined;
  catalogueMs: number;
  signingKeyMs: number;
}

/**
 * What every part of the message road reads: the catalogue, the registry, the channels as configured
 * and as changed while running, the MPAN directory, status messages, and the DIP's own keys.
 */
export async function startCore(
  config: DipConfig,
  pkiDir: string,
  pki: PkiMaterial,
  backend: Backend,
  clock: Clock,
  logger: Logger,
  life: Lifecycle,
  /** A channel resumed: its queues are swept again (delivery is wired after the core). */
  channelResumed: () => void,
  /** Between two validators compiled at start (tests hold it to see the node not ready). */
  warmPause?: () => Promise<void>,
  /**
   * How often the registry (SQLite: its version), the imported catalogue and the signing key are checked
   * for changes. A delivery process checks rarely: the main process tells it of each change (src/topology/shared-state.ts).
   */
  polls: CorePolls = { registryMs: undefined, catalogueMs: 2000, signingKeyMs: config.signingKeyPollMs },
  /** In a cluster: the encryption key recorded in the store, the same on every node (absent: this machine's files alone). */
  sharedEncryptionKey?: SharedEncryptionKey,
) {
  const catalogue = new CatalogueSource(config.dataDir, logger);
  const defaultStaleMs = (config.staleAfterMinutes ?? config.retentionDays * 1440) * 60_000;
  const registry = new Registry(backend.registry, logger, () => clock.now());
  // Channel settings change while running (operator API): stored versions replace the file's overrides.
  const channelSettings: ChannelSettings = new ChannelSettings({
    registry,
    store: backend.registry,
    journal: backend.journal,
    clock,
    definition: (id) => catalogue.current().channel(id),
    definitions: () => catalogue.current().channels(),
    schema: (id) => catalogue.current().schema(id),
    configured: config.channels,
    channel: (id) => channels.get(id),
    afterChange: (_id, state) => {
      if (state === 'active') channelResumed();
    },
  });
  const channels = new ChannelDirectory(() => catalogue.current(), () => channelSettings.overrides(), defaultStaleMs, config.applySuggestedSecurityCategories, {
    availability: (id) => channelSettings.availability(id),
    subscribers: (id) => registry.subscribers(id),
  });
  registry.onChange(() => channels.invalidate());
  for (const [id, o] of Object.entries(config.channels)) {
    if (o.securityPattern === 0) logger.info({ channel: id }, 'securityPattern 0 ("no security action") runs as pattern 1: in API 2.1.0 every request and webhook call is signed');
  }
  const channel = (id: string) => channels.get(id);
  const mpan = new MpanDirectory(backend.mpan);
  // A bulk load or correction from the CLI changes the registry version too: drop what the cache holds.
  registry.onChange(() => mpan.invalidate());
  const status = new StatusMessages(
    backend.log,
    backend.archive,
    { dipId: config.dipId, maxClockSkewMs: config.maxClockSkewSeconds * 1000, connectionProviderOf: (id) => registry.participant(id)?.connectionProvider ?? null },
    clock,
    backend.journal,
  );
  // Security patterns 2 and 3: the DIP's encryption key (inbound); recipients' keys come from their certificates.
  // Renewed ahead of expiry at start, or by `dip pki rotate-encryption` while running (polled as the signing key is).
  // In a cluster, the recorded pair replaces the files' before they are read, and a pair made or renewed
  // here is recorded for the others; a rotation recorded later (at another node) is written into the
  // files on the registry's change feed, and the watcher switches to it.
  await sharedEncryptionKey?.adopt();
  const encryptionKeys = await ensureEncryptionKey(pkiDir, pki.ca, clock.now());
  await sharedEncryptionKey?.publish(encryptionKeys);
  if (sharedEncryptionKey) registry.onChange(() => void sharedEncryptionKey.sync().catch((err: unknown) => logger.error({ err }, 'could not read the encryption key recorded in the store')));
  const encryption = new EncryptionKeyWatcher(pkiDir, encryptionKeys, clock, logger);
  encryption.start(polls.signingKeyMs);
  life.started('encryption key watcher', () => encryption.stop());
  // Revoked certificates: refused at the door (authenticate, the listener's CRL) and never encrypted to
  // (RecipientCopies). Here, so that every process that makes copies (a delivery process too) has it.
  // The list is in the store every node shares: read at once when it announces a change, and polled.
  const revocation = await RevocationWatcher.open(pkiDir, backend.registry, pki.ca, logger);
  revocation.start(config.revocationPollMs);
  registry.onChange(() => void revocation.reload());
  life.started('revocation watcher', () => revocation.stop());
  const copies = new RecipientCopies((id) => (id === STATUS_CHANNEL ? undefined : channel(id)), registry, { revoked: (fp) => revocation.revoked(fp), now: () => clock.now() });
  await registry.start(polls.registryMs);
  life.started('registry', () => registry.stop());
  // Taken as they are (an operator may mean it), but said: copies that fail the published schema are refused by strict recipients.
  for (const w of channelSettings.obfuscationWarnings()) logger.warn({ channel: w.channel, role: w.role, rule: w.rule }, w.warning);
  // Below spec 5.4's 14 days (allowShortRetention): the default once, then each channel's own.
  for (const warning of retentionWarning(defaultStaleMs)) logger.warn({ channel: null }, `every channel without its own: ${warning}`);
  for (const [id, o] of Object.entries(channelSettings.overrides())) for (const warning of retentionWarning(o.staleAfterMinutes === undefined ? undefined : o.staleAfterMinutes * 60_000)) logger.warn({ channel: id }, warning);
  catalogue.start(polls.catalogueMs);
  life.started('catalogue', () => catalogue.stop());
  // Compiled while the rest starts and after the listeners are up: /ready answers 503 until it is done.
  if (config.warmCatalogue) void catalogue.warm(warmPause).catch((err: unknown) => logger.error({ err }, 'compiling the catalogue validators failed; they compile on first use'));

  // The signing key in force: `dip pki rotate-signing` replaces it while the DIP runs.
  const signing = new SigningKeyWatcher(pkiDir, pki.ca, pki.signing, clock, logger);
  signing.start(polls.signingKeyMs);
  life.started('signing key watcher', () => signing.stop());
  return { catalogue, defaultStaleMs, registry, channelSettings, channels, channel, mpan, status, encryption, revocation, copies, signing };
}

export type Core = Awaited<ReturnType<typeof startCore>>;
