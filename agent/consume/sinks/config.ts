// The `sinks` list of the config: one entry per sink, its type picking the sink's own keys.
import { Type, type Static } from '@sinclair/typebox';
import { InfluxConfigSchema } from './influx/config.js';
import { MqttConfigSchema } from './mqtt/config.js';
import { PostgresConfigSchema } from './postgres/config.js';

const branches = [PostgresConfigSchema, InfluxConfigSchema, MqttConfigSchema];

export type SinkConfig = Static<(typeof branches)[number]>;

/** A discriminated union: AJV checks only the branch `type` names, so errors are about that sink. */
const SinkConfigSchema = Type.Unsafe<SinkConfig>({
  type: 'object',
  required: ['type'],
  discriminator: { propertyName: 'type' },
  oneOf: branches,
});

export const SinksSchema = Type.Array(SinkConfigSchema, {
  default: [],
  description: 'remote sinks; each is a log consumer that forwards every reading exactly once in effect',
});
