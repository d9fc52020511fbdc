// Waits a stop can end (agent/lib/sleep.ts). A sink's write has a deadline that fires even after the
// garbage collector has run: Node holds `AbortSignal.timeout()` weakly, and inside `AbortSignal.any()`
// it is collected before it fires (nodejs/node#57736); a stalled sink then waited for ever (the chaos
// outage test met it under load).
import { execFileSync } from 'node:child_process';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';

const SLEEP = pathToFileURL(resolve(import.meta.dirname, '../../dist/agent/lib/sleep.js')).href;

/** `script` run as a module in a child with the collector exposed; what it prints. */
function inChild(script: string): string {
  return execFileSync(process.execPath, ['--expose-gc', '--input-type=module', '-e', script], { encoding: 'utf8' }).trim();
}

/** Does a write waiting on the signal end within 1 s? */
function ends(make: string): string {
  return inChild(`
    import { withDeadline } from ${JSON.stringify(SLEEP)};
    const stop = new AbortController();
    const stalled = (signal) => new Promise((resolve) => signal.addEventListener('abort', () => resolve('aborted')));
    (async () => { for (let i = 0; i < 20; i++) { await new Promise((r) => setImmediate(r)); globalThis.gc(); } })();
    const never = new Promise((resolve) => setTimeout(() => resolve('never'), 1000));
    console.log(await Promise.race([${make}, never]));`);
}

describe('waits a stop can end', () => {
  it('fires though the collector ran; AbortSignal.any with AbortSignal.timeout does not', () => {
    expect(ends('withDeadline(50, stop.signal, stalled)')).toBe('aborted');
    // The control: the same wait built the plain way never ends, so the collector did its part here.
    expect(ends('stalled(AbortSignal.any([AbortSignal.timeout(50), stop.signal]))')).toBe('never');
  });

  it('ends early when stopped, and returns what the work returns', async () => {
    const { withDeadline } = (await import(SLEEP)) as typeof import('../../agent/lib/sleep.js');
    const stop = new AbortController();
    const stopped = withDeadline(
      60_000,
      stop.signal,
      (signal) => new Promise((res) => signal.addEventListener('abort', () => res(signal.reason))),
    );
    stop.abort(new Error('stopping'));
    expect(((await stopped) as Error).message).toBe('stopping');
    expect(await withDeadline(1000, stop.signal, async () => 42)).toBe(42);
  });
});
