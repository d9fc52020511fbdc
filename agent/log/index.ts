// The durable log's public interface: what the stages after it (the consumers, the web layer, the
// runtime) may use. Its inner files (the journal, the chunk cache, LevelDB) stay its own;
// ./format.ts is the part that loads no LevelDB (for the database thread).
export { BufferConfigSchema, type BufferConfig } from './config.js';
export { DurableLog, type ConsumerStart, type LogStats, type StartAt } from './durable-log.js';
export * from './format.js';
