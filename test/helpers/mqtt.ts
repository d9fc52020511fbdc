import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';

export async function connect(url: string, opts: IClientOptions = {}): Promise<MqttClient> {
  const client = mqtt.connect(url, { reconnectPeriod: 0, connectTimeout: 5000, ...opts });
  await new Promise<void>((resolve, reject) => {
    client.once('connect', () => resolve());
    client.once('error', reject);
    client.once('close', () => reject(new Error('closed before CONNACK')));
  });
  return client;
}

/** The CONNACK return code a connection attempt gets (0 = accepted). */
export async function connackCode(url: string, opts: IClientOptions = {}): Promise<number> {
  const client = mqtt.connect(url, { reconnectPeriod: 0, connectTimeout: 5000, ...opts });
  try {
    return await new Promise<number>((resolve, reject) => {
      client.once('connect', () => resolve(0));
      client.once('error', (err: Error & { code?: number }) => (typeof err.code === 'number' ? resolve(err.code) : reject(err)));
    });
  } finally {
    client.end(true);
  }
}

/** Collect messages on a subscribed client until `count` arrived or `ms` passed. */
export function collect(client: MqttClient, count: number, ms = 3000): Promise<{ topic: string; payload: string; retain: boolean }[]> {
  const got: { topic: string; payload: string; retain: boolean }[] = [];
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function onMessage(topic: string, payload: Buffer, packet: { retain: boolean }) {
      got.push({ topic, payload: payload.toString(), retain: packet.retain });
      if (got.length >= count) done();
    }
    function done() {
      clearTimeout(timer);
      client.off('message', onMessage);
      resolve(got);
    }
    client.on('message', onMessage);
  });
}

/** The SUBACK return codes for these filters (MQTT.js reports any 0x80 as an error carrying the packet). */
export async function subackCodes(client: MqttClient, filters: string[], qos: 0 | 1 | 2 = 0): Promise<number[]> {
  try {
    const granted = await client.subscribeAsync(filters, { qos });
    return granted.map((g) => g.qos);
  } catch (err) {
    const packet = (err as { packet?: { granted?: number[] } }).packet;
    if (!packet?.granted) throw err;
    return packet.granted;
  }
}

/**
 * Connect and collect at once: messages a broker sends right behind the CONNACK (a persistent
 * session's queue) can arrive before an `await connect()` returns.
 */
export async function connectCollecting(url: string, opts: IClientOptions, count: number, ms = 3000) {
  const client = mqtt.connect(url, { reconnectPeriod: 0, connectTimeout: 5000, ...opts });
  const messages = collect(client, count, ms);
  await new Promise<void>((resolve, reject) => {
    client.once('connect', () => resolve());
    client.once('error', reject);
  });
  return { client, messages };
}
