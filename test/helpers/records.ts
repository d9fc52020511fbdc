// Readings as the log hands them to a store, for the store tests.
import { ChunkBatch } from '../../agent/log/chunk-batch.js';
import { encodeChunk } from '../../agent/log/chunk.js';
import { encodeRecord, type LogRecord } from '../../agent/log/record.js';

export const T0 = Date.UTC(2026, 10, 30, 10, 0, 0);

export function record(seq: number, topic = 'sensors/a/env', receivedAt = T0 + seq * 1000): LogRecord {
  return {
    seq,
    agentId: 'pi',
    topic,
    receivedAt,
    clockSynced: true,
    payload: { t: 20 + seq / 10, seq },
    clientId: 'c',
    schema: 'env@1',
    qos: 1,
  };
}

/** Consecutive records as the log hands them to a store: in chunks of `perChunk`, from `firstSeq` on. */
export function batch(
  records: LogRecord[],
  opts: { perChunk?: number; firstSeq?: number; key?: Buffer; payloadJson?: (r: LogRecord) => string } = {},
): ChunkBatch {
  const text = opts.payloadJson ?? ((r: LogRecord) => (r.encoding ? (r.payload as string) : JSON.stringify(r.payload)));
  const lines = records.map((r) => encodeRecord(r.seq, { ...r, payloadJson: text(r) }));
  const perChunk = opts.perChunk ?? lines.length;
  const chunks: Uint8Array[] = [];
  for (let i = 0; i < lines.length; i += perChunk) {
    const part = lines.slice(i, i + perChunk);
    const firstSeq = records[i].seq;
    chunks.push(encodeChunk(part.join('\n'), { count: part.length, firstSeq, lastSeq: firstSeq + part.length - 1 }, opts.key));
  }
  return new ChunkBatch('pi', chunks, opts.firstSeq ?? records[0].seq, records.at(-1)!.seq, opts.key);
}
