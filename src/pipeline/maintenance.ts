import { checkMaintenance, concerns, inForceOrAhead, publicNotice, publicWindows, scopeText, withdrawnWindows, type MaintenanceInput, type MaintenanceNotice } from '../domain/maintenance.js';
import { utcAndUk } from '../domain/uk-time.js';
import type { AlarmChannel, AlarmSubscription, MaintenanceEvent } from '../ports/alarms.js';
import type { Cancel, Clock } from '../ports/clock.js';
import type { Logger } from '../ports/logger.js';
import type { MaintenanceMessage, MaintenanceNotices, MaintenanceOutbox, MaintenanceSend } from '../ports/maintenance.js';
import type { OperatorJournal } from '../ports/operator-journal.js';
import { RecordConflictError } from '../ports/registry.js';
import { RefusedError } from './refused.js';

/** An amendment: each field given replaces the one in force (`channels: null` or `[]`: the whole DIP). */
export interface MaintenanceChange extends Partial<MaintenanceInput> {
  /** The version the change was made against; refused with 409 when another change came first. */
  expectedVersion?: number;
}

/** Where participants hear of notices: the subscriptions that name `maintenance`, and how to reach them. */
export interface MaintenanceAnnouncements {
  subscriptions(): Promise<AlarmSubscription[]>;
  channel: Pick<AlarmChannel, 'email' | 'webhook'>;
}

export interface MaintenanceDeps {
  store: MaintenanceNotices;
  /** The announcements not yet sent, shared by every node: recorded with the act, sent by whichever node claims each. */
  outbox: MaintenanceOutbox;
  journal: OperatorJournal;
  clock: Clock;
  logger: Logger;
  knownChannel(id: string): boolean;
  /** The channels a participant sends or receives on now (a channel-scoped notice is sent only to their users). */
  channelsOf(dipId: string): ReadonlySet<string>;
  /** Absent when alarms (and so their subscriptions) are turned off: notices are then only on the API. */
  announce?: MaintenanceAnnouncements;
  /** Participants' administrators' addresses (ParticipantProfile.maintenanceEmail): told of every notice that concerns them, subscribed or not. */
  contacts?(): Array<{ dipId: string; email: string }>;
}

/** A notice as an act left it, and how many addresses (e-mail and webhook) its announcement, sent in the background, goes to. */
export type Announced = MaintenanceNotice & { announcedTo: number };

const iso = (ms: number): string => new Date(ms).toISOString();
/** Sends of one announcement under way at once. */
const ANNOUNCE_CONCURRENCY = 8;
/** How often every node looks for sends left over (a node that stopped or died part-way through an announcement). */
export const MAINTENANCE_SENDS_EVERY_MS = 60_000;
/**
 * How long a claimed send is its claimer's: past it, another node sends it (its claimer died sending). Well over
 * a send's own deadlines (a webhook's 10 s, an SMTP relay's), so a slow send is not made twice.
 */
export const MAINTENANCE_SEND_LEASE_MS = 10 * 60_000;
/** The sends one look at the outbox takes. */
const SENDS_PER_READ = 100;

/**
 * Maintenance notices (spec 5.13.5): the operator publishes, amends and withdraws them; each act is a new
 * version of the notice, journalled with who made it and the notice before and after, then announced by
 * e-mail and webhook to the subscriptions that asked for maintenance notices, and by e-mail to every
 * participant's administrators unless they opted out (spec 5.13.5 "communicated to users via email"); a
 * participant's only when the notice concerns a channel it uses, or the whole DIP; one e-mail per address.
 * The act records its sends in the shared store (MaintenanceOutbox) and the node that took it starts them;
 * each is claimed by one conditional write before it is sent, so a cluster tells everyone once, and one
 * node stopping or dying part-way through leaves the rest to any node's next look (start(): every
 * MAINTENANCE_SENDS_EVERY_MS, and at once), a send it had claimed after its lease.
 */
export class Maintenance {
  constructor(private readonly deps: MaintenanceDeps) {}

  /** Every notice (past and withdrawn too), newest publication first: the operator's view. */
  async all(): Promise<MaintenanceNotice[]> {
    return (await this.deps.store.list()).reverse();
  }

  /** Published notices not yet over, soonest first: what participants are shown. */
  /** Whether a channel ID (any case) is one of this DIP's: a filter naming another is refused, not answered empty. */
  knowsChannel(id: string): boolean {
    return this.deps.knownChannel(id.toUpperCase());
  }

  async current(): Promise<MaintenanceNotice[]> {
    const now = this.deps.clock.now();
    return (await this.deps.store.list()).filter((n) => inForceOrAhead(n, now)).sort((a, b) => a.start - b.start || a.id.localeCompare(b.id));
  }

