import { createHash } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, TraceFlags, trace, type Attributes, type Context, type HrTime, type Tracer } from '@opentelemetry/api';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BasicTracerProvider, BatchSpanProcessor, ConsoleSpanExporter, RandomIdGenerator, type IdGenerator, type SpanExporter } from '@opentelemetry/sdk-trace-base';
import type { DeliveryTrace, IngestTrace, MessageTracer } from '../ports/tracing.js';

export interface TracingSettings {
  exporter: 'otlp-http' | 'console' | 'none';
  /** OTLP/HTTP traces endpoint (…/v1/traces); null: the exporter's default (OTEL_EXPORTER_OTLP_* or localhost:4318). */
  endpoint: string | null;
  serviceName: string;
}

/**
 * A message's trace and the span of its POST have IDs derived from its transaction ID, so that any node,
 * at any later time (a retry an hour on, after a restart, in a cluster), parents its delivery attempts
 * to the POST without storing or looking anything up.
 */
export function messageTraceIds(transactionId: string): { traceId: string; spanId: string } {
  const h = createHash('sha256').update(`opendip:${transactionId}`).digest('hex');
  return { traceId: h.slice(0, 32), spanId: h.slice(32, 48) };
}

/**
 * Random IDs, except for the one span the next `startSpan` makes when `preset` holds its IDs: the SDK has
 * no other way to give a root span chosen IDs, and startSpan is synchronous, so nothing can come between.
 */
class PresetIdGenerator implements IdGenerator {
  preset: { traceId: string; spanId: string } | null = null;
  private readonly random = new RandomIdGenerator();

  generateTraceId(): string {
    return this.preset?.traceId ?? this.random.generateTraceId();
  }

  generateSpanId(): string {
    return this.preset?.spanId ?? this.random.generateSpanId();
  }
}

/** Epoch milliseconds (fractional) as the SDK's [seconds, nanoseconds]: a plain number could be taken for a performance.now() offset. */
function hr(ms: number): HrTime {
  const s = Math.floor(ms / 1000);
  return [s, Math.round((ms - s * 1000) * 1e6)];
}

/**
 * OpenTelemetry traces of the road on the official SDK: per accepted message a trace holding its POST
 * (children receive, authenticate, validate, commit) and, below the POST, one span per webhook call that
 * carried it to each recipient. Spans leave through a batch processor: a slow or absent collector costs the
 * road nothing (full buffers drop spans, never wait). Attributes carry IDs, channel and outcome only: no
 * payload, no personal data.
 */
export class OtelMessageTracer implements MessageTracer {
  private readonly ids = new PresetIdGenerator();
  private readonly provider: BasicTracerProvider;
  private readonly tracer: Tracer;

  constructor(settings: TracingSettings, exporter?: SpanExporter) {
    const out = exporter ?? (settings.exporter === 'console' ? new ConsoleSpanExporter() : new OTLPTraceExporter(settings.endpoint ? { url: settings.endpoint } : {}));
    this.provider = new BasicTracerProvider({
      resource: resourceFromAttributes({ 'service.name': settings.serviceName }),
      idGenerator: this.ids,
      spanProcessors: [new BatchSpanProcessor(out, { scheduledDelayMillis: 500 })],
    });
    this.tracer = this.provider.getTracer('opendip');
  }

  now(): number {
    return performance.timeOrigin + performance.now();
  }

