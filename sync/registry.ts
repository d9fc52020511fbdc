// Sink type name -> its implementation; the config's `type` picks one.
import type { SinkConfig } from './config.js';
import type { Sink, SinkContext } from './sink.js';
import { createInfluxSink } from './sinks/influx/index.js';
import { createMqttSink } from './sinks/mqtt/index.js';
import { createPostgresSink } from './sinks/postgres/index.js';

export function createSink(config: SinkConfig, ctx: SinkContext): Sink {
  switch (config.type) {
    case 'postgres':
      return createPostgresSink(config, ctx);
    case 'influx':
      return createInfluxSink(config, ctx);
    case 'mqtt':
      return createMqttSink(config, ctx, config.name);
  }
}

/** Whether a sink's readings may arrive out of order while a backlog drains (its live lane). */
export function liveLaneByDefault(type: SinkConfig['type']): boolean {
  // Databases order by time; an upstream broker's subscribers see arrival order.
  return type !== 'mqtt';
}
