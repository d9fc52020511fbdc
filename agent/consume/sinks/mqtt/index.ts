// MQTT bridge sink: republishes each reading upstream at QoS 1 over a persistent session; the
// upstream PUBACK is the confirmation. MQTT itself delivers at least once, so each message says
// which (agent, seq) it is (in the record envelope, or as MQTT 5 user properties) for receivers to
// drop repeats.
import { readFileSync } from 'node:fs';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { down, invalid, isTlsTrustError, SinkError, transient } from '../sink.js';
import type { Encoded, Sink, SinkContext, WriteResult } from '../sink.js';
import type { OutBatch, OutRecord } from '../record.js';
import type { MqttConfig } from './config.js';
import { sleep } from '../../../lib/sleep.js';

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

/**
 * MQTT 5 PUBACK reason codes that refuse the message itself: sent again it would be refused again
 * (an upstream ACL, a topic or payload the server will not take). Others (quota exceeded,
 * unspecified) are errors of the moment.
 */
const REFUSES_THE_MESSAGE = new Set([0x87, 0x90, 0x95, 0x99]);
/** How long to let the acknowledgements read before a close settle (the client fails the rest soon after). */
const ACKS_SETTLE_MS = 100;
/** Connections lost in a row with the same message first unacknowledged before it counts as refused. */
const POISON_AFTER_LOSSES = 5;

/** The messages the server refused one by one (dead letters); any other failure fails the batch (`strict`). */
function refusals(acks: PromiseSettledResult<unknown>[], strict = true): WriteResult {
  const rejected: { index: number; reason: string }[] = [];
  acks.forEach((ack, index) => {
    if (ack.status === 'fulfilled') return;
    const err = ack.reason as { code?: number; message: string };
    if (REFUSES_THE_MESSAGE.has(err.code ?? -1)) rejected.push({ index, reason: `mqtt: PUBACK ${err.code}: ${err.message}` });
    else if (strict) throw err;
  });
  return rejected.length ? { rejected } : {};
}

export class MqttSink implements Sink<MessageBatch> {
  private readonly options: IClientOptions;
  private client: MqttClient | undefined;
  /** The message first unacknowledged when connections were lost, and how many times in a row. */
  private suspect = { seq: -1, losses: 0 };

  constructor(
    private readonly config: MqttConfig,
    private readonly ctx: SinkContext,
    sinkName: string,
  ) {
    const read = (file?: string) => (file ? readFileSync(file) : undefined);
    this.options = {
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
  }

  async start(): Promise<void> {
    if (this.client?.connected) return;
    if (this.client) this.drop(this.client);
    try {
      const c = await mqtt.connectAsync(this.config.url, this.options, false);
      c.on('close', () => this.drop(c));
      c.on('error', () => {});
      this.client = c;
    } catch (err) {
      const e = err as { code?: number; message: string };
      // CONNACK 4/5 (3.1.1) and 134/135 (5): bad user name or password, not authorised.
      if ([4, 5, 134, 135].includes(e.code ?? -1) || isTlsTrustError(err)) throw down(`mqtt: ${e.message}`);
      throw transient(`mqtt: ${e.message}`);
    }
  }

  async encode(records: OutBatch): Promise<{ encoded: MessageBatch; refused: { index: number; reason: string }[] }> {
    const { config } = this;
    const messages = Array.from(records, (r) => ({
      topic: config.topic.replaceAll('{agent}', r.agentId).replaceAll('{topic}', r.topic),
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
  }

  async write(batch: MessageBatch, signal: AbortSignal): Promise<WriteResult> {
    const c = this.client;
    if (!c?.connected) throw transient('mqtt: not connected');
    let onClose = () => {};
    const lost = new Promise<never>((_, reject) => {
      onClose = () => reject(transient('mqtt: connection lost before every PUBACK came'));
      c.once('close', onClose);
      signal.addEventListener('abort', () => reject(transient('mqtt: no PUBACK within the timeout')), { once: true });
    });
    lost.catch(() => {});
    const settled: PromiseSettledResult<unknown>[] = [];
    const acks = batch.messages.map((m, i) =>
      this.publish(c, m).then(
        (value) => (settled[i] = { status: 'fulfilled', value }),
        (reason: unknown) => (settled[i] = { status: 'rejected', reason }),
      ),
    );
    try {
      const result = refusals(await Promise.race([Promise.all(acks), lost]));
      this.suspect = { seq: -1, losses: 0 };
      return result;
    } catch (err) {
      this.drop(c);
      if (signal.aborted) throw asSinkError(err);
      // The acknowledgements the client read before the close settle shortly after it.
      await Promise.race([Promise.all(acks), sleep(ACKS_SETTLE_MS)]);
      throw this.lostWith(batch, settled, err);
    } finally {
      c.off('close', onClose);
    }
  }

  async close(): Promise<void> {
    const c = this.client;
    this.client = undefined;
    if (c) await c.endAsync().catch(() => {});
  }

  /**
   * Some brokers close the connection on a message they refuse (Mosquitto 2.0 after PUBACK 135 for
   * a topic its ACL denies, and on a packet over its max_packet_size), and the refusal may not be
   * read before the close. A refusal read, or the same message first unacknowledged at
   * POISON_AFTER_LOSSES losses in a row, refuses the batch: the forwarder splits it until that
   * message stands alone and goes to dead letters, rather than sending it for ever.
   */
  private lostWith(batch: MessageBatch, settled: PromiseSettledResult<unknown>[], err: unknown): SinkError {
    const refused = refusals(settled.filter(Boolean), false).rejected?.[0];
    if (refused) return invalid(refused.reason);
    const first = batch.messages.find((_, i) => settled[i]?.status !== 'fulfilled');
    if (first) {
      this.suspect = first.seq === this.suspect.seq ? { seq: first.seq, losses: this.suspect.losses + 1 } : { seq: first.seq, losses: 1 };
      if (this.suspect.losses >= POISON_AFTER_LOSSES)
        return invalid(
          `mqtt: the broker closed the connection each of the last ${this.suspect.losses} times this reading was the first unacknowledged (a refusal, or a limit such as its max_packet_size)`,
        );
    }
    return asSinkError(err);
  }

  private publish(c: MqttClient, m: Message): Promise<unknown> {
    const { config } = this;
    return c.publishAsync(m.topic, m.payload, {
      qos: 1,
      retain: config.retain,
      ...(config.protocolVersion === 5 && { properties: { userProperties: { agent: this.ctx.agentId, seq: String(m.seq) } } }),
    });
  }

  private drop(c: MqttClient): void {
    if (this.client === c) this.client = undefined;
    c.end(true);
  }
}

/** An error as the forwarder takes it: a SinkError as it is, anything else of the moment. */
function asSinkError(err: unknown): SinkError {
  return err instanceof SinkError ? err : transient(`mqtt: ${(err as Error).message}`);
}
