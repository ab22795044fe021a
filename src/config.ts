import { Ajv, type JSONSchemaType } from 'ajv';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { requestedBaseUrl } from './domain/callback-url.js';
import { addressList } from './security/address-list.js';
import { knownHostNames } from './security/host-names.js';
import { shortRetention, type ChannelOverride } from './domain/channel.js';
import { DEFAULT_CALLS_PAST_SETTLEMENT } from './pipeline/queue-worker.js';

export type { ChannelOverride };

export interface DipConfig {
  dataDir: string;
  host: string;
  port: number;
  /** Environment tag messages must carry (S1.environmentTag) and the PKI is issued for. */
  environment: 'PRD' | 'SITB' | 'SIT' | 'UIT' | 'DEV';
  /**
   * The DIP's own ID, reported as senderID in its answers and status messages. Default ten zeros: the
   * published DT-006 DIP ID type is exactly ten characters, though the published examples show eleven
   * ('00000000000'), which set here reproduces (docs/api-differences.md).
   */
  dipId: string;
  /**
   * Set when the DIP sits behind a proxy: the URL participants call, used to check their signatures.
   * Held as requests to it are signed (requestedBaseUrl(): host lower-cased, no default port, no trailing
   * '/'), whatever form it was written in.
   */
  publicUrl: string | null;
  /**
   * Host names (or IP addresses) the participant listener answers to besides those its server certificate
   * covers and publicUrl's host (and the loopback names, on a listener bound to a loopback address or with
   * no other name: src/security/host-names.ts): the name a reverse proxy passes on as Host. A request
   * naming any other host is answered 421: with publicUrl unset, the URL a signature is checked against
   * and the URLs in answers are built from Host. Names only: no scheme, port or path; any port passes.
   */
  allowedHosts: string[];
  /** Host names and IP addresses the development server certificate covers. */
  hostnames: string[];
  ipAddresses: string[];
  retentionDays: number;
  /** Default staleness limit for channels that set none: the retention period. */
  staleAfterMinutes: number | null;
  /**
   * The operator means a default staleness (staleAfterMinutes, else retentionDays) below spec 5.4's 14
   * days: refused at start without it. A channel's own staleAfterMinutes needs the channel's own.
   */
  allowShortRetention: boolean;
  sweepIntervalSeconds: number;
  /** Default archive retention (replay, audit); channels may set their own. */
  archiveRetentionDays: number;
  purgeIntervalSeconds: number;
  /** The operator's API (dead letters, …), on the loopback interface only; 0 picks a free port. */
  adminPort: number;
  /**
   * The portals' HTTPS listener (user portal /portal, operator portal /operator) on `host`; 0 picks a free
   * port. Unset, 8445, or a free port when `port` is 0 (a DIP on free ports never takes a fixed one).
   */
  portalPort: number;
  /** The portals' listener (on `portalPort`): its limits. */
  portal: PortalConfig;
  maxClockSkewSeconds: number;
  /** Largest body a message submission (POST /dip-channel/{id}, /validate) accepts; more is answered 413. */
  bodyLimitBytes: number;
  /**
   * Largest body every other operation accepts (webhook and status configuration, alarm subscriptions,
   * replay and requeue filters, …: a few hundred bytes each); more is answered 413. Their bodies are
   * parsed on the main thread, which a 10 MiB one would hold for seconds.
   */
  controlBodyLimitBytes: number;
  maxBatchMessages: number;
  /** Compile every channel's validator before listening (a few seconds), so no first message waits for it. */
  warmCatalogue: boolean;
  /**
   * Processes of the embedded (SQLite) DIP: 1 runs everything in one process; N > 1 runs ingest, storage
   * and the MPAN feed in the main process and delivery in N - 1 delivery processes (README "Every core").
   * Null: the cores present for `dip serve`, 1 for a DIP embedded with startDip. Ignored by the cluster
   * backend, which scales by nodes.
   */
  workers: number | null;
  /**
   * Threads that run POST /dip-channel/{id}'s pipeline (signature check, parse, validation, routing,
   * serialising and sealing) beside the listeners' thread, which keeps TLS, HTTP and the one group commit
   * (README "Every core"). 0 runs it on the listeners' thread. Null: chosen for `dip serve` from the
   * cores present (see src/cli/main.ts), 0 for a DIP embedded with startDip.
   */
  ingestThreads: number | null;
  /**
   * workers > 1: how often each delivery process itself looks for a changed registry, catalogue or signing
   * key. The main process tells them of every change it sees (its own, and the CLI's, which its faster
   * polls find) at once: this only backs that up, so it can be slow and cost nothing while idle.
   */
  workerPollMs: number;
  /**
   * workers > 1: a delivery process not heard from for this long (it reports every second) is taken as
   * hung (SIGSTOP, a frozen event loop) and killed, then restarted like one that died: its queues resume
   * from their settled positions instead of waiting on it for as long as it stays stuck.
   */
  workerHungMs: number;
  /**
   * workers > 1: how long a delivery process may take to become ready (it reads the registry and the
   * catalogue, which on a slow or busy disk can take long) before it is killed and restarted with backoff.
   */
  workerStartTimeoutMs: number;
  delivery: {
    timeoutMs: number;
    retryBaseMs: number;
    retryCapMs: number;
    defaultMaxMessageCount: number;
    defaultMaxPayloadKb: number;
    /**
     * The most one pull's answer holds (KB), whatever its maxPayloadSize asks (up to 1,048,576): the answer
     * is built, signed and sent from memory, so a pull asking for a GiB held one. The rest is the next page.
     */
    maxPullAnswerKb: number;
    /** A queue whose oldest waiting message is older than this is catching up and shares the catch-up rate (README, Fair delivery). */
    catchUpAfterMs: number;
    /** Messages per second all catching-up queues together may be handed while the DIP is not pressed. */
    catchUpPerSecond: number;
    /** The least time between two calls to a queue unless the second is full (README, Fair delivery): fewer, fuller calls. 0: none. */
    gatherMs: number;
    /** Calls a queue may have answered and not yet recorded behind the settlement being recorded (README, Delivery: what a death repeats). */
    callsPastSettlement: number;
  };
  channels: Record<string, ChannelOverride>;
  /** Limits of the participant-facing HTTPS listener (slow or oversized requests). */
  http: HttpLimits;
  /** Answers where the published API contradicts itself or leaves a gap (docs/api-differences.md). */
  api: ApiChoices;
  /** Fair use per participant (token bucket); requestsPerSecond 0 turns it off. */
  rateLimit: { requestsPerSecond: number; burst: number };
  /** Companies applying to use the DIP on the user portal (spec 5.12.1, README "Applying to use the DIP"). */
  onboarding: OnboardingConfig;
  /**
   * Replayed and requeued copies a recipient may have made per hour (each is archived, a new message row:
   * without a budget one recipient replaying its archive over and over fills the disk the whole market
   * writes to). Spent a page at a time; up to an hour's worth at once. 0 turns it off. Per process.
   */
  replayCopiesPerHour: number;
  /** When the DIP answers submissions 503 with Retry-After because it cannot keep up (README, Fair delivery and overload). */
  overload: { maxEventLoopDelayMs: number; delayCountsFromSubmissions: number; maxSubmissionsInFlight: number; maxBytesInFlight: number; maxBytesArriving: number; maxBytesArrivingPerSender: number };
  /** How often a running DIP re-reads the revocation list from the shared store (besides at each change the store announces). */
  revocationPollMs: number;
  /**
   * PEM bundles of the CAs participants' TLS client certificates must chain to (e.g. a commercial CA in
   * PRD). Empty: the environment's own CA in `<dataDir>/pki`.
   */
  trustedCaFiles: string[];
  /**
   * The CRLs of the CAs in `trustedCaFiles` (PEM "X509 CRL" blocks or DER, kept current by the operator's
   * fetch job), installed in the participant listener and re-read when they change (every
   * `revocationPollMs`). Every trusted CA needs one; a CRL past its nextUpdate refuses that CA's
   * certificates (fail-closed, SECURITY.md). Empty: no CRL of an external CA is checked.
   */
  crlFiles: string[];
  /** How often a running DIP looks for a rotated signing key (`dip pki rotate-signing`). */
  signingKeyPollMs: number;
  /**
   * Outside DEV webhook destinations on internal networks (loopback, private, link-local, …) are
   * refused; these are the operator's exceptions for participants on a private link: IP addresses,
   * CIDR ranges and host names (`*.example.net` for every name under it).
   */
  webhookAllowList: string[];
  /**
   * Apply the catalogue's suggested security category (docs/security-categories.md) to every channel
   * whose configuration sets no securityPattern or securityCategory. Off: pattern 1 everywhere by default.
   */
  applySuggestedSecurityCategories: boolean;
  storage: StorageConfig;
  /** Pattern B: large publications (README "Large publications (Pattern B)"). */
  publications: PublicationsConfig;
  /** Activity log, reports, alarms and metrics (README "Audit, reports, alarms and observability"). */
  observability: ObservabilityConfig;
  /** Operator sign-in (README "Operator accounts"). */
  operators: OperatorsConfig;
  /** The central register feed (README "Participants without outage: the central register feed"). */
  register: RegisterConfig;
}

