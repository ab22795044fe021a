import Fastify from 'fastify';
import { describe, expect, it } from 'vitest';
import { beginGracefulStop, operatorStopping, useGracefulStop } from '../src/api/stopping.js';

/**
 * A stopping listener refuses what arrives over the network, not what the DIP asks of itself in process:
 * a portal page already in flight calls the operator API in-process (inProcessTransport, Fastify inject)
 * and must finish as it would, not fail its sign-in or its form half-way because the operator listener
 * began its drain at the same moment (review finding on the listeners draining together).
 */
describe('useGracefulStop', () => {
  it('answers an in-process (injected) request while stopping, and refuses one from a socket', async () => {
    const app = Fastify({ return503OnClosing: false, logger: false });
    useGracefulStop(app, 250, operatorStopping);
    app.get('/x', async () => ({ ok: true }));
    await app.listen({ port: 0, host: '127.0.0.1' });
    try {
      beginGracefulStop(app);
      const injected = await app.inject({ method: 'GET', url: '/x' });
      const address = app.server.address();
      if (address === null || typeof address === 'string') throw new Error('no port');
      const fromSocket = await fetch(`http://127.0.0.1:${address.port}/x`);
      expect([injected.statusCode, injected.json(), fromSocket.status, fromSocket.headers.get('retry-after')]).toEqual([200, { ok: true }, 503, '5']);
    } finally {
      await app.close();
    }
  });
});
