import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.js';
import { messageTraceIds } from '../src/adapters/otel-tracer.js';
import { buildIF021 } from '../src/sim/messages.js';
import { startTestDip, waitFor, type TestDip, type TestParticipant } from './helpers/dip-harness.js';

/** A span as the OTLP/HTTP JSON encoding carries it (opentelemetry-proto, JSON mapping: IDs in hex). */
interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  startTimeUnixNano: string;
  endTimeUnixNano: string;
  attributes: Array<{ key: string; value: { stringValue?: string; intValue?: string | number; boolValue?: boolean } }>;
  status?: { code?: number; message?: string };
}

interface Export {
  resourceSpans: Array<{ resource: { attributes: OtlpSpan['attributes'] }; scopeSpans: Array<{ spans: OtlpSpan[] }> }>;
}

/** A real OTLP/HTTP receiver: what a collector's otlphttp receiver does for traces, in JSON. */
async function startCollector(): Promise<{ url: string; spans: OtlpSpan[]; requests: Array<{ path: string; contentType: string | undefined }>; close(): Promise<void> }> {
  const spans: OtlpSpan[] = [];
  const requests: Array<{ path: string; contentType: string | undefined }> = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      requests.push({ path: req.url ?? '', contentType: req.headers['content-type'] });
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Export;
      for (const rs of body.resourceSpans) for (const ss of rs.scopeSpans) spans.push(...ss.spans);
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}/v1/traces`, spans, requests, close: () => new Promise((r) => server.close(() => r())) };
}

const attr = (s: OtlpSpan, key: string): string | number | boolean | undefined => {
  const v = s.attributes.find((a) => a.key === key)?.value;
  if (!v) return undefined;
  return v.stringValue ?? (v.intValue !== undefined ? Number(v.intValue) : v.boolValue);
};
const nanos = (s: string) => BigInt(s);

describe('OpenTelemetry traces (observability.tracing)', () => {
  let collector: Awaited<ReturnType<typeof startCollector>>;
  let t: TestDip;
  let sds: TestParticipant;
  let firstCallToA = true;

  beforeAll(async () => {
    collector = await startCollector();
    t = await startTestDip({ observability: { ...loadConfig({}).observability, tracing: { exporter: 'otlp-http', endpoint: collector.url, serviceName: 'opendip-test' } } });
    sds = await t.participant('2000000001', ['SDS']);
    const a = await t.participant('1000000001', ['SUP']);
    const b = await t.participant('1000000002', ['SUP']);
    // Recipient A is down for the first call (503), then takes it; B takes it at once.
    const ra = await t.receiver(() => {
      if (!firstCallToA) return 200;
      firstCallToA = false;
      return 503;
    });
    const rb = await t.receiver(() => 200);
    expect((await a.client.setWebhook('IF-021', a.dipId, { callbackURL: `${ra.url}dip` })).status).toBe(201);
    expect((await b.client.setWebhook('IF-021', b.dipId, { callbackURL: `${rb.url}dip` })).status).toBe(201);
  });
  afterAll(async () => {
    await t?.close();
    await collector?.close();
  });

  it('is off by default', () => {
    expect(loadConfig({}).observability.tracing.exporter).toBe('none');
  });

  it('exports one trace per message: its POST (receive, authenticate, validate, commit) and each delivery attempt to each recipient, parent/child linked', async () => {
    const item = buildIF021({ senderDipId: sds.dipId, senderRole: 'SDS', primaryRecipients: ['1000000001', '1000000002'], uniqueSuffix: 'otel1' });
    const res = await sds.client.submit('IF-021', [item]);
    expect(res.status).toBe(201);
    const transactionId = (res.body as { messageArray: Array<{ transactionID: string }> }).messageArray[0]!.transactionID;
    const ids = messageTraceIds(transactionId);
    const ofTrace = () => collector.spans.filter((s) => s.traceId === ids.traceId);
    const deliveries = () => ofTrace().filter((s) => s.name.startsWith('deliver '));
    // Spans leave in batches (every 500 ms); the three calls (A twice, B once) end up at the collector.
    await waitFor(() => deliveries().length === 3 && ofTrace().length === 8, 20_000, 'the message trace at the collector');

    expect(collector.requests.every((r) => r.path === '/v1/traces' && r.contentType === 'application/json')).toBe(true);
    const spans = ofTrace();
    const post = spans.find((s) => s.name === 'POST /dip-channel/IF-021')!;
    expect(post.spanId).toBe(ids.spanId);
    expect(post.parentSpanId ?? '').toBe('');
    expect(post.kind).toBe(2); // SERVER
    expect(attr(post, 'transactionId')).toBe(transactionId);
    expect(attr(post, 'channel')).toBe('IF-021');
    expect(attr(post, 'status')).toBe(201);
    expect(attr(post, 'sender')).toBe(sds.dipId);

    // The four phases of the POST, its children, in order and within it.
    const phases = ['receive', 'authenticate', 'validate', 'commit'].map((name) => spans.find((s) => s.name === name)!);
    for (const p of phases) {
      expect(p.parentSpanId).toBe(post.spanId);
      expect(attr(p, 'transactionId')).toBe(transactionId);
      expect(nanos(p.startTimeUnixNano) >= nanos(post.startTimeUnixNano)).toBe(true);
      expect(nanos(p.endTimeUnixNano) <= nanos(post.endTimeUnixNano)).toBe(true);
      expect(nanos(p.endTimeUnixNano) >= nanos(p.startTimeUnixNano)).toBe(true);
    }
    for (let i = 1; i < phases.length; i++) expect(phases[i]!.startTimeUnixNano).toBe(phases[i - 1]!.endTimeUnixNano);

    // Each delivery attempt to each recipient, under the POST, after it.
    const calls = deliveries().map((s) => ({ recipient: attr(s, 'recipient'), attempt: attr(s, 'attempt'), status: attr(s, 'status'), parent: s.parentSpanId, kind: s.kind, tx: attr(s, 'transactionId'), error: s.status?.code === 2 }));
    expect(calls).toHaveLength(3);
    for (const c of calls) expect(c).toMatchObject({ parent: post.spanId, kind: 3, tx: transactionId }); // CLIENT
    const sorted = [...calls].sort((x, y) => String(x.recipient).localeCompare(String(y.recipient)) || Number(x.attempt) - Number(y.attempt));
    expect(sorted.map(({ recipient, attempt, status, error }) => ({ recipient, attempt, status, error }))).toEqual([
      { recipient: '1000000001', attempt: 1, status: 503, error: true },
      { recipient: '1000000001', attempt: 2, status: 200, error: false },
      { recipient: '1000000002', attempt: 1, status: 200, error: false },
    ]);
    for (const d of deliveries()) expect(nanos(d.startTimeUnixNano) >= nanos(post.endTimeUnixNano) - 1_000_000n).toBe(true);

    // No payload and no personal data: only IDs, the channel and outcomes.
    const exported = JSON.stringify(spans);
    expect(exported).not.toContain(item.payload.CommonBlock.M0.MPANCore);
    expect(exported).not.toContain('settlementDay');
    const keys = new Set(spans.flatMap((s) => s.attributes.map((a) => a.key)));
    expect([...keys].sort()).toEqual(['attempt', 'channel', 'recipient', 'sender', 'status', 'transactionId', 'verdict']);
  });

  it('traces a refused POST too, with its MSG code, in a trace of its own', async () => {
    const bad = buildIF021({ senderDipId: sds.dipId, senderRole: 'SDS', primaryRecipients: ['1000000001'], uniqueSuffix: 'otel2' });
    (bad.payload.CommonBlock.S1 as { senderTimestamp: unknown }).senderTimestamp = 'yesterday';
    const res = await sds.client.submit('IF-021', [bad]);
    expect(res.status).toBe(400);
    await waitFor(() => collector.spans.some((s) => s.name === 'POST /dip-channel/IF-021' && attr(s, 'status') === 400), 10_000, 'the refused POST');
    const post = collector.spans.find((s) => s.name === 'POST /dip-channel/IF-021' && attr(s, 'status') === 400)!;
    expect(attr(post, 'refusal')).toBe('MSG1007');
    expect(attr(post, 'transactionId')).toBeUndefined();
    expect(post.status).toMatchObject({ code: 2, message: 'MSG1007' });
    // Authenticated, refused at validation: nothing was committed.
    const children = collector.spans.filter((s) => s.parentSpanId === post.spanId).map((s) => s.name).sort();
    expect(children).toEqual(['authenticate', 'receive', 'validate']);
  });
});
