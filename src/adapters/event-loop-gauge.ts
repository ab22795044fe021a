import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import type { LoadGauge } from '../ports/load.js';

/**
 * The event loop's delay, measured by Node's own sampler (perf_hooks.monitorEventLoopDelay: a timer every
 * `resolutionMs` whose lateness is recorded in a histogram). Each window's 99th percentile is kept and the
 * histogram starts afresh, so the figure is recent: a burst a minute ago does not press today.
 */
export class EventLoopGauge implements LoadGauge {
  private readonly histogram: IntervalHistogram;
  private timer: NodeJS.Timeout | null = null;
  private lastP99 = 0;
  private lastMean = 0;
  private previousMean = 0;

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

  delayP99Ms(): number {
    // Also counts a window still open: a loop stuck since the last roll shows at once, not a window later.
    return Math.max(this.lastP99, this.p99());
  }

  /** The lower of the last two windows' means: a single stall (a GC, the machine busy elsewhere) does not count. */
  delayMeanMs(): number {
    return Math.min(this.lastMean, this.previousMean);
  }

  // The histogram records how late each sampling timer fired, in nanoseconds, beyond its resolution.
  private p99(): number {
    return this.histogram.count === 0 ? 0 : this.histogram.percentile(99) / 1e6;
  }

  private roll(): void {
    this.lastP99 = this.p99();
    this.previousMean = this.lastMean;
    this.lastMean = this.histogram.count === 0 ? 0 : this.histogram.mean / 1e6;
    this.histogram.reset();
  }
}
