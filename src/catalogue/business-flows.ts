/**
 * High-level business flows (spec 5.9): the order in which interfaces follow one another in each
 * business process, so a participant (and the DIP's audit reports) can place a message in its workflow.
 * OpenDIP's reading of the published interface catalogue's names and the workflow starters of spec 5.5.5
 * (src/pipeline/channels.ts), not a published list: the programme's process documents are the authority.
 */
export interface BusinessFlow {
  id: string;
  name: string;
  description: string;
  /** In the order the process runs them. */
  steps: Array<{ interfaceId: string; what: string }>;
  /**
   * Flows the business-process report (src/pipeline/reports.ts) tracks as processes, and how their messages
   * are linked (spec 5.11.3, "tracking linkage"): `correlation`, those sharing one correlation ID (spec
   * 5.5.5, figure 15); `mpan`, those about one MPAN, an instance from a message on the first step to the
   * next such message. One is complete once a message on one of `ends` (`IF-036`, or
   * `IF-035:DSAppRejected` for one event code) has been seen.
   */
  tracked?: { linkage: 'correlation' | 'mpan'; ends: string[] };
}

export const BUSINESS_FLOWS: readonly BusinessFlow[] = [
  {
    id: 'change-of-supplier',
    name: 'Change of supplier',
    description:
      "Registration tells the parties of a new registration or a change of supplier, updates the gaining supplier, and notifies the appointment of the gaining supplier's data service (figure 15, acquisition). Registration carries one correlation ID of its own through the three.",
    steps: [
      { interfaceId: 'IF-001', what: 'Registration notifies the suppliers, metering and data services and the LDSO' },
      { interfaceId: 'IF-002', what: 'Registration sends the gaining supplier the MPAN information' },
      { interfaceId: 'IF-036', what: "Registration notifies the appointment of the gaining supplier's data service" },
    ],
    tracked: { linkage: 'correlation', ends: ['IF-036'] },
  },
  {
    id: 'service-appointment',
    name: 'Service provider appointment',
    description: 'A supplier appoints a metering or data service; registration confirms it and tells the parties; a later de-appointment ends it.',
    steps: [
      { interfaceId: 'IF-031', what: 'The supplier asks the service provider to accept an appointment (starts the workflow)' },
      { interfaceId: 'IF-032', what: 'The service provider accepts or rejects' },
      { interfaceId: 'IF-033', what: 'Registration asks the service provider to take the appointment' },
      { interfaceId: 'IF-034', what: 'The service provider answers registration' },
      { interfaceId: 'IF-035', what: 'Registration notifies the status of the appointment' },
      { interfaceId: 'IF-036', what: 'Registration notifies the appointment and its supporting information' },
      { interfaceId: 'IF-037', what: 'Registration notifies the de-appointment of the previous service' },
    ],
    // Refused by the service provider (IF-035 rejected), or appointed (IF-036) and the previous one de-appointed (IF-037).
    tracked: { linkage: 'correlation', ends: ['IF-035:DSAppRejected', 'IF-036', 'IF-037'] },
  },
  // The spec's table of linked processes (5.11.3) links these by MPAN. OpenDIP's reading of it and of the
  // interface catalogue: a loss confirmed (IF-001), the de-appointment (IF-037), an optional final reading
  // (IF-041); and after an appointment (IF-036) data collection and processing (BP04, BP05): an optional
  // first reading, the half-hourly submissions (IF-021) and the market-wide data service's defaults (IF-013)
  // or rejections (IF-014) of them. The programme's process documents are the authority.
  {
    id: 'de-acquisition',
    name: 'De-acquisition',
    description: 'The supplier loses an MPAN: registration confirms the loss, de-appoints its services, and a final reading may follow. Linked by MPAN.',
    steps: [
      { interfaceId: 'IF-001', what: 'Registration notifies the change of supplier (the loss confirmed)' },
      { interfaceId: 'IF-037', what: 'Registration notifies the de-appointment of the service' },
      { interfaceId: 'IF-041', what: 'The final reading (optional)' },
    ],
    tracked: { linkage: 'mpan', ends: ['IF-037'] },
  },
  {
    id: 'data-collection',
    name: 'Data collection and processing',
    description:
      "After a service's appointment, the data service collects and submits the MPAN's half-hourly consumption; the market-wide data service may default or reject it (BP04, BP05). Linked by MPAN.",
    steps: [
      { interfaceId: 'IF-036', what: 'Registration notifies the appointment (starts collection)' },
      { interfaceId: 'IF-041', what: 'The first reading (optional)' },
      { interfaceId: 'IF-021', what: 'The data service submits UTC settlement period consumption' },
      { interfaceId: 'IF-013', what: 'The market-wide data service defaulted the consumption (a failed submission)' },
      { interfaceId: 'IF-014', what: 'The market-wide data service rejected the consumption' },
    ],
    // The first half-hourly submission; defaults and rejections after it show among its stages.
    tracked: { linkage: 'mpan', ends: ['IF-021'] },
  },
  {
    id: 'meter-technical-details',
    name: 'Meter technical details',
    description: 'The metering service records a meter installation, removal, exchange or update; registration passes it on.',
    steps: [
      { interfaceId: 'IF-005', what: 'The metering service sends the MTD update to registration' },
      { interfaceId: 'IF-006', what: 'Registration notifies the other parties of the MTD update' },
    ],
  },
  {
    id: 'energisation',
    name: 'Change of energisation status',
    description: 'The outcome of an energisation or de-energisation reaches registration, which tells the parties.',
    steps: [
      { interfaceId: 'IF-007', what: 'The metering service reports the energisation status outcome' },
      { interfaceId: 'IF-008', what: 'Registration notifies the change of energisation status' },
    ],
  },
  {
    id: 'mpan-relationships',
    name: 'MPAN relationships',
    description: 'A supplier maintains the relationships between MPANs (e.g. import and export) and gets the answer.',
    steps: [
      { interfaceId: 'IF-019', what: 'The supplier asks to maintain an MPAN relationship (starts the workflow)' },
      { interfaceId: 'IF-020', what: 'Registration answers' },
    ],
  },
  {
    id: 'supplier-data',
    name: 'Supplier updates to registration',
    description: 'A supplier changes registration data items; registration tells the other parties.',
    steps: [
      { interfaceId: 'IF-025', what: 'The supplier sends the update (starts the workflow)' },
      { interfaceId: 'IF-026', what: 'Registration notifies the change of supplier data' },
    ],
  },
  {
    id: 'consumption-amendment',
    name: 'Consumption amendment',
    description: 'A supplier asks the data service to amend consumption, and gets the answer.',
    steps: [
      { interfaceId: 'IF-027', what: 'The supplier requests the amendment (starts the workflow)' },
      { interfaceId: 'IF-028', what: 'The data service answers' },
    ],
  },
  {
    id: 'settlement-consumption',
    name: 'Settlement consumption',
    description: 'Half-hourly consumption for settlement, what defaults or refusals it meets, and load-shaping data.',
    steps: [
      { interfaceId: 'IF-021', what: 'The data service sends UTC settlement period consumption' },
      { interfaceId: 'IF-013', what: 'Defaults applied by the market-wide data service' },
      { interfaceId: 'IF-014', what: 'Consumption data refused by the market-wide data service' },
      { interfaceId: 'IF-022', what: 'Load shaping service period data' },
      { interfaceId: 'IF-023', what: 'Load shaping service totals' },
    ],
  },
  {
    id: 'historic-consumption',
    name: 'Historic consumption replay (advanced sites)',
    description: 'A party asks for the half-hourly consumption history of an advanced site.',
    steps: [
      { interfaceId: 'IF-015', what: 'Request for the historic consumption (starts the workflow)' },
      { interfaceId: 'IF-016', what: 'The consumption history' },
    ],
  },
  {
    id: 'customer-direct-contract',
    name: 'Customer direct contract',
    description: 'A customer contracts directly with a service; the supplier is told and answers.',
    steps: [
      { interfaceId: 'IF-038', what: 'Advisory of the customer direct contract (starts the workflow)' },
      { interfaceId: 'IF-039', what: 'The answer to the advisory' },
    ],
  },
  {
    id: 'mdr',
    name: 'Market-wide data requests (MDR)',
    description: 'A party starts and stops a data request for an MPAN and receives the consumption and readings it asked for.',
    steps: [
      { interfaceId: 'IF-061', what: 'Start request' },
      { interfaceId: 'IF-062', what: 'Answer to the start request' },
      { interfaceId: 'IF-064', what: 'Consumption provided' },
      { interfaceId: 'IF-065', what: 'Meter reading requested or provided' },
      { interfaceId: 'IF-063', what: 'Stop request' },
    ],
  },
  {
    id: 'segment-and-connection',
    name: 'Segment and connection type',
    description: 'Registration tells the parties of a change of connection type or market segment, or that one is invalid.',
    steps: [
      { interfaceId: 'IF-043', what: 'Change of connection type' },
      { interfaceId: 'IF-044', what: 'Change of segment' },
      { interfaceId: 'IF-045', what: 'Invalid segment, or no agents appointed' },
    ],
  },
];