export interface PortalConfig {
  /**
   * Connections one client address (an IPv4-mapped IPv6 one counted as its IPv4 address) may hold open
   * at once on the portals' listener; a request on one more is answered 429 with a page and its
   * connection closed (src/api/connection-cap.ts). 0: no cap.
   */
  maxConnectionsPerAddress: number;
  /**
   * A portal session left unused this many minutes ends (the person signs in again); every page renews
   * it, up to its 8 hours. 1 to 480; default 30 (OWASP's guidance for high-value applications: 15 to 30).
   */
  sessionIdleMinutes: number;
  /**
   * Portal sessions one person may have at once (browsers, devices), either portal: a sign-in beyond it
   * ends their oldest session (the oldest started, whether used since or not). 0: no cap. Default 5.
   */
  maxSessionsPerUser: number;
  /**
   * Hours a first password signs in for (an account's first, or a new one after an authenticator reset):
   * after them it is refused as a wrong password is until an administrator resets the account again.
   * Default 72.
   */
  firstPasswordHours: number;
  /**
   * The client addresses (IP addresses and CIDR ranges) the operator portal (/operator) answers; any other
   * is answered 404 as if it did not exist, sign-in included. Empty (the default): every address.
   */
  operatorAllowList: string[];
  /**
   * Requests one client address (an IPv6 one by its /64) may make to the portals' listener: a token bucket
   * of `burst` refilled at `requestsPerSecond`. One more is answered 429 with Retry-After and a page, before
   * any session or form is read, and the API activity log counts such refusals (one record a minute with
   * the addresses) instead of keeping each: anyone on the network reaches this listener, and every request
   * it serves is kept in the log for ever. 0 requests/s: no limit. Default 10/s, bursts of 100 (a page is
   * one request, its style sheet one more, cached an hour; many people behind one NAT share the address).
   */
  rateLimit: { requestsPerSecond: number; burst: number };
}

export interface OnboardingConfig {
  /** The public application form on the user portal (/portal/apply). Off: the form is answered 404. */
  enabled: boolean;
  /**
   * Verified applications waiting for the operators at most: one more is refused until operators decide
   * some, so a flood of applications cannot grow the queue without end. Unverified ones (anyone can make them)
   * have a roomier bound of their own, four times this (src/pipeline/onboarding.ts), and never fill it.
   */
  maxWaiting: number;
  /** Applications one client address may send an hour (token bucket, src/security/rate-limit.ts). */
  applicationsPerAddressPerHour: number;
  /** How long the verification link sent to the contact works; an unverified application is forgotten after. */
  linkHours: number;
  /**
   * The user portal's address as applicants reach it, for the links e-mailed to them (behind a reverse
   * proxy, the proxy's). Null: https://<first of hostnames>:<portalPort>.
   */
  portalUrl: string | null;
}

export interface OperatorsConfig {
  /**
   * Keep the bootstrap token (`<dataDir>/admin-token`) working after the first admin account exists, as a
   * break-glass credential. Off: once an admin account exists the token is refused for everything.
   */
  bootstrapBreakGlass: boolean;
  /** How long a bearer token from POST /admin/session (`dip login`) is good for. */
  sessionMinutes: number;
  /**
   * While the store cannot be read, reads of the operator API (alarms, health, queues) are checked against
   * this node's last reading of the operator accounts for at most this long after it was made; it is
   * also the longest a session ended or an account disabled can still read on a node cut off from the
   * store (src/pipeline/operator-memory.ts). 0: every call needs the store.
   */
  rememberedMinutes: number;
  /**
   * Host names (or IP addresses) the operator API answers to besides its loopback names (127.0.0.1,
   * localhost, [::1]): the name a reverse proxy or an SSH tunnel passes on as Host. A request naming any
   * other host is answered 421 (a page of another site reaching the listener by DNS rebinding). Names only:
   * no scheme, port or path; any port passes.
   */
  allowedHosts: string[];
}

export interface RegisterConfig {
  /** Pull the feed from the register's endpoint on a schedule (null: only on demand). */
  pull: { url: string; intervalMinutes: number; headers: Record<string, string>; snapshot: boolean } | null;
  /**
   * Register endpoints the pull may reach on internal networks (loopback, private ranges): IP addresses,
   * CIDR ranges, host names, `*.domain`. Others on internal networks are refused, in every environment.
   */
  allowList: string[];
  /** A feed larger than this is refused as it streams in (nothing applied). */
  maxFeedMb: number;
}

/** Pattern B publications: limits, retention, who publishes, and the anonymous listener for public ones. */
export interface PublicationsConfig {
  /** Largest publication accepted (bytes as uploaded), unless the channel sets its own. */
  maxBytes: number;
  /** How long a superseded version stays; the newest version of each type stays however old. */
  retentionDays: number;
  /**
   * Bytes with no committed record (an upload abandoned half way, a crash between the bytes and the
   * record) are removed once last written this long ago, at start and every purge interval.
   */
  orphanGraceMinutes: number;
  /** Per channel: its own limit, retention, and the roles that may publish (default: the channel's sender roles). */
  channels: Record<string, { maxBytes?: number; retentionDays?: number; publisherRoles?: string[] }>;
  /** Public publications, listed and downloaded without a client certificate, on a listener of their own. */
  anonymous: {
    enabled: boolean;
    host: string;
    port: number;
    rateLimit: { requestsPerSecond: number; burst: number };
    /**
     * Connections one client address (an IPv4-mapped IPv6 one counted as its IPv4 address) may hold open
     * at once; a request on one more is answered 429 and its connection closed (src/api/connection-cap.ts). 0: no cap.
     */
    maxConnectionsPerAddress: number;
    /**
     * Set when the listener sits behind a proxy: the base URL anyone downloads public publications from,
     * in their notices (publicURI) and listings (downloadURI). Unset: the first of `hostnames` and the
     * listener's own port, an internal address behind a proxy. Held as publicUrl is (normalPublicUrl).
     */
    publicUrl: string | null;
  };
}

export interface ObservabilityConfig {
  activityLog: {
    /** Record every request to every listener (spec 5.8.1). */
    enabled: boolean;
    /**
     * Records waiting in memory for the store up to this many; beyond it, new requests are refused 503 with
     * Retry-After until they are written (a request that cannot be audited is not served).
     */
    maxWaiting: number;
    /** Recorded requests are written in one batch this often (off the request path). */
    flushIntervalMs: number;
    /** Longer response bodies are kept as a note of their size only. */
    maxBodyBytes: number;
  };
  alarms: {
    enabled: boolean;
    /** How often the conditions are evaluated. */
    evaluateIntervalMs: number;
    /** A queue holding more messages than this raises `queue-depth`. */
    queueDepthThreshold: number;
    /** A queue whose oldest undelivered message has waited longer than this raises `queue-age`. */
    queueAgeMinutes: number;
    /** A message delivered by a webhook call longer than this after its acceptance raises `delivery-latency` (spec 5.10.3: 30 s). */
    deliveryLatencySeconds: number;
    /** `delivery-latency` resolves once this long passes without a late delivery. */
    deliveryLatencyWindowMinutes: number;
    /** A webhook failing without a success for this long raises `webhook-failing`. */
    webhookFailingMinutes: number;
    /** Certificates expiring within this many days raise `certificate-expiring`. */
    certificateDays: number;
    /**
     * An accepted message whose MPAN lookup named a holder who got no copy raises `mpan-holder-unreached`;
     * it resolves once none has for this long.
     */
    mpanUnreachedMinutes: number;
    /** Notices per subscription per hour; more are dropped (a flapping condition cannot flood a mailbox). */
    maxNoticesPerHour: number;
    /** The SMTP server e-mail notices are sent through (null: e-mail notices cannot be sent). */
    smtp: { host: string; port: number; secure: boolean; requireTLS: boolean; user: string | null; pass: string | null; from: string } | null;
  };
  /** OpenTelemetry traces of each message from its POST to each delivery (README "OpenTelemetry traces"). */
  tracing: {
    /** `none` (the default): nothing is traced and nothing is created on the road for it. */
    exporter: 'otlp-http' | 'console' | 'none';
    /** The collector's OTLP/HTTP traces URL (…/v1/traces); null: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, else http://localhost:4318/v1/traces. */
    endpoint: string | null;
    /** `service.name` of the spans. */
    serviceName: string;
  };
}

