import type { FastifyInstance, FastifySchema } from 'fastify';
import type { Access } from './guard.js';

/** One operation a listener serves, as registered: what the OpenAPI document and the fuzzer are built from. */
export interface Operation {
  method: string;
  /** Fastify's pattern: `/dip-channel/:id/pubconfig/:recipientId`. */
  url: string;
  schema: FastifySchema | undefined;
  /** Who may call it (participant routes guarded by src/api/guard.ts); undefined where the handler decides. */
  access: Access | undefined;
}

const recorded = new WeakMap<FastifyInstance, Operation[]>();

/**
 * Records every route registered on `app` from now on (plugins included): call it right after creating
 * the instance. Tools that must cover every operation (test/fuzz) read the list instead of keeping
 * their own, so a route added tomorrow is covered tomorrow.
 */
export function recordOperations(app: FastifyInstance): void {
  const list: Operation[] = [];
  recorded.set(app, list);
  app.addHook('onRoute', (r) => {
    for (const method of [r.method].flat()) list.push({ method, url: r.url, schema: r.schema, access: r.config?.access });
  });
}

/** The operations `app` serves (empty unless recordOperations ran before its routes were added). */
export function operationsOf(app: FastifyInstance): readonly Operation[] {
  return recorded.get(app) ?? [];
}
