/**
 * Obfuscation rules that break the published schema (src/catalogue/obfuscation-check.ts): warned about,
 * naming the rule and the constraint, at `PATCH /admin/channels/{id}` (and `dip channel set`) and in the
 * log at start, never refused. And the README's example keeps every copy valid against the published schema.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { Catalogue } from '../src/catalogue/catalogue.js';
import { exampleMessage, submittable } from '../src/catalogue/examples.js';
import { obfuscationWarnings } from '../src/catalogue/obfuscation-check.js';
import { obfuscate } from '../src/domain/obfuscation.js';
import { adminApi } from './helpers/admin.js';
import { quietLogger, startTestDip } from './helpers/dip-harness.js';

const catalogue = Catalogue.load();
const schema = (id: string) => catalogue.schema(id)!;
const B900_V = 'CustomBlock.B900.settlementDayConsumptionPeriods[].consumptionPeriods[].v=x';

/** The `channels:` rules of the README's routing section: channel → role → paths (the block is YAML a DIP starts with: test/config.test.ts). */
function readmeRules(): Record<string, Record<string, string[]>> {
  const readme = readFileSync(join(import.meta.dirname, '..', 'README.md'), 'utf8');
  const block = /Per channel, in the configuration file:\n\n```yaml\n([\s\S]*?)```/.exec(readme)![1]!;
  const { channels } = parseYaml(block) as { channels: Record<string, { obfuscation?: Record<string, string[]> }> };
  return Object.fromEntries(Object.entries(channels).flatMap(([channel, c]) => (c.obfuscation ? [[channel, c.obfuscation]] : [])));
}

describe('obfuscation rules against the published schema', () => {
  it('names a rule that removes a required block and one that masks a value whose pattern or enum refuses x', () => {
    const w = obfuscationWarnings(schema('IF-021'), { SUP: ['CustomBlock.B067', B900_V], LDSO: ['CustomBlock.B900.settlementDayConsumptionPeriods[].consumptionPeriods[].q=x', 'CustomBlock.B999'] });
    expect(w.map((x) => [x.role, x.rule])).toEqual([
      ['SUP', 'CustomBlock.B067'],
      ['SUP', B900_V],
      ['LDSO', 'CustomBlock.B900.settlementDayConsumptionPeriods[].consumptionPeriods[].q=x'],
      ['LDSO', 'CustomBlock.B999'],
    ]);
    expect(w[0]!.warning).toMatch(/^obfuscation SUP: 'CustomBlock\.B067' removes payload\.CustomBlock\.B067, which the published schema requires/);
    expect(w[1]!.warning).toMatch(/masks .*consumptionPeriods\[\]\.v with 'x', which breaks DT-016's pattern \^-\?\\d\{1,9\}\\\.\\d\{3\}\$/);
    expect(w[2]!.warning).toMatch(/DI-083's enum \(\d+ values, no 'x'\)/);
    expect(w[3]!.warning).toMatch(/names nothing the channel's schema defines/);
  });

  it("is silent on optional fields and on masks the field's enum allows, whatever the case of the rule", () => {
    expect(obfuscationWarnings(schema('IF-033'), { MSS: ['customblock.b905list[].existingMAP', 'CustomBlock.B071.supplierProposedConsentGranularity=x'] })).toEqual([]);
  });

  it("the README's example keeps every copy valid against the published schema (so strict recipients take it)", () => {
    const rules = readmeRules();
    expect(Object.keys(rules).length).toBeGreaterThanOrEqual(1);
    for (const [channel, byRole] of Object.entries(rules)) {
      expect(obfuscationWarnings(schema(channel), byRole), channel).toEqual([]);
      for (const event of catalogue.channel(channel)!.eventCodes) {
        const message = submittable(exampleMessage(schema(channel), event), 'DEV');
        for (const [role, paths] of Object.entries(byRole)) {
          const copy = obfuscate(message, paths);
          expect(JSON.stringify(copy), `${channel} [${event}] ${role}: the rule hides something`).not.toBe(JSON.stringify(message));
          const r = catalogue.validate(channel, copy);
          expect(r.ok ? [] : r.errors, `${channel} [${event}] for ${role}`).toEqual([]);
        }
      }
    }
  });

  it('warns (never refuses) in the admin API answer and in the log at start, naming the rule and the constraint', async () => {
    const logged: Array<{ obj: object; msg?: string }> = [];
    const logger = { ...quietLogger, warn: (obj: object, msg?: string) => logged.push({ obj, msg }) };
    const t = await startTestDip({ channels: { 'IF-021': { obfuscation: { SUP: ['CustomBlock.B067'] } } } }, undefined, { logger });
    try {
      expect(logged.find((l) => l.msg?.includes("'CustomBlock.B067' removes payload.CustomBlock.B067"))?.obj).toMatchObject({ channel: 'IF-021', role: 'SUP', rule: 'CustomBlock.B067' });
      const admin = adminApi(t);
      const shown = await admin('GET', '/admin/channels/IF-021');
      expect(shown.body.warnings).toHaveLength(1);
      const changed = await admin('PATCH', '/admin/channels/IF-021', { settings: { obfuscation: { SUP: [B900_V] } } });
      expect(changed.status, JSON.stringify(changed.body)).toBe(200);
      expect(changed.body.settings.obfuscation).toEqual({ SUP: [B900_V] });
      expect(changed.body.warnings).toEqual([expect.stringMatching(/^obfuscation SUP: '.*\.v=x' masks .* with 'x', which breaks DT-016's pattern/)]);
      const fine = await admin('PATCH', '/admin/channels/IF-033', { settings: { obfuscation: { MSS: ['CustomBlock.B905List[].existingMAP'] } } });
      expect([fine.status, fine.body.warnings]).toEqual([200, []]);
    } finally {
      await t.close();
    }
  });
});