/** Where the DIP keeps what it stores (src/adapters/backend.ts opens it). */
export interface StorageConfig {
  /**
   * `sqlite`: the embedded SQLite file in the data directory (one process). `cluster`: PostgreSQL is the
   * system of record and NATS JetStream carries what several stateless DIP nodes share (queue leases,
   * wake-ups, replay guard, rate limits); see docs/cluster.md.
   */
  kind: 'sqlite' | 'cluster';
  /**
   * A cap on the database file: past it, submissions are refused with 503 and delivery pauses, as on a
   * full disk, before the disk itself fills (the operating system and logs need space too). Null: none.
   * SQLite only.
   */
  maxDatabaseMb: number | null;
  /**
   * Free space on the data folder's volume below which the `storage` alarm is raised (key `storage-disk`),
   * while there is still room to act: dip.db and activity.db share the volume, and the API activity log is
   * never deleted by the DIP (spec 5.8.1), so it grows with every request until the operator archives it
   * (dip audit export). Read at every alarm evaluation. Default 1024; null: no such alarm.
   */
  minFreeDiskMb: number | null;
  /**
   * Index the archive's consumption (IF-021, IF-013, IF-014) by MPAN, for the DIP Replay Service: an
   * IF-015 then reads only its MPAN's rows (200,000 archived IF-021 on SQLite: 1.8 s a request without,
   * 0.16 s with) but every consumption message inserted pays for the index (BENCHMARKS.md, 2026-12-05
   * session 3). Off by default; turned on or off at the next start (the index made or dropped then).
   */
  mpanIndex: boolean;
  /** How values are sealed at rest (src/security/at-rest.ts's Sealer). */
  atRest: {
    /**
     * Seal what is compressed in format 3 (LZ4 with the frozen dictionary, src/security/lz4-dictionary.ts:
     * an IF-021 copy in 874 bytes instead of 1,413) rather than format 2. False by default for one release:
     * every version reads format 3 from this one on, but none before it does, so a node not yet upgraded
     * in a rolling upgrade, or a rollback, would meet values it cannot open. The next release turns it on.
     */
    lz4Dictionary: boolean;
    /**
     * Seal each value bound to the record it belongs to (formats 4-6: a message's transaction ID, a batch,
     * an account), so one swapped into another record in the database does not open there. On by default;
     * no build before this one opens them, so a cluster upgraded node by node runs with it off until every
     * node runs this version, then turns it on (docs/cluster.md, "Upgrading"). Either way every format opens.
     */
    bindToRecord: boolean;
  };
  /** The cluster's PostgreSQL (storage.kind cluster). */
  postgres: {
    /** postgres://user:password@host:port/database?sslmode=verify-full… (DIP_POSTGRES_URL wins). */
    url: string;
    /**
     * postgres:// of the role that owns the tables (DIP_POSTGRES_MIGRATION_URL wins), when `url` names a
     * runtime role apart from it: the schema is made and changed, the runtime role granted what the DIP
     * uses (INSERT and SELECT only on the audit logs), and day partitions made and dropped over this
     * connection; everything else runs as `url`'s role, which then cannot purge an audit log. Null: `url`'s
     * role owns the tables, the weaker mode (docs/cluster.md, "Roles").
     */
    migrationUrl: string | null;
    /** Connections each node keeps open. */
    poolSize: number;
    /**
     * How often a healthy node asks PostgreSQL whether it takes writes (one read, no write): a node whose
     * connections now land on a read-only server turns unavailable (/ready 503) within this, not at the
     * next submission's 503.
     */
    writableCheckMs: number;
  };
  /** The cluster's NATS servers (storage.kind cluster). */
  nats: {
    /** Seed servers of the NATS cluster, host:port (DIP_NATS_SERVERS, comma-separated, wins). */
    servers: string[];
    /** Prefix of the DIP's KV buckets and subjects (several DIPs may share one NATS system). */
    prefix: string;
    /** JetStream replicas of the DIP's buckets: 3 in production (a quorum survives one node), 1 on a single server. */
    replicas: number;
    /** A NATS credentials file (JWT and NKey seed) for the DIP's account. */
    credsFile: string | null;
    user: string | null;
    pass: string | null;
    token: string | null;
    /** Mutual TLS to NATS: CA bundle, client certificate and key (PEM files). */
    tls: { caFile: string | null; certFile: string | null; keyFile: string | null } | null;
    /** How long a queue lease lasts unless renewed: a dead node's queues are taken over after about this. */
    leaseTtlMs: number;
    /**
     * How often each node pings its NATS server: after two pings unanswered (2–3 intervals) it moves to
     * another server of the cluster. A hung server (stopped, frozen) closes nothing, so this is how it is found.
     */
    pingIntervalMs: number;
    /**
     * What names this node in leases, alarms (`storage:<node>`) and logs, followed by a random part made at
     * each start (`<nodeName>-<8 hex>`, unique per process). Null: the host's name (DIP_NODE_NAME wins).
     */
    nodeName: string | null;
  };
}

export interface ApiChoices {
  /**
   * A replay that matches nothing. The published 200 answer is an array of at least one message, so:
   * 'bad-request' (default) a 400 StandardResponse saying nothing matched, as the published schema allows;
   * 'no-content' a 204; 'empty-array' a 200 with [] (what most clients expect, outside the published schema).
   */
  emptyReplay: 'bad-request' | 'no-content' | 'empty-array';
  /**
   * The answer of POST /validate/{interface}/{event}, published as a JSON string (`type: string`, "Message
   * OK"): 'text' (default) that string, the message and help of each item (a client generated from the
   * published document reads it); 'standard-response' the StandardResponse every other operation answers,
   * naming each field that fails in its own entry.
   */
  validateAnswer: 'standard-response' | 'text';
}

