// The `health` section of the config: what the agent watches of the machine it runs on.
import { Type, type Static } from '@sinclair/typebox';
import { strict } from '../config/keys.js';

export const HealthConfigSchema = Type.Object(
  {
    system: Type.Object(
      {
        enabled: Type.Boolean({ default: true, description: 'sample CPU, temperature, memory, network and the Pi\'s throttling flags' }),
        intervalSec: Type.Integer({ minimum: 1, maximum: 3600, default: 10, description: 'seconds between samples' }),
        sysfsPath: Type.String({ minLength: 1, default: '/sys', description: 'where sysfs is mounted (a container may mount the host\'s elsewhere)' }),
        procfsPath: Type.String({ minLength: 1, default: '/proc', description: 'where procfs is mounted' }),
        vcgencmd: Type.Boolean({ default: true, description: 'ask Raspberry Pi OS\'s vcgencmd for the throttling flags when it is installed (else the firmware\'s sysfs node)' }),
      },
      { ...strict, default: {} },
    ),
    sensors: Type.Array(
      Type.Object(
        {
          topics: Type.Array(Type.String({ minLength: 1 }), { minItems: 1, description: 'topic patterns (+, #) of the sensors this rule watches; the first matching rule decides' }),
          expectedIntervalSec: Type.Number({ exclusiveMinimum: 0, maximum: 86400, description: 'how often a sensor publishes' }),
          staleAfter: Type.Integer({ minimum: 1, maximum: 1000, default: 3, description: 'intervals of silence after which a sensor is stale' }),
          by: Type.Union([Type.Literal('clientId'), Type.Literal('topic')], { default: 'clientId', description: 'what one sensor is: an MQTT client id, or a topic' }),
        },
        strict,
      ),
      { default: [], description: 'sensors to watch: one silent for staleAfter expected intervals becomes stale until it publishes again' },
    ),
  },
  { ...strict, default: {} },
);

export type HealthConfig = Static<typeof HealthConfigSchema>;
