import { availableParallelism, hostname, userInfo } from 'node:os';
import { Command, InvalidArgumentError } from 'commander';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { basename, join, resolve } from 'node:path';
import { nominationChange, registerParticipant, rotateCertificateJournalled, type JournalledAct } from '../pipeline/participants.js';
import { pkiDir, startDip } from '../app.js';
import { databaseFile, keyEncryptionKey, openBackend } from '../adapters/backend.js';
import { systemClock } from '../adapters/clock.js';
import { checkExport, writeExport } from '../adapters/migration-file.js';
import { importIntoPostgres } from '../adapters/postgres/import.js';
import { exportSqlite } from '../adapters/sqlite/export.js';
import type { Backend } from '../ports/backend.js';
import { Catalogue, importCatalogue } from '../catalogue/catalogue.js';
import { exampleMessage, submittable } from '../catalogue/examples.js';
import { DEFAULT_MAX_BODY_BYTES, startWebhookReceiver } from '../client/webhook-receiver.js';
import { LruMap } from '../domain/lru-map.js';
import { loadConfig, type DipConfig } from '../config.js';
import { dipDateTime } from '../domain/time.js';
import { importedCatalogueFile } from '../pipeline/catalogue-source.js';
import { ENCRYPTION_OVERLAP_DAYS, ensureEncryptionKey, rotateEncryptionKey } from '../security/dip-encryption-key.js';
import { recordEncryptionKeys } from '../security/encryption-key-share.js';
import { EXPIRY_WARNING_DAYS, expiringAll } from '../security/expiry.js';
import { createEnvironmentCa, ensurePki, issueParticipantCertificate, issueServerCertificate, PKI_FILES, readCertificateAuthority, rotateSigningCertificate } from '../security/pki.js';
import { readRevocationList, revokeCertificate } from '../security/revocation.js';
import { certificateInfo } from '../security/signature.js';
import { readTrustedCaFiles } from '../security/trust-store.js';
import { buildIF021 } from '../sim/messages.js';
import { privateWriteStream, writePrivateFile } from './private-output.js';
import { adminCall } from './admin-client.js';
import { registerLifecycleCommands } from './lifecycle-commands.js';
import { registerOperationsCommands } from './operations-commands.js';
import { stopOnSignals } from './stop-signals.js';
import { registerAuditCommands } from './audit.js';
import { LOAD_HEADER, readLoadFile } from './mpan-load.js';
import { openProfile, PROFILE_FILES } from './profile.js';
import { listenOutput, SEEN_TRANSACTION_IDS } from './listen-output.js';
import { onboardingHint } from './onboarding-hint.js';
import { replayFile, writeReplay } from './replay-output.js';
import { startTopology } from './cluster/topology.js';
import type { Readable } from 'node:stream';
import { request } from 'undici';
import { defaultIngestThreads } from '../topology/ingest-threads.js';

const collect = (value: string, previous: string[]): string[] => [...previous, value];
const positiveInt = (v: string): number => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('must be a positive whole number');
  return n;
};
const nonNegative = (v: string): number => {
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new InvalidArgumentError('must be a number, zero or more');
  return n;
};
/**
 * The CAs a participant's certificate must chain to (as the TLS listener checks it), so `participant add`
 * and `rotate-cert` refuse one from another environment at once. Undefined before the first start
 * created the environment's CA, when no trustedCaFiles are configured either.
 */
const trustedCas = (config: DipConfig): string[] | undefined => {
  if (config.trustedCaFiles.length > 0) return readTrustedCaFiles(config.trustedCaFiles).map((s) => s.certPem);
  const caFile = join(pkiDir(config), PKI_FILES.caCert);
  return existsSync(caFile) ? [readFileSync(caFile, 'utf8')] : undefined;
};
const print = (v: unknown): void => {
  process.stdout.write(`${JSON.stringify(v, null, 2)}\n`);
};
/** Writes to stdout and waits while its buffer is full, so a long output is held a piece at a time, not whole. */
const writeStdout = (text: string): Promise<void> => new Promise((resolve) => (process.stdout.write(text) ? resolve() : process.stdout.once('drain', resolve)));

const program = new Command('dip').description('OpenDIP: an open MHHS Data Integration Platform (DIP API 2.1.0)');

program
  .command('serve')
  .description('run the DIP (HTTPS with mutual TLS on DIP_PORT, default 8443; data under DIP_DATA_DIR, default ./data)')
  .option('--accept-wal-loss', 'start even though the write-ahead log lost committed transactions since the last stop (alarmed and journalled; README "Operating the DIP")')
  .action(async (o: { acceptWalLoss?: boolean }) => {
    const loaded = loadConfig();
    // `dip serve` uses every core unless told otherwise (README "Every core"); startDip alone stays in one process.
    const config = { ...loaded, workers: loaded.workers ?? availableParallelism(), ingestThreads: loaded.ingestThreads ?? defaultIngestThreads(availableParallelism()) };
    let running: { close(): Promise<void> } | undefined;
    const dip = await startDip(config, undefined, {
      acceptWalLoss: o.acceptWalLoss === true,
      // A failed disk sync: stop taking traffic and exit, so the supervisor restarts the DIP and recovery
      // runs from what is on disk (EX_SOFTWARE; see the README's operations section).
      onFatal: () => {
        void (running?.close() ?? Promise.resolve()).finally(() => process.exit(70));
      },
    });
    running = dip;
    process.stderr.write(onboardingHint(config, { port: dip.port, adminPort: dip.adminPort, pkiDir: pkiDir(config), pkiCreated: dip.pki.created }));
    stopOnSignals(process, () => dip.close(), (code) => process.exit(code), () => performance.now(), (line) => process.stderr.write(`${line}\n`));
  });

