/**
 * An ingest thread of the DIP (`ingestThreads` > 0), started by the main thread
 * (src/topology/ingest-threads.ts). It runs POST /dip-channel/{id}'s pipeline for the requests the main
 * thread hands it: authenticate (signature, API key, certificate binding, revocation), parse, validate,
 * route, stamp the wrapper, serialise the outbound copies, seal them. What must have one place stays in
 * the main thread and is a call: the append (the one group commit, which refuses duplicates and answers
 * once the batch is durable). It reads the registry, the channel settings and the MPAN lookup from the
 * store over its own connection, and never writes.
 */
import { parentPort } from 'node:worker_threads';
import type { DipConfig } from '../config.js';
import { openBackend } from '../adapters/backend.js';
import { systemClock } from '../adapters/clock.js';
import { defaultLogger, pkiDir } from '../app.js';
import { startCore } from '../assemble/core.js';
import { buildIngest } from '../assemble/ingest.js';
import { startTracing } from '../assemble/observability.js';
import { Lifecycle } from '../lifecycle.js';
import type { AcceptedBatch, AppendOutcome } from '../ports/message-log.js';
import type { IngestLog, IngestResult } from '../pipeline/ingest.js';
import { ensurePki } from '../security/pki.js';
import { sealParts } from '../security/seal-batch.js';
import type { FromIngestThread, IngestCall, IngestCallResult, ToIngestThread } from './ingest-protocol.js';
import { labelled, PendingCalls, toWire } from './protocol.js';
import { refreshSharedState } from './shared-state.js';

const port = parentPort;
if (!port) throw new Error('src/topology/ingest-thread.ts runs as a worker thread');

const send = (m: FromIngestThread): void => port.postMessage(m);

/** A thread's PostgreSQL pool: it reads the registry, channel settings, MPAN lookup and data keys, and writes nothing. */
const READ_POOL = 3;
function withReadPool(config: DipConfig): DipConfig {
  const { postgres } = config.storage;
  return { ...config, storage: { ...config.storage, postgres: { ...postgres, poolSize: Math.min(postgres.poolSize, READ_POOL) } } };
}

async function run(init: Extract<ToIngestThread, { t: 'init' }>): Promise<void> {
  // Warmed below, awaited: this thread takes requests only once every validator is compiled. On the
  // cluster backend it opens PostgreSQL only (never NATS: the replay guard is the main thread's), to read,
  // so a few connections do: each thread's pool counts against the server's max_connections.
  const config = withReadPool({ ...init.config, warmCatalogue: false });
  const clock = systemClock;
  const logger = labelled(defaultLogger(), { thread: `ingest-${init.index}` });
  const life = new Lifecycle(logger);
  const pki = await ensurePki(pkiDir(config), { environment: config.environment, hostnames: config.hostnames, ipAddresses: config.ipAddresses });
  const { backend, sealer } = await openBackend(config, { clock, logger, besideWriter: true });
  life.started('storage (reads)', () => backend.close());
  // The same registry, catalogue (its validators compiled here too), channels and keys as the main thread.
  // The main thread pushes a 'refresh' when any changes (and each request carries its registry version);
  // this thread's own polls only back that up.
  const slow = config.workerPollMs;
  const core = await startCore(config, pkiDir(config), pki, backend, clock, logger, life, () => {}, undefined, { registryMs: slow, catalogueMs: slow, signingKeyMs: slow });
  const tracer = await startTracing(config, life);
  const { revocation } = core;

  // The writer is the main thread's: a call, answered by a reply.
  const main = new PendingCalls();
  const call = <K extends IngestCall['op']>(c: Extract<IngestCall, { op: K }>): Promise<IngestCallResult[K]> => main.call((id) => send({ t: 'call', id, ...c }));
  /** Each submission in hand (its id) by its body (what the pipeline appends as the raw request). */
  const inHand = new WeakMap<Buffer, number>();
  /** Submissions the main thread answered itself, once their append was accepted (IngestCall.accepted). */
  const answeredByMain = new Set<number>();
  // Deflating and sealing what is archived is done here too: the writer only writes.
  const log: IngestLog = {
    append: async (batch: AcceptedBatch, accepted?: IngestResult): Promise<AppendOutcome> => {
      const request = inHand.get(batch.rawRequest);
      if (request === undefined) throw new Error('ingest thread: an append for no submission in hand');
      const { rawRequest: _stillInTheMainThread, ...rest } = batch;
      const sealed = sealParts(batch, sealer);
      const messages = init.copies ? rest.messages : rest.messages.map(({ outbound: _sealedAbove, ...m }) => m);
      const outcome = await call<'append'>({ op: 'append', request, batch: { ...rest, messages, sealed }, ...(accepted ? { accepted } : {}) });
      if (accepted && outcome.ok) answeredByMain.add(request);
      return outcome;
    },
  };
  /** The main thread seals under a newer data key (rotated there, or loaded from another node): load it before sealing. */
  const keyInForce = async (id: number): Promise<void> => {
    if (sealer.currentKeyId < id) await sealer.reload();
  };
  const ingest = buildIngest(config, core, log, clock, tracer);

  port!.on('message', (m: ToIngestThread) => {
    switch (m.t) {
      case 'reply':
        main.answered(m);
        return;
      case 'refresh':
        refreshSharedState(core).catch((err: unknown) => logger.error({ err }, 'could not re-read the registry, catalogue or signing key'));
        return;
      case 'ingest': {
        // Structured clone turns the body into a Uint8Array over the same bytes: a Buffer again, no copy.
        const body = Buffer.from(m.req.body.buffer, m.req.body.byteOffset, m.req.body.byteLength);
        inHand.set(body, m.id);
        Promise.all([core.registry.catchUp(m.registryVersion), keyInForce(m.sealKeyId)])
          .then(() => ingest.handle({ ...m.req, body, controls: { revocation } }))
          .then(
          (result) => {
            if (!answeredByMain.delete(m.id)) send({ t: 'result', id: m.id, ok: true, result });
          },
          (err: unknown) => {
            // Answered already (the append was accepted) means what failed came after it: nothing to tell.
            if (!answeredByMain.delete(m.id)) send({ t: 'result', id: m.id, ok: false, error: toWire(err) });
            else logger.error({ err }, 'ingest thread: failed after its submission was answered');
          },
        );
        return;
      }
      case 'init':
        return;
    }
  });
  // Compiled before this thread takes requests: until then the main thread answers them itself.
  if (init.config.warmCatalogue) await core.catalogue.warm();
  send({ t: 'ready' });
}

port.once('message', (m: ToIngestThread) => {
  if (m.t !== 'init') return;
  run(m).catch((err: unknown) => {
    process.stderr.write(`ingest thread ${m.index} failed to start: ${err instanceof Error ? err.stack : String(err)}\n`);
    process.exit(1);
  });
});
