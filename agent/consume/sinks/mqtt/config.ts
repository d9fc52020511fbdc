import { Type, type Static } from '@sinclair/typebox';
import { choice, secret } from '../../../config/keys.js';
import { sinkSchema } from '../sink-config.js';

export const MqttConfigSchema = sinkSchema(
  'mqtt',
  {
    url: Type.String({ pattern: '^(mqtts?|wss?)://', description: 'upstream broker: mqtt://, mqtts://, ws:// or wss://' }),
    topic: Type.String({
      minLength: 1,
      default: 'fleet/{agent}/{topic}',
      description: 'upstream topic; {agent} = agent id, {topic} = the reading topic',
    }),
    clientId: Type.String({
      minLength: 1,
      default: 'edge-agent-{agent}-{sink}',
      description: 'client id ({agent}, {sink}); stable, for the persistent session',
    }),
    username: Type.Optional(Type.String({ minLength: 1, description: 'user name' })),
    ...secret('password', 'password'),
    ca: Type.Optional(Type.String({ minLength: 1, description: 'PEM CA bundle for mqtts/wss' })),
    cert: Type.Optional(Type.String({ minLength: 1, description: 'PEM client certificate' })),
    key: Type.Optional(Type.String({ minLength: 1, description: 'PEM client key' })),
    protocolVersion: Type.Union([Type.Literal(4), Type.Literal(5)], {
      default: 4,
      description: '4 = MQTT 3.1.1; 5 = MQTT 5 (raw payloads then carry agent and seq as user properties)',
    }),
    payload: choice(
      ['record', 'raw'],
      'record',
      'record: JSON with agent, seq, topic, times and payload (subscribers can drop repeats); raw: the payload as received',
    ),
    retain: Type.Boolean({ default: false, description: 'publish retained' }),
    keepaliveSec: Type.Integer({ minimum: 0, maximum: 65535, default: 60, description: 'MQTT keep-alive' }),
  },
  'an upstream MQTT broker: QoS 1, persistent session; the upstream PUBACK confirms',
);

export type MqttConfig = Static<typeof MqttConfigSchema>;