program
  .command('cluster')
  .description('a complete production topology on this machine: 3 NATS JetStream nodes (R3), PostgreSQL, 3 DIP nodes behind one address')
  .option('--dir <dir>', 'state: NATS stores, the DIP data directory (PKI, configuration), logs', './cluster')
  .option('--port <port>', 'the one address participants use (a TCP pass-through balancer: mTLS ends at the nodes)', (v) => Number(v), 8443)
  .option('--host <host>', 'interface the balancer listens on', '127.0.0.1')
  .option('--postgres-url <url>', 'the database (created when absent; a private server is started when none answers)', 'postgres://postgres@127.0.0.1:5432/opendip_cluster')
  .option('--nats-port <port>', 'first client port of the NATS nodes (routes at +100, monitoring at +200)', (v) => Number(v), 14222)
  .option('--nats-servers <list>', 'use this NATS cluster (host:port,…) instead of starting one')
  .option('--nodes <n>', 'DIP nodes', positiveInt, 3)
  .action(async (o: { dir: string; port: number; host: string; postgresUrl: string; natsPort: number; natsServers?: string; nodes: number }) => {
    const log = (m: string) => process.stderr.write(`[cluster] ${m}\n`);
    const dir = resolve(o.dir);
    const topology = await startTopology({
      dir,
      host: o.host,
      port: o.port,
      postgresUrl: o.postgresUrl,
      natsServers: o.natsServers?.split(',').map((x) => x.trim()).filter(Boolean),
      natsBasePort: o.natsPort,
      natsNodes: 3,
      natsBinary: process.env.NATS_SERVER ?? 'nats-server',
      dipNodes: o.nodes,
      log,
    });
    process.stderr.write(
      [
        '',
        `OpenDIP cluster: ${topology.dipNodes.length} nodes behind ${topology.url}`,
        `  nodes      ${topology.dipNodes.map((n) => `${n.name} :${n.port} (admin :${n.adminPort}, pid ${n.process.pid})`).join(', ')}`,
        `  NATS       ${topology.natsServers.join(', ')}${topology.nats.length ? ' (started here, JetStream R3)' : ' (already running)'}`,
        `  PostgreSQL ${topology.postgresUrl}${topology.postgres ? ' (started here)' : ''}`,
        `  data       ${topology.dataDir} (PKI and dip.config.yaml shared by every node; logs in ${dir})`,
        'Operator commands reach the cluster through its data directory:',
        `  export DIP_DATA_DIR=${topology.dataDir}`,
        'Ctrl-C stops what this command started.',
        '',
      ].join('\n'),
    );
    let stopping = false;
    const stop = async () => {
      if (stopping) return;
      stopping = true;
      log('stopping');
      await topology.stop();
      process.exit(0);
    };
    process.once('SIGINT', () => void stop());
    process.once('SIGTERM', () => void stop());
  });

const migrate = program.command('migrate').description('move an embedded (SQLite) deployment to the cluster (docs/deployment.md)');
migrate
  .command('export')
  .description('write the SQLite store\'s data keys, participants, webhooks, MPAN lookup, recent sender references and queues in flight to a file (stop the DIP first)')
  .requiredOption('--out <file>', 'the export (JSON lines, a MAC as its last line; payloads stay sealed where encryption at rest is on)')
  .option('--since-days <n>', 'sender references received in the last n days stay refused as duplicates (default: the archive retention)', positiveInt)
  .action(async (o: { out: string; sinceDays?: number }) => {
    const config = loadConfig();
    if (config.storage.kind !== 'sqlite') throw new Error('migrate export reads an embedded store: this configuration says storage.kind cluster');
    const counts: Record<string, number> = {};
    const since = Date.now() - (o.sinceDays ?? config.archiveRetentionDays) * 86_400_000;
    const file = databaseFile(config);
    // The store's identity as the operator knows it (host and database file): signed in the trailer, shown on import.
    await writeExport(o.out, exportSqlite(file, since, counts), await keyEncryptionKey(config), { source: `${hostname()}:${resolve(file)}`, now: () => systemClock.now(), openOut: privateWriteStream });
    process.stderr.write(`exported to ${o.out} (authenticated: HMAC-SHA-256 under a key derived from this DIP's data keys): ${JSON.stringify(counts)}\n`);
  });
migrate
  .command('import')
  .description('load an export into the cluster\'s new PostgreSQL database, before any DIP node starts on it (its MAC is checked first: the importing DIP needs the exporting DIP\'s keys)')
  .requiredOption('--in <file>', 'a file written by migrate export')
  .option('--accept-unauthenticated', 'bypass the integrity check: only for an export written by a build before exports were authenticated (journalled)')
  .action(async (o: { in: string; acceptUnauthenticated?: boolean }) => {
    const config = loadConfig();
    if (config.storage.kind !== 'cluster') throw new Error('migrate import writes to the cluster: set storage.kind cluster and storage.postgres.url (or DIP_STORAGE=cluster, DIP_POSTGRES_URL)');
    const checked = await checkExport(o.in, { kek: await keyEncryptionKey(config), acceptUnauthenticated: o.acceptUnauthenticated === true });
    if (!checked.authenticated) process.stderr.write(`WARNING: ${o.in} carries no MAC: imported unchecked (--accept-unauthenticated), journalled as such\n`);
    else process.stderr.write(`${o.in}: MAC checked; export made at ${checked.exportedAt} from ${checked.source}\n`);
    try {
      // As the tables' owner where there is one: an operator's act before any node runs (it resets sequences).
      const counts = await importIntoPostgres({ url: config.storage.postgres.migrationUrl ?? config.storage.postgres.url, clock: systemClock, poolSize: 2, mpanIndex: config.storage.mpanIndex }, checked.records(), {
        actor: `cli:${userInfo().username}`,
        action: checked.authenticated ? 'migrate.import' : 'migrate.import.unauthenticated',
        target: resolve(o.in),
        after: { authenticated: checked.authenticated, exportedAt: checked.exportedAt, source: checked.source },
      });
      process.stderr.write(`imported into ${new URL(config.storage.postgres.url).pathname.slice(1)}: ${JSON.stringify(counts)}\n`);
    } finally {
      await checked.close();
    }
  });

