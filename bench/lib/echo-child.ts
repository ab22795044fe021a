/**
 * The bare baseline for the HTTP layer: node:https with mutual TLS (client certificate required, as on
 * the DIP), kept-alive connections, and a handler that reads the POST body and echoes it back. Runs in
 * its own process, like the DIP, so the load generator is in the same place for both.
 */
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';

process.once('message', (raw: unknown) => {
  const msg = raw as { key: string; cert: string; ca: string };
  const server = createServer({ key: msg.key, cert: msg.cert, ca: [msg.ca], requestCert: true, rejectUnauthorized: true, minVersion: 'TLSv1.2' }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length });
      res.end(body);
    });
  });
  server.keepAliveTimeout = 60_000;
  server.listen(0, '127.0.0.1', () => {
    process.send!({ port: (server.address() as AddressInfo).port });
  });
  process.once('disconnect', () => {
    server.closeAllConnections();
    server.close();
  });
});
