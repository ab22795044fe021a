/* global process */
/**
 * Preloaded into a DIP node (NODE_OPTIONS=--import) by the fault tests: its wall clock runs
 * DIP_CLOCK_SKEW_MS ahead (negative: behind) of the machine's, as a node whose NTP has drifted.
 */
const skew = Number(process.env.DIP_CLOCK_SKEW_MS ?? 0);
const RealDate = Date;
class SkewedDate extends RealDate {
  constructor(...args) {
    if (args.length === 0) super(RealDate.now() + skew);
    else super(...args);
  }
  static now() {
    return RealDate.now() + skew;
  }
}
globalThis.Date = SkewedDate;
