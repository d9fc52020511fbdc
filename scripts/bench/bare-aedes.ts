// Baseline: a bare Aedes broker (in-memory persistence, no hooks), as a separate process.
import net from 'node:net';
import { Aedes } from 'aedes';

const broker = await Aedes.createBroker();
const server = net.createServer(broker.handle);
server.listen(0, '127.0.0.1', () => {
  console.log(JSON.stringify({ msg: 'ready', listeners: { mqtt: `127.0.0.1:${(server.address() as net.AddressInfo).port}` } }));
});
process.on('SIGTERM', () => server.close(() => broker.close(() => process.exit(0))));