const pki = program.command('pki').description('the development PKI');
pki
  .command('issue')
  .description("issue a participant key and certificate from the environment's CA (mTLS and message signing)")
  .requiredOption('--dip-id <id>', 'DIP ID the certificate is bound to (repeatable)', collect, [])
  .requiredOption('--out <dir>', 'folder for key.pem and cert.pem (only cert.pem with --csr)')
  .option('--csr <file>', "issue for the participant's certificate signing request (PEM): its key never leaves the participant")
  .option('--org <name>', 'organisation name')
  .option('--days <n>', 'validity in days', positiveInt, 365)
  .action(async (o: { dipId: string[]; out: string; csr?: string; org?: string; days: number }) => {
    const config = loadConfig();
    const ca = await readCertificateAuthority(pkiDir(config));
    const csrPem = o.csr === undefined ? undefined : readFileSync(o.csr, 'utf8');
    // The DIP IDs come from --dip-id, never from the CSR's subject: the operator decides the binding.
    const issued = await issueParticipantCertificate(ca, { organisation: o.org ?? o.dipId[0]!, dipIds: o.dipId, environment: config.environment, validDays: o.days, csrPem });
    mkdirSync(o.out, { recursive: true, mode: 0o700 });
    const written = [join(o.out, PROFILE_FILES.cert)];
    if (!csrPem) {
      writePrivateFile(join(o.out, PROFILE_FILES.key), issued.keyPem);
      written.unshift(join(o.out, PROFILE_FILES.key));
    }
    writeFileSync(join(o.out, PROFILE_FILES.cert), issued.certPem);
    process.stderr.write(`wrote ${written.join(' and ')} for ${o.dipId.join(', ')}\n`);
  });

pki
  .command('issue-server')
  .description("issue a TLS server key and certificate from the environment's CA for a webhook receiver (test and DEV environments)")
  .option('--dns <name>', 'a host name the receiver is called at (repeatable)', collect, [])
  .option('--ip <address>', 'an IP address the receiver is called at (repeatable)', collect, [])
  .requiredOption('--out <dir>', 'folder for key.pem and cert.pem')
  .option('--org <name>', 'organisation name', 'OpenDIP webhook receiver')
  .option('--days <n>', 'validity in days', positiveInt, 365)
  .action(async (o: { dns: string[]; ip: string[]; out: string; org: string; days: number }) => {
    if (o.dns.length + o.ip.length === 0) throw new InvalidArgumentError('name the receiver: --dns HOST and/or --ip ADDRESS (as in its callbackURL)');
    const config = loadConfig();
    const ca = await readCertificateAuthority(pkiDir(config));
    const issued = await issueServerCertificate(ca, { hostnames: o.dns, ipAddresses: o.ip, validDays: o.days, clientAuth: false, organisation: o.org });
    mkdirSync(o.out, { recursive: true, mode: 0o700 });
    writePrivateFile(join(o.out, PROFILE_FILES.key), issued.keyPem);
    writeFileSync(join(o.out, PROFILE_FILES.cert), issued.certPem);
    const names = [...o.dns, ...o.ip].join(', ');
    process.stderr.write(
      `wrote ${join(o.out, PROFILE_FILES.key)} and ${join(o.out, PROFILE_FILES.cert)}: serverAuth for ${names}, from the ${config.environment} CA (${join(pkiDir(config), PKI_FILES.caCert)}), which this DIP trusts for webhook calls\n`,
    );
  });

pki
  .command('ca')
  .description("the environment's certificate authority")
  .command('create')
  .description("(re)create the environment's CA in <dataDir>/pki, and the DIP's own certificates from it; restart the DIP afterwards")
  .requiredOption('--env <env>', "PRD, SITB, SIT, UIT or DEV: must be this data directory's configured environment (DIP_ENV)")
  .option('--days <n>', 'validity in days', positiveInt, 3650)
  .option('--force', 'replace an existing CA: every certificate it issued stops being accepted')
  .action(async (o: { env: string; days: number; force?: boolean }) => {
    const config = loadConfig();
    const env = o.env.toUpperCase();
    // Certificates differ per environment (spec 5.13.3): a CA made for another environment's data directory is a mistake.
    if (env !== config.environment) {
      throw new InvalidArgumentError(`--env ${env} is not this DIP's environment (${config.environment}): set DIP_ENV=${env} (or environment: ${env} in the configuration)`);
    }
    const dir = pkiDir(config);
    const ca = await createEnvironmentCa(dir, { environment: env, validDays: o.days, force: o.force });
    // The DIP's TLS server, signing and encryption certificates no longer chain to a replaced CA: re-issue them now.
    const material = await ensurePki(dir, { environment: env, hostnames: config.hostnames, ipAddresses: config.ipAddresses });
    await ensureEncryptionKey(dir, material.ca);
    const info = certificateInfo(ca.certPem);
    await journalCli(config, { action: 'pki.ca.create', target: env, before: null, after: { subject: info.subject, serialNumber: info.serialNumber, notAfter: info.notAfter.toISOString(), replaced: o.force === true } });
    process.stdout.write(`created ${info.subject} (serial ${info.serialNumber}, valid until ${info.notAfter.toISOString()}) in ${dir}\n`);
    process.stdout.write(`participants need certificates from it (dip pki issue); restart a running DIP to use it\n`);
  });

pki
  .command('rotate-signing')
  .description("a new key and certificate for the DIP's message signing; a running DIP switches to it within signingKeyPollMs (default 5 s), no restart")
  .option('--days <n>', 'validity in days', positiveInt, 825)
  .option('--json', 'machine-readable output')
  .action(async (o: { days: number; json?: boolean }) => {
    const config = loadConfig();
    const issued = await rotateSigningCertificate(pkiDir(config), { environment: config.environment, validDays: o.days });
    const info = certificateInfo(issued.certPem);
    await journalCli(config, { action: 'pki.rotate-signing', target: config.dipId, before: null, after: { serialNumber: info.serialNumber, fingerprint256: info.fingerprint256, notAfter: info.notAfter.toISOString() } });
    if (o.json) print({ serialNumber: info.serialNumber, fingerprint256: info.fingerprint256, notAfter: info.notAfter.toISOString() });
    else process.stdout.write(`new signing certificate: serial ${info.serialNumber}, valid until ${info.notAfter.toISOString()}; recipients accept it as they did the old one (same CA)\n`);
  });