export interface HttpLimits {
  /** The TLS handshake must complete within this (a client that connects and says nothing is dropped). */
  handshakeTimeoutMs: number;
  /** All request headers must arrive within this after the connection's request starts (slowloris). */
  headersTimeoutMs: number;
  /** The whole request, body included, must arrive within this (publication uploads excepted: see below). */
  requestTimeoutMs: number;
  /**
   * A publication upload (Pattern B, possibly gigabytes over a slow link) is not bounded as a whole: it is
   * cut off when no byte has arrived for this long.
   */
  uploadIdleTimeoutMs: number;
  /**
   * A publication upload refused while its body is still coming (a version that exists, a caller that may
   * not publish, metadata that is wrong) is answered at once, then the rest of its body is read and dropped
   * for at most this long and at most `refusedUploadLingerBytes` before the connection closes (RFC 9112 9.6,
   * a lingering close): closed with bytes arriving, the connection is reset and a sender still writing its
   * body loses the answer. A sender that asked for 100 Continue is refused instead of it, and sends none.
   */
  refusedUploadLingerMs: number;
  refusedUploadLingerBytes: number;
  /**
   * A publication download (Pattern B, possibly gigabytes to a slow client) is not bounded as a whole
   * either: it is cut off when the client has taken no byte for this long while the DIP had bytes waiting
   * for it (a client that stops reading would otherwise hold the connection, the open file and the
   * chunks in hand for ever; on the anonymous listener, anyone could).
   */
  downloadIdleTimeoutMs: number;
  /**
   * How often the server looks for connections past those timeouts; on the participant listener, also for
   * idle connections whose client certificate expired or was revoked since their handshake (closed).
   */
  connectionsCheckingIntervalMs: number;
  /**
   * How long a stopping listener (each of them: participant, anonymous, operator, portals) keeps its open
   * connections for what their clients send meanwhile, each answered 503 with Retry-After, before it
   * closes those left (src/api/stopping.ts). The listeners stop one after the other: a stop takes at most
   * this long per listener with a connection still open.
   */
  stopDrainMs: number;
  /** Largest header block accepted (bytes); more is answered 431. */
  maxHeaderBytes: number;
  /** Deepest nesting of arrays and objects accepted in a JSON body; deeper is answered 400 before parsing. */
  maxJsonDepth: number;
  /** Members one object of a JSON body may hold; more is answered 400 before parsing (the catalogue's largest object has 29). */
  maxJsonObjectMembers: number;
  /**
   * Values (object members and array elements) one JSON body, or one message of a batch, may hold; more is
   * answered 400 before parsing. Null (the default): half of bodyLimitBytes, which no body within the body
   * limit can pass (a value and its comma take at least 2 bytes): 185 array paths of the catalogue have no
   * maxItems (IF-013's defaulted periods, IF-019's B090List), so no fixed number bounds a legitimate message
   * below what the body limit already does. A smaller number refuses such messages: set one only knowing them.
   */
  maxJsonValues: number | null;
  /**
   * Connections one client (its certificate's DIP ID) may hold open at once on the participant listener;
   * a request on one more is answered 429 and its connection closed (src/api/connection-cap.ts). 0: no cap.
   */
  maxConnectionsPerClient: number;
  /**
   * Connections the participant listener holds at once, all clients together (Node's server.maxConnections;
   * one more is closed at once, logged and alarmed as `connections-exhausted`). null: derived from the
   * process's open-file limit (RLIMIT_NOFILE), keeping a quarter of it (at least 64) for the operator
   * listener, the other listeners, the store and outbound webhook calls (src/api/connection-cap.ts
   * participantConnectionLimit). 0: no cap.
   */
  maxConnections: number | null;
  /**
   * Connections one client address may hold at once on the participant listener, counted from their accept
   * (a connection still in its TLS handshake included, which no certificate names yet) until they close;
   * one more is closed at once (src/api/connection-cap.ts useHandshakeGuard). An IPv4 client of a
   * dual-stack listener counts as its IPv4 address. 0: no cap.
   */
  maxConnectionsPerAddress: number;
  /**
   * A connection on the participant listener that has sent no byte (not even its TLS hello) this long after
   * its accept is closed: a TLS client speaks first, at once. Shorter than handshakeTimeoutMs, which still
   * bounds a handshake that has begun.
   */
  firstByteTimeoutMs: number;
  /**
   * The share of the participant listener's overall cap (maxConnections) that connections still in their
   * TLS handshake may not take: at most (100 - this) % of it are in a handshake at once, and one more closes
   * the oldest of them, as does a new connection to a full listener. Unauthenticated sockets can so never
   * hold the places of participants' established connections, nor keep a new one out. 0: no reserve.
   */
  authenticatedReservePercent: number;
}

const ENVIRONMENTS = ['PRD', 'SITB', 'SIT', 'UIT', 'DEV'] as const;

const stringList = { type: 'array', items: { type: 'string' }, nullable: true } as const;

/** A settings object whose keys are all optional and nothing else is allowed. */
const section = (properties: Record<string, unknown>) => ({ type: 'object', additionalProperties: false, required: [], properties }) as const;

const rateLimitSchema = section({ requestsPerSecond: { type: 'number', minimum: 0 }, burst: { type: 'number', minimum: 1 } });

/** A cluster node's name (storage.nats.nodeName, DIP_NODE_NAME): a host name's characters, one label's length. */
const NODE_NAME = /^[\w.-]{1,63}$/;