  ingested(t: IngestTrace): void {
    const common: Attributes = { channel: t.channel, status: t.status, ...(t.sender ? { sender: t.sender } : {}), ...(t.refusal ? { refusal: t.refusal } : {}) };
    // A refused POST has no transaction: it gets a trace of its own, so refusals show too.
    const traces = t.transactionIds.length > 0 ? t.transactionIds : [null];
    for (const transactionId of traces) {
      this.ids.preset = transactionId === null ? null : messageTraceIds(transactionId);
      const post = this.tracer.startSpan(`POST /dip-channel/${t.channel}`, { kind: SpanKind.SERVER, startTime: hr(t.receivedAt), attributes: transactionId ? { ...common, transactionId } : common }, ROOT_CONTEXT);
      this.ids.preset = null;
      if (t.refusal) post.setStatus({ code: SpanStatusCode.ERROR, message: t.refusal });
      const parent = trace.setSpan(ROOT_CONTEXT, post);
      const attributes: Attributes = transactionId ? { transactionId, channel: t.channel } : { channel: t.channel };
      // Each phase ends at its mark; the one a refusal stopped ends with the answer, and the rest never began.
      const phase = (name: string, from: number, to: number | null) => this.tracer.startSpan(name, { startTime: hr(from), attributes }, parent).end(hr(to ?? t.answeredAt));
      phase('receive', t.receivedAt, t.handledAt);
      phase('authenticate', t.handledAt, t.authenticatedAt);
      if (t.authenticatedAt !== null) phase('validate', t.authenticatedAt, t.validatedAt);
      if (t.validatedAt !== null) phase('commit', t.validatedAt, t.committedAt);
      post.end(hr(t.answeredAt));
    }
  }

  /**
   * One span per message the call carried, in that message's trace. A 207 that refused some of them
   * (spec 5.5.9) is a call partly delivered: every span of it says how many were refused, with an event per
   * refusal code; its status stays unset, as the HTTP conventions have it for a 2xx, on the spans of the
   * messages it delivered. The span of a message it refused is that message's delivery ending in a
   * refusal, as a 400 to it alone would: status ERROR, error.type the recipient's code.
   */
  attempted(t: DeliveryTrace): void {
    const refusals = t.refusals ?? [];
    const refusedCode = new Map(refusals.map((r) => [r.transactionId, r.code]));
    const byCode = new Map<string, number>();
    for (const r of refusals) byCode.set(r.code, (byCode.get(r.code) ?? 0) + 1);
    const partly: Attributes = refusals.length > 0 ? { 'opendip.delivery.messages': t.transactionIds.length, 'opendip.delivery.refused': refusals.length } : {};
    for (const transactionId of t.transactionIds) {
      const code = refusedCode.get(transactionId);
      const verdict = code === undefined ? t.verdict : 'rejected';
      const span = this.tracer.startSpan(
        `deliver ${t.channel} to ${t.recipient}`,
        {
          kind: SpanKind.CLIENT,
          startTime: hr(t.startedAt),
          attributes: { transactionId, channel: t.channel, recipient: t.recipient, attempt: t.attempt, verdict, ...(t.status === null ? {} : { status: t.status }), ...partly, ...(code === undefined ? {} : { 'error.type': code }) },
        },
        postOf(transactionId),
      );
      for (const [refusal, count] of byCode) span.addEvent('opendip.delivery.refusal', { 'opendip.refusal.code': refusal, 'opendip.refusal.count': count }, hr(t.endedAt));
      if (code !== undefined) span.setStatus({ code: SpanStatusCode.ERROR, message: `refused in a ${t.status} answer (${code})` });
      else if (t.verdict !== 'delivered') span.setStatus({ code: SpanStatusCode.ERROR, message: t.status === null ? 'no answer' : `HTTP ${t.status} (${t.verdict})` });
      span.end(hr(t.endedAt));
    }
  }

  /** Sends what is buffered (stop, tests). */
  flush(): Promise<void> {
    return this.provider.forceFlush();
  }

  shutdown(): Promise<void> {
    return this.provider.shutdown();
  }
}

/** The context of a message's POST span, rebuilt from its transaction ID (remote: it may be another node's). */
function postOf(transactionId: string): Context {
  return trace.setSpanContext(ROOT_CONTEXT, { ...messageTraceIds(transactionId), traceFlags: TraceFlags.SAMPLED, isRemote: true });
}

