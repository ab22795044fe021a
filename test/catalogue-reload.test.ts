import { readFileSync, writeFileSync, renameSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { importedCatalogueFile } from '../src/pipeline/catalogue-source.js';
import { buildIF021 } from '../src/sim/messages.js';
import { startTestDip, waitFor, type TestDip } from './helpers/dip-harness.js';

const bundled = fileURLToPath(new URL('../src/catalogue/generated/catalogue-2.1.0.json', import.meta.url));

describe('catalogue import without a restart', () => {
  let t: TestDip;
  afterAll(async () => {
    await t?.close();
  });

  it('a running DIP picks up a newer catalogue in its data directory', async () => {
    t = await startTestDip();
    const sds = await t.participant('2000000001', ['SDS']);
    await t.participant('1000000001', ['SUP']);
    const item = () => buildIF021({ senderDipId: sds.dipId, senderRole: 'SDS', primaryRecipients: ['1000000001'] });
    expect((await sds.client.submit('IF-021', [item()])).status).toBe(201);

    // A "newer API version": IF-021 withdrawn. Written the way `dip catalogue import` installs it.
    const doc = JSON.parse(readFileSync(bundled, 'utf8')) as { apiVersion: string; channels: Array<{ interfaceId: string }> };
    doc.apiVersion = '2.2.0-test';
    doc.channels = doc.channels.filter((c) => c.interfaceId !== 'IF-021');
    const target = importedCatalogueFile(t.config.dataDir);
    writeFileSync(`${target}.tmp`, JSON.stringify(doc));
    renameSync(`${target}.tmp`, target);

    let status = 0;
    const poll = setInterval(() => {
      void sds.client.submit('IF-021', [item()]).then((a) => (status = a.status));
    }, 300);
    try {
      await waitFor(() => status === 404, 10_000, 'IF-021 to be refused as unknown');
    } finally {
      clearInterval(poll);
    }
  });
});
