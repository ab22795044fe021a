/** The slice of pino the pipeline logs through, so tests and tools can pass their own. */
export interface Logger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}
