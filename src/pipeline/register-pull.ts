import type { Cancel, Clock } from '../ports/clock.js';
import type { Logger } from '../ports/logger.js';
import type { OperatorJournal } from '../ports/operator-journal.js';
import { RegisterFetchError, type RegisterSource } from '../ports/register-source.js';
import { shownUrl } from '../domain/url-secrets.js';
import type { ApplyResult, ParticipantLifecycle } from './participant-lifecycle.js';

export interface PullSettings {
  url: string;
  /** The endpoint's credentials (e.g. Authorization): sent, never journalled nor logged. */
  headers: Readonly<Record<string, string>>;
  snapshot: boolean;
}

/**
 * Pulls the central register's feed from its HTTP endpoint and applies it (src/pipeline/participant-lifecycle.ts):
 * on the operator's demand (POST /admin/register/pull) and, when configured, every `intervalMinutes` on
 * the injected clock. Every run is journalled as `register.pull` (who, the endpoint, what it changed or
 * why it failed); the changes themselves are journalled by the lifecycle as `register:pull:<host>`.
 * A scheduled run that is still going when the next falls due lets that one pass.
 */
export class RegisterPull {
  private cancel: Cancel | null = null;
  private running: Promise<void> | null = null;

  constructor(
    private readonly deps: {
      source: RegisterSource;
      lifecycle: Pick<ParticipantLifecycle, 'apply'>;
      journal: OperatorJournal;
      clock: Clock;
      logger: Logger;
    },
  ) {}

  /**
   * One pull: RegisterFetchError when the feed could not be had (nothing applied), RefusedError when it is
   * refused (among others, when it would rescind someone and `offboardRefusal` says why the caller may not).
   */
  async pull(settings: PullSettings, actor: string, offboardRefusal: string | null = null): Promise<ApplyResult> {
    const host = URL.canParse(settings.url) ? new URL(settings.url).host : shownUrl(settings.url);
    const journal = (after: unknown) => this.deps.journal.append({ at: this.deps.clock.now(), actor, action: 'register.pull', target: host, before: null, after, status: null });
    try {
      const feed = await this.deps.source.fetch(settings.url, settings.headers);
      const result = await this.deps.lifecycle.apply(feed, `pull:${host}`, settings.snapshot, offboardRefusal);
      await journal({ url: shownUrl(settings.url), snapshot: settings.snapshot, participants: result.participants, changed: result.changed, rescinded: result.rescinded });
      return result;
    } catch (e) {
      await journal({ url: shownUrl(settings.url), snapshot: settings.snapshot, failed: (e as Error).message });
      throw e;
    }
  }

  /** Pulls every `intervalMinutes` from now on (the first pull one interval after the start). */
  start(settings: PullSettings, intervalMinutes: number): void {
    this.cancel = this.deps.clock.every(intervalMinutes * 60_000, () => {
      if (this.running) return;
      this.running = this.pull(settings, 'register:schedule')
        .then(
          (r) => this.deps.logger.info({ url: shownUrl(settings.url), changed: r.changed.length, rescinded: r.rescinded.length }, 'scheduled register pull applied'),
          (err: unknown) => this.deps.logger.error({ err: err instanceof RegisterFetchError ? err.message : err, url: shownUrl(settings.url) }, 'scheduled register pull failed; it runs again at the next interval'),
        )
        .finally(() => {
          this.running = null;
        });
    });
  }

  async stop(): Promise<void> {
    this.cancel?.();
    await this.running;
    await this.deps.source.close();
  }
}
