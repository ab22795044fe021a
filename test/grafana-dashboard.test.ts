import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Agent } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULTS } from '../src/config.js';
import { buildIF021 } from '../src/sim/messages.js';
import { startTestDip, waitFor, type TestDip } from './helpers/dip-harness.js';

interface Target {
  expr: string;
  legendFormat?: string;
}
interface Panel {
  type: string;
  title: string;
  targets?: Target[];
  panels?: Panel[];
}
interface Dashboard {
  title: string;
  uid: string;
  panels: Panel[];
  templating: { list: Array<{ name: string; type: string; query?: string | { query: string } }> };
}

const dashboard = JSON.parse(readFileSync(join(import.meta.dirname, '..', 'deploy', 'grafana', 'opendip-dashboard.json'), 'utf8')) as Dashboard;
const allPanels = (ps: Panel[]): Panel[] => ps.flatMap((p) => [p, ...allPanels(p.panels ?? [])]);
/** Labels Prometheus adds when it scrapes (never in /metrics itself), and the bucket bound of histograms. */
const SCRAPE_LABELS = new Set(['instance', 'job']);

/** What /metrics exports: every family (HELP/TYPE lines) and every sample name with the label names it carries. */
function exposition(text: string): { families: Map<string, string>; samples: Map<string, Set<string>> } {
  const families = new Map<string, string>();
  const samples = new Map<string, Set<string>>();
  for (const line of text.split('\n')) {
    const type = /^# TYPE (\S+) (\S+)/.exec(line);
    if (type) families.set(type[1]!, type[2]!);
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-z_:][\w:]*)(?:\{(.*)\})? /i.exec(line);
    if (!m) continue;
    const labels = samples.get(m[1]!) ?? new Set<string>();
    for (const l of (m[2] ?? '').matchAll(/([a-z_]\w*)="/gi)) labels.add(l[1]!);
    samples.set(m[1]!, labels);
  }
  return { families, samples };
}

/** The series a PromQL expression reads, and the label names it groups or matches by. */
function parse(expr: string): { metrics: string[]; labels: string[] } {
  const metrics = [...new Set([...expr.matchAll(/\b(dip_\w+)/g)].map((m) => m[1]!))];
  const labels = [
    ...[...expr.matchAll(/\b(?:by|without)\s*\(([^)]*)\)/g)].flatMap((m) => m[1]!.split(',').map((l) => l.trim()).filter(Boolean)),
    ...[...expr.matchAll(/\{([^}]*)\}/g)].flatMap((m) => [...m[1]!.matchAll(/([a-z_]\w*)\s*(?:=~|!~|!=|=)/gi)].map((l) => l[1]!)),
  ];
  return { metrics, labels: [...new Set(labels)] };
}

