import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import net from 'node:net';
import { request } from 'undici';
import { startDip } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { onboardParticipant } from '../../src/admin/participants.js';
import { issueParticipantCertificate } from '../../src/security/pki.js';
import { MessageFactory, Sender } from '../lib/load.js';
const origDestroy = net.Socket.prototype.destroy;
(net.Socket.prototype as any).destroy = function (this: any, err?: Error) {
  if (this.server || this._parent?.server || this.parser !== undefined) console.log('DESTROY', this.constructor.name, err?.message, new Error().stack?.split('\n').slice(2, 12).join('\n'));
  return origDestroy.call(this, err);
};
const dataDir = mkdtempSync(join(tmpdir(), 'dbg4-'));
const config = loadConfig({}, { dataDir, port: 0, adminPort: 0, host: '127.0.0.1' } as any);
const dip = await startDip(config, { info() {}, warn() {}, error(...a: unknown[]) { console.log('ERRLOG', JSON.stringify(a).slice(0, 500)); } } as any);
const id = '2000000001';
const c = await issueParticipantCertificate(dip.pki.ca, { organisation: 'x', dipIds: [id], environment: 'DEV', validDays: 2 });
const { apiKey } = await onboardParticipant(dip.store as any, { dipId: id, roles: ['SDS'], certificatePem: c.certPem });
for (const [rid, role] of [['1000000001', 'SUP'], ['3000000001', 'LDSO'], ['4000000001', 'MDS'], ['5000000001', 'LSS']]) {
  const r = await issueParticipantCertificate(dip.pki.ca, { organisation: 'x', dipIds: [rid!], environment: 'DEV', validDays: 2 });
  await onboardParticipant(dip.store as any, { dipId: rid!, roles: [role!], certificatePem: r.certPem });
}
const sender = new Sender(dip.url.replace('localhost', '127.0.0.1'), { dipId: id, role: 'SDS', apiKey, keyPem: c.keyPem, certPem: c.certPem }, dip.pki.ca.certPem, 1);
const factory = new MessageFactory(id, ['1000000001', '3000000001']);
for (const n of [100, 100]) {
  const p = await sender.prepare(factory.body(1, Math.floor(Math.random() * 1e6) * 100, n), 0, n);
  try {
    const res = await request(sender.url, { method: 'POST', body: p.body, headers: p.headers, dispatcher: sender.agent });
    const text = await res.body.text();
    console.log(n, res.statusCode, res.statusCode === 201 ? '' : text.slice(0, 300));
  } catch (e) { console.log(n, 'ERR', (e as Error).message); }
}
await sender.close();
await dip.close();
