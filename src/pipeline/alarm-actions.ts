import type { AlarmCondition, AlarmRule } from '../ports/alarms.js';

type ConditionRule = Exclude<AlarmRule, 'maintenance'>;

/**
 * What to do about an alarm, for whoever is told of it (spec 5.11.4: an alarm says an investigation is
 * due; the one on call should not have to look up where to start). An operator can act on every queue and
 * the DIP itself; a participant only on its own side, so it is told what is in its own hands.
 */
const OPERATOR: Readonly<Record<ConditionRule, string>> = {
  'dead-letter':
    'dip dead-letters list (GET /admin/dead-letters) gives each one its reason; fix the cause (the recipient\'s webhook, its roles on the channel, the channel\'s state), then dip dead-letters requeue delivers them again, or dip dead-letters discard those that must not be. Resolves when none is left dead.',
  'queue-depth':
    'the recipient is not keeping up or not reached: its calls and their errors are in GET /admin/attempts?recipient=…&channel=…, the queue in GET /admin/queues, a paused channel in dip channel show. Resolves once the queue is back under the threshold.',
  'queue-age':
    'find why its oldest message waits: failing webhook calls (GET /admin/attempts?recipient=…&channel=…), the channel paused (dip channel show), a pull recipient that does not pull. Resolves once the old messages have left the queue, delivered or dead-lettered.',
  'delivery-latency':
    'messages reached the recipient later than the threshold after acceptance (spec 5.10.3: within 30 s): the queue\'s calls, their times and errors are in GET /admin/attempts?recipient=…&channel=… (retries and a slow endpoint), a queue catching up in GET /admin/queues, the DIP\'s own load in /metrics (dip_ingest_latency_seconds, dip_delivery_latency_seconds). Resolves once observability.alarms.deliveryLatencyWindowMinutes (15) pass without a late delivery.',
  'webhook-failing':
    'the recipient\'s endpoint gives no answer or 408, 429 or 5xx (each call\'s error: GET /admin/attempts?recipient=…&channel=…): tell the participant. The DIP keeps retrying; resolves at the first answered call or a new webhook URL.',
  'certificate-expiring':
    'issue the new one before it expires: a participant\'s with dip participant rotate-cert (or its own POST /participants/{id}/certificate), the DIP\'s signing certificate with dip pki rotate-signing; dip pki expiring lists them all.',
  'copies-withheld':
    'the participant\'s registered certificate is revoked or has expired, so nothing is encrypted to it (security pattern 2) and its copies wait in their queues, in order: have it register a new certificate (dip participant rotate-cert, or its own POST /participants/{id}/certificate), after which they are delivered. Copies older than the channel\'s staleness limit are dead-lettered and their senders told. Resolves once its queues go on.',
  'queue-damage':
    'repair the entry named (its message is missing from the store: restore it, or settle the entry), then POST /admin/queues/resume with the queue the alarm names, {"recipientDipId":"…","channel":"…"}, on the node whose GET /admin/queues shows it. Resolves once a reading finds no damage.',
  'queue-halted':
    'repair the storage error named, then POST /admin/queues/resume with the queue the alarm names, {"recipientDipId":"…","channel":"…"}, on the node whose GET /admin/queues shows it halted. Resolves once the queue goes on.',
  storage:
    'the store fails its probe, so ingest answers 503 and delivery waits: GET /admin/health says why (disk full, storage.maxDatabaseMb reached, database unreachable or read-only); free space or bring the database back. Resolves by itself once the store\'s probe (a write the size of a large batch, every 2 s) succeeds.',
  coordination:
    'no queue can be claimed, so nothing is delivered from this node: check the NATS servers (storage.nats.servers) and this node\'s network to them (docs/cluster.md). Delivery resumes by itself once NATS answers.',
  'clock-skew':
    "set the clocks right: check time synchronisation (NTP: chronyc tracking or timedatectl) on the node named and on this one; GET /admin/health's coordination.peerClock on each node says how far, and dip_cluster_clock_offset_seconds since when. Beyond the lease allowance a dead node's queues wait longer to be taken over; beyond five lease lengths (30 s) the node behind works no queue while it hears the node ahead, so one node delivers for both (docs/cluster.md). Resolves once every peer is within the allowance.",
  'dip-clock':
    "this node's own clock is most likely wrong, not the participants' (the summary says which way and about how far): check its time synchronisation (chronyc tracking and chronyc sources, or timedatectl timesync-status / ntpq -p: is it synchronised, to which servers, how far off) and correct it (chronyc makestep once the sources are right). Meanwhile participants' signed requests are refused 401 for their X-DIP-Signature-Date (clock-skew) and their senders blamed: tell them it is the DIP's. GET /admin/health's clockCheck shows the last refusals each way. Resolves once their signatures verify again (or 10 min after the last refusal).",
  'node-lost':
    "find out why the node named stopped (killed, out of memory, its machine or network down: its supervisor's and the machine's logs) and start it again; the other nodes took its queues over a lease length after its last renewal, so nothing waits, but the cluster has one node less. Resolves once a node of that name says its roll call again, or, if it was removed for good (scaled down, replaced), once an operator says so: POST /admin/cluster/nodes/{node}/removed (docs/cluster.md, A node lost).",
  'activity-log':
    'audit records wait in this process\'s memory (lost if it crashes now; once observability.activityLog.maxWaiting, 200,000, wait, new requests are refused 503 and counted in dip_activity_log_refused_total): free space for the activity log (SQLite: activity.db in the data directory) or bring its database back (GET /admin/health, activityLog). Resolves by itself once the waiting records are written.',
  'mpan-holder-unreached':
    'register the participant / give it the role, or correct the MPAN lookup feed: the summary names each holder with its slot and code (MSG1033: not a registered participant, so register it, dip participant add; MSG1034: it lacks the role receiving the channel in that slot, so give it the role through the register feed; or the lookup names the wrong participant, so correct the feed, dip mpan load, and check GET /admin/mpan/{mpan}). Messages already accepted are not sent to it afterwards: they can be replayed to it once it receives. Resolves once no accepted message has left a holder out for observability.alarms.mpanUnreachedMinutes (60).',
  'crl-stale':
    "fetch the CA's current CRL into the file named (crlFiles): the fetch job has most likely stopped. Past the CRL's nextUpdate every certificate that CA issued is refused at the TLS handshake (fail-closed, SECURITY.md); a running DIP installs the new file within revocationPollMs. Resolves once the CRL in force is within three quarters of its validity.",
  'connections-exhausted':
    'new connections to the listener named are closed unanswered (participants, and /health probes on it, cannot connect; those already connected go on). The log line "refuses new connections" says why: the overall cap http.maxConnections reached (dip_participant_connections and dip_connections_refused_total show whether one participant holds many; its own cap is http.maxConnectionsPerClient), or the process out of file descriptors (EMFILE: raise LimitNOFILE / ulimit -n, and lower http.maxConnections, whose default follows it), or connections that never finished their TLS handshake closed for new ones (dip_handshakes_refused_total{reason="displaced"}: a flood of sockets without a certificate, from as many addresses as http.maxConnectionsPerAddress lets through; block them upstream). Find who holds the connections (ss -tn state established \'( sport = :PORT )\'), then raise the limit or have them reuse their connections. Resolves 5 min after the last refused connection.',
  'delivery-process':
    'the log lines "a delivery process died" or "stopped reporting" (field process) and the process\'s own say why it ended; fix that. Resolves once it has run 10 minutes since its last start.',
};

