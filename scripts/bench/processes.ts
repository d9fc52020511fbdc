// Child processes a benchmark measures: each prints a JSON `ready` line with its listeners.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';

export interface Started {
  proc: ChildProcess;
  listeners: Record<string, string>;
  port(name: string): number;
  stop(): Promise<void>;
}

/** `program`: this Node by default (args start with the script), or another executable (the single executable). */
export async function startProcess(args: string[], env: NodeJS.ProcessEnv = {}, program = process.execPath): Promise<Started> {
  const proc = spawn(program, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise<void>((r) => proc.on('exit', () => r()));
  const listeners = await new Promise<Record<string, string>>((resolve, reject) => {
    createInterface({ input: proc.stdout! }).on('line', (line) => {
      if (line.includes('"msg":"ready"')) resolve(JSON.parse(line).listeners);
    });
    exited.then(() => reject(new Error(`${args.join(' ')} exited before it was ready`)));
  });
  return {
    proc,
    listeners,
    port: (name) => Number(listeners[name].slice(listeners[name].lastIndexOf(':') + 1)),
    async stop() {
      proc.kill('SIGTERM');
      await exited;
    },
  };
}

/**
 * Stops a process that floods the agent (the abuser, the guessers) and prints, when stopped, one
 * `{"msg":"answers"}` JSON line: what it was answered (`export 429` -> count).
 */
export async function stopAndCount(flood: Started): Promise<Record<string, number>> {
  let out = '';
  flood.proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  await flood.stop();
  const line = out.split('\n').find((l) => l.includes('"msg":"answers"'));
  return line ? (JSON.parse(line) as { answers: Record<string, number> }).answers : {};
}

/** A figure of /proc/<pid>/status in kB (VmRSS, RssAnon), as MB. */
export function statusMb(pid: number, key: string): number {
  return Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;
}

/** User + system CPU time so far, ms: of a process (all its threads), or of one of its threads. */
export function cpuMs(pid: number, thread?: number): number {
  const fields = readFileSync(thread === undefined ? `/proc/${pid}/stat` : `/proc/${pid}/task/${thread}/stat`, 'utf8')
    .split(') ')[1]
    .split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100; // utime, stime in clock ticks (USER_HZ 100)
}
