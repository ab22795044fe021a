/** Where wrapped at-rest data keys are kept: beside the data they seal, so they travel (and back up) with it. */
export interface DataKeyStore {
  dataKeys(): Promise<Array<{ id: number; wrapped: Buffer }>>;
  addDataKey(wrapped: Buffer): Promise<number>;
}
