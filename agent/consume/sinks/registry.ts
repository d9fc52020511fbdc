// Sink type name -> its implementation; the config's `type` picks one. Each sink's module (and its
// client library: pg, MQTT.js) is loaded only when a sink of that type is configured.
import type { SinkConfig } from './config.js';
import type { Sink, SinkContext } from './sink.js';

export async function createSink(config: SinkConfig, ctx: SinkContext): Promise<Sink> {
  switch (config.type) {
    case 'postgres':
      return new (await import('./postgres/index.js')).PostgresSink(config, ctx);
    case 'influx':
      return new (await import('./influx/index.js')).InfluxSink(config, ctx);
    case 'mqtt':
      return new (await import('./mqtt/index.js')).MqttSink(config, ctx, config.name);
  }
}

/** Whether a sink's readings may arrive out of order while a backlog drains (its live lane). */
export function liveLaneByDefault(type: SinkConfig['type']): boolean {
  // Databases order by time; an upstream broker's subscribers see arrival order.
  return type !== 'mqtt';
}