pki
  .command('rotate-encryption')
  .description("a new key and certificate for the DIP's pattern 2 encryption; the previous key still decrypts for --overlap-days; a running DIP switches to it within signingKeyPollMs (default 5 s), no restart; in a cluster every node does (recorded in the shared store)")
  .option('--days <n>', 'validity in days', positiveInt, 825)
  .option('--overlap-days <n>', 'how long the previous key still decrypts what senders encrypted to its certificate (0: not at all, after a compromise)', nonNegative, ENCRYPTION_OVERLAP_DAYS)
  .option('--json', 'machine-readable output')
  .action(async (o: { days: number; overlapDays: number; json?: boolean }) => {
    const config = loadConfig();
    const dir = pkiDir(config);
    const keys = await rotateEncryptionKey(dir, await readCertificateAuthority(dir), { validDays: o.days, overlapDays: o.overlapDays });
    // In a cluster, recorded in the store every node shares: each running node takes it (and every node started later).
    if (config.storage.kind === 'cluster') {
      const { backend, sealer } = await openBackend(config);
      try {
        await recordEncryptionKeys(backend.registry, sealer, keys, 'dip pki rotate-encryption', Date.now());
      } finally {
        await backend.close();
      }
    }
    const info = certificateInfo(keys.current.certPem);
    const previousUntil = keys.previous ? new Date(keys.previous.validUntil).toISOString() : null;
    await journalCli(config, { action: 'pki.rotate-encryption', target: config.dipId, before: null, after: { serialNumber: info.serialNumber, fingerprint256: info.fingerprint256, notAfter: info.notAfter.toISOString(), previousDecryptsUntil: previousUntil } });
    if (o.json) print({ serialNumber: info.serialNumber, fingerprint256: info.fingerprint256, notAfter: info.notAfter.toISOString(), previousDecryptsUntil: previousUntil });
    else process.stdout.write(`new encryption certificate: serial ${info.serialNumber}, valid until ${info.notAfter.toISOString()}; senders get it from GET /certificates/dip; ${previousUntil ? `the previous key decrypts until ${previousUntil}` : 'the previous key decrypts nothing more'}\n`);
  });

pki
  .command('expiring')
  .description("certificates that expire soon: participants' registered certificates and the DIP's own")
  .option('--days <n>', 'within this many days', positiveInt, EXPIRY_WARNING_DAYS)
  .option('--json', 'machine-readable output')
  .action(async (o: { days: number; json?: boolean }) => {
    const config = loadConfig();
    const participants = await withBackend(config, async (b) => (await b.registry.participants()).map((r) => r.participant));
    const found = expiringAll(pkiDir(config), config.trustedCaFiles, participants, o.days);
    if (o.json) print(found);
    else if (found.length === 0) process.stdout.write(`no certificate expires within ${o.days} days\n`);
    else for (const c of found) process.stdout.write(`${c.notAfter}  ${c.daysLeft < 0 ? 'EXPIRED' : `${c.daysLeft} days`.padEnd(7)}  ${c.owner.padEnd(22)} serial ${c.serialNumber}\n`);
  });

pki
  .command('revoke')
  .description("revoke a certificate from the environment's CA: a running DIP refuses it within seconds, no restart")
  .requiredOption('--cert <file>', 'the certificate to revoke (PEM)')
  .option('--reason <reason>', 'keyCompromise, superseded, affiliationChanged, cessationOfOperation, … (or free text)', 'unspecified')
  .option('--json', 'machine-readable output')
  .action(async (o: { cert: string; reason: string; json?: boolean }) => {
    const config = loadConfig();
    // Into the store every node shares: each running node refuses the certificate at once (or within revocationPollMs).
    const r = await withBackend(config, async (b) => {
      const revoked = await revokeCertificate(pkiDir(config), b.registry, readFileSync(o.cert, 'utf8'), o.reason, new Date(), 'dip pki revoke');
      const e = revoked.entry;
      // A certificate revoked before is no new act: journalled all the same, saying so, since it was asked.
      await b.journal.append({ at: systemClock.now(), actor: cliActor(), action: 'pki.revoke', target: e.dipIds.join(',') || e.subject, before: { serialNumber: e.serialNumber, alreadyRevoked: revoked.alreadyRevoked }, after: { serialNumber: e.serialNumber, reason: e.reason, revokedAt: e.revokedAt }, status: null });
      return revoked;
    });
    if (o.json) print({ ...r.entry, alreadyRevoked: r.alreadyRevoked, crl: r.crlFile });
    else {
      const who = r.entry.dipIds.join(', ') || r.entry.subject;
      process.stdout.write(`${r.alreadyRevoked ? 'already revoked' : 'revoked'}: ${who}, serial ${r.entry.serialNumber} (${r.entry.reason}, ${r.entry.revokedAt})\n`);
      process.stdout.write(`recorded in the ${config.storage.kind} store and ${r.crlFile}; every running node refuses the certificate within revocationPollMs (default 2 s)\n`);
    }
  });
pki
  .command('revoked')
  .description('list the revoked certificates')
  .option('--json', 'machine-readable output')
  .action(async (o: { json?: boolean }) => {
    const list = await withBackend(loadConfig(), (b) => readRevocationList(b.registry));
    if (o.json) print(list.entries);
    else for (const e of list.entries) process.stdout.write(`${e.revokedAt}  ${e.serialNumber}  ${(e.dipIds.join(',') || e.subject).padEnd(12)} ${e.reason}\n`);
  });

/**
 * The journal's actor for an operator at the command line (spec 8.3: every administrative act says who):
 * `cli:<os user>`, as `migrate import` names it. The operator API names its callers `operator:<name>`.
 */
const cliActor = (): string => `cli:${userInfo().username}`;
const cliAct = (backend: Backend): JournalledAct => ({ journal: backend.journal, actor: cliActor(), now: () => systemClock.now() });

/**
 * Journals an act of a command that changed files or the store outside the operator API (a PKI rotation,
 * a revocation, a catalogue import). The act is done by then: a journal that cannot be written is said on
 * stderr and fails the command, so the operator knows the record is missing.
 */
async function journalCli(config: DipConfig, entry: { action: string; target: string; before: unknown; after: unknown }): Promise<void> {
  try {
    await withBackend(config, (b) => b.journal.append({ at: systemClock.now(), actor: cliActor(), ...entry, status: null }));
  } catch (e) {
    process.stderr.write(`dip: done, but not journalled (${(e as Error).message}): tell the auditor ${entry.action} ${entry.target}\n`);
    process.exitCode = 1;
  }
}

