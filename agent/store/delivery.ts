// The local store as a consumer of the durable log, run by the buffer's engine like every sink: it
// takes the log's chunks still compressed (the SQLite store decodes them in its worker thread).
import type { ChunkBatch } from '../buffer/chunk-batch.js';
import type { Delivery } from '../buffer/engine.js';
import { receivedPayload, splitRecord, type RefusedReading } from '../buffer/record.js';
import type { LocalStore } from './types.js';

/** What the store's delivery reads the log through. */
export interface ChunkSource {
  readChunks(consumer: string, afterSeq: number, max: number, maxBytes?: number): Promise<ChunkBatch | null>;
}

export const STORE_CONSUMER = 'store';

/** `maxBytes`: of compressed chunks in one batch (the SQLite worker's heap holds a batch's text). */
export function storeDelivery(store: LocalStore, log: ChunkSource, maxBytes?: number): Delivery<ChunkBatch> {
  return {
    read: (after, max) => log.readChunks(STORE_CONSUMER, after, max, maxBytes),
    write: (batch) => store.write(batch),
    async split(batch) {
      const mid = batch.firstSeq + (batch.count >> 1) - 1;
      return [batch.slice(batch.firstSeq, mid), batch.slice(mid + 1, batch.lastSeq)];
    },
    refused(batch): RefusedReading {
      const [line] = batch.decode().lines;
      const { head, payloadJson } = splitRecord(line);
      return { time: Date.now(), topic: head.topic, clientId: head.clientId, payload: receivedPayload(head, payloadJson), reasons: [], seq: head.seq };
    },
  };
}
