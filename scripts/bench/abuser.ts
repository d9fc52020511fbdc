// The abuser of `npm run bench -- abuse`, a process of its own as it would be a machine of its own on
// the LAN: its flood must not delay the sensors' and watchers' clocks in the benchmark's process.
// Arguments: the agent's HTTP and MQTT ports, the user and password, the topic for the backtracking
// pattern. Abuses until SIGTERM. BENCH_ABUSE_KINDS=export,aggregate,...: only these kinds (export,
// graphql, aggregate, unfinished request, ws, backtracking payload), to tell what costs what.
import { connect as connectTcp, type Socket } from 'node:net';
import mqttPacket from 'mqtt-packet';
import { WebSocket } from 'ws';
import { connectRaw } from './load.js';

const [http, mqtt] = process.argv.slice(2, 4).map(Number);
const [sensorUser, sensorPassword, evilTopic, abuserName, abuserPassword] = process.argv.slice(4);
/** A request left unanswered this long is given up and sent again, as an impatient client would. */
const PATIENCE_MS = 20_000;
const headers = { authorization: `Basic ${Buffer.from(`${abuserName}:${abuserPassword}`).toString('base64')}` };

const KINDS = process.env.BENCH_ABUSE_KINDS?.split(',').map((k) => k.trim());

/** What the abuser was answered, by kind and status: `export 429` -> count. */
const answers = new Map<string, number>();
const count = (what: string) => answers.set(what, (answers.get(what) ?? 0) + 1);

/** Keeps the abuse going until stopped: each kind again as soon as it ended. */
function startAbuse(): () => void {
  const base = `http://127.0.0.1:${http}`;
  let running = true;
  const open = new Set<() => void>();
  /** `work` again and again; `end` closes what it holds open when the abuse stops. */
  const again = (kind: string, work: (hold: (end: () => void) => void) => Promise<unknown>) => {
    if (KINDS && !KINDS.includes(kind)) return;
    const loop = async () => {
      while (running) {
        let end: (() => void) | undefined;
        await work((e) => open.add((end = e))).catch(() => (count(`${kind} failed`), new Promise((r) => setTimeout(r, 100))));
        if (end) open.delete(end);
      }
    };
    void loop();
  };
  // 40 exports, each left unread once its answer began (the client holds it open).
  for (let i = 0; i < 40; i++) {
    again('export', async (hold) => {
      const c = new AbortController();
      hold(() => c.abort());
      const res = await fetch(`${base}/api/export?format=json`, { headers, signal: c.signal });
      count(`export ${res.status}`);
      if (res.status !== 200) await new Promise((r) => setTimeout(r, 1000));
      else while (running) await new Promise((r) => setTimeout(r, 500));
      c.abort();
    });
  }
  const aliases = `{ ${Array.from({ length: 100 }, (_, i) => `r${i}: readings(limit: 1, where: ["t=-999"]) { readings { seq } }`).join(' ')} }`;
  again('graphql', () =>
    fetch(`${base}/graphql`, {
      method: 'POST',
      headers: { ...headers, 'content-type': 'application/json' },
      body: JSON.stringify({ query: aliases }),
      signal: AbortSignal.timeout(PATIENCE_MS),
    }).then((r) => (count(`graphql ${r.status}`), r.text())),
  );
  for (let i = 0; i < 10; i++)
    again('aggregate', () =>
      fetch(`${base}/api/data/aggregate?topic=%23&bucket=2m`, { headers, signal: AbortSignal.timeout(PATIENCE_MS) }).then(
        (r) => (count(`aggregate ${r.status}`), r.text()),
      ),
    );
  // 300 requests whose headers never end, from one address; each again once cut off.
  for (let i = 0; i < 300; i++) {
    again(
      'unfinished request',
      (hold) =>
        new Promise<void>((resolve) => {
          const s: Socket = connectTcp({ host: '127.0.0.1', port: http, localAddress: '127.0.60.1' });
          hold(() => s.destroy());
          s.on('connect', () => s.write('GET /health/live HTTP/1.1\r\nHost: x\r\nX-Never: '));
          s.on('error', () => {});
          s.on('close', () => (count('unfinished request closed'), setTimeout(resolve, 200)));
        }),
    );
  }
  for (let i = 0; i < 64; i++) {
    again(
      'ws',
      (hold) =>
        new Promise<void>((resolve) => {
          const ws = new WebSocket(`ws://127.0.0.1:${http}/ws`, { headers, localAddress: '127.0.62.1' });
          hold(() => ws.terminate());
          ws.on('open', () => ws.send(JSON.stringify({ type: 'subscribe', topics: ['#'] })));
          ws.on('error', () => {});
          ws.on('close', (code) => (count(`ws close ${code}`), setTimeout(resolve, 500)));
        }),
    );
  }
  // Payloads for the backtracking pattern, ten a second.
  again('backtracking payload', async (hold) => {
    const { socket } = await connectRaw(mqtt, `evil-${process.pid}`, sensorUser, sensorPassword);
    hold(() => socket.destroy());
    for (let n = 0; running && !socket.destroyed; n++) {
      socket.write(
        mqttPacket.generate({
          cmd: 'publish',
          topic: evilTopic,
          payload: JSON.stringify({ s: `${'a'.repeat(5000 + (n % 100))}!` }),
          qos: 0,
          retain: false,
          dup: false,
        } as mqttPacket.Packet),
      );
      count('backtracking payload');
      await new Promise((r) => setTimeout(r, 100));
    }
  });
  return () => {
    running = false;
    open.forEach((end) => end());
  };
}

const stop = startAbuse();
// On SIGTERM: what it was answered, one JSON line, then out.
process.on('SIGTERM', () => {
  stop();
  console.log(JSON.stringify({ msg: 'answers', answers: Object.fromEntries([...answers].sort()) }));
  process.exit(0);
});
console.log(JSON.stringify({ msg: 'ready', listeners: {} }));