/** Opens the configured storage for one operator command (the DIP may be running: changes reach it through the change feed). */
async function withBackend<T>(config: DipConfig, fn: (backend: Backend) => Promise<T>): Promise<T> {
  const { backend } = await openBackend(config);
  try {
    return await fn(backend);
  } finally {
    await backend.close();
  }
}

const participant = program.command('participant').description('participants (operator)');
participant
  .command('add')
  .description('register a participant (or update one) and print its new API key')
  .requiredOption('--dip-id <id>', '10-character DIP ID')
  .requiredOption('--role <role>', 'market role, e.g. SUP, LDSO, SDS (repeatable)', collect, [])
  .requiredOption('--cert <file>', "the participant's certificate (PEM)")
  .option('--org <name>', 'organisation name')
  .option('--connection-provider <id>', 'the DIP Connection Provider (a registered participant) this participant nominates to connect for it (left out: a registered participant keeps the one it has)')
  .option('--no-connection-provider', "withdraw the participant's nomination of a DIP Connection Provider (the webhooks it registered for it are removed)")
  .option('--save <dir>', `also write the API key to <dir>/${PROFILE_FILES.apiKey}`)
  .option('--json', 'machine-readable output')
  .action(async (o: { dipId: string; role: string[]; cert: string; org?: string; connectionProvider?: string | false; save?: string; json?: boolean }) => {
    const config = loadConfig();
    await withBackend(config, async (backend) => {
      const { participant: p, apiKey, formerProvider, formerProviderGone, removedWebhooks } = await registerParticipant(
        backend.registry,
        {
          dipId: o.dipId,
          roles: o.role,
          organisation: o.org,
          certificatePem: readFileSync(o.cert, 'utf8'),
          // --no-connection-provider: false; neither option: undefined (the registered nomination stays).
          connectionProvider: o.connectionProvider === false ? null : o.connectionProvider,
          trustedCaPems: trustedCas(config),
        },
        cliAct(backend),
      );
      if (o.save) {
        mkdirSync(o.save, { recursive: true, mode: 0o700 });
        writePrivateFile(join(o.save, PROFILE_FILES.apiKey), `${apiKey}\n`);
      }
      if (o.json) print({ dipId: p.dipId, roles: p.roles, organisation: p.organisation, certificateFingerprint: p.certificateFingerprint, apiKey, connectionProvider: p.connectionProvider, formerConnectionProvider: formerProvider, removedWebhooks });
      else {
        const hooks = removedWebhooks.length ? `Webhooks ${formerProvider ?? 'its former connection provider'} registered for it, removed (their messages wait to be pulled): ${removedWebhooks.map((w) => w.channel).join(', ')}\n` : '';
        const provider = `Connection provider: ${nominationChange(formerProvider, p.connectionProvider, formerProviderGone)}\n`;
        process.stdout.write(`${p.dipId} (${p.roles.join(', ')}) registered.\nAPI key (shown once): ${apiKey}\n${provider}${hooks}`);
      }
    });
  });
participant
  .command('rotate-cert')
  .description("register a participant's new certificate; the previous one stays valid for signing until the overlap ends (same API key)")
  .requiredOption('--dip-id <id>', '10-character DIP ID')
  .requiredOption('--cert <file>', 'the new certificate (PEM), bound to the same DIP ID')
  .option('--overlap-days <n>', 'how long the previous certificate stays accepted (0: switch at once)', nonNegative, 7)
  .option('--json', 'machine-readable output')
  .action(async (o: { dipId: string; cert: string; overlapDays: number; json?: boolean }) => {
    const config = loadConfig();
    await withBackend(config, async (backend) => {
      const p = await rotateCertificateJournalled(
        backend.registry,
        { dipId: o.dipId, certificatePem: readFileSync(o.cert, 'utf8'), overlapMs: o.overlapDays * 86_400_000, trustedCaPems: trustedCas(config) },
        cliAct(backend),
      );
      const until = p.previous ? new Date(p.previous.validUntil).toISOString() : null;
      if (o.json) print({ dipId: p.dipId, certificateFingerprint: p.certificateFingerprint, previousCertificateFingerprint: p.previous?.certificateFingerprint ?? null, previousValidUntil: until });
      else process.stdout.write(`${p.dipId}: new certificate registered (SHA-256 ${p.certificateFingerprint}); ${until ? `the previous one is accepted until ${until}` : 'the previous one is no longer accepted'}. The API key is unchanged.\n`);
    });
  });
participant
  .command('list')
  .option('--json', 'machine-readable output')
  .action(async (o: { json?: boolean }) => {
    const all = await withBackend(loadConfig(), async (b) =>
      (await b.registry.participants()).map(({ participant: p }) => ({ dipId: p.dipId, roles: p.roles, organisation: p.organisation, certificateFingerprint: p.certificateFingerprint })),
    );
    if (o.json) print(all);
    else for (const p of all) process.stdout.write(`${p.dipId}  ${p.roles.join(',').padEnd(10)} ${p.organisation}\n`);
  });

const webhook = program.command('webhook').description("a participant's webhooks (pubconfig)");
webhook
  .command('set')
  .requiredOption('--as <dir>', 'participant credentials folder')
  .requiredOption('--channel <id>', 'e.g. IF-021')
  .requiredOption('--url <url>', 'callback URL the DIP will POST to')
  .option('--max-count <n>', 'messages per call at most', positiveInt)
  .option('--max-kb <n>', 'KB per call at most', positiveInt)
  .action(async (o: { as: string; channel: string; url: string; maxCount?: number; maxKb?: number }) => {
    const profile = openProfile(o.as, loadConfig());
    const answer = await profile.client.setWebhook(o.channel, profile.dipId, { callbackURL: o.url, maxMessageCount: o.maxCount, maxPayloadSize: o.maxKb });
    await finish(profile.client, answer.status, answer.body);
  });
webhook
  .command('delete')
  .requiredOption('--as <dir>', 'participant credentials folder')
  .requiredOption('--channel <id>', 'e.g. IF-021')
  .action(async (o: { as: string; channel: string }) => {
    const profile = openProfile(o.as, loadConfig());
    const answer = await profile.client.deleteWebhook(o.channel, profile.dipId);
    await finish(profile.client, answer.status, answer.body);
  });

