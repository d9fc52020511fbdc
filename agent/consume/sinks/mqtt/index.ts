// MQTT bridge sink: republishes each reading upstream at QoS 1 over a persistent session; the
// upstream PUBACK is the confirmation. MQTT itself delivers at least once, so each message says
// which (agent, seq) it is (in the record envelope, or as MQTT 5 user properties) for receivers to
// drop repeats.
import { readFileSync } from 'node:fs';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { down, isTlsTrustError, SinkError, transient, type Encoded, type Sink, type SinkContext, type WriteResult } from '../sink.js';
import type { OutBatch, OutRecord } from '../record.js';
import type { MqttConfig } from './config.js';

interface Message {
  topic: string;
  payload: Buffer;
  seq: number;
}

interface MessageBatch extends Encoded {
  messages: Message[];
}

/** The record envelope, built as text: the payload JSON is spliced in, never re-encoded. */
export function envelope(r: OutRecord): string {
  let s = `{"agent":${JSON.stringify(r.agentId)},"seq":${r.seq},"topic":${JSON.stringify(r.topic)},"receivedAt":${r.receivedAt}`;
  if (r.clockCorrectionMs !== undefined) s += `,"clockCorrectionMs":${r.clockCorrectionMs}`;
  if (r.deviceTime !== undefined) s += `,"deviceTime":${r.deviceTime}`;
  if (r.schema !== undefined) s += `,"schema":${JSON.stringify(r.schema)}`;
  if (r.encoding !== undefined) s += `,"encoding":"${r.encoding}"`;
  return `${s},"payload":${r.payloadJson}}`;
}

export function createMqttSink(config: MqttConfig, ctx: SinkContext, sinkName: string): Sink<MessageBatch> {
  const topicFor = (r: OutRecord) => config.topic.replaceAll('{agent}', r.agentId).replaceAll('{topic}', r.topic);
  const read = (file?: string) => (file ? readFileSync(file) : undefined);
  const options: IClientOptions = {
    clientId: config.clientId.replaceAll('{agent}', ctx.agentId).replaceAll('{sink}', sinkName),
    clean: false,
    protocolVersion: config.protocolVersion,
    keepalive: config.keepaliveSec,
    username: config.username,
    password: config.password,
    ca: read(config.ca),
    cert: read(config.cert),
    key: read(config.key),
    reconnectPeriod: 0, // the forwarder reconnects, with its backoff
    connectTimeout: config.timeoutMs,
    queueQoSZero: false,
    ...(config.protocolVersion === 5 && { properties: { sessionExpiryInterval: 0xffffffff } }),
  };
  let client: MqttClient | undefined;

  function drop(c: MqttClient): void {
    if (client === c) client = undefined;
    c.end(true);
  }

  return {
    async start() {
      if (client?.connected) return;
      if (client) drop(client);
      try {
        const c = await mqtt.connectAsync(config.url, options, false);
        c.on('close', () => drop(c));
        c.on('error', () => {});
        client = c;
      } catch (err) {
        const e = err as { code?: number; message: string };
        // CONNACK 4/5 (3.1.1) and 134/135 (5): bad user name or password, not authorised.
        if ([4, 5, 134, 135].includes(e.code ?? -1) || isTlsTrustError(err)) throw down(`mqtt: ${e.message}`);
        throw transient(`mqtt: ${e.message}`);
      }
    },
    async encode(records: OutBatch) {
      const messages = Array.from(records, (r) => ({
        topic: topicFor(r),
        seq: r.seq,
        payload: Buffer.from(
          config.payload === 'record'
            ? envelope(r)
            : r.encoding === 'base64'
              ? Buffer.from(JSON.parse(r.payloadJson) as string, 'base64')
              : r.payloadJson,
        ),
      }));
      return { encoded: { messages, bytes: messages.reduce((n, m) => n + m.payload.length + m.topic.length, 0) }, refused: [] };
    },
    async write(batch, signal): Promise<WriteResult> {
      const c = client;
      if (!c?.connected) throw transient('mqtt: not connected');
      let onClose = () => {};
      const lost = new Promise<never>((_, reject) => {
        onClose = () => reject(transient('mqtt: connection lost before every PUBACK came'));
        c.once('close', onClose);
        signal.addEventListener('abort', () => reject(transient('mqtt: no PUBACK within the timeout')), { once: true });
      });
      lost.catch(() => {});
      try {
        await Promise.race([
          Promise.all(
            batch.messages.map((m) =>
              c.publishAsync(m.topic, m.payload, {
                qos: 1,
                retain: config.retain,
                ...(config.protocolVersion === 5 && { properties: { userProperties: { agent: ctx.agentId, seq: String(m.seq) } } }),
              }),
            ),
          ),
          lost,
        ]);
      } catch (err) {
        drop(c);
        throw err instanceof SinkError ? err : transient(`mqtt: ${(err as Error).message}`);
      } finally {
        c.off('close', onClose);
      }
      return {};
    },
    async close() {
      const c = client;
      client = undefined;
      if (c) await c.endAsync().catch(() => {});
    },
  };
}