  /** What the public maintenance page lists: published windows not over or ended in the last day, soonest first. */
  async publicWindows(): Promise<MaintenanceNotice[]> {
    return publicWindows(await this.deps.store.list(), this.deps.clock.now());
  }

  /** What the public calendar feed carries as cancelled: windows withdrawn, not over or ended in the last day. */
  async withdrawnWindows(): Promise<MaintenanceNotice[]> {
    return withdrawnWindows(await this.deps.store.list(), this.deps.clock.now());
  }

  async history(id: string): Promise<MaintenanceNotice[]> {
    const versions = await this.deps.store.history(id);
    if (versions.length === 0) throw new RefusedError(404, `no maintenance notice ${id}`);
    return versions;
  }

  async publish(input: MaintenanceInput, actor: string): Promise<Announced> {
    const now = this.deps.clock.now();
    const checked = checkMaintenance(input, now, (c) => this.deps.knownChannel(c));
    if (!checked.ok) throw new RefusedError(400, checked.errors.join('; '));
    // IDs count up; two nodes publishing at once collide on the ID and the later one takes the next.
    for (let attempt = 0; ; attempt += 1) {
      const id = `MN-${(await this.deps.store.list()).length + 1}`;
      const notice: MaintenanceNotice = { id, version: 1, ...checked.value, state: 'published', publishedAt: now, publishedBy: actor, changedAt: now, changedBy: actor };
      try {
        await this.deps.store.put(notice);
        return await this.done('maintenance.publish', null, notice);
      } catch (e) {
        if (!(e instanceof RecordConflictError) || attempt >= 5) throw e;
      }
    }
  }

  async amend(id: string, change: MaintenanceChange, actor: string): Promise<Announced> {
    const before = await this.latest(id, change.expectedVersion);
    if (before.state === 'withdrawn') throw new RefusedError(409, `${id} was withdrawn: publish a new notice`);
    const now = this.deps.clock.now();
    const given: MaintenanceInput = {
      start: change.start ?? iso(before.start),
      end: change.end ?? iso(before.end),
      text: change.text ?? before.text,
      channels: change.channels !== undefined ? change.channels : before.scope.kind === 'dip' ? null : before.scope.channels,
    };
    const checked = checkMaintenance(given, now, (c) => this.deps.knownChannel(c));
    if (!checked.ok) throw new RefusedError(400, checked.errors.join('; '));
    return this.write('maintenance.amend', before, { ...before, ...checked.value, version: before.version + 1, changedAt: now, changedBy: actor });
  }

  async withdraw(id: string, actor: string, expectedVersion?: number): Promise<Announced> {
    const before = await this.latest(id, expectedVersion);
    if (before.state === 'withdrawn') throw new RefusedError(409, `${id} is already withdrawn`);
    return this.write('maintenance.withdraw', before, { ...before, state: 'withdrawn', version: before.version + 1, changedAt: this.deps.clock.now(), changedBy: actor });
  }

  private async latest(id: string, expectedVersion: number | undefined): Promise<MaintenanceNotice> {
    const versions = await this.history(id);
    const latest = versions[versions.length - 1]!;
    if (expectedVersion !== undefined && expectedVersion !== latest.version) {
      throw new RefusedError(409, `${id} is at version ${latest.version}, not ${expectedVersion}: read it again and decide`);
    }
    return latest;
  }

  private async write(action: string, before: MaintenanceNotice, after: MaintenanceNotice): Promise<Announced> {
    try {
      await this.deps.store.put(after);
    } catch (e) {
      if (e instanceof RecordConflictError) throw new RefusedError(409, e.message);
      throw e;
    }
    return this.done(action, before, after);
  }

  private async done(action: string, before: MaintenanceNotice | null, after: MaintenanceNotice): Promise<Announced> {
    await this.deps.journal.append({ at: after.changedAt, actor: after.changedBy, action, target: after.id, before, after, status: null });
    // Recorded with the act, sent in the background: hundreds of e-mails sent inside the operator's request
    // took minutes, and a client retrying a slow publish published twice. Sent only from the store, so that
    // a node that dies part-way through leaves the rest to another. A failed send is logged, never undoes the act.
    const sends = await this.recipients(action === 'maintenance.publish' ? 'published' : action === 'maintenance.amend' ? 'amended' : 'withdrawn', after, before);
    await this.deps.outbox.add(sends);
    if (sends.length > 0) void this.sendDue();
    return { ...after, announcedTo: sends.length };
  }

  private cancel: Cancel | null = null;
  private running: Promise<void> | null = null;
  /** Sends were recorded while a pass ran: it looks again before it ends. */
  private again = false;