program
  .command('send')
  .description('sign and POST message file(s) to a channel as a participant')
  .requiredOption('--as <dir>', 'participant credentials folder')
  .requiredOption('--channel <id>', 'e.g. IF-021')
  .argument('<files...>', 'JSON files, each one message or an array of messages')
  .action(async (files: string[], o: { as: string; channel: string }) => {
    const profile = openProfile(o.as, loadConfig());
    const items = files.flatMap((f) => {
      const parsed: unknown = JSON.parse(readFileSync(f, 'utf8'));
      return Array.isArray(parsed) ? (parsed as unknown[]) : [parsed];
    });
    const answer = await profile.client.submit(o.channel, items);
    await finish(profile.client, answer.status, answer.body);
  });

const publication = program.command('publication').description('large publications (Pattern B), as their publisher');
publication
  .command('withdraw')
  .description('withdraw a publication you published (the wrong file, the wrong channel): its bytes are removed, every download is answered 410 with the reason, and those told of it are sent a withdrawal notice')
  .requiredOption('--as <dir>', 'participant credentials folder (its publisher)')
  .requiredOption('--channel <id>', 'its channel, e.g. REP-002')
  .requiredOption('--reason <text>', 'why, 1 to 500 characters: said in every later 410 and in the withdrawal notice')
  .argument('<publication-id>', 'the publicationID its publish answered')
  .action(async (id: string, o: { as: string; channel: string; reason: string }) => {
    const profile = openProfile(o.as, loadConfig());
    const answer = await profile.client.withdrawPublication(o.channel, id, o.reason);
    await finish(profile.client, answer.status, answer.body);
  });

/** The catalogue a DIP of this configuration runs: the one imported into its data folder, else the bundled one. */
function catalogueInForce(): Catalogue {
  const imported = importedCatalogueFile(loadConfig().dataDir);
  return existsSync(imported) ? Catalogue.fromFile(imported) : Catalogue.load();
}

program
  .command('example')
  .description('print a message to start from, as this DIP takes it: its environment tag, your IDs, a new reference')
  .argument('<interface>', 'IF-021 (realistic consumption data) or any other channel (every field filled, from its schema)')
  .option('--event <code>', "event code (default: the channel's first)")
  .requiredOption('--sender <id>', 'sending DIP ID')
  .option('--role <role>', "sender role (default: SDS on IF-021, else the channel's first sender role)")
  .option('--to <id>', 'primary recipient (repeatable)', collect, [])
  .option('--env <tag>', 'environment tag', loadConfig().environment)
  .action((iface: string, o: { event?: string; sender: string; role?: string; to: string[]; env: string }) => {
    const catalogue = catalogueInForce();
    const channel = catalogue.channel(iface);
    const schema = channel && catalogue.schema(channel.interfaceId);
    if (!channel || !schema) throw new InvalidArgumentError(`${iface} is not a channel of the catalogue`);
    const event = o.event === undefined ? channel.eventCodes[0]! : channel.eventCodes.find((e) => e.toLowerCase() === o.event!.replace(/^\[|\]$/g, '').toLowerCase());
    if (event === undefined) throw new InvalidArgumentError(`${channel.interfaceId} has no event code '${o.event ?? ''}' (${channel.eventCodes.join(', ')})`);
    if (channel.interfaceId === 'IF-021') {
      print([buildIF021({ senderDipId: o.sender, senderRole: o.role ?? 'SDS', primaryRecipients: o.to.length ? o.to : undefined, envTag: o.env, eventCode: event as 'ActivePower' })]);
      return;
    }
    const who = { senderDipId: o.sender, senderRole: o.role ?? channel.senderRoles[0] ?? 'SUP', primaryRecipients: o.to, now: new Date(), uniqueSuffix: randomBytes(6).toString('hex') };
    print([submittable(exampleMessage(schema, event), o.env, who)]);
  });

program
  .command('listen')
.description("a webhook receiver: verifies the DIP's signature, prints each call (messages, alarm and maintenance notices), answers 200")
  .option('--port <n>', 'port', positiveInt, 9000)
  .option('--host <host>', 'address to listen on', '127.0.0.1')
  .option('--tls-key <file>', 'serve HTTPS with this key')
  .option('--tls-cert <file>', 'serve HTTPS with this certificate')
  .option('--ca <file>', "CA the DIP's signing certificate must chain to (default: the development CA)")
  .option('--answer <status>', 'answer every call with this status (to try retries)', positiveInt)
  .option('--max-body-bytes <n>', 'largest call body read; larger ones are answered 413 (raise it above a subscription maxPayloadSize set higher)', positiveInt, DEFAULT_MAX_BODY_BYTES)
  .action(async (o: { port: number; host: string; tlsKey?: string; tlsCert?: string; ca?: string; answer?: number; maxBodyBytes: number }) => {
    const config = loadConfig();
    const ca = readFileSync(o.ca ?? join(pkiDir(config), 'ca.cert.pem'), 'utf8');
    const seen = new LruMap<string, true>(SEEN_TRANSACTION_IDS);
    // The last position seen per channel, for the gap check (listenOutput): a channel a line, few.
    const positions = new LruMap<string, number>(1_000);
    const receiver = await startWebhookReceiver({
      port: o.port,
      host: o.host,
      maxBodyBytes: o.maxBodyBytes,
      tls: o.tlsKey && o.tlsCert ? { key: readFileSync(o.tlsKey, 'utf8'), cert: readFileSync(o.tlsCert, 'utf8') } : undefined,
      trustedCas: [ca],
      respond: (call) => o.answer ?? (call.signature.ok ? 200 : 401),
      // Deliveries and, on an alarm subscription's webhookUrl, the DIP's alarm and maintenance notices.
      onCall: (call) => {
        for (const line of listenOutput(call, seen, positions)) print(line);
      },
    });
    process.stderr.write(`listening on ${receiver.url} (register it with: dip webhook set --url ${receiver.url})\n`);
  });