const schema: JSONSchemaType<DipConfig> = {
  type: 'object',
  additionalProperties: false,
  required: [],
  properties: {
    dataDir: { type: 'string' },
    host: { type: 'string' },
    port: { type: 'integer', minimum: 0, maximum: 65535 },
    environment: { type: 'string', enum: [...ENVIRONMENTS] },
    dipId: { type: 'string', minLength: 10, maxLength: 11 },
    // Any case: the scheme, like the host, is lower-cased by normalPublicUrl().
    publicUrl: { type: 'string', nullable: true, pattern: '^[Hh][Tt][Tt][Pp][Ss]://' },
    allowedHosts: { type: 'array', items: { type: 'string', minLength: 1, maxLength: 253 } },
    hostnames: { type: 'array', items: { type: 'string' } },
    ipAddresses: { type: 'array', items: { type: 'string' } },
    retentionDays: { type: 'number', exclusiveMinimum: 0 },
    staleAfterMinutes: { type: 'number', exclusiveMinimum: 0, nullable: true },
    allowShortRetention: { type: 'boolean' },
    sweepIntervalSeconds: { type: 'number', exclusiveMinimum: 0 },
    archiveRetentionDays: { type: 'number', exclusiveMinimum: 0 },
    purgeIntervalSeconds: { type: 'number', exclusiveMinimum: 0 },
    adminPort: { type: 'integer', minimum: 0, maximum: 65535 },
    portalPort: { type: 'integer', minimum: 0, maximum: 65535 },
    portal: section({ maxConnectionsPerAddress: { type: 'integer', minimum: 0 }, sessionIdleMinutes: { type: 'integer', minimum: 1, maximum: 480 }, maxSessionsPerUser: { type: 'integer', minimum: 0, maximum: 1000 }, firstPasswordHours: { type: 'integer', minimum: 1, maximum: 720 }, operatorAllowList: { type: 'array', items: { type: 'string', minLength: 1 } }, rateLimit: rateLimitSchema }),
    maxClockSkewSeconds: { type: 'number', minimum: 1 },
    bodyLimitBytes: { type: 'integer', minimum: 1024 },
    controlBodyLimitBytes: { type: 'integer', minimum: 1024 },
    maxBatchMessages: { type: 'integer', minimum: 1 },
    warmCatalogue: { type: 'boolean' },
    workers: { type: 'integer', minimum: 1, maximum: 64, nullable: true },
    ingestThreads: { type: 'integer', minimum: 0, maximum: 64, nullable: true },
    workerPollMs: { type: 'integer', minimum: 10 },
    workerHungMs: { type: 'integer', minimum: 5000 },
    workerStartTimeoutMs: { type: 'integer', minimum: 1000 },
    http: {
      type: 'object',
      additionalProperties: false,
      required: [],
      properties: {
        handshakeTimeoutMs: { type: 'integer', minimum: 100 },
        headersTimeoutMs: { type: 'integer', minimum: 100 },
        requestTimeoutMs: { type: 'integer', minimum: 100 },
        uploadIdleTimeoutMs: { type: 'integer', minimum: 100 },
        refusedUploadLingerMs: { type: 'integer', minimum: 0, maximum: 60_000 },
        refusedUploadLingerBytes: { type: 'integer', minimum: 0 },
        downloadIdleTimeoutMs: { type: 'integer', minimum: 100 },
        connectionsCheckingIntervalMs: { type: 'integer', minimum: 10 },
        stopDrainMs: { type: 'integer', minimum: 0, maximum: 60_000 },
        maxHeaderBytes: { type: 'integer', minimum: 1024 },
        maxJsonDepth: { type: 'integer', minimum: 4 },
        maxJsonObjectMembers: { type: 'integer', minimum: 64 },
        maxJsonValues: { type: ['integer', 'null'], minimum: 1024 },
        maxConnectionsPerClient: { type: 'integer', minimum: 0 },
        maxConnections: { type: 'integer', minimum: 0, nullable: true },
        maxConnectionsPerAddress: { type: 'integer', minimum: 0 },
        firstByteTimeoutMs: { type: 'integer', minimum: 100 },
        authenticatedReservePercent: { type: 'integer', minimum: 0, maximum: 90 },
      },
    },
    api: {
      type: 'object',
      additionalProperties: false,
      required: [],
      properties: {
        emptyReplay: { type: 'string', enum: ['bad-request', 'no-content', 'empty-array'] },
        validateAnswer: { type: 'string', enum: ['standard-response', 'text'] },
      },
    },
    rateLimit: rateLimitSchema,
    onboarding: section({ enabled: { type: 'boolean' }, maxWaiting: { type: 'integer', minimum: 1, maximum: 100_000 }, applicationsPerAddressPerHour: { type: 'integer', minimum: 1, maximum: 3600 }, linkHours: { type: 'integer', minimum: 1, maximum: 168 }, portalUrl: { type: ['string', 'null'], pattern: '^https://[^/?#]+$' } }),
    overload: {
      type: 'object',
      additionalProperties: false,
      required: [],
      properties: {
        maxEventLoopDelayMs: { type: 'number', exclusiveMinimum: 0 },
        delayCountsFromSubmissions: { type: 'integer', minimum: 0 },
        maxSubmissionsInFlight: { type: 'integer', minimum: 1 },
        maxBytesInFlight: { type: 'integer', minimum: 1 },
        maxBytesArriving: { type: 'integer', minimum: 1 },
        maxBytesArrivingPerSender: { type: 'integer', minimum: 1 },
      },
    },
    revocationPollMs: { type: 'integer', minimum: 10 },
    replayCopiesPerHour: { type: 'integer', minimum: 0 },
    trustedCaFiles: { type: 'array', items: { type: 'string', minLength: 1 } },
    crlFiles: { type: 'array', items: { type: 'string', minLength: 1 } },
    signingKeyPollMs: { type: 'integer', minimum: 10 },
    storage: {
      type: 'object',
      additionalProperties: false,
      required: [],
      properties: {
        kind: { type: 'string', enum: ['sqlite', 'cluster'] },
        maxDatabaseMb: { type: 'number', exclusiveMinimum: 0, nullable: true },
        minFreeDiskMb: { type: 'number', minimum: 0, nullable: true },
        mpanIndex: { type: 'boolean' },
        atRest: { type: 'object', additionalProperties: false, required: [], properties: { lz4Dictionary: { type: 'boolean' }, bindToRecord: { type: 'boolean' } } },
        postgres: {
          type: 'object',
          additionalProperties: false,
          required: [],
          properties: { url: { type: 'string', pattern: '^postgres(ql)?://' }, migrationUrl: { type: 'string', pattern: '^postgres(ql)?://', nullable: true }, poolSize: { type: 'integer', minimum: 2 }, writableCheckMs: { type: 'integer', minimum: 100 } },
        },
        nats: {
          type: 'object',
          additionalProperties: false,
          required: [],
          properties: {
            servers: { type: 'array', items: { type: 'string', minLength: 1 }, minItems: 1 },
            prefix: { type: 'string', pattern: '^[A-Za-z0-9_-]+$' },
            replicas: { type: 'integer', enum: [1, 3, 5] },
            credsFile: { type: 'string', nullable: true },
            user: { type: 'string', nullable: true },
            pass: { type: 'string', nullable: true },
            token: { type: 'string', nullable: true },
            tls: {
              type: 'object',
              nullable: true,
              additionalProperties: false,
              required: [],
              properties: { caFile: { type: 'string', nullable: true }, certFile: { type: 'string', nullable: true }, keyFile: { type: 'string', nullable: true } },
            },
            leaseTtlMs: { type: 'integer', minimum: 1000 },
            pingIntervalMs: { type: 'integer', minimum: 1000 },
            nodeName: { type: 'string', pattern: NODE_NAME.source, nullable: true },
          },
        },
      },
    },
    webhookAllowList: { type: 'array', items: { type: 'string', minLength: 1 } },
    observability: {
      type: 'object',
      additionalProperties: false,
      required: [],
      properties: {
        activityLog: {
          type: 'object',
          additionalProperties: false,
          required: [],
          properties: {
            enabled: { type: 'boolean' },
            // Accepted by the schema only to be refused with the reason (loadConfig), not "additional property".
            retentionDays: { type: 'number' },
            maxWaiting: { type: 'integer', minimum: 1 },
            flushIntervalMs: { type: 'integer', minimum: 1 },
            maxBodyBytes: { type: 'integer', minimum: 0 },
          },
        },
        alarms: {
          type: 'object',
          additionalProperties: false,
          required: [],
          properties: {
            enabled: { type: 'boolean' },
            evaluateIntervalMs: { type: 'integer', minimum: 10 },
            queueDepthThreshold: { type: 'integer', minimum: 0 },
            queueAgeMinutes: { type: 'number', exclusiveMinimum: 0 },
            deliveryLatencySeconds: { type: 'number', exclusiveMinimum: 0 },
            deliveryLatencyWindowMinutes: { type: 'number', exclusiveMinimum: 0 },
            webhookFailingMinutes: { type: 'number', minimum: 0 },
            certificateDays: { type: 'integer', minimum: 0 },
            mpanUnreachedMinutes: { type: 'number', exclusiveMinimum: 0 },
            maxNoticesPerHour: { type: 'integer', minimum: 1 },
            smtp: {
              type: 'object',
              nullable: true,
              additionalProperties: false,
              required: ['host', 'from'],
              properties: {
                host: { type: 'string', minLength: 1 },
                port: { type: 'integer', minimum: 1, maximum: 65535 },
                secure: { type: 'boolean' },
                requireTLS: { type: 'boolean' },
                user: { type: 'string', nullable: true },
                pass: { type: 'string', nullable: true },
                from: { type: 'string', minLength: 3 },
              },
            },
          },
        },
        tracing: {
          type: 'object',
          additionalProperties: false,
          required: [],
          properties: {
            exporter: { type: 'string', enum: ['otlp-http', 'console', 'none'] },
            endpoint: { type: 'string', nullable: true, pattern: '^https?://' },
            serviceName: { type: 'string', minLength: 1 },
          },
        },
      },
    },
    applySuggestedSecurityCategories: { type: 'boolean' },
    operators: section({
      bootstrapBreakGlass: { type: 'boolean' },
      sessionMinutes: { type: 'integer', minimum: 1, maximum: 1440 },
      rememberedMinutes: { type: 'integer', minimum: 0, maximum: 1440 },
      allowedHosts: { type: 'array', items: { type: 'string', minLength: 1, maxLength: 253 } },
    }),
    register: section({
      pull: {
        type: 'object',
        nullable: true,
        additionalProperties: false,
        required: ['url', 'intervalMinutes'],
        properties: {
          url: { type: 'string', pattern: '^https?://' },
          intervalMinutes: { type: 'number', minimum: 1 },
          headers: { type: 'object', required: [], additionalProperties: { type: 'string' } },
          snapshot: { type: 'boolean' },
        },
      },
      allowList: { type: 'array', items: { type: 'string', minLength: 1 } },
      maxFeedMb: { type: 'number', exclusiveMinimum: 0 },
    }),
    publications: section({
      maxBytes: { type: 'integer', minimum: 1 },
      retentionDays: { type: 'number', exclusiveMinimum: 0 },
      orphanGraceMinutes: { type: 'number', exclusiveMinimum: 0 },
      channels: {
        type: 'object',
        required: [],
        additionalProperties: section({
          maxBytes: { type: 'integer', minimum: 1, nullable: true },
          retentionDays: { type: 'number', exclusiveMinimum: 0, nullable: true },
          publisherRoles: stringList,
        }),
      },
      anonymous: section({
        enabled: { type: 'boolean' },
        host: { type: 'string' },
        port: { type: 'integer', minimum: 0, maximum: 65535 },
        rateLimit: rateLimitSchema,
        maxConnectionsPerAddress: { type: 'integer', minimum: 0 },
        publicUrl: { type: 'string', nullable: true, pattern: '^[Hh][Tt][Tt][Pp][Ss]://' },
      }),
    }),
    delivery: {
      type: 'object',
      additionalProperties: false,
      required: [],
      properties: {
        timeoutMs: { type: 'integer', minimum: 100 },
        retryBaseMs: { type: 'integer', minimum: 1 },
        retryCapMs: { type: 'integer', minimum: 1 },
        defaultMaxMessageCount: { type: 'integer', minimum: 1 },
        defaultMaxPayloadKb: { type: 'integer', minimum: 1 },
        maxPullAnswerKb: { type: 'integer', minimum: 1 },
        catchUpAfterMs: { type: 'integer', minimum: 0 },
        catchUpPerSecond: { type: 'number', exclusiveMinimum: 0 },
        gatherMs: { type: 'integer', minimum: 0, maximum: 1000 },
        callsPastSettlement: { type: 'integer', minimum: 1, maximum: 64 },
      },
    },
    channels: {
      type: 'object',
      required: [],
      additionalProperties: {
        type: 'object',
        additionalProperties: false,
        required: [],
        properties: {
          senderRoles: stringList,
          receiverRoles: stringList,
          alwaysRoles: stringList,
          alwaysParticipants: stringList,
          workflowStarter: { type: 'boolean', nullable: true },
          staleAfterMinutes: { type: 'number', exclusiveMinimum: 0, nullable: true },
          allowShortRetention: { type: 'boolean', nullable: true },
          archiveRetentionDays: { type: 'number', exclusiveMinimum: 0, nullable: true },
          obfuscation: { type: 'object', nullable: true, required: [], additionalProperties: { type: 'array', items: { type: 'string' } } },
          mpanFeed: { type: 'boolean', nullable: true },
          addressingDate: { type: 'string', nullable: true },
          securityPattern: { type: 'integer', enum: [0, 1, 2, 3], nullable: true },
          securityCategory: { type: 'integer', enum: [1, 2, 3, 4], nullable: true },
        },
      },
    },
  },
} as unknown as JSONSchemaType<DipConfig>;

