import { startDipProcess } from '../lib/dip-process.js';
import { issueMarketIdentities, onboardMarket, PRIMARY, SENDER } from '../lib/market.js';
import { MessageFactory, Sender } from '../lib/load.js';
const dip = await startDipProcess({ name: 'dbg' });
const ids = await issueMarketIdentities(dip.ca);
const market = await onboardMarket(dip, ids);
const sender = new Sender(dip.url, market.sender, dip.ca.certPem, 16);
const factory = new MessageFactory(SENDER.dipId, PRIMARY);
let idx = 0;
const t0 = Date.now();
await Promise.all(Array.from({ length: 16 }, async (_, lane) => {
  for (let k = 0; k < 8; k++) {
    const first = idx; idx += 100;
    const p = await sender.prepare(factory.body(1, first, 100), first, 100);
    const s = Date.now();
    const a = await sender.post(p);
    console.log(lane, k, a.status, Date.now() - s, Date.now() - t0, a.status !== 201 ? a.text.slice(0, 200) : '');
  }
}));
await sender.close();
await dip.stop();
console.log(dip.dataDir);