const PARTICIPANT: Readonly<Partial<Record<ConditionRule, string>>> = {
  'dead-letter':
    'the DIP gave up delivering them (GET /observability/reports/journey/{transactionId} says why for each): fix your webhook or endpoint, then ask for them again with a replay (dip replay --requeue), or ask the DIP operator to requeue them.',
  'queue-depth': 'messages wait for you: make sure your webhook answers 2xx, or that you pull; they are delivered in order once you do.',
  'queue-age': 'messages wait for you: make sure your webhook answers 2xx, or that you pull; they are delivered in order once you do.',
  'delivery-latency': 'messages reached your webhook late: make sure it answers 2xx quickly (a retried or slow call delays every message behind it in the queue); the DIP operator is told too.',
  'webhook-failing':
    'your webhook gives no answer or 408, 429 or 5xx: fix it, or set another URL (POST /dip-channel/{channel}/pubconfig/{dipId}); the DIP keeps retrying and the alarm resolves at the first answered call.',
  'certificate-expiring':
    'get a new certificate before it expires: POST /participants/{id}/certificate with a CSR (or the user portal); the old one still signs until the overlap ends.',
  'copies-withheld':
    'your registered certificate is revoked or has expired, so the DIP encrypts nothing to it and messages for you wait: register a new certificate. If it expired, POST /participants/{id}/certificate with a CSR still works; if it was revoked, your old certificate no longer connects, so send the CSR from the user portal (Certificates) or ask the DIP operator (dip participant rotate-cert). They are then delivered, encrypted to the new one. Those older than the channel\'s staleness limit are dead-lettered.',
};

