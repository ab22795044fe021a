import type { Appointment, AppointmentChange } from '../domain/mpan-lookup.js';

/** The durable side of the MPAN address lookup (the pipeline caches over it). */
export interface MpanStore {
  /** Every slot's history for the MPAN, oldest first. */
  mpanHistory(mpan: string): Promise<Appointment[]>;
  /** Folds the changes, in order, into the histories they touch: durably, all or nothing. */
  applyAppointments(changes: AppointmentChange[]): Promise<void>;
}
