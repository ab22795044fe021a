/**
 * A Map that holds at most `maxEntries`: a read (`get`, `has`) makes an entry the most recent, and a new
 * entry past the bound drops the least recent. For caches keyed by what a peer chooses (a certificate, a
 * transaction ID), which would otherwise grow for as long as the peer keeps sending new keys. A Map keeps
 * insertion order, so re-inserting on a read is all the bookkeeping an LRU needs.
 */
export class LruMap<K, V> {
  private readonly entries = new Map<K, V>();

  constructor(readonly maxEntries: number) {
    if (!Number.isInteger(maxEntries) || maxEntries < 1) throw new RangeError(`maxEntries must be a whole number of at least 1, not ${maxEntries}`);
  }

  get size(): number {
    return this.entries.size;
  }

  get(key: K): V | undefined {
    if (!this.entries.has(key)) return undefined;
    const value = this.entries.get(key) as V;
    this.entries.delete(key);
    this.entries.set(key, value);
    return value;
  }

  has(key: K): boolean {
    if (!this.entries.has(key)) return false;
    this.get(key);
    return true;
  }

  set(key: K, value: V): this {
    this.entries.delete(key);
    while (this.entries.size >= this.maxEntries) this.entries.delete(this.entries.keys().next().value as K);
    this.entries.set(key, value);
    return this;
  }

  delete(key: K): boolean {
    return this.entries.delete(key);
  }

  clear(): void {
    this.entries.clear();
  }
}
