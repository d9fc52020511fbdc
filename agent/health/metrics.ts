// The agent's Prometheus metrics. Counters the stages keep anyway are read at scrape time (collect),
// so the ingest path pays nothing for them; only commits, queries and HTTP requests are timed.
import type { LogStats } from '../log/index.js';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { BrokerStats } from '../../embedded-broker/index.js';
import type { IngestStats } from '../ingest/pipeline.js';
import type { PressureStatus } from '../retention/pressure.js';
import type { SinkStatus } from '../consume/sinks/index.js';
import type { DiskWrites } from '../lib/disk-writes.js';
import { THROTTLE_FLAG_NAMES, type SystemSample } from './system.js';
import type { SensorStatus } from './sensors.js';
import type { ClockStatus } from '../ingest/clock.js';
import type { Alert } from './alerts.js';

/** What a scrape reads; undefined while the agent starts. */
export interface MetricsSource {
  ingest: IngestStats;
  broker(): BrokerStats;
  log(): LogStats;
  /** Readings after each consumer's cursor (store, rollups, sinks). */
  lag(): { name: string; records: number }[];
  sinks(): Promise<SinkStatus[]>;
  disk(): PressureStatus;
  written(): DiskWrites;
  /** The machine's latest sample; undefined with health.system off. */
  system(): SystemSample | undefined;
  sensors(): SensorStatus[];
  alerts(): Alert[];
  clock(): ClockStatus;
}

export interface Metrics {
  registry: Registry;
  /** How long a reading waited for its commit (per commit: its oldest reading). */
  storageLatency: Histogram;
  httpDuration: Histogram<'method' | 'route' | 'status'>;
  queryDuration: Histogram<'source'>;
}

type Read<L extends string> = (set: (labels: Partial<Record<L, string>>, value: number) => void) => Promise<void> | void;

/** A metric whose values are kept elsewhere (a total, a level), read at scrape time. */
function derived<L extends string>(
  kind: 'counter' | 'gauge',
  registry: Registry,
  name: string,
  help: string,
  labelNames: L[],
  read: Read<L>,
): void {
  const config = { name, help, labelNames, registers: [registry] };
  if (kind === 'counter') {
    new Counter({
      ...config,
      async collect() {
        this.reset();
        await read((labels, value) => this.inc(labels, value));
      },
    });
  } else {
    new Gauge({
      ...config,
      async collect() {
        this.reset();
        await read((labels, value) => this.set(labels, value));
      },
    });
  }
}

const total = <L extends string>(registry: Registry, name: string, help: string, labelNames: L[], read: Read<L>) =>
  derived('counter', registry, name, help, labelNames, read);
const level = <L extends string>(registry: Registry, name: string, help: string, labelNames: L[], read: Read<L>) =>
  derived('gauge', registry, name, help, labelNames, read);