program
  .command('replay')
  .description('replay (or --requeue) archived messages addressed to this participant')
  .requiredOption('--as <dir>', 'participant credentials folder')
  .requiredOption('--channel <id>', 'e.g. IF-021')
  .option('--from <datetime>', 'start, e.g. 2026-11-23T00:00:00+00:00 (default: 24 h ago)')
  .option('--to <datetime>', 'end, inclusive of the whole second it names (default: now)')
  .option('--event-code <code>', 'e.g. ActivePower or [ActivePower] (any case)')
  .option('--mpan <mpan>', '13-digit MPAN core')
  .option('--transaction-id <id>', 'repeatable', collect, [])
  .option('--continue <token>', 'resume an interrupted replay from this X-Continuation-Token (with the same --from, --to and filters)')
  .option('--out <file>', 'write the JSON array to this file instead of stdout; with --continue, append the rest into the array already in it')
  .option('--requeue', 're-deliver to the webhook instead of returning the messages')
  .addHelpText(
    'after',
    '\nA replay follows every page (206 + X-Continuation-Token) and writes one JSON array; stderr says how many pages and messages.\n' +
      'Interrupted, it prints the command that fetches the rest. With --out FILE (or --out naming the file stdout went to) that\n' +
      'command appends the rest into the same array; on stdout the rest is an array of its own.',
  )
  .action(async (o: { as: string; channel: string; from?: string; to?: string; eventCode?: string; mpan?: string; transactionId: string[]; continue?: string; out?: string; requeue?: boolean }) => {
    if (o.continue !== undefined && o.requeue) throw new InvalidArgumentError('--continue resumes a replay; a requeue has no pages to continue');
    if (o.out !== undefined && o.requeue) throw new InvalidArgumentError('--out takes the messages a replay returns; a requeue sends them to the webhook');
    // The token only continues the same request body: defaults computed from "now" would differ from the first run's.
    if (o.continue !== undefined && (o.from === undefined || o.to === undefined)) throw new InvalidArgumentError('--continue needs the --from and --to of the replay it resumes (the token continues that exact request)');
    const profile = openProfile(o.as, loadConfig());
    const now = Date.now();
    const from = o.from ?? dipDateTime(new Date(now - 86_400_000));
    const to = o.to ?? dipDateTime(new Date(now));
    const filter = {
      datetimeFrom: from,
      datetimeTo: to,
      eventCode: o.eventCode ?? null,
      MPAN: o.mpan ?? null,
      // The published MessageRequest's transactionIDs is not nullable: absent when not filtered on.
      ...(o.transactionId.length ? { transactionIDs: o.transactionId } : {}),
    };
    if (o.requeue) {
      const answer = await profile.client.requeue(o.channel, profile.dipId, filter);
      await finish(profile.client, answer.status, answer.body);
      return;
    }
    const file = o.out === undefined ? null : await replayFile(o.out, { resume: o.continue !== undefined });
    try {
      const pages = profile.client.replayPages(o.channel, profile.dipId, filter, o.continue);
      const output = file?.output ?? { out: writeStdout, err: (text: string) => void process.stderr.write(text) };
      process.exitCode = await writeReplay(pages, output, { ...o, from, to }, file?.appending ?? false);
    } finally {
      await file?.output.close();
      await profile.client.close();
    }
  });

const catalogue = program.command('catalogue').description('the interface catalogue');
catalogue
  .command('import')
  .description('load a (newer) published DIP API into this DIP; a running server picks it up without a restart')
  .argument('<spec>', 'folder holding the published *-unresolved.yaml files')
  .action(async (spec: string) => {
    const config = loadConfig();
    const target = importedCatalogueFile(config.dataDir);
    const staging = `${target}.${process.pid}.tmp`;
    const result = await importCatalogue(spec, staging);
    Catalogue.fromFile(staging); // refuse to install what would not load
    renameSync(staging, target); // atomic: the server never sees half a file
    await journalCli(config, { action: 'catalogue.import', target: basename(spec), before: null, after: { apiVersion: result.document.apiVersion, channels: result.document.channels.length, warnings: result.warnings.length } });
    for (const w of result.warnings) process.stderr.write(`warning: ${w}\n`);
    process.stdout.write(`imported ${result.document.channels.length} channels (API ${result.document.apiVersion}) into ${target}\n`);
  });

const mpanCmd = program.command('mpan').description('the MPAN address lookup (operator; needs the running DIP)');
mpanCmd
  .command('load')
  .description(`bulk-load appointments: CSV "${LOAD_HEADER}", from a file or a registration service's export URL`)
  .argument('[file]', 'CSV file')
  .option('--url <url>', "stream it from a registration service's API instead")
  .option('--header <header>', 'extra request header for --url, e.g. "Authorization: Bearer …" (repeatable)', collect, [])
  .action(async (file: string | undefined, o: { url?: string; header: string[] }) => {
    const config = loadConfig();
    let input: string | Readable;
    if (o.url) {
      const headers = Object.fromEntries(o.header.map((h) => [h.slice(0, h.indexOf(':')).trim(), h.slice(h.indexOf(':') + 1).trim()]));
      const res = await request(o.url, { headers });
      if (res.statusCode !== 200) throw new Error(`${o.url} answered ${res.statusCode}`);
      input = res.body;
    } else if (file) input = file;
    else throw new InvalidArgumentError('give a file or --url');
    let rows = 0;
    for await (const batch of readLoadFile(input)) {
      await adminCall(config, 'POST', '/admin/mpan/changes', batch.map((r) => ({ kind: 'appoint', ...r })));
      rows += batch.length;
      process.stderr.write(`\r${rows} rows loaded`);
    }
    process.stderr.write(`\r${rows} rows loaded\n`);
  });
mpanCmd
  .command('show')
  .argument('<mpan>', '13-digit MPAN core')
  .action(async (mpan: string) => print(await adminCall(loadConfig(), 'GET', `/admin/mpan/${mpan}`)));
mpanCmd
  .command('set')
  .description('correct the lookup: appoint a DIP ID to a slot from a date (or end an appointment with --end)')
  .requiredOption('--mpan <mpan>', '13-digit MPAN core')
  .requiredOption('--slot <slot>', 'SUP, LDSO, DS, MS or MDR')
  .requiredOption('--dip-id <id>', 'the responsible participant')
  .option('--from <datetime>', 'effective from (ISO 8601)')
  .option('--to <datetime>', 'effective to (ISO 8601)')
  .option('--end', 'end this DIP ID\'s appointment at --to')
  .action(async (o: { mpan: string; slot: string; dipId: string; from?: string; to?: string; end?: boolean }) => {
    const change = { kind: o.end ? 'end' : 'appoint', mpan: o.mpan, slot: o.slot, dipId: o.dipId, effectiveFrom: o.from, effectiveTo: o.to ?? null };
    print(await adminCall(loadConfig(), 'POST', '/admin/mpan/changes', [change]));
  });

