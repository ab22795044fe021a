import type { Appointment, AppointmentChange } from '../domain/mpan-lookup.js';

/** The durable side of the MPAN address lookup (the pipeline caches over it). */
export interface MpanStore {
  /** Every slot's history for the MPAN, oldest first. */
  mpanHistory(mpan: string): Promise<Appointment[]>;
  /** Folds the changes, in order, into the histories they touch: durably, all or nothing. */
  applyAppointments(changes: AppointmentChange[]): Promise<void>;
  /**
   * The MPAN is stored as the at-rest sealer's keyed hash (ValueSealer.index: itself where nothing seals),
   * so once encryption at rest is on, rows written before in clear are rewritten: in batches of
   * `batchSize` MPANs, each its own transaction (an interrupted run resumes; a row already hashed is
   * skipped), then recorded as done so no later start scans again. Returns the rows rewritten.
   */
  indexStoredMpans(batchSize?: number): Promise<number>;
}
