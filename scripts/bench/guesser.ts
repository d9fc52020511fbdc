// The guessers of `npm run bench -- login`, a process of their own as they would be machines of their
// own on the LAN: their flood must not delay the clock of the sensor whose logins the benchmark times.
// Arguments: the agent's MQTT port, how many guessers (each from its own loopback address). Guesses
// until SIGTERM, then prints what it was answered as one JSON line.
import net from 'node:net';
import mqttPacket from 'mqtt-packet';

const [port, guessers] = process.argv.slice(2, 4).map(Number);

/** What the guessers were answered: `CONNACK 4`, `closed`, `error` -> count. */
const answers: Record<string, number> = {};
const open = new Set<net.Socket>();
let running = true;

/** One guesser from its own source address: a wrong password, again as soon as it is answered. */
async function guess(address: string): Promise<void> {
  for (let n = 0; running; n++) {
    const code = await new Promise<string>((resolve) => {
      const socket = net.connect({ port, host: '127.0.0.1', localAddress: address });
      open.add(socket);
      socket.on('connect', () =>
        socket.write(
          mqttPacket.generate({
            cmd: 'connect',
            protocolId: 'MQTT',
            protocolVersion: 4,
            clean: true,
            keepalive: 60,
            clientId: `guess-${address}-${n}`,
            username: `user-${n % 5}`,
            password: Buffer.from(`wrong-${n}`),
          }),
        ),
      );
      socket.on('data', (d) => {
        socket.destroy();
        resolve(d.length >= 4 ? `CONNACK ${d[3]}` : 'short');
      });
      socket.on('error', () => resolve('error'));
      socket.on('close', () => (open.delete(socket), resolve('closed')));
    });
    if (running) answers[code] = (answers[code] ?? 0) + 1;
  }
}

for (let i = 0; i < guessers; i++) void guess(`127.0.40.${i + 1}`);
process.on('SIGTERM', () => {
  running = false;
  open.forEach((s) => s.destroy());
  console.log(JSON.stringify({ msg: 'answers', answers }));
  process.exit(0);
});
console.log(JSON.stringify({ msg: 'ready', listeners: {} }));