program
  .command('keys')
  .description('encryption at rest (operator; needs the running DIP)')
  .command('rotate')
  .description('seal everything written from now on under a new data key (older keys keep reading)')
  .action(async () => print(await adminCall(loadConfig(), 'POST', '/admin/keys/rotate')));

const dead = program.command('dead-letters').description('the dead-letter queue (operator; needs the running DIP)');
dead
  .command('list')
  .option('--recipient <id>', 'one recipient')
  .option('--channel <id>', 'one channel')
  .option('--state <state>', 'dead, requeued or discarded', 'dead')
  .action(async (o: { recipient?: string; channel?: string; state: string }) => {
    const q = new URLSearchParams({ state: o.state, ...(o.recipient ? { recipient: o.recipient } : {}), ...(o.channel ? { channel: o.channel } : {}) });
    print(await adminCall(loadConfig(), 'GET', `/admin/dead-letters?${q.toString()}`));
  });
for (const action of ['requeue', 'discard'] as const) {
  dead
    .command(action)
    .description(action === 'requeue' ? 'deliver them again, in order, at the tail of the queue' : 'drop them for good (they stay in the archive)')
    .requiredOption('--recipient <id>', 'recipient DIP ID')
    .requiredOption('--channel <id>', 'e.g. IF-021')
    .option('--seq <n>', 'queue position (repeatable; requeue: all when omitted)', collect, [])
    .action(async (o: { recipient: string; channel: string; seq: string[] }) => {
      const body = { recipientDipId: o.recipient, channel: o.channel, ...(o.seq.length ? { seqs: o.seq.map(Number) } : {}) };
      print(await adminCall(loadConfig(), 'POST', `/admin/dead-letters/${action}`, body));
    });
}

program
  .command('simulate')
  .description('a simulated market (suppliers, registration, data and metering services, distributors, MDS, LSS) that runs the business flows through a DIP and checks every delivery')
  .option('--url <url>', 'the DIP API endpoint (with --data-dir: https://localhost:$DIP_PORT)')
  .option('--ca <file>', "the DIP's CA certificate (with --data-dir: <dir>/pki/ca.cert.pem)")
  .option('--data-dir <dir>', 'OpenDIP data directory on this machine: onboard the simulated participants there, load the MPAN lookup through the admin API')
  .option('--market <file>', 'JSON file naming pre-onboarded participants and their credentials folders (src/sim/README.md)')
  .option('--admin-url <url>', 'operator API (with --data-dir: http://127.0.0.1:$DIP_ADMIN_PORT)')
  .option('--admin-token <token>', 'operator API token (with --data-dir: <dir>/admin-token)')
  .option('--suppliers <n>', 'suppliers', positiveInt, 3)
  .option('--mpans <n>', 'MPANs', positiveInt, 100)
  .option('--days <n>', 'settlement days (at least 2; the change of supplier takes effect half-way)', positiveInt, 2)
  .option('--data-services <n>', 'data services (SDS and ADS alternately)', positiveInt, 2)
  .option('--metering-services <n>', 'metering services (MSS)', positiveInt, 2)
  .option('--ldsos <n>', 'distributors', positiveInt, 2)
  .option('--start-date <date>', 'first settlement day, YYYY-MM-DD (default: --days days before today)')
  .option('--switch-percent <n>', 'share of MPANs that change supplier, 0-100', Number, 20)
  .option('--appoint-percent <n>', 'share of the other MPANs whose supplier asks for another data service (IF-031 … IF-037), 0-100', Number, 20)
  .option('--seed <seed>', 'decides the MPANs and their appointments (default: random)')
  .option('--env <tag>', 'S1.environmentTag (default: the DIP configuration with --data-dir, else DEV)')
  .option('--listen-host <host>', 'webhook receivers listen on this address', '127.0.0.1')
  .option('--ports <from-to>', 'webhook receivers take consecutive ports from this range, e.g. 9100-9199 (default: free ports)')
  .option('--callback-host <host>', 'host name the DIP reaches the receivers at (default: --listen-host)')
  .option('--tls-key <file>', 'receivers serve HTTPS with this key …')
  .option('--tls-cert <file>', '… and this certificate (the DIP must trust its issuer)')
  .option('--https', "with --data-dir: HTTPS receivers with a certificate from the DIP's CA (the default outside DEV)")
  .option('--batch <n>', 'messages per submission', positiveInt, 100)
  .option('--concurrency <n>', 'submissions in flight at once', positiveInt, 8)
  .option('--timeout <s>', 'longest wait for the deliveries', positiveInt, 60)
  .option('--idle <s>', 'stop waiting once nothing has arrived for this long', positiveInt, 10)
  .option('--settle <ms>', 'without the operator API: wait this long for the lookup to learn registration messages', positiveInt, 2000)
  .option('--id-prefix <hex>', 'two upper-case hex digits starting the simulated DIP IDs (--data-dir)', 'A5')
  .option('--write-mpan-load <file>', 'write the initial MPAN lookup as a `dip mpan load` CSV and stop (needs --seed)')
  .option('--json', 'print the whole report as JSON')
  .action(async (o: import('../sim/simulate.js').SimulateCliOptions) => {
    const { runSimulateCommand } = await import('../sim/simulate.js');
    process.exitCode = await runSimulateCommand(o);
  });

registerLifecycleCommands(program);
registerOperationsCommands(program);
registerAuditCommands(program);

async function finish(client: { close(): Promise<void> }, status: number, body: unknown): Promise<void> {
  if (body !== null) print(body);
  await client.close();
  if (status >= 300) {
    process.stderr.write(`DIP answered ${status}\n`);
    process.exitCode = 1;
  }
}

program.parseAsync(process.argv).catch((e: unknown) => {
  process.stderr.write(`dip: ${(e as Error).message}\n`);
  process.exit(1);
});