export const DEFAULTS: DipConfig = {
  dataDir: './data',
  host: '0.0.0.0',
  port: 8443,
  environment: 'DEV',
  dipId: '0000000000',
  publicUrl: null,
  allowedHosts: [],
  hostnames: ['localhost'],
  ipAddresses: ['127.0.0.1', '::1'],
  retentionDays: 14,
  staleAfterMinutes: null,
  allowShortRetention: false,
  sweepIntervalSeconds: 30,
  archiveRetentionDays: 28,
  purgeIntervalSeconds: 600,
  adminPort: 8444,
  portalPort: 8445,
  // A browser opens at most 6 connections to a host (HTTP/1.1) and a portal page needs one or two (the
  // page, its one style sheet, cached for an hour); the listener closes idle ones after 72 s. 128 lets
  // some 20 people behind one office NAT or VPN gateway each hold a browser's most at once, and many
  // more as people really use it, while one address can no longer hold thousands.
  portal: { maxConnectionsPerAddress: 128, sessionIdleMinutes: 30, maxSessionsPerUser: 5, firstPasswordHours: 72, operatorAllowList: [], rateLimit: { requestsPerSecond: 10, burst: 100 } },
  maxClockSkewSeconds: 300,
  bodyLimitBytes: 10 * 1024 * 1024,
  // The largest such body (a CSR of up to 20,000 characters, a saved report naming 100 channels) is some 20 kB.
  controlBodyLimitBytes: 64 * 1024,
  maxBatchMessages: 1000,
  warmCatalogue: true,
  workers: null,
  ingestThreads: null,
  workerPollMs: 30_000,
  workerHungMs: 30_000,
  workerStartTimeoutMs: 60_000,
  delivery: {
    timeoutMs: 10_000,
    retryBaseMs: 500,
    retryCapMs: 15_000,
    defaultMaxMessageCount: 100,
    defaultMaxPayloadKb: 1024,
    // Three of the largest bodies a sender may submit (bodyLimitBytes): pages of this size stream at line rate.
    maxPullAnswerKb: 32 * 1024,
    catchUpAfterMs: 2_000,
    catchUpPerSecond: 5_000,
    gatherMs: 0,
    callsPastSettlement: DEFAULT_CALLS_PAST_SETTLEMENT,
  },
  channels: {},
  http: {
    handshakeTimeoutMs: 10_000,
    headersTimeoutMs: 20_000,
    requestTimeoutMs: 120_000,
    uploadIdleTimeoutMs: 60_000,
    // Enough for a few MB on any link and 16 MiB on a fast one; a refused sender holds its connection (one of
    // its http.maxConnectionsPerClient) no longer than this, and the DIP reads no more than that for it.
    refusedUploadLingerMs: 2_000,
    refusedUploadLingerBytes: 16 * 1024 * 1024,
    downloadIdleTimeoutMs: 60_000,
    connectionsCheckingIntervalMs: 1_000,
    stopDrainMs: 2_000,
    maxHeaderBytes: 16_384,
    maxJsonDepth: 64,
    maxJsonObjectMembers: 1_000,
    maxJsonValues: null,
    // A pooled client needs a handful; 64 leaves a participant's several systems room, and 100 of them 6,400 descriptors.
    maxConnectionsPerClient: 64,
    maxConnections: null,
    // Four participants at their full maxConnectionsPerClient behind one NAT or proxy; a DIP Connection
    // Provider acting for many still presents one certificate, held to maxConnectionsPerClient.
    maxConnectionsPerAddress: 256,
    // A TLS client sends its hello at once: 2 s is many round trips even across the world.
    firstByteTimeoutMs: 2_000,
    authenticatedReservePercent: 25,
  },
  api: { emptyReplay: 'bad-request', validateAnswer: 'text' },
  onboarding: { enabled: true, maxWaiting: 50, applicationsPerAddressPerHour: 5, linkHours: 24, portalUrl: null },
  rateLimit: { requestsPerSecond: 200, burst: 400 },
  // 32 MiB of submissions in hand: about 7,000 IF-021, two seconds of work at this machine's rate.
  overload: { maxEventLoopDelayMs: 500, delayCountsFromSubmissions: 32, maxSubmissionsInFlight: 256, maxBytesInFlight: 32 * 1024 * 1024, maxBytesArriving: 128 * 1024 * 1024, maxBytesArrivingPerSender: 64 * 1024 * 1024 },
  revocationPollMs: 2_000,
  // 1,000 pages an hour: a large supplier's day of IF-021 replayed in a few hours; one recipient adds at most about 2.8 GB an hour to the archive (2,829 stored bytes a message).
  replayCopiesPerHour: 1_000_000,
  trustedCaFiles: [],
  crlFiles: [],
  signingKeyPollMs: 5_000,
  storage: {
    kind: 'sqlite',
    maxDatabaseMb: null,
    minFreeDiskMb: 1024,
    // Off until every node reads format 3 (this release reads it; 0.1.0 does not): the next release turns it on.
    mpanIndex: false,
    // Bound sealing on: a new deployment has no older node to read its values (docs/cluster.md tells an upgrading cluster to turn it off first).
    atRest: { lz4Dictionary: false, bindToRecord: true },
    postgres: { url: 'postgres://postgres@127.0.0.1:5432/opendip', migrationUrl: null, poolSize: 10, writableCheckMs: 5_000 },
    nats: { servers: ['127.0.0.1:4222'], prefix: 'dip', replicas: 1, credsFile: null, user: null, pass: null, token: null, tls: null, leaseTtlMs: 6_000, pingIntervalMs: 2_000, nodeName: null },
  },
  webhookAllowList: [],
  applySuggestedSecurityCategories: false,
  operators: { bootstrapBreakGlass: false, sessionMinutes: 60, rememberedMinutes: 15, allowedHosts: [] },
  register: { pull: null, allowList: [], maxFeedMb: 64 },
  publications: {
    maxBytes: 2 * 1024 * 1024 * 1024,
    retentionDays: 28,
    orphanGraceMinutes: 60,
    channels: {},
    // 64 connections per address, as per participant: a proxy or NAT gateway in front of many downloaders still gets room.
    anonymous: { enabled: false, host: '0.0.0.0', port: 8446, rateLimit: { requestsPerSecond: 20, burst: 40 }, maxConnectionsPerAddress: 64, publicUrl: null },
  },
  observability: {
    activityLog: { enabled: true, maxWaiting: 200_000, flushIntervalMs: 200, maxBodyBytes: 16_384 },
    alarms: { enabled: true, evaluateIntervalMs: 10_000, queueDepthThreshold: 10_000, queueAgeMinutes: 60, deliveryLatencySeconds: 30, deliveryLatencyWindowMinutes: 15, webhookFailingMinutes: 15, certificateDays: 30, mpanUnreachedMinutes: 60, maxNoticesPerHour: 20, smtp: null },
    tracing: { exporter: 'none', endpoint: null, serviceName: 'opendip' },
  },
};

const validate = new Ajv({ allErrors: true }).compile(schema);

/**
 * Spec 5.8.1: audit logs are stored read-only and cannot be accidentally or maliciously purged. The DIP
 * once deleted activity records older than this setting (365 days) and moved its chains' anchors on; it
 * no longer deletes any, and a file that still asks for it is refused rather than silently ignored, so the
 * operator who relied on it learns that the log now grows until they archive it themselves.
 */
