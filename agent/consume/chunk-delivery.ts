// A consumer that takes the log's chunks still compressed (the local store, the rollups: each
// decodes them in its own worker thread), run by the engine like every sink.
import { type ChunkBatch, receivedPayload, splitRecord, type RefusedReading } from '../log/index.js';
import type { Delivery } from './engine.js';
import type { ClockOffsets } from '../ingest/clock-correction.js';

/** What such a delivery reads the log through. */
export interface ChunkSource {
  readChunks(consumer: string, afterSeq: number, max: number, maxBytes?: number): Promise<ChunkBatch | null>;
}

/**
 * `maxBytes`: of compressed chunks in one batch (a worker's heap holds a batch's text); `clock`: the
 * offsets that correct readings received while the clock was unsynchronised, as of the read.
 */
export function chunkDelivery(
  consumer: string,
  target: { write(batch: ChunkBatch): Promise<void> },
  log: ChunkSource,
  maxBytes?: number,
  clock?: () => ClockOffsets,
): Delivery<ChunkBatch> {
  return {
    async read(after, max, limit) {
      const batch = await log.readChunks(consumer, after, Math.min(max, limit - after), maxBytes);
      return batch && clock ? batch.withClock(clock()) : batch;
    },
    write: (batch) => target.write(batch),
    async split(batch) {
      const mid = batch.firstSeq + (batch.count >> 1) - 1;
      return [batch.slice(batch.firstSeq, mid), batch.slice(mid + 1, batch.lastSeq)];
    },
    refused(batch): RefusedReading {
      const [line] = batch.decode().lines;
      const { head, payloadJson } = splitRecord(line);
      return {
        time: Date.now(),
        topic: head.topic,
        clientId: head.clientId,
        payload: receivedPayload(head, payloadJson),
        reasons: [],
        seq: head.seq,
      };
    },
  };
}
