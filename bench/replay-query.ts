/**
 * What one IF-015 costs to answer as the archive grows: the DIP Replay Service's archive reads
 * (Archive.findForMpan, pages of CONSUMPTION_REPLAY_PAGE until a short one) for one MPAN, in an archive of
 * `--messages` IF-021 (sealed at rest, as in production, 4 recipients each) spread over `--mpans` MPANs.
 * The requester is one of the recipients, so each row is checked by the "was it sent to you" test
 * (src/adapters/archive-sql.ts, sentOrQueuedTo). Wall time per request: the median and the slowest of
 * `--requests`, each for another MPAN.
 *
 *   npx tsx bench/replay-query.ts [--messages 200000] [--mpans 2000] [--requests 20] [--engine sqlite|postgres] [--mpan-index]
 *
 * --mpan-index: the store indexes consumption by MPAN (storage.mpanIndex).
 *
 * PostgreSQL: a database of its own on the test server (test/helpers/postgres.ts), dropped after.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { systemClock } from '../src/adapters/clock.js';
import { openPostgresBackend } from '../src/adapters/postgres/index.js';
import { openSqliteBackend } from '../src/adapters/sqlite/index.js';
import { REPLAYED_CONSUMPTION } from '../src/domain/consumption-replay.js';
import { CONSUMPTION_REPLAY_PAGE } from '../src/pipeline/consumption-replay.js';
import type { Backend } from '../src/ports/backend.js';
import type { AcceptedMessage } from '../src/ports/message-log.js';
import { FileKeyEncryptionKey, Sealer } from '../src/security/at-rest.js';
import { buildIF021, mpanCore } from '../src/sim/messages.js';
import { createTestDatabase } from '../test/helpers/postgres.js';

const { values: flags } = parseArgs({
  options: {
    messages: { type: 'string', default: '200000' },
    mpans: { type: 'string', default: '2000' },
    requests: { type: 'string', default: '20' },
    engine: { type: 'string', default: 'sqlite' },
    'mpan-index': { type: 'boolean', default: false },
  },
});
const MESSAGES = Number(flags.messages);
const MPANS = Number(flags.mpans);
const REQUESTS = Number(flags.requests);
const SENDER = '2000000009';
const RECIPIENTS = ['1000000001', '1000000002', '1000000003', '4000000001'];
const REQUESTER = RECIPIENTS[0]!;
const BATCH = 500;
const log = (s: string): void => void process.stderr.write(`[replay-query ${new Date().toISOString().slice(11, 19)}] ${s}\n`);

const dir = mkdtempSync(join(tmpdir(), 'opendip-replay-query-'));
const pgDatabase = flags.engine === 'postgres' ? await createTestDatabase('opendip_bench') : null;
const backend: Backend = pgDatabase ? await openPostgresBackend({ url: await pgDatabase.freshSchema(), clock: systemClock, mpanIndex: flags['mpan-index'] }) : openSqliteBackend(join(dir, 'dip.sqlite'), { clock: systemClock, mpanIndex: flags['mpan-index'] });
backend.useSealer(await Sealer.open(new FileKeyEncryptionKey(join(dir, 'kek.key')), backend.dataKeys));
const mpans = Array.from({ length: MPANS }, (_, i) => mpanCore(`replay-query-${i}`));
const outbound = JSON.stringify(buildIF021({ senderDipId: SENDER, senderRole: 'ADS', primaryRecipients: RECIPIENTS, mpan: mpans[0]!, uniqueSuffix: 'template' }));

try {
  const filling = Date.now();
  for (let first = 0; first < MESSAGES; first += BATCH) {
    const now = Date.now();
    const messages: AcceptedMessage[] = Array.from({ length: Math.min(BATCH, MESSAGES - first) }, (_, i) => {
      const n = first + i;
      return { transactionId: `T-IF-021-${SENDER}-ADS-20261205-${String(n).padStart(16, '0')}`, channel: 'IF-021', eventCode: '[ActivePower]', senderDipId: SENDER, senderRole: 'ADS', senderUniqueReference: `fill-${n}`, correlationId: null, mpan: mpans[n % MPANS]!, receivedAt: now, outbound, recipients: RECIPIENTS };
    });
    const outcome = await backend.log.append({ channel: 'IF-021', senderDipId: SENDER, receivedAt: now, rawRequest: Buffer.from('[]'), signatureHeaders: '{}', messages });
    if (!outcome.ok) throw new Error('a fill batch was refused');
  }
  log(`${MESSAGES} IF-021 over ${MPANS} MPANs archived in ${((Date.now() - filling) / 1000).toFixed(1)} s (${flags.engine})`);

  const times: number[] = [];
  let rows = 0;
  for (let r = 0; r < REQUESTS; r++) {
    const mpan = mpans[(r * 97) % MPANS]!;
    const t0 = process.hrtime.bigint();
    for (let afterId = 0; ; ) {
      const page = await backend.archive.findForMpan({ mpan, party: REQUESTER, channels: Object.keys(REPLAYED_CONSUMPTION), afterId, limit: CONSUMPTION_REPLAY_PAGE });
      rows += page.length;
      if (page.length < CONSUMPTION_REPLAY_PAGE) break;
      afterId = page.at(-1)!.id;
    }
    times.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  times.sort((a, b) => a - b);
  const median = times[Math.floor(times.length / 2)]!;
  console.log(`${flags.engine}: ${MESSAGES} archived, ${REQUESTS} requests of ${rows / REQUESTS} rows each: median ${median.toFixed(1)} ms, slowest ${times.at(-1)!.toFixed(1)} ms per request`);
} finally {
  await backend.close();
  await pgDatabase?.drop();
  rmSync(dir, { recursive: true, force: true });
}
