// A small JSON file the CLI may change while the agent runs: re-read when its mtime changes,
// written atomically (temp file, rename) with mode 0600.
import { mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

export class JsonFile<T> {
  private cache: { mtimeMs: number; data: T } | undefined;

  constructor(
    readonly path: string,
    private readonly empty: () => T,
  ) {}

  read(): T {
    let mtimeMs: number;
    try {
      mtimeMs = statSync(this.path).mtimeMs;
    } catch {
      return this.empty();
    }
    if (this.cache?.mtimeMs !== mtimeMs)
      this.cache = { mtimeMs, data: { ...this.empty(), ...(JSON.parse(readFileSync(this.path, 'utf8')) as T) } };
    return this.cache.data;
  }

  /** Changes whenever the file does. */
  revision(): number {
    try {
      return statSync(this.path).mtimeMs;
    } catch {
      return 0;
    }
  }

  write(data: T): void {
    mkdirSync(dirname(this.path), { recursive: true, mode: 0o700 });
    const tmp = `${this.path}.tmp-${process.pid}`;
    writeFileSync(tmp, JSON.stringify(data, null, 2) + '\n', { mode: 0o600 });
    renameSync(tmp, this.path);
    this.cache = undefined;
  }
}
