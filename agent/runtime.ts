// Wires the stages together: embedded broker -> (ingest, later issues) and the web listeners.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { startBroker, type EmbeddedBroker } from '../embedded-broker/index.js';
import type { Config } from './config/schema.js';
import type { Logger } from './log.js';
import { UserStore, usersFilePath } from './users/store.js';
import { VERSION } from './version.js';
import { startWeb, type WebServer } from './web/server.js';

export interface Runtime {
  /** Listener name -> bound host:port (mqtt, mqtts, ws, wss, http, https). */
  listeners: Record<string, string>;
  broker: EmbeddedBroker;
  close(): Promise<void>;
}

export async function startRuntime(config: Config, log: Logger): Promise<Runtime> {
  const { broker: b, web: w, agent } = config;
  mkdirSync(agent.dataDir, { recursive: true });
  const broker = await startBroker({
    version: VERSION,
    persistenceDir: join(agent.dataDir, 'broker'),
    mqtt: b.mqtt.enabled ? b.mqtt : undefined,
    mqtts: b.mqtts.cert && b.mqtts.key ? { ...b.mqtts, cert: b.mqtts.cert, key: b.mqtts.key } : undefined,
    allowAnonymous: b.allowAnonymous,
    acl: b.acl,
    users: new UserStore(usersFilePath(config)),
    limits: b.limits,
    sysIntervalSec: b.sysInterval,
    log: log.child({ stage: 'broker' }),
  });
  let web: WebServer;
  try {
    web = await startWeb({
      http: w.http.enabled ? w.http : undefined,
      https: w.https.cert && w.https.key ? { ...w.https, cert: w.https.cert, key: w.https.key } : undefined,
      mqttWs: b.ws.enabled ? { path: b.ws.path, maxPayload: b.limits.maxPayloadBytes + 65536, handle: broker.handleStream } : undefined,
      log: log.child({ stage: 'web' }),
    });
  } catch (err) {
    await broker.close();
    throw err;
  }
  return {
    listeners: { ...broker.listeners, ...web.listeners },
    broker,
    async close() {
      await web.close();
      await broker.close();
    },
  };
}