describe('the Grafana dashboard (deploy/grafana/opendip-dashboard.json)', () => {
  let t: TestDip;
  let text: string;

  beforeAll(async () => {
    // With the anonymous listener on, as its connection gauge needs.
    t = await startTestDip({ publications: { ...DEFAULTS.publications, anonymous: { ...DEFAULTS.publications.anonymous, enabled: true, host: '127.0.0.1', port: 0 } } });
    const token = readFileSync(join(t.config.dataDir, 'admin-token'), 'utf8').trim();
    // Traffic that makes every labelled series exist: deliveries, a rejection (dead letter), a queue
    // waiting for a recipient with no webhook, and a refused submission.
    const sds = await t.participant('2000000001', ['SDS']);
    const ok = await t.participant('1000000001', ['SUP']);
    const refusing = await t.participant('1000000002', ['SUP']);
    await t.participant('1000000003', ['SUP']);
    const r1 = await t.receiver(() => 200);
    const r2 = await t.receiver(() => 400);
    expect((await ok.client.setWebhook('IF-021', ok.dipId, { callbackURL: `${r1.url}dip` })).status).toBe(201);
    expect((await refusing.client.setWebhook('IF-021', refusing.dipId, { callbackURL: `${r2.url}dip` })).status).toBe(201);
    const item = buildIF021({ senderDipId: sds.dipId, senderRole: 'SDS', primaryRecipients: ['1000000001', '1000000002', '1000000003'], uniqueSuffix: 'graf1' });
    expect((await sds.client.submit('IF-021', [item])).status).toBe(201);
    expect((await sds.client.submit('IF-021', [item])).status).toBe(400); // the same reference again: MSG1006
    // A request on each of the other listeners: the anonymous one's and the portal's (TLS, the test CA's
    // certificate: not verified here), and the operator listener's own /metrics scrapes.
    const insecure = new Agent({ connect: { rejectUnauthorized: false } });
    expect((await fetch(`https://127.0.0.1:${t.dip.publicPort}/publications`, { dispatcher: insecure } as RequestInit)).status).toBe(200);
    expect((await fetch(`${t.dip.portalUrl}/portal/sign-in`, { dispatcher: insecure } as RequestInit)).status).toBe(200);
    const scrape = async () => {
      const res = await fetch(`http://127.0.0.1:${t.dip.adminPort}/metrics`, { headers: { authorization: `Bearer ${token}` } });
      return res.text();
    };
    await scrape(); // counted by the time of the next: a scrape's own answer comes after its text
    await waitFor(async () => {
      text = await scrape();
      return /dip_dead_letters_total\{[^}]*reason="rejected"/.test(text) && /dip_delivery_attempts_total\{verdict="delivered"/.test(text);
    }, 20_000, 'a delivery and a rejection to show in /metrics');
  });
  afterAll(async () => {
    await t?.close();
  });

  it('reads only metrics a running DIP exports, by labels they carry', () => {
    const { families, samples } = exposition(text);
    const exprs = allPanels(dashboard.panels).flatMap((p) => (p.targets ?? []).map((x) => ({ panel: p.title, ...x })));
    for (const v of dashboard.templating.list) if (v.type === 'query' && v.query) exprs.push({ panel: `variable ${v.name}`, expr: typeof v.query === 'string' ? v.query : v.query.query });
    expect(exprs.length).toBeGreaterThan(20);
    const used = new Set<string>();
    for (const { panel, expr, legendFormat } of exprs) {
      const { metrics, labels } = parse(expr);
      expect(metrics.length, `${panel}: ${expr} reads no DIP metric`).toBeGreaterThan(0);
      const carried = new Set<string>(SCRAPE_LABELS);
      for (const name of metrics) {
        used.add(name);
        expect(samples.has(name) || families.has(name), `${panel}: ${name} is not in /metrics`).toBe(true);
        for (const l of samples.get(name) ?? []) carried.add(l);
      }
      for (const l of labels) expect(carried.has(l), `${panel}: label ${l} is not on ${metrics.join(', ')}`).toBe(true);
      for (const l of [...(legendFormat ?? '').matchAll(/\{\{\s*(\w+)\s*\}\}/g)].map((m) => m[1]!)) expect(carried.has(l), `${panel}: legend label ${l}`).toBe(true);
      // histogram_quantile over a histogram's buckets, grouped by their bound.
      if (expr.includes('histogram_quantile')) {
        const bucket = metrics.find((m) => m.endsWith('_bucket'));
        expect(bucket && families.get(bucket.replace(/_bucket$/, '')), `${panel}: histogram_quantile needs a histogram's _bucket`).toBe('histogram');
        expect(expr).toMatch(/by \(le\)/);
      }
    }
    // Every series the dashboard reads that needs traffic had some in this run (so the label checks above were real).
    expect([...used].filter((m) => !samples.has(m))).toEqual([]);
    // And it covers what the issue asks a dashboard to show.
    for (const m of ['dip_ingested_messages_total', 'dip_delivery_attempts_total', 'dip_queue_depth', 'dip_queue_oldest_age_seconds', 'dip_refusals_total', 'dip_group_commit_writes_bucket', 'dip_group_commit_seconds_bucket', 'dip_ingest_latency_seconds_bucket', 'dip_delivery_latency_seconds_bucket', 'dip_process_process_cpu_seconds_total', 'dip_publication_notices_unqueued_total', 'dip_connections_refused_total', 'dip_participant_connections', 'dip_anonymous_connections', 'dip_portal_connections']) {
      expect(used.has(m), m).toBe(true);
    }
  });

  it('counts the answers of every listener, by listener and route pattern', () => {
    const answered = (listener: string, route: string, status: string) =>
      new RegExp(`^dip_http_requests_total\\{listener="${listener}",method="GET",route="${route.replace(/\//g, '\\/')}",status="${status}"\\} [1-9]`, 'm');
    expect(text).toMatch(answered('anonymous', '/publications', '200'));
    expect(text).toMatch(answered('portal', '/portal/sign-in', '200'));
    expect(text).toMatch(answered('operator', '/metrics', '200'));
  });

  it('exports the refusal by its MSG code, and the group commits that made the message durable', () => {
    const { samples } = exposition(text);
    expect(text).toMatch(/dip_refusals_total\{channel="IF-021",code="MSG1006"\} 1/);
    expect(samples.get('dip_refusals_total')).toEqual(new Set(['channel', 'code']));
    // Connections refused, by the listener whose cap refused them (each listener's series there before any refusal).
    expect(samples.get('dip_connections_refused_total')).toEqual(new Set(['listener']));
    expect(text).toMatch(/^dip_connections_refused_total\{listener="participant"\} 0$/m);
    expect(text).toMatch(/^dip_connections_refused_total\{listener="anonymous"\} 0$/m);
    expect(text).toMatch(/^dip_connections_refused_total\{listener="portal"\} 0$/m);
    expect(Number(/^dip_group_commit_writes_count (\d+)/m.exec(text)?.[1])).toBeGreaterThan(0);
    expect(Number(/^dip_ingest_latency_seconds_count (\d+)/m.exec(text)?.[1])).toBe(1);
  });

  it('is a dashboard Grafana can import: a title, a uid, unique panel IDs, a datasource variable', () => {
    expect(dashboard).toMatchObject({ title: 'OpenDIP', uid: 'opendip-overview' });
    const ids = allPanels(dashboard.panels).map((p) => (p as Panel & { id: number }).id);
    expect(new Set(ids).size).toBe(ids.length);
    expect(dashboard.templating.list.find((v) => v.type === 'datasource')?.query).toBe('prometheus');
  });
});