  /** Looks for sends left over now and every MAINTENANCE_SENDS_EVERY_MS (any node: a claim decides who sends). */
  start(): void {
    this.cancel = this.deps.clock.every(MAINTENANCE_SENDS_EVERY_MS, () => void this.sendDue());
    void this.sendDue();
  }

  /** Waits for the sends under way (a graceful stop: every address already claimed is still told; the rest stay recorded). */
  async stop(): Promise<void> {
    this.cancel?.();
    this.cancel = null;
    while (this.running) await this.running;
  }

  /** Sends what is due, until nothing is; overlapping calls share the pass (and make it look once more). */
  sendDue(): Promise<void> {
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = (async () => {
      do {
        this.again = false;
        await this.pass().catch((err: unknown) => this.deps.logger.error({ err }, 'maintenance notices: a look for the sends due failed; the next runs at its interval'));
      } while (this.again);
    })().finally(() => {
      this.running = null;
    });
    return this.running;
  }

  /** At most ANNOUNCE_CONCURRENCY sends at once: fast for hundreds of addresses, gentle on the SMTP relay. */
  private async pass(): Promise<void> {
    const a = this.deps.announce;
    // Alarms turned off since the act: its sends wait, recorded, for a node that has a channel.
    if (!a) return;
    for (;;) {
      const due = await this.deps.outbox.due(this.deps.clock.now(), SENDS_PER_READ);
      if (due.length === 0) return;
      let next = 0;
      const worker = async (): Promise<void> => {
        while (next < due.length) await this.sendOne(a, due[next++]!);
      };
      await Promise.all(Array.from({ length: Math.min(ANNOUNCE_CONCURRENCY, due.length) }, worker));
    }
  }

  /** Claimed first (another node may have it), then sent, then removed: failed, it is logged and not tried again. */
  private async sendOne(a: MaintenanceAnnouncements, send: MaintenanceSend): Promise<void> {
    if (!(await this.deps.outbox.claim(send.id, send.dueAt, this.deps.clock.now() + MAINTENANCE_SEND_LEASE_MS))) return;
    try {
      if (send.kind === 'email') await a.channel.email(send.to, send.subject, send.text);
      else await a.channel.webhook(send.url, send.event);
    } catch (err) {
      this.deps.logger.error({ err, ...send.who, notice: send.noticeId }, send.who.participant ? "a maintenance notice could not be sent to a participant's administrators" : 'a maintenance notice could not be sent');
    }
    await this.deps.outbox.done(send.id);
  }

  /** One send per e-mail address (case-insensitively) and per webhook. */
  private async recipients(kind: MaintenanceEvent['kind'], notice: MaintenanceNotice, before: MaintenanceNotice | null): Promise<MaintenanceSend[]> {
    const a = this.deps.announce;
    if (!a) return [];
    const event: MaintenanceEvent = { type: 'maintenance', kind, notice: publicNotice(notice), at: notice.changedAt };
    const subject = `[DIP maintenance ${kind.toUpperCase()}] ${iso(notice.start)} to ${iso(notice.end)}: ${scopeText(notice.scope)}`;
    const lines = [
      `Maintenance notice ${notice.id} ${kind} (version ${notice.version}).`,
      `window: ${utcAndUk(notice.start)} to ${utcAndUk(notice.end)}`,
      `scope: ${scopeText(notice.scope)}`,
      ...(before && kind === 'amended' && (before.start !== notice.start || before.end !== notice.end) ? [`was: ${utcAndUk(before.start)} to ${utcAndUk(before.end)}`] : []),
      ...(kind === 'withdrawn' ? ['This maintenance will not take place as announced.'] : []),
      '',
      notice.text,
    ];
    const text = `${lines.join('\n')}\n`;
    const sends: MaintenanceSend[] = [];
    const send = (who: Record<string, string>, what: MaintenanceMessage): void => {
      sends.push({ id: `${notice.id}@${notice.version}#${sends.length + 1}`, noticeId: notice.id, dueAt: notice.changedAt, who, ...what });
    };
    const mailed = new Set<string>();
    const email = (to: string, who: Record<string, string>): void => {
      if (mailed.has(to.toLowerCase())) return;
      mailed.add(to.toLowerCase());
      send(who, { kind: 'email', to, subject, text });
    };
    for (const s of await a.subscriptions()) {
      if (!s.rules.includes('maintenance')) continue;
      if (s.owner !== 'operator' && !concerns(notice, this.deps.channelsOf(s.owner))) continue;
      if (s.email) email(s.email, { subscription: s.id });
      if (s.webhookUrl) send({ subscription: s.id }, { kind: 'webhook', url: s.webhookUrl, event });
    }
    for (const c of this.deps.contacts?.() ?? []) {
      if (!concerns(notice, this.deps.channelsOf(c.dipId))) continue;
      email(c.email, { participant: c.dipId });
    }
    return sends;
  }
}
