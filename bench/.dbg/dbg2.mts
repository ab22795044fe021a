import { request, Agent } from 'undici';
import { startDipProcess } from '../lib/dip-process.js';
import { issueMarketIdentities, onboardMarket, PRIMARY, SENDER } from '../lib/market.js';
import { MessageFactory, Sender } from '../lib/load.js';
const dip = await startDipProcess({ name: 'dbg' });
const ids = await issueMarketIdentities(dip.ca);
const market = await onboardMarket(dip, ids);
const sender = new Sender(dip.url, market.senders[0]!, dip.ca.certPem, 1);
const factory = new MessageFactory(SENDER.dipId, PRIMARY);
for (const n of [10, 30, 60, 100, 100]) {
  const p = await sender.prepare(factory.body(1, n * 1000, n), n * 1000, n);
  try {
  const res = await request(sender.url, { method: 'POST', body: p.body, headers: p.headers, dispatcher: sender.agent });
  const text = await res.body.text();
  console.log(n, p.body.length, res.statusCode, res.statusCode === 201 ? "" : text.slice(0, 600));
  } catch (e) { console.log(n, 'ERR', (e as Error).message); }
}
await sender.close();
await dip.stop();
console.log(dip.dataDir);
