// The Pi-style alternative benchmarks measure against: Mosquitto without persistence and a Python
// paho subscriber writing SQLite (pi-pipeline.py).
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { projectRoot } from '../project-root.js';
import { startMosquitto, type ServerProcess } from '../servers.js';

const PIPELINE = join(projectRoot(), 'scripts/bench/pi-pipeline.py');

export interface Pipeline {
  broker: ServerProcess;
  /** Rows the subscriber has committed to SQLite (it says so after each transaction). */
  stored(): number;
  /** The broker's and the subscriber's process ids. */
  pids: number[];
  stop(): Promise<void>;
}

/** Mosquitto and the subscriber writing `dbPath`, once it has subscribed. */
export async function startPipeline(dbPath: string): Promise<Pipeline> {
  const broker = await startMosquitto();
  const python = spawn('/usr/bin/python3', [PIPELINE, String(broker.port), dbPath], { stdio: ['ignore', 'pipe', 'inherit'] });
  const stop = async () => {
    python.kill();
    await broker.stop();
  };
  let stored = 0;
  try {
    await new Promise<void>((ready, fail) => {
      createInterface({ input: python.stdout! }).on('line', (line) => {
        if (line === 'ready') ready();
        else if (line.startsWith('stored ')) stored = Number(line.slice(7));
      });
      python.on('exit', (code) => fail(new Error(`pi-pipeline.py exited with ${code} (is python3-paho-mqtt installed?)`)));
    });
  } catch (err) {
    await stop();
    throw err;
  }
  return { broker, pids: [broker.pid!, python.pid!], stored: () => stored, stop };
}
