import Fastify from 'fastify';
import { request, Agent } from 'undici';
import { createCertificateAuthority, issueServerCertificate, issueParticipantCertificate } from '../../src/security/pki.js';
const ca = await createCertificateAuthority({ commonName: 'x', environment: 'DEV', validDays: 2 });
const server = await issueServerCertificate(ca, { hostnames: ['localhost'], ipAddresses: ['127.0.0.1'], validDays: 2 });
const client = await issueParticipantCertificate(ca, { organisation: 'b', dipIds: ['2000000001'], environment: 'DEV', validDays: 2 });
const mode = process.argv[2] ?? 'mtls';
const app = Fastify({ https: { key: server.keyPem, cert: server.certPem, ca: [ca.certPem], requestCert: mode === 'mtls', rejectUnauthorized: mode === 'mtls', minVersion: 'TLSv1.2', handshakeTimeout: 10000, headersTimeout: 20000, requestTimeout: 120000, connectionsCheckingInterval: 1000, maxHeaderSize: 16384 } as any, requestTimeout: 120000, clientErrorHandler: process.argv[6] === 'default' ? undefined : (err: any, socket: any) => { console.log('clientError', err.code, err.message); socket.destroy(); }, bodyLimit: 10 * 1024 * 1024, keepAliveTimeout: 75_000, logger: false });
app.removeAllContentTypeParsers();
app.addContentTypeParser(['application/json'], { parseAs: 'buffer' }, (_req, body, done) => done(null, body));
app.post('/x', async (req, reply) => { setImmediate(() => { const until = Date.now() + Number(process.argv[3] ?? 0); while (Date.now() < until); }); return reply.code(201).send({ n: (req.body as Buffer).length, pad: 'x'.repeat(Number(process.argv[5] ?? 0)) }); });
await app.listen({ port: 0, host: '127.0.0.1' });
const port = (app.server.address() as any).port;
const agent = new Agent({ connections: 1, connect: { ca: ca.certPem, cert: client.certPem, key: client.keyPem } });
for (const n of [100_000, 300_000, 450_000, 450_000, 800_000, 800_000]) {
  try {
    const res = await request(`https://127.0.0.1:${port}/x`, { method: 'POST', body: 'x'.repeat(n), headers: { 'content-type': 'application/json', 'x-big': 'y'.repeat(Number(process.argv[4] ?? 10)) }, dispatcher: agent });
    console.log(n, res.statusCode, (await res.body.text()).length);
  } catch (e) { console.log(n, 'ERR', (e as Error).message); }
}
await agent.close(); await app.close();
