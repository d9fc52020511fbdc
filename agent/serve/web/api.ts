// What the web API sees of the agent: the one interface its routes use. The runtime provides it
// once the data path runs; until then the routes that need it answer 503.
import type { DurableLog, LogStats } from '../../log/index.js';
import type { SessionControl } from '../../../embedded-broker/index.js';
import type { ReloadResult } from '../../config/reload.js';
import type { Submission, Submitted } from '../../ingest/pipeline.js';
import type { SchemaEditor } from '../../ingest/schema-editor.js';
import type { LiveHub } from './live.js';
import type { SensorStatus } from '../../health/sensors.js';
import type { ClockStatus } from '../../ingest/clock.js';
import type { GpioStatus } from '../../gpio/index.js';
import type { Alert } from '../../health/alerts.js';
import type { Rollups } from '../../consume/rollups/index.js';
import type { LocalStore } from '../../consume/store/types.js';
import type { SinkStatus } from '../../consume/sinks/index.js';

export interface AgentApi {
  agentId: string;
  /** The local store; undefined with store.backend none. */
  store: LocalStore | undefined;
  rollups: Rollups | undefined;
  submit(messages: Submitted[]): Promise<Submission>;
  /** Why a topic would be refused over MQTT (the broker's limits), for readings that come another way. */
  topicProblem(topic: string): string | undefined;
  schemas: SchemaEditor;
  live: LiveHub;
  /** Sensors watched for silence (health.sensors). */
  sensors(): SensorStatus[];
  /** Whether the system clock is synchronised, and whether consumers wait for it. */
  clock(): ClockStatus;
  /** GPIO lines, the status LED, the alarm and the power-fail input; null with gpio.driver none. */
  gpio(): GpioStatus | null;
  /** Alerts firing now, and the latest changes. */
  alerts(): { active: Alert[]; recent: Alert[] };
  deadLetters: Pick<DurableLog, 'deadLetters' | 'deadLetter' | 'removeDeadLetters'>;
  /** Counters of ingest, the broker and the log, and disk writes. */
  stats(): Record<string, unknown>;
  /** The durable log: size, per-consumer lag, drops. */
  buffer(): { log: LogStats; consumers: { name: string; cursor: number; lagRecords: number }[] };
  sinks(): Promise<SinkStatus[]>;
  /** The effective config, secrets redacted. */
  config(): unknown;
  /** Read the config file again: throws ConfigError (nothing changed) or says what took effect and what needs a restart. */
  reloadConfig(): ReloadResult;
  /** The broker's persistent sessions: listed, ended. */
  sessions: SessionControl;
  /** Cut a sink's backoff short: undefined if no such sink, else whether it was failing. */
  retrySink(name: string): boolean | undefined;
}

/** The agent as the routes reach it: undefined while it starts. */
export type ApiSource = () => AgentApi | undefined;
