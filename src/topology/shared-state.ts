/**
 * The state every process (or thread) of one embedded DIP reads from the same file and folders: the
 * participant registry with the channel settings, the imported catalogue, the signing and encryption keys. The main
 * process sees each change first (it made it, or its fast polls found the CLI's): it pushes a 'refresh'
 * to the others, which then re-read at once instead of polling every half second. What the others still
 * poll (DipConfig.workerPollMs) only backs the push up. Nothing here knows of processes: a delivery
 * process (src/topology/delivery-process.ts) and a worker thread wire it alike.
 */

/** The parts of the core (src/assemble/core.ts) that reload on change: each check is cheap when nothing changed. */
export interface SharedState {
  registry: { onChange(listener: () => void): void; refresh(): Promise<void> };
  catalogue: { onChange(listener: () => void): void; reload(): void };
  signing: { onChange(listener: () => void): void; reload(): void };
  /** An ingest thread decrypts pattern 2 with it: it must take a sender's JWE to the new certificate as soon as the main process serves it. */
  encryption: { onChange(listener: () => void): void; reload(): void };
}

/**
 * Main side: calls `push` after anything shared changed here, once per turn of the event loop however
 * many changed in it (a registry reload and a channel's settings arrive together).
 */
export function pushSharedChanges(state: SharedState, push: () => void): void {
  let queued = false;
  const changed = (): void => {
    if (queued) return;
    queued = true;
    setImmediate(() => {
      queued = false;
      push();
    });
  };
  state.registry.onChange(changed);
  state.catalogue.onChange(changed);
  state.signing.onChange(changed);
  state.encryption.onChange(changed);
}

/**
 * The other side, on a push: re-reads whatever changed. Resolves once the registry's listeners ran (a
 * webhook registered in the main process is then in force here).
 */
export async function refreshSharedState(state: SharedState): Promise<void> {
  state.catalogue.reload();
  state.signing.reload();
  state.encryption.reload();
  await state.registry.refresh();
}