function refuseActivityRetention(file: string, c: Partial<DipConfig>): void {
  const given = (c.observability?.activityLog as { retentionDays?: unknown } | undefined)?.retentionDays;
  if (given === undefined) return;
  throw new Error(
    `configuration ${file}: observability.activityLog.retentionDays is no longer taken: API activity records are never deleted by the DIP (spec 5.8.1, read-only audit log). Remove the setting; to move old records off the machine, dip audit export them and keep the file with dip audit verify's output (README, "API activity log")`,
  );
}

/**
 * Spec 5.4: an offline Consumer's messages are kept up to 14 days. A staleness limit below it dead-letters
 * them sooner; a channel may mean that (spec 5.5.8 leaves the limit to it), so it is refused at start
 * unless acknowledged beside it, rather than taken silently (a typo, or an example copied, would cut every
 * recipient's 14 days short with nothing said).
 */
function refuseShortRetention(c: DipConfig): DipConfig {
  const refuse = (setting: string, given: number, minutes: number, acknowledgement: string) => {
    const why = shortRetention(minutes);
    if (why) throw new Error(`configuration: ${setting} ${given} ${why}; if that is meant, set ${acknowledgement}`);
  };
  // The default every channel without a limit of its own takes (delivery's defaultStaleMs).
  if (!c.allowShortRetention) {
    const acknowledgement = 'allowShortRetention: true (DIP_ALLOW_SHORT_RETENTION=true)';
    if (c.staleAfterMinutes === null) refuse('retentionDays', c.retentionDays, c.retentionDays * 1440, acknowledgement);
    else refuse('staleAfterMinutes', c.staleAfterMinutes, c.staleAfterMinutes, acknowledgement);
  }
  for (const [id, o] of Object.entries(c.channels)) {
    // A YAML null is "unset", as the schema allows.
    if (typeof o.staleAfterMinutes === 'number' && o.allowShortRetention !== true) refuse(`channels.${id}.staleAfterMinutes`, o.staleAfterMinutes, o.staleAfterMinutes, `channels.${id}.allowShortRetention: true`);
  }
  return c;
}

/**
 * Configuration: defaults, then the YAML file (DIP_CONFIG, else `dip.config.yaml` in the data directory),
 * then environment variables, which win. Anything unknown or ill-typed stops the start with the reason.
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env, overrides: Partial<DipConfig> = {}): DipConfig {
  const dataDir = resolve(overrides.dataDir ?? env.DIP_DATA_DIR ?? DEFAULTS.dataDir);
  const file = env.DIP_CONFIG ?? join(dataDir, 'dip.config.yaml');
  let fromFile: unknown = {};
  if (existsSync(file)) fromFile = parseYaml(readFileSync(file, 'utf8')) ?? {};
  else if (env.DIP_CONFIG) throw new Error(`DIP_CONFIG names ${file}, which does not exist`);
  if (!validate(fromFile)) {
    const why = (validate.errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message}`).join('; ');
    throw new Error(`configuration ${file}: ${why}`);
  }
  const fileConfig = fromFile as Partial<DipConfig>;
  refuseActivityRetention(file, fileConfig);
  const fromEnv: Partial<DipConfig> = {};
  if (env.DIP_PORT !== undefined) fromEnv.port = parsePort('DIP_PORT', env.DIP_PORT);
  if (env.DIP_HOST !== undefined) fromEnv.host = env.DIP_HOST;
  if (env.DIP_ENV !== undefined) fromEnv.environment = parseEnvironment(env.DIP_ENV);
  // Empty (what a deployment template leaves when it sets nothing) is unset, as it was before publicUrl was checked at start.
  if (env.DIP_PUBLIC_URL !== undefined) fromEnv.publicUrl = env.DIP_PUBLIC_URL.trim() === '' ? null : env.DIP_PUBLIC_URL;
  // The anonymous listener's, likewise (a layer of its own between the file and the overrides).
  const anonymousFromEnv: Partial<PublicationsConfig> | undefined =
    env.DIP_ANONYMOUS_PUBLIC_URL === undefined ? undefined : { anonymous: { publicUrl: env.DIP_ANONYMOUS_PUBLIC_URL.trim() === '' ? null : env.DIP_ANONYMOUS_PUBLIC_URL } as PublicationsConfig['anonymous'] };
  if (env.DIP_RETENTION_DAYS !== undefined) fromEnv.retentionDays = Number(env.DIP_RETENTION_DAYS);
  // Its acknowledgement beside it, or an install configured by its environment alone could not start with a short one.
  if (env.DIP_ALLOW_SHORT_RETENTION !== undefined && env.DIP_ALLOW_SHORT_RETENTION !== '') {
    fromEnv.allowShortRetention = parseBoolean('DIP_ALLOW_SHORT_RETENTION', env.DIP_ALLOW_SHORT_RETENTION);
  }
  if (env.DIP_ADMIN_PORT !== undefined) fromEnv.adminPort = parsePort('DIP_ADMIN_PORT', env.DIP_ADMIN_PORT);
  if (env.DIP_PORTAL_PORT !== undefined) fromEnv.portalPort = parsePort('DIP_PORTAL_PORT', env.DIP_PORTAL_PORT);
  if (env.DIP_WORKERS !== undefined) fromEnv.workers = parseCount('DIP_WORKERS', env.DIP_WORKERS, 1);
  if (env.DIP_INGEST_THREADS !== undefined) fromEnv.ingestThreads = parseCount('DIP_INGEST_THREADS', env.DIP_INGEST_THREADS, 0);
  const storageFromEnv: Partial<StorageConfig> = {};
  if (env.DIP_STORAGE !== undefined) storageFromEnv.kind = parseStorageKind(env.DIP_STORAGE);
  const port = overrides.port ?? fromEnv.port ?? fileConfig.port ?? DEFAULTS.port;
  const publicUrl = overrides.publicUrl !== undefined ? overrides.publicUrl : fromEnv.publicUrl !== undefined ? fromEnv.publicUrl : (fileConfig.publicUrl ?? DEFAULTS.publicUrl);
  return refuseShortRetention(distinctPorts({
    ...DEFAULTS,
    ...fileConfig,
    ...fromEnv,
    ...overrides,
    portalPort: overrides.portalPort ?? fromEnv.portalPort ?? fileConfig.portalPort ?? (port === 0 ? 0 : DEFAULTS.portalPort),
    dataDir,
    publicUrl: publicUrl === null ? null : normalPublicUrl(publicUrl),
    delivery: { ...DEFAULTS.delivery, ...fileConfig.delivery, ...overrides.delivery },
    channels: { ...fileConfig.channels, ...overrides.channels },
    http: { ...DEFAULTS.http, ...fileConfig.http, ...overrides.http },
    rateLimit: { ...DEFAULTS.rateLimit, ...fileConfig.rateLimit, ...overrides.rateLimit },
    overload: { ...DEFAULTS.overload, ...fileConfig.overload, ...overrides.overload },
    storage: mergeStorage(fileConfig.storage, storageFromEnv, overrides.storage, env),
    api: { ...DEFAULTS.api, ...fileConfig.api, ...overrides.api },
    onboarding: { ...DEFAULTS.onboarding, ...fileConfig.onboarding, ...overrides.onboarding },
    publications: mergePublications(port, fileConfig.publications, anonymousFromEnv, overrides.publications),
    observability: mergeObservability(fileConfig.observability, overrides.observability),
    // rateLimit merged field by field: a file that sets only its burst keeps the default rate.
    portal: { ...DEFAULTS.portal, ...fileConfig.portal, ...overrides.portal, rateLimit: { ...DEFAULTS.portal.rateLimit, ...fileConfig.portal?.rateLimit, ...overrides.portal?.rateLimit } },
    operators: { ...DEFAULTS.operators, ...fileConfig.operators, ...overrides.operators },
    register: mergeRegister(fileConfig.register, overrides.register),
  }));
}

/**
 * The public URL as clients sign requests to it. They sign the URL their HTTP client requests (the
 * WHATWG serialisation: `https://DIP.example:443/` is requested as `https://dip.example/…`), and the
 * DIP rebuilds it as this plus the request target: held as written, a default port or a path's escaping
 * would make every signature fail (401).
 */
function normalPublicUrl(url: string, setting = 'publicUrl'): string {
  const base = requestedBaseUrl(url);
  if (base === null || !base.startsWith('https://')) throw new Error(`configuration: ${setting} '${url}' is not an https://host[:port][/path] URL (no user, query or fragment)`);
  return base;
}

