// What the log's chunks and records hold, and how to read them: the part of the log's interface
// with no LevelDB behind it, for code that runs beside it (the database thread decodes chunks).
export { ChunkBatch, batchLines } from './chunk-batch.js';
export { ChunkText, TextBatch } from './chunk-text.js';
export { open, seal } from './chunk.js';
export { readKeyFile, subkey } from './key.js';
export {
  decodeRecord,
  encodeRecord,
  receivedPayload,
  splitRecord,
  type DeadLetter,
  type LogRecord,
  type NewRecord,
  type RecordHead,
  type RefusedReading,
} from './record.js';
