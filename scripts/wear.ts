// SD-card wear where the card sees it: a data directory on ext4 on a loop device, whose own count of
// sectors written includes the filesystem's journal and metadata (what /proc/PID/io misses), and
// sensors that publish as real ones do: a reading a second each, at their own moments. Root only.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import mqttPacket from 'mqtt-packet';
import { askAgent, controlSocketPath } from '../agent/control/socket.js';
import { connectRaw } from './bench/load.js';

export interface LoopDisk {
  /** The mounted filesystem (empty, mode 0700). */
  dir: string;
  /** Bytes the filesystem sent to the device since it was made. */
  written(): number;
  /** Write back what the filesystem holds dirty (sync), so a count includes it. */
  flush(): void;
  close(): void;
}

/** An ext4 filesystem of `mb` MB on a loop device, mounted noatime as Raspberry Pi OS mounts its root. */
export function loopDisk(mb: number): LoopDisk {
  const work = mkdtempSync(join(tmpdir(), 'loop-disk-'));
  const image = join(work, 'disk.img');
  const dir = join(work, 'mnt');
  mkdirSync(dir);
  execFileSync('truncate', ['-s', `${mb}M`, image]);
  // Inode tables and the journal zeroed now, not by ext4's background thread during the count.
  execFileSync('mkfs.ext4', ['-q', '-F', '-E', 'lazy_itable_init=0,lazy_journal_init=0', image]);
  const device = execFileSync('losetup', ['-f', '--show', image], { encoding: 'utf8' }).trim();
  try {
    execFileSync('mount', ['-o', 'noatime', device, dir]);
    execFileSync('chmod', ['0700', dir]);
  } catch (err) {
    execFileSync('losetup', ['-d', device]);
    throw err;
  }
  const stat = `/sys/block/${basename(device)}/stat`;
  return {
    dir,
    written: () => Number(readFileSync(stat, 'utf8').trim().split(/\s+/)[6]) * 512, // field 7: sectors written
    flush: () => execFileSync('sync', ['-f', dir]),
    close() {
      execFileSync('umount', ['-l', dir]);
      execFileSync('losetup', ['-d', device]);
      rmSync(work, { recursive: true, force: true });
    },
  };
}

export interface SensorOptions {
  port: number;
  sensors: number;
  /** Readings per second of each sensor. */
  hz: number;
  qos: 0 | 1;
  topic(sensor: number): string;
  payload(sensor: number, n: number): Buffer;
  username?: string;
  password?: string;
}

export interface Sensors {
  /** Readings sent so far, and of those QoS 1 ones acknowledged. */
  readonly sent: number;
  readonly acked: number;
  /** PUBACK latency of each acknowledged reading, ms. */
  readonly latenciesMs: number[];
  /** Stop publishing; resolves once every QoS 1 reading sent was acknowledged (or after 10 s). */
  stop(): Promise<void>;
}