export function createMetrics(source: () => MetricsSource | undefined): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  // Gauges named like counters (promtool warns); the same figures remain per type, without _total.
  for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'])
    registry.removeSingleMetric(name);
  const from = <T>(read: (s: MetricsSource) => T) => {
    const s = source();
    return s && read(s);
  };
  const each = <T>(read: (s: MetricsSource) => T, use: (v: T) => void | Promise<void>) => {
    const s = source();
    return s ? use(read(s)) : undefined;
  };

  total(registry, 'mqtt_messages_received_total', 'PUBLISH packets received from clients', [], (set) =>
    each(
      (s) => s.broker().messagesReceived,
      (v) => set({}, v),
    ),
  );
  total(registry, 'mqtt_messages_stored_total', 'readings taken into the durable log (MQTT and HTTP)', [], (set) =>
    each(
      (s) => s.ingest.accepted,
      (v) => set({}, v),
    ),
  );
  total(registry, 'mqtt_messages_dropped_total', 'messages not kept, by reason', ['reason'], (set) =>
    each(
      (s) => ({ ingest: s.ingest, broker: s.broker(), log: s.log() }),
      ({ ingest, broker, log }) => {
        set({ reason: 'validation' }, ingest.deadLettered);
        set({ reason: 'qos0_overflow' }, ingest.qos0Dropped);
        set({ reason: 'acl_denied' }, broker.publishDenied);
        set({ reason: 'queue_full' }, broker.queueDropped);
        set({ reason: 'dead_letters_full' }, log.deadLettersDropped);
        const pressure = Object.values(log.dropped).map((byReason) => byReason['disk pressure'] ?? 0);
        set({ reason: 'disk_pressure' }, Math.max(0, ...pressure));
      },
    ),
  );
  total(
    registry,
    'mqtt_validation_errors_total',
    'readings refused by validation, per schema (none: no schema matched)',
    ['schema'],
    (set) =>
      each(
        (s) => s.ingest.refusedBySchema,
        (by) => Object.entries(by).forEach(([schema, n]) => set({ schema }, n)),
      ),
  );
  level(registry, 'mqtt_buffer_size', 'the durable log: readings and bytes held (not yet confirmed by every consumer)', ['unit'], (set) =>
    each(
      (s) => s.log(),
      (log) => {
        set({ unit: 'records' }, log.records);
        set({ unit: 'bytes' }, log.bytes);
      },
    ),
  );
  level(registry, 'mqtt_dead_letters', 'dead letters kept', [], (set) =>
    each(
      (s) => s.log().deadLetters,
      (v) => set({}, v),
    ),
  );
  level(registry, 'mqtt_clients_connected', 'MQTT clients connected', [], (set) =>
    each(
      (s) => s.broker().clientsConnected,
      (v) => set({}, v),
    ),
  );
  level(registry, 'consumer_lag_records', "readings after each consumer's cursor in the log", ['consumer'], (set) =>
    each(
      (s) => s.lag(),
      (lag) => lag.forEach((c) => set({ consumer: c.name }, c.records)),
    ),
  );

  const sinks = () => from((s) => s.sinks()) ?? Promise.resolve([] as SinkStatus[]);
  total(registry, 'sync_records_sent_total', 'readings confirmed by each sink since start', ['sink'], async (set) =>
    (await sinks()).forEach((x) => set({ sink: x.name }, x.sent.records)),
  );
  total(registry, 'sync_failures_total', 'failed sends per sink since start', ['sink'], async (set) =>
    (await sinks()).forEach((x) => set({ sink: x.name }, x.failures)),
  );
  level(registry, 'sync_lag_records', 'readings not yet confirmed by each sink', ['sink'], async (set) =>
    (await sinks()).forEach((x) => set({ sink: x.name }, x.lagRecords)),
  );
  level(registry, 'sync_lag_seconds', 'age of the oldest reading each sink has not confirmed', ['sink'], async (set) =>
    (await sinks()).forEach((x) => set({ sink: x.name }, x.oldestUnsentMs / 1000)),
  );
  level(registry, 'sync_up', '1 when the sink is ok, else 0 (retrying, stuck, down)', ['sink', 'state'], async (set) =>
    (await sinks()).forEach((x) => set({ sink: x.name, state: x.state }, x.state === 'ok' ? 1 : 0)),
  );

  level(registry, 'disk_free_bytes', "free space of the data directory's filesystem", [], (set) =>
    each(
      (s) => s.disk().freeBytes,
      (v) => set({}, v),
    ),
  );
  level(registry, 'disk_total_bytes', "size of the data directory's filesystem", [], (set) =>
    each(
      (s) => s.disk().totalBytes,
      (v) => set({}, v),
    ),
  );
  level(registry, 'disk_pressure_level', 'disk pressure: 0 ok, 1 warn, 2 act, 3 critical, 4 reserve', [], (set) =>
    each(
      (s) => s.disk().level,
      (l) => set({}, ['ok', 'warn', 'act', 'critical', 'reserve'].indexOf(l)),
    ),
  );
  total(registry, 'disk_written_bytes_total', 'bytes the agent wrote to storage since start (SD-card wear), by part', ['part'], (set) =>
    each(
      (s) => s.written(),
      (w) => {
        set({ part: 'store' }, w.store);
        set({ part: 'rollups' }, w.rollups);
        set({ part: 'other' }, w.other);
      },
    ),
  );

  const system = (use: (s: SystemSample) => void) =>
    each(
      (s) => s.system(),
      (sample) => sample && use(sample),
    );
  level(registry, 'system_cpu_percent', 'CPU busy, % of all cores, over the last sample interval', [], (set) =>
    system((s) => set({}, s.cpu.percent)),
  );
  level(registry, 'system_load1', '1-minute load average', [], (set) => system((s) => set({}, s.cpu.load1)));
  level(registry, 'system_temperature_celsius', 'the hottest thermal zone', [], (set) =>
    system((s) => s.temperatureC !== null && set({}, s.temperatureC)),
  );
  level(registry, 'system_memory_available_bytes', 'memory available to programs', [], (set) =>
    system((s) => set({}, s.memory.availableBytes)),
  );
  level(registry, 'system_memory_total_bytes', 'memory in all', [], (set) => system((s) => set({}, s.memory.totalBytes)));
  level(registry, 'system_uptime_seconds', 'time since the machine booted', [], (set) => system((s) => set({}, s.uptimeSeconds)));
  total(registry, 'system_network_receive_bytes_total', 'bytes received per interface', ['interface'], (set) =>
    system((s) => s.network.forEach((n) => set({ interface: n.name }, n.rxBytes))),
  );
  total(registry, 'system_network_transmit_bytes_total', 'bytes sent per interface', ['interface'], (set) =>
    system((s) => s.network.forEach((n) => set({ interface: n.name }, n.txBytes))),
  );
  level(registry, 'system_network_up', '1 when the interface is up', ['interface'], (set) =>
    system((s) => s.network.forEach((n) => set({ interface: n.name }, n.up ? 1 : 0))),
  );
  level(
    registry,
    'pi_throttled',
    'Raspberry Pi firmware flags set now (1) or not (0): under-voltage, arm-frequency-capped, throttled, soft-temperature-limit',
    ['flag'],
    (set) => system((s) => s.throttling && THROTTLE_FLAG_NAMES.forEach((f) => set({ flag: f }, s.throttling!.now.includes(f) ? 1 : 0))),
  );
  level(registry, 'pi_throttled_since_boot', 'Raspberry Pi firmware flags set at some time since boot', ['flag'], (set) =>
    system((s) => s.throttling && THROTTLE_FLAG_NAMES.forEach((f) => set({ flag: f }, s.throttling!.sinceBoot.includes(f) ? 1 : 0))),
  );

  const sensors = (use: (list: SensorStatus[]) => void) => each((s) => s.sensors(), use);
  level(registry, 'sensor_stale', "1 when the sensor has been silent for its rule's staleAfter intervals", ['sensor'], (set) =>
    sensors((l) => l.forEach((x) => set({ sensor: x.sensor }, x.state === 'stale' ? 1 : 0))),
  );
  level(registry, 'sensor_last_seen_timestamp_seconds', 'when the sensor last published', ['sensor'], (set) =>
    sensors((l) => l.forEach((x) => set({ sensor: x.sensor }, Date.parse(x.lastSeen) / 1000))),
  );
  total(registry, 'sensor_readings_total', 'readings taken from the sensor since start', ['sensor'], (set) =>
    sensors((l) => l.forEach((x) => set({ sensor: x.sensor }, x.readings))),
  );
  total(registry, 'sensor_validation_errors_total', 'readings from the sensor refused since start', ['sensor'], (set) =>
    sensors((l) => l.forEach((x) => set({ sensor: x.sensor }, x.refused))),
  );

  level(
    registry,
    'clock_synchronised',
    '1 when the system clock is synchronised, 0 when not (absent when nothing here can tell)',
    [],
    (set) =>
      each(
        (s) => s.clock(),
        (c) => {
          if (c.synced !== null) set({}, c.synced ? 1 : 0);
        },
      ),
  );
  level(registry, 'clock_hold', "1 while the log's consumers wait for the clock to synchronise", [], (set) =>
    each(
      (s) => s.clock(),
      (c) => set({}, c.holding ? 1 : 0),
    ),
  );

  level(registry, 'alerts_firing', '1 for each alert firing now', ['alert'], (set) =>
    each(
      (s) => s.alerts(),
      (list) => list.forEach((a) => set({ alert: a.name }, 1)),
    ),
  );

  return {
    registry,
    storageLatency: new Histogram({
      name: 'mqtt_storage_latency_seconds',
      help: "time from a reading's arrival to its commit (fsync), per commit: its oldest reading",
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers: [registry],
    }),
    httpDuration: new Histogram({
      name: 'http_request_duration_seconds',
      help: 'HTTP requests by method, route and status',
      labelNames: ['method', 'route', 'status'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10],
      registers: [registry],
    }),
    queryDuration: new Histogram({
      name: 'database_query_duration_seconds',
      help: 'queries of the local store and the rollups',
      labelNames: ['source'],
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5],
      registers: [registry],
    }),
  };
}