export type AlarmSeverity = 'critical' | 'warning';

/**
 * How urgent an alarm is, for ordering and colouring it: critical when messages are not delivered (or
 * given up on) until someone acts (a dead letter, a halted or damaged queue, storage that takes no
 * writes, no coordination, a delivery process that keeps dying); warning when delivery goes on but is
 * late or soon at risk (a deep or old queue, a failing webhook the DIP keeps retrying, a certificate
 * close to expiry).
 */
const SEVERITY: Readonly<Record<ConditionRule, AlarmSeverity>> = {
  'dead-letter': 'critical',
  'queue-damage': 'critical',
  'queue-halted': 'critical',
  'copies-withheld': 'critical',
  storage: 'critical',
  coordination: 'critical',
  'delivery-process': 'critical',
  'crl-stale': 'critical',
  'connections-exhausted': 'critical',
  'activity-log': 'warning',
  'clock-skew': 'warning',
  'dip-clock': 'critical',
  'node-lost': 'critical',
  'mpan-holder-unreached': 'warning',
  'queue-depth': 'warning',
  'queue-age': 'warning',
  'delivery-latency': 'warning',
  'webhook-failing': 'warning',
  'certificate-expiring': 'warning',
};

/** What the alarm functions read of a condition: its rule, and its key where one rule names two conditions. */
type Judged = Pick<AlarmCondition, 'rule'> & Partial<Pick<AlarmCondition, 'key'>>;

/**
 * The `storage` rule's low-free-space condition (key `storage-disk`, `storage-disk:<node>`): the store still
 * takes writes (ingest answers 201) while the data volume fills, so it is a warning with its own advice,
 * unlike the store failing its probe (ingest 503), which the rule's own text is about.
 */
const isLowDiskSpace = (c: Judged): boolean => c.rule === 'storage' && c.key !== undefined && /^storage-disk(?::|$)/.test(c.key);

const LOW_DISK_SPACE = {
  operator:
    'messages are still accepted (201) and delivered, but once the data volume is full the store refuses writes and ingest answers 503: free space on it (the summary names what fills it), or grow it; GET /admin/health shows the free space. Resolves once free space is back above storage.minFreeDiskMb.',
};

export function alarmSeverity(c: Judged): AlarmSeverity {
  if (isLowDiskSpace(c)) return 'warning';
  return c.rule === 'maintenance' ? 'warning' : SEVERITY[c.rule];
}

/** What `owner` (`operator` or a DIP ID) is to do about `c`; the operator's text for a rule a participant cannot act on. */
export function alarmAction(c: Judged, owner: string): string {
  if (c.rule === 'maintenance') return '';
  if (isLowDiskSpace(c)) return LOW_DISK_SPACE.operator;
  return (owner === 'operator' ? undefined : PARTICIPANT[c.rule]) ?? OPERATOR[c.rule];
}

/** An alarm as the routes and portals show it: with what to do. */
export const withAction = (c: AlarmCondition, owner: string): AlarmCondition & { action: string } => ({ ...c, action: alarmAction(c, owner) });