/** Two listeners on one port: the second would stop the start with EADDRINUSE, naming neither setting. */
function distinctPorts(config: DipConfig): DipConfig {
  // Not ports, but checked with them: an entry that is no address or range stops the start, named.
  addressList(config.portal.operatorAllowList, 'portal.operatorAllowList');
  knownHostNames('127.0.0.1', config.operators.allowedHosts, 'operators.allowedHosts');
  knownHostNames('127.0.0.1', config.allowedHosts, 'allowedHosts');
  const listeners: Array<[string, number, string]> = [
    ['port', config.port, config.host],
    ['adminPort', config.adminPort, '127.0.0.1'],
    ['portalPort', config.portalPort, config.host],
    ...(config.publications.anonymous.enabled ? ([['publications.anonymous.port', config.publications.anonymous.port, config.publications.anonymous.host]] as Array<[string, number, string]>) : []),
  ];
  // On one port, two addresses clash when they are the same or either is every address of the host.
  const wildcard = (h: string) => h === '0.0.0.0' || h === '::' || h === '';
  for (const [i, [name, p, host]] of listeners.entries()) {
    const other = listeners.slice(0, i).find(([, q, h]) => q === p && p !== 0 && (h === host || wildcard(h) || wildcard(host)));
    if (other) throw new Error(`configuration: ${name} and ${other[0]} are both ${p}: each listener needs a port of its own`);
  }
  return config;
}

/** Storage settings: defaults, file, environment, overrides; the connection strings also from DIP_POSTGRES_URL / DIP_NATS_SERVERS. */
function mergeStorage(...args: [Partial<StorageConfig> | undefined, Partial<StorageConfig>, Partial<StorageConfig> | undefined, NodeJS.ProcessEnv]): StorageConfig {
  const [file, fromEnv, overrides, env] = args;
  const layers = [DEFAULTS.storage, file ?? {}, fromEnv, overrides ?? {}];
  const merged = Object.assign({}, ...layers) as StorageConfig;
  merged.atRest = Object.assign({}, ...layers.map((l) => l.atRest ?? {})) as StorageConfig['atRest'];
  merged.postgres = Object.assign({}, ...layers.map((l) => l.postgres ?? {})) as StorageConfig['postgres'];
  merged.nats = Object.assign({}, ...layers.map((l) => l.nats ?? {})) as StorageConfig['nats'];
  if (env.DIP_POSTGRES_URL !== undefined && !overrides?.postgres?.url) merged.postgres.url = env.DIP_POSTGRES_URL;
  if (env.DIP_POSTGRES_MIGRATION_URL !== undefined && !overrides?.postgres?.migrationUrl) merged.postgres.migrationUrl = env.DIP_POSTGRES_MIGRATION_URL;
  if (env.DIP_NATS_SERVERS !== undefined && !overrides?.nats?.servers) merged.nats.servers = env.DIP_NATS_SERVERS.split(',').map((x) => x.trim()).filter(Boolean);
  if (env.DIP_NODE_NAME !== undefined && overrides?.nats?.nodeName === undefined) merged.nats.nodeName = parseNodeName(env.DIP_NODE_NAME);
  return merged;
}

/** Publication settings; the anonymous listener takes a free port, like the others, when `port` is 0 and it names none. */
function mergePublications(port: number, ...layers: Array<Partial<PublicationsConfig> | undefined>): PublicationsConfig {
  const freePort: Array<Partial<PublicationsConfig>> = port === 0 ? [{ anonymous: { ...DEFAULTS.publications.anonymous, port: 0 } }] : [];
  const all: Array<Partial<PublicationsConfig>> = [DEFAULTS.publications, ...freePort, ...layers.map((l) => l ?? {})];
  const anonymous = Object.assign({}, ...all.map((l) => l.anonymous ?? {})) as PublicationsConfig['anonymous'];
  anonymous.rateLimit = Object.assign({}, ...all.map((l) => l.anonymous?.rateLimit ?? {})) as PublicationsConfig['anonymous']['rateLimit'];
  // Without a trailing '/' whatever way it was written: the links are this plus '/publications/…'.
  anonymous.publicUrl = anonymous.publicUrl === null || anonymous.publicUrl === undefined ? null : normalPublicUrl(anonymous.publicUrl, 'publications.anonymous.publicUrl');
  return { ...(Object.assign({}, ...all) as PublicationsConfig), channels: Object.assign({}, ...all.map((l) => l.channels ?? {})) as PublicationsConfig['channels'], anonymous };
}

/** The register's settings; a scheduled pull sends no headers and applies changes (not a snapshot) unless told. */
function mergeRegister(...layers: Array<Partial<RegisterConfig> | undefined>): RegisterConfig {
  const merged = Object.assign({}, DEFAULTS.register, ...layers.map((l) => l ?? {})) as RegisterConfig;
  // The file may leave headers and snapshot out (the schema requires only url and intervalMinutes).
  const pull = merged.pull as (Partial<NonNullable<RegisterConfig['pull']>> & Pick<NonNullable<RegisterConfig['pull']>, 'url' | 'intervalMinutes'>) | null;
  return pull ? { ...merged, pull: { ...pull, headers: pull.headers ?? {}, snapshot: pull.snapshot ?? false } } : merged;
}

/** SMTP defaults: port 587 with STARTTLS required unless told otherwise. */
function alarmSettings(a: ObservabilityConfig['alarms']): ObservabilityConfig['alarms'] {
  const given: Partial<NonNullable<ObservabilityConfig['alarms']['smtp']>> | null = a.smtp;
  return given ? { ...a, smtp: { port: 587, secure: false, requireTLS: true, user: null, pass: null, host: '', from: '', ...given } } : a;
}

/** Each block of the observability settings merged on its own: a file setting one value keeps the other defaults. */
function mergeObservability(...layers: Array<Partial<ObservabilityConfig> | undefined>): ObservabilityConfig {
  const all = [DEFAULTS.observability, ...layers.map((l) => l ?? {})];
  return {
    activityLog: Object.assign({}, ...all.map((l) => l.activityLog ?? {})) as ObservabilityConfig['activityLog'],
    alarms: alarmSettings(Object.assign({}, ...all.map((l) => l.alarms ?? {})) as ObservabilityConfig['alarms']),
    tracing: Object.assign({}, ...all.map((l) => l.tracing ?? {})) as ObservabilityConfig['tracing'],
  };
}

function parseCount(name: string, v: string, min: number): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > 64) throw new Error(`${name} '${v}' is not a whole number from ${min} to 64`);
  return n;
}

/** Exactly `true` or `false`: anything else (`1`, `yes`, `TRUE`) is more likely a mistake than a choice. */
function parseBoolean(name: string, v: string): boolean {
  if (v === 'true' || v === 'false') return v === 'true';
  throw new Error(`${name} '${v}' is not true or false`);
}

function parseStorageKind(v: string): StorageConfig['kind'] {
  if (v === 'sqlite' || v === 'cluster') return v;
  throw new Error(`DIP_STORAGE '${v}' is not one of sqlite, cluster`);
}

/** DIP_NODE_NAME: as storage.nats.nodeName; empty: the host's name. */
function parseNodeName(v: string): string | null {
  const name = v.trim();
  if (name === '') return null;
  if (!NODE_NAME.test(name)) throw new Error(`DIP_NODE_NAME '${v}' is not a node name: 1 to 63 letters, digits, '.', '_' or '-'`);
  return name;
}

function parsePort(name: string, v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new Error(`${name} '${v}' is not a TCP port`);
  return n;
}

function parseEnvironment(v: string): DipConfig['environment'] {
  const found = ENVIRONMENTS.find((e) => e === v.toUpperCase());
  if (!found) throw new Error(`DIP_ENV '${v}' is not one of ${ENVIRONMENTS.join(', ')}`);
  return found;
}

/** The member and value caps of the JSON pre-scan (src/security/json-depth.ts) for this configuration. */
export function jsonCountsOf(config: Pick<DipConfig, 'http' | 'bodyLimitBytes'>): { maxObjectMembers: number; maxValues: number } {
  return { maxObjectMembers: config.http.maxJsonObjectMembers, maxValues: config.http.maxJsonValues ?? Math.floor(config.bodyLimitBytes / 2) };
}
