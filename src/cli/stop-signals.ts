/**
 * A signal repeated this soon after the first is the same stop asked once, delivered twice: under
 * `npm start` a terminal's Ctrl-C reaches the DIP from the terminal and again from npm, which forwards
 * the SIGINT it got too (about a millisecond apart). A person pressing Ctrl-C again does so later.
 */
export const SAME_STOP_WITHIN_MS = 200;

/** The stop signals: the first stops gracefully, a second during the stop exits at once (128 + its number, as killed by it). */
const EXIT_AT_ONCE = { SIGINT: 130, SIGTERM: 143 } as const;

/**
 * `dip serve`'s SIGTERM and SIGINT (README "Operating the DIP", "Stopping"): the first stops the DIP
 * gracefully (the listeners drain, http.stopDrainMs, and what was started stops) and exits 0; a second,
 * of either kind, while that stop runs exits at once, without waiting for the drain (an operator pressing
 * Ctrl-C twice, a supervisor's second signal): what a crash would leave, from which recovery starts.
 */
export function stopOnSignals(
  proc: { on(signal: keyof typeof EXIT_AT_ONCE, listener: () => void): unknown },
  stop: () => Promise<void>,
  exit: (code: number) => void,
  now: () => number,
  say: (line: string) => void,
): void {
  let first: number | null = null;
  for (const signal of Object.keys(EXIT_AT_ONCE) as Array<keyof typeof EXIT_AT_ONCE>) {
    proc.on(signal, () => {
      const at = now();
      if (first === null) {
        first = at;
        say(`dip: ${signal}: stopping (clients have up to http.stopDrainMs to finish); ${signal === 'SIGINT' ? 'Ctrl-C' : 'the signal'} again stops at once`);
        void stop().then(
          () => exit(0),
          (err: unknown) => {
            say(`dip: the stop failed: ${(err as Error).message}`);
            exit(1);
          },
        );
        return;
      }
      if (at - first < SAME_STOP_WITHIN_MS) return;
      say(`dip: ${signal} again: stopping at once, without waiting for the clients`);
      exit(EXIT_AT_ONCE[signal]);
    });
  }
}
