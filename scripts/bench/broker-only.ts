// The embedded broker alone, configured from an agent config file exactly as the runtime does,
// without ingest: what `bench broker` compares with bare Aedes.
import { loadConfig } from '../../agent/config-schema.js';
import { createLogger } from '../../agent/lib/logger.js';
import { brokerOptions } from '../../agent/runtime/index.js';
import { startBroker } from '../../embedded-broker/index.js';

const { config } = loadConfig(process.argv[2]);
const broker = await startBroker(brokerOptions(config, createLogger(config.log.level)));
console.log(JSON.stringify({ msg: 'ready', listeners: broker.listeners }));
process.on('SIGTERM', () => broker.close().then(() => process.exit(0)));
