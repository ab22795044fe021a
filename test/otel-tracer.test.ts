import { SpanStatusCode } from '@opentelemetry/api';
import { InMemorySpanExporter, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { messageTraceIds, OtelMessageTracer } from '../src/adapters/otel-tracer.js';
import type { DeliveryTrace } from '../src/ports/tracing.js';

/** The delivery spans of OtelMessageTracer, read back from the SDK's in-memory exporter. */
describe('delivery spans (src/adapters/otel-tracer.ts)', () => {
  const exporter = new InMemorySpanExporter();
  const tracer = new OtelMessageTracer({ exporter: 'none', endpoint: null, serviceName: 'opendip-test' }, exporter);
  afterEach(() => exporter.reset());
  afterAll(() => tracer.shutdown());

  const call = (over: Partial<DeliveryTrace>): DeliveryTrace => ({ channel: 'IF-021', recipient: 'SUP0000001', transactionIds: ['T-1', 'T-2', 'T-3', 'T-4'], attempt: 1, status: 207, verdict: 'delivered', startedAt: 1_000, endedAt: 1_020, ...over });

  const spans = async (): Promise<Map<string, ReadableSpan>> => {
    await tracer.flush();
    return new Map(exporter.getFinishedSpans().map((s) => [String(s.attributes.transactionId), s]));
  };
  const events = (s: ReadableSpan) => s.events.map((e) => [e.name, e.attributes]);

  it('a 207 that refused some messages: the delivered ones keep status unset, every span counts the refusals with an event per code, a refused one is an error with its code', async () => {
    tracer.attempted(call({ refusals: [{ transactionId: 'T-2', code: 'RCP1021' }, { transactionId: 'T-4', code: 'RCP1061' }, { transactionId: 'T-3', code: 'RCP1021' }] }));
    const byTx = await spans();
    expect([...byTx.keys()].sort()).toEqual(['T-1', 'T-2', 'T-3', 'T-4']);
    const codes = [
      ['opendip.delivery.refusal', { 'opendip.refusal.code': 'RCP1021', 'opendip.refusal.count': 2 }],
      ['opendip.delivery.refusal', { 'opendip.refusal.code': 'RCP1061', 'opendip.refusal.count': 1 }],
    ];
    const delivered = byTx.get('T-1')!;
    expect(delivered.status.code).toBe(SpanStatusCode.UNSET);
    expect(delivered.attributes).toMatchObject({ verdict: 'delivered', status: 207, 'opendip.delivery.messages': 4, 'opendip.delivery.refused': 3 });
    expect(delivered.attributes['error.type']).toBeUndefined();
    expect(events(delivered)).toEqual(codes);
    const refused = byTx.get('T-4')!;
    expect(refused.status).toEqual({ code: SpanStatusCode.ERROR, message: 'refused in a 207 answer (RCP1061)' });
    expect(refused.attributes).toMatchObject({ verdict: 'rejected', status: 207, 'error.type': 'RCP1061', 'opendip.delivery.refused': 3 });
    expect(events(refused)).toEqual(codes);
    // Each span stays in its own message's trace, below its POST.
    for (const [tx, s] of byTx) {
      const { traceId, spanId } = messageTraceIds(tx);
      expect([s.spanContext().traceId, s.parentSpanContext?.spanId]).toEqual([traceId, spanId]);
    }
  });

  it('a call with no refusals carries none of it', async () => {
    tracer.attempted(call({ status: 201 }));
    tracer.attempted(call({ transactionIds: ['T-5'], status: 503, verdict: 'retry' }));
    const byTx = await spans();
    const plain = byTx.get('T-1')!;
    expect(plain.status.code).toBe(SpanStatusCode.UNSET);
    expect(plain.events).toEqual([]);
    expect(Object.keys(plain.attributes).filter((k) => k.startsWith('opendip.') || k === 'error.type')).toEqual([]);
    expect(byTx.get('T-5')!.status).toEqual({ code: SpanStatusCode.ERROR, message: 'HTTP 503 (retry)' });
  });
});
