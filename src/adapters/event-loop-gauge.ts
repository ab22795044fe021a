import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import type { LoadGauge } from '../ports/load.js';

/**
 * The event loop's delay, measured by Node's own sampler (perf_hooks.monitorEventLoopDelay: a timer every
 * `resolutionMs` whose lateness, in nanoseconds beyond its resolution, is recorded in a histogram). Each
 * window's mean is kept and the histogram starts afresh, so the figure is recent: a burst a minute ago
 * does not press today.
 */
export class EventLoopGauge implements LoadGauge {
  private readonly histogram: IntervalHistogram;
  private timer: NodeJS.Timeout | null = null;
  private lastMean = 0;
  private previousMean = 0;
  private lastMax = 0;

  constructor(
    private readonly windowMs = 250,
    resolutionMs = 10,
  ) {
    this.histogram = monitorEventLoopDelay({ resolution: resolutionMs });
  }

  start(): void {
    if (this.timer) return;
    this.histogram.enable();
    this.timer = setInterval(() => this.roll(), this.windowMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.histogram.disable();
  }

  /** The lower of the last two windows' means: a single stall (a GC, the machine busy elsewhere) does not count. */
  delayMeanMs(): number {
    return Math.min(this.lastMean, this.previousMean);
  }

  /**
   * The longest the loop has been late in this window and the last, ms, a single stall included: how long
   * what is read now (a message buffered while the loop was blocked) may have waited here. The window
   * under way counts as it stands, so a stall just ended counts before the window's timer has run.
   */
  recentWorstMs(): number {
    return Math.max(this.lastMax, this.histogram.count > 0 ? this.histogram.max / 1e6 : 0);
  }

  private roll(): void {
    // A window without a sample says nothing: the loop was blocked past the window, and this timer ran
    // before the sampler's. Reading it as 0 would call the most overloaded loop idle.
    if (this.histogram.count === 0) return;
    this.previousMean = this.lastMean;
    this.lastMean = this.histogram.mean / 1e6;
    this.lastMax = this.histogram.max / 1e6;
    this.histogram.reset();
  }
}
