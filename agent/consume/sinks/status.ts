// Sink status: how far behind a consumer is, and `edge-agent sync status` as a table.
import type { TextBatch, ConsumerStart } from '../../log/index.js';
import type { EngineLog } from '../engine.js';
import type { ConsumerState } from '../../lib/faults.js';
import type { SinkConfig } from './config.js';
import { toOutRecord } from './record.js';

/** What a forwarder needs of the durable log: the engine's part, and the chunks' texts. */
export interface LogSource extends EngineLog {
  readTexts(consumer: string, afterSeq: number, max: number, peek?: boolean): Promise<TextBatch | null>;
  /** Where the consumer started when it was first registered (the durable log keeps it). */
  startOf?(consumer: string): ConsumerStart | undefined;
  /** Readings that went before the consumer had them, per reason. */
  droppedFor?(consumer: string): Record<string, number>;
}

/** `stopped`: reported from the log on disk while no agent runs. */
export type SinkState = ConsumerState | 'stopped';

export interface SinkStatus {
  name: string;
  type: string;
  state: SinkState;
  /** When the sink entered this state (ISO 8601). */
  since: string;
  lastError?: { message: string; at: string };
  /** Readings not yet confirmed by the sink. */
  lagRecords: number;
  /** Age of the oldest reading not yet confirmed, ms; 0 when caught up. */
  oldestUnsentMs: number;
  /** Readings confirmed per second over the last minute. */
  recordsPerSec: number;
  /** Seconds to send the backlog at the rate the sink takes readings when sent to (measured); null until measured. */
  drainEtaSec: number | null;
  liveLane: boolean;
  /** Sending nothing until the system clock synchronises (health.clock.holdSec). */
  waitingForClock: boolean;
  sent: { records: number; requests: number; bytesIn: number; bytesOut: number };
  failures: number;
  deadLettered: number;
  /** Where it started reading when the agent first knew it (`startAt`, the seq after which, when); null if not known. */
  start: ConsumerStart | null;
  /** Readings that went before it had them, per reason (disk pressure, deleted before it was added...). */
  dropped: Record<string, number>;
  /** Times its loop was found turning without progress and backed off (a bug: see the agent's log). */
  spins: number;
}

export const CONSUMER_PREFIX = 'sink:';
/** A sink's log consumer: its cursor is where the sink stands. */
export const consumerOf = (sinkName: string) => CONSUMER_PREFIX + sinkName;

/** Readings after the consumer's cursor (less those confirmed ahead of it), and the oldest one's age. */
export async function backlogOf(
  log: Pick<LogSource, 'cursor' | 'lastSeq' | 'readTexts'>,
  consumer: string,
  confirmedAhead = 0,
): Promise<{ lagRecords: number; oldestUnsentMs: number }> {
  const cursor = log.cursor(consumer);
  const lagRecords = Math.max(0, log.lastSeq - cursor - confirmedAhead);
  const oldest = lagRecords ? await log.readTexts(consumer, cursor, 1, true) : null;
  const oldestUnsentMs = oldest ? Math.max(0, Date.now() - toOutRecord(oldest.line(oldest.firstSeq), oldest.agentId).receivedAt) : 0;
  return { lagRecords, oldestUnsentMs };
}

/** What the log on disk says while no agent runs: lag only. */
export async function offlineStatus(
  log: Pick<LogSource, 'cursor' | 'lastSeq' | 'readTexts' | 'startOf' | 'droppedFor'> & { consumers(): string[] },
  sinks: SinkConfig[],
): Promise<SinkStatus[]> {
  const known = new Set(log.consumers());
  return Promise.all(
    sinks.map(async (s) => {
      const consumer = consumerOf(s.name);
      const backlog = known.has(consumer) ? await backlogOf(log, consumer) : { lagRecords: log.lastSeq, oldestUnsentMs: 0 };
      return {
        name: s.name,
        type: s.type,
        state: 'stopped' as const,
        since: new Date().toISOString(),
        ...backlog,
        recordsPerSec: 0,
        drainEtaSec: null,
        liveLane: false,
        waitingForClock: false,
        sent: { records: 0, requests: 0, bytesIn: 0, bytesOut: 0 },
        failures: 0,
        deadLettered: 0,
        start: log.startOf?.(consumer) ?? null,
        dropped: log.droppedFor?.(consumer) ?? {},
        spins: 0,
      };
    }),
  );
}

function duration(ms: number | null): string {
  if (ms === null) return 'unknown';
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
  return `${Math.floor(s / 86400)}d${String(Math.floor((s % 86400) / 3600)).padStart(2, '0')}h`;
}

/** A local consumer of the log (the store, the rollups), as `sync status` lists it beside the sinks. */
export interface LocalConsumerStatus {
  name: string;
  type: string;
  state: string;
  lagRecords: number;
  deadLettered: number;
  lastError?: { message: string; at: string };
}

export function formatStatus(sinks: SinkStatus[], locals: LocalConsumerStatus[] = []): string {
  if (sinks.length === 0 && !locals.length) return 'no sinks configured';
  const header = ['consumer', 'type', 'state', 'start', 'lag', 'oldest unsent', 'records/s', 'drain in', 'last error'];
  const localRows = locals.map((l) => [
    l.name,
    l.type,
    l.state,
    '-',
    String(l.lagRecords),
    '-',
    '-',
    '-',
    l.lastError ? `${l.lastError.at} ${l.lastError.message}` : '-',
  ]);
  const rows = localRows.concat(
    sinks.map((s) => [
      s.name,
      s.type,
      s.state + (s.liveLane ? ' (live lane)' : '') + (s.waitingForClock ? ' (waiting for the clock)' : ''),
      s.start ? `${s.start.startAt} (after seq ${s.start.seq})` : '-',
      String(s.lagRecords),
      s.lagRecords ? duration(s.oldestUnsentMs) : '-',
      s.recordsPerSec.toFixed(1),
      s.lagRecords ? duration(s.drainEtaSec === null ? null : s.drainEtaSec * 1000) : '-',
      s.lastError ? `${s.lastError.at} ${s.lastError.message}` : '-',
    ]),
  );
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]))).join('  ');
  return [line(header), ...rows.map(line)].join('\n');
}
