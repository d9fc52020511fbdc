// npm run bench -- page: the status page's first usable render in headless Chromium (Debian's),
// throttled as a phone on the Pi's Wi-Fi might be, against the Swagger UI page the same agent
// serves at /api/docs (a well-known page of the same server, under the same conditions): time to
// the login form (the page) or the API's title (Swagger UI), and bytes over the wire. Median of 5
// fresh browser contexts each.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { UserStore } from '../../agent/users/store.js';
import { startBenchAgent } from './agent.js';
import { median, printTable } from './report.js';

const RUNS = 5;
/** 20 Mbit/s with 20 ms latency, the CPU 4x slower than this machine: a phone on the Pi's Wi-Fi, roughly. */
const NETWORK = { offline: false, latency: 20, downloadThroughput: 2.5e6, uploadThroughput: 2.5e6 };
const CPU_SLOWDOWN = 4;

interface Render {
  ms: number;
  bytes: number;
}

type Credentials = { username: string; password: string } | undefined;

async function firstRender(browser: Browser, url: string, ready: string, credentials: Credentials): Promise<Render> {
  // Swagger UI sits behind HTTP Basic; the status page asks for nothing (its login form is the render).
  const context = await browser.newContext(credentials ? { httpCredentials: credentials } : {});
  try {
    const page = await context.newPage();
    const cdp = await context.newCDPSession(page);
    await cdp.send('Network.enable');
    await cdp.send('Network.emulateNetworkConditions', NETWORK);
    await cdp.send('Emulation.setCPUThrottlingRate', { rate: CPU_SLOWDOWN });
    let bytes = 0;
    cdp.on('Network.loadingFinished', (e) => (bytes += e.encodedDataLength));
    await page.goto(url);
    await page.locator(ready).first().waitFor();
    const ms = await page.evaluate(() => performance.now());
    return { ms, bytes };
  } finally {
    await context.close();
  }
}

async function measure(browser: Browser, url: string, ready: string, credentials: Credentials): Promise<Render> {
  const runs: Render[] = [];
  for (let i = 0; i < RUNS; i++) runs.push(await firstRender(browser, url, ready, credentials));
  return { ms: median(runs.map((r) => r.ms)), bytes: median(runs.map((r) => r.bytes)) };
}

export async function benchPage(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-page-'));
  const agent = await startBenchAgent(dir);
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true, args: ['--headless', '--no-sandbox', '--disable-gpu'] });
  try {
    const base = `http://127.0.0.1:${agent.port('http')}`;
    // The bench agent's users file (read again when it changes) gets a web user for Swagger UI.
    const admin = { username: 'bench-admin', password: 'bench-admin-password' };
    await new UserStore(join(dir, 'users.json')).add(admin.username, admin.password, ['admin']);
    const swagger = await measure(browser, `${base}/api/docs/`, '.swagger-ui .info .title', admin);
    const page = await measure(browser, `${base}/`, '#username', undefined);
    printTable(`page: the status page's first usable render against Swagger UI's (/api/docs) from the same agent; headless Chromium, 20 Mbit/s, 20 ms latency, CPU ${CPU_SLOWDOWN}x slower; median of ${RUNS}`, [
      { name: 'first usable render, ms', baseline: swagger.ms, value: page.ms, target: 1, higherIsBetter: false },
      { name: 'bytes over the wire, kB', baseline: swagger.bytes / 1000, value: page.bytes / 1000, target: 1, higherIsBetter: false },
    ]);
  } finally {
    await browser.close();
    await agent.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
