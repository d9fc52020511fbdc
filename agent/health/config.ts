// The `health` section of the config: what the agent watches of the machine it runs on.
import { Type, type Static } from '@sinclair/typebox';
import { strict } from '../config/keys.js';

export const HealthConfigSchema = Type.Object(
  {
    system: Type.Object(
      {
        enabled: Type.Boolean({ default: true, description: "sample CPU, temperature, memory, network and the Pi's throttling flags" }),
        intervalSec: Type.Integer({ minimum: 1, maximum: 3600, default: 10, description: 'seconds between samples' }),
        sysfsPath: Type.String({
          minLength: 1,
          default: '/sys',
          description: "where sysfs is mounted (a container may mount the host's elsewhere)",
        }),
        procfsPath: Type.String({ minLength: 1, default: '/proc', description: 'where procfs is mounted' }),
        vcgencmd: Type.Boolean({
          default: true,
          description: "ask Raspberry Pi OS's vcgencmd for the throttling flags when it is installed (else the firmware's sysfs node)",
        }),
      },
      { ...strict, default: {} },
    ),
    readiness: Type.Object(
      {
        sinkOutages: Type.Union([Type.Literal('buffering'), Type.Literal('notReady')], {
          default: 'buffering',
          description:
            'a sink retrying (its server away, the link down: the log keeps its readings) leaves /health/ready at 200 with status buffering; notReady makes it 503 as well. A sink down (a person must act: credentials, a missing database) is 503 either way',
        }),
      },
      { ...strict, default: {} },
    ),
    card: Type.Object(
      {
        ratedFullWrites: Type.Integer({
          minimum: 1,
          default: 1000,
          description:
            'how many times the SD card is rated to be written in full (cheap cards: a few hundred; industrial: several thousand): with the bytes written per day, the card life shown',
        }),
        bytes: Type.Optional(
          Type.Integer({ minimum: 1, description: "the card's size; default: the size of the data directory's filesystem" }),
        ),
      },
      { ...strict, default: {} },
    ),
    clock: Type.Object(
      {
        syncSource: Type.Union([Type.Literal('auto'), Type.Literal('timesyncd'), Type.Literal('timedatectl'), Type.Literal('none')], {
          default: 'auto',
          description:
            "how to tell whether the system clock is synchronised: systemd-timesyncd's flag file, timedatectl (the kernel's flag, whatever keeps the time), or none (readings are marked unsynchronised, never corrected); auto: timesyncd if it runs, else timedatectl if it answers",
        }),
        syncFlag: Type.String({
          minLength: 1,
          default: '/run/systemd/timesync/synchronized',
          description: 'the file systemd-timesyncd creates once the clock is synchronised',
        }),
        holdSec: Type.Integer({
          minimum: 0,
          maximum: 86400,
          default: 300,
          description:
            'while the clock is unsynchronised, the local store, the rollups and the sinks wait this long (from start) for it, so that readings received meanwhile go on with corrected times; 0: do not wait',
        }),
      },
      { ...strict, default: {} },
    ),
    sensors: Type.Array(
      Type.Object(
        {
          topics: Type.Array(Type.String({ minLength: 1 }), {
            minItems: 1,
            description: 'topic patterns (+, #) of the sensors this rule watches; the first matching rule decides',
          }),
          expectedIntervalSec: Type.Number({ exclusiveMinimum: 0, maximum: 86400, description: 'how often a sensor publishes' }),
          staleAfter: Type.Integer({
            minimum: 1,
            maximum: 1000,
            default: 3,
            description: 'intervals of silence after which a sensor is stale',
          }),
          by: Type.Union([Type.Literal('clientId'), Type.Literal('topic')], {
            default: 'clientId',
            description: 'what one sensor is: an MQTT client id, or a topic',
          }),
        },
        strict,
      ),
      { default: [], description: 'sensors to watch: one silent for staleAfter expected intervals becomes stale until it publishes again' },
    ),
    alerts: Type.Object(
      {
        topic: Type.String({
          minLength: 1,
          default: '$SYS/edge-agent/alerts',
          description: 'alerts are published retained on <topic>/<name> while they fire (cleared when resolved)',
        }),
        intervalSec: Type.Integer({ minimum: 1, maximum: 3600, default: 5, description: 'seconds between evaluations' }),
        sinkDownMinutes: Type.Number({ minimum: 0, default: 5, description: 'a sink not ok for this long raises sink-down:<name>' }),
        diskPressure: Type.Union([Type.Literal('warn'), Type.Literal('act'), Type.Literal('critical'), Type.Literal('reserve')], {
          default: 'act',
          description: 'disk pressure at or past this level raises disk-pressure',
        }),
        clockUnsynchronised: Type.Boolean({
          default: true,
          description: 'raise clock-unsynchronised while the system clock is not synchronised',
        }),
        rules: Type.Array(
          Type.Object(
            {
              name: Type.String({ pattern: '^[A-Za-z0-9._-]+$', description: "the alert's name (its MQTT subtopic)" }),
              value: Type.String({
                minLength: 1,
                description:
                  'what to watch: system.temperatureC, system.cpuPercent, system.load1, system.memoryAvailableBytes, disk.freeBytes, disk.freePercent, log.records, log.bytes, deadLetters, sync.lagRecords (the largest), sync.lagSeconds (the largest)',
              }),
              above: Type.Optional(Type.Number({ description: 'fires above this' })),
              below: Type.Optional(Type.Number({ description: 'fires below this' })),
              clearAt: Type.Optional(Type.Number({ description: 'resolves only once back past this (hysteresis); default the threshold' })),
              forSec: Type.Number({ minimum: 0, default: 0, description: 'the condition must hold this long before it fires' }),
            },
            { ...strict, oneOf: [{ required: ['above'] }, { required: ['below'] }] },
          ),
          { default: [], description: 'threshold rules on health values' },
        ),
        webhook: Type.Optional(
          Type.Object(
            {
              url: Type.String({ pattern: '^https?://', description: 'alerts are POSTed here as JSON, in order, retried until they go' }),
              timeoutMs: Type.Integer({ minimum: 100, maximum: 60000, default: 5000 }),
              retryInitialMs: Type.Integer({ minimum: 10, default: 1000 }),
              retryMaxMs: Type.Integer({ minimum: 10, default: 60000 }),
            },
            strict,
          ),
        ),
      },
      { ...strict, default: {} },
    ),
  },
  { ...strict, default: {} },
);

export type HealthConfig = Static<typeof HealthConfigSchema>;
