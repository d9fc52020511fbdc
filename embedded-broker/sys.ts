// Mosquitto-style $SYS/broker/... topics, published retained every interval (kept in memory only).
import type { Aedes } from 'aedes';
import type { BrokerStats } from './stats.js';

export function startSysTopics(aedes: Aedes, stats: () => BrokerStats, intervalSec: number, version: string): () => void {
  if (intervalSec <= 0) return () => {};
  const started = Date.now();
  const publish = (topic: string, value: string | number) =>
    aedes.publish(
      { cmd: 'publish', topic: `$SYS/broker/${topic}`, payload: Buffer.from(String(value)), qos: 0, retain: true, dup: false },
      () => {},
    );
  const tick = () => {
    const s = stats();
    publish('version', `edge-agent ${version}`);
    publish('uptime', `${Math.floor((Date.now() - started) / 1000)} seconds`);
    publish('clients/connected', s.clientsConnected);
    publish('messages/received', s.messagesReceived);
    publish('messages/sent', s.messagesSent);
    publish('publish/messages/dropped', s.publishDenied + s.queueDropped);
    publish('subscriptions/denied', s.subscribeDenied);
  };
  tick();
  const timer = setInterval(tick, intervalSec * 1000);
  timer.unref();
  return () => clearInterval(timer);
}
