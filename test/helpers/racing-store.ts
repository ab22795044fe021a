import type { RegistryStore } from '../../src/ports/registry.js';

/**
 * A registry store through which another writer commits at a chosen moment: `interleave(f)` runs `f` right
 * after the next read of the participants, so the code under test decides on a read another writer has
 * already changed. `armed()` says whether `f` is still waiting (it never ran: the race was not exercised).
 */
export function racingStore(store: RegistryStore): { racing: RegistryStore; interleave: (f: () => Promise<void>) => void; armed: () => boolean } {
  let pending: (() => Promise<void>) | null = null;
  const racing = Object.create(store, {
    participants: {
      value: async () => {
        const read = await store.participants();
        const then = pending;
        pending = null;
        await then?.();
        return read;
      },
    },
  }) as RegistryStore;
  return { racing, interleave: (f) => (pending = f), armed: () => pending !== null };
}