/** Sensors that each publish `hz` readings a second, each at its own phase, like real ones. */
export async function startSensors(opts: SensorOptions): Promise<Sensors> {
  const latenciesMs: number[] = [];
  let sent = 0;
  let acked = 0;
  const timers: NodeJS.Timeout[] = [];
  // One after another, as sensors come up: the broker holds only a few logins per address at once.
  const connections: Awaited<ReturnType<typeof connectRaw>>[] = [];
  for (let i = 0; i < opts.sensors; i++)
    connections.push(await connectRaw(opts.port, `sensor-${i}-${process.pid}`, opts.username, opts.password));
  const period = 1000 / opts.hz;
  connections.forEach(({ socket, reader }, i) => {
    const sentAt = new Map<number, number>();
    reader((type, body) => {
      if (type !== 4) return;
      const id = body.readUInt16BE(0);
      latenciesMs.push(performance.now() - sentAt.get(id)!);
      sentAt.delete(id);
      acked++;
    });
    let n = 0;
    const publish = () => {
      const messageId = (n % 65535) + 1;
      if (opts.qos === 1) sentAt.set(messageId, performance.now());
      socket.write(
        mqttPacket.generate({
          cmd: 'publish',
          topic: opts.topic(i),
          payload: opts.payload(i, n),
          qos: opts.qos,
          messageId,
          retain: false,
          dup: false,
        } as mqttPacket.Packet),
      );
      n++;
      sent++;
    };
    // Each sensor's own moment within the period, then its period.
    timers.push(setTimeout(() => timers.push(setInterval(publish, period)), Math.random() * period));
  });
  return {
    get sent() {
      return sent;
    },
    get acked() {
      return acked;
    },
    latenciesMs,
    async stop() {
      for (const t of timers) clearTimeout(t);
      const deadline = Date.now() + 10_000;
      while (opts.qos === 1 && acked < sent && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      for (const { socket } of connections) socket.end(mqttPacket.generate({ cmd: 'disconnect' } as mqttPacket.Packet));
    },
  };
}

/** A 70-byte reading like a hobby sensor's: `{"t":21.53,"h":48.2,"p":1013.2,"n":123,"id":"s3","b":3.71}`. */
export function hobbyPayload(sensor: number, n: number): Buffer {
  const json = JSON.stringify({
    t: +(20 + ((n * 7 + sensor) % 50) / 10).toFixed(2),
    h: +(40 + (n % 30) / 10).toFixed(1),
    p: 1013.2,
    n,
    id: `s${sensor}`,
    b: 3.71,
  });
  return Buffer.from(json.padEnd(70, ' '));
}

export interface WearRun {
  readings: number;
  seconds: number;
  /** Bytes the device saw per reading, and per day at this rate. */
  bytesPerReading: number;
  bytesPerDay: number;
  /** PUBACK latency, QoS 1 only: p50, p99 and max, ms. */
  puback?: { p50: number; p99: number; max: number };
}

const percentileOf = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))];

/**
 * Publish on `sensors` for `warmUpSec` (files made, caches warm), then count what the disk is sent
 * over `seconds`. At both ends `settle` has what waits written (the agent's store and rollups gather
 * for minutes when readings are few: a query makes them write), then a sync has the kernel write what
 * it holds dirty, so the count holds the writes of the readings published in it, whole.
 */
export async function measureWear(
  disk: LoopDisk,
  sensorOpts: SensorOptions,
  warmUpSec: number,
  seconds: number,
  settle: () => Promise<void>,
): Promise<WearRun> {
  const sensors = await startSensors(sensorOpts);
  await new Promise((r) => setTimeout(r, warmUpSec * 1000));
  const sentBefore = sensors.sent;
  await settle();
  disk.flush();
  const before = disk.written();
  const latencyFrom = sensors.latenciesMs.length;
  const started = performance.now();
  await new Promise((r) => setTimeout(r, seconds * 1000));
  const readings = sensors.sent - sentBefore;
  const elapsed = (performance.now() - started) / 1000;
  await sensors.stop();
  await settle();
  disk.flush();
  const bytes = disk.written() - before;
  const latencies = sensors.latenciesMs.slice(latencyFrom);
  const perSecond = readings / elapsed;
  return {
    readings,
    seconds: elapsed,
    bytesPerReading: bytes / readings,
    bytesPerDay: (bytes / readings) * perSecond * 86400,
    ...(sensorOpts.qos === 1 && latencies.length
      ? {
          puback: {
            p50: percentileOf(latencies, 50),
            p99: percentileOf(latencies, 99),
            max: latencies.reduce((a, b) => Math.max(a, b), 0),
          },
        }
      : {}),
  };
}

/**
 * Have the agent's store and rollups write what they gathered (`edge-agent sync flush`, through the
 * control socket in its data directory): the count then holds their writes of the readings in it.
 */
export function settleAgent(dataDir: string): () => Promise<void> {
  return async () => {
    const answer = (await askAgent(controlSocketPath(dataDir), '/sync/flush', 'POST')) as
      { store?: boolean; rollups?: boolean } | undefined;
    if (!answer || answer.store === false || answer.rollups === false) throw new Error(`sync flush: ${JSON.stringify(answer)}`);
  };
}
