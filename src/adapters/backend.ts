import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { DipConfig } from '../config.js';
import type { Backend } from '../ports/backend.js';
import type { Clock } from '../ports/clock.js';
import { FileKeyEncryptionKey, Sealer, type KeyEncryptionKey } from '../security/at-rest.js';
import { systemClock } from './clock.js';
import { openSqliteBackend } from './sqlite/index.js';

export const databaseFile = (config: DipConfig): string => join(config.dataDir, 'dip.db');

/**
 * The key-encryption key: a key file in the data directory by default. DIP_KMS_MODULE names an ES
 * module whose default export is a function returning a KeyEncryptionKey (wrap/unwrap through a KMS).
 */
export async function keyEncryptionKey(config: DipConfig): Promise<KeyEncryptionKey> {
  const module = process.env.DIP_KMS_MODULE;
  if (!module) return new FileKeyEncryptionKey(join(config.dataDir, 'keys', 'kek.key'));
  const loaded = (await import(pathToFileURL(module).href)) as { default: (config: DipConfig) => KeyEncryptionKey | Promise<KeyEncryptionKey> };
  return loaded.default(config);
}

export interface OpenedBackend {
  backend: Backend;
  /** The at-rest sealer in force (rotated by the operator API). */
  sealer: Sealer;
}

/**
 * The one place that picks the storage engine from configuration (the way Svix's queue module does):
 * the embedded SQLite file by default. Whatever the engine, payloads are sealed at rest under data keys
 * kept beside the data and wrapped by the key-encryption key.
 */
export async function openBackend(config: DipConfig, options: { clock?: Clock } = {}): Promise<OpenedBackend> {
  const clock = options.clock ?? systemClock;
  const backend = openSqliteBackend(databaseFile(config), { clock });
  try {
    if (config.storage.maxDatabaseMb !== null) backend.setSizeLimit(config.storage.maxDatabaseMb * 1024 * 1024);
    const sealer = await Sealer.open(await keyEncryptionKey(config), backend.dataKeys);
    backend.useSealer(sealer);
    return { backend, sealer };
  } catch (err) {
    await backend.close();
    throw err;
  }
}
