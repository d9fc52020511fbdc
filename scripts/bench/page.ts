// npm run bench -- page: the status page's first usable render in headless Chromium (Debian's),
// throttled as a phone on the Pi's Wi-Fi might be, against the Swagger UI page the same agent
// serves at /api/docs (a well-known page of the same server, under the same conditions): time to
// the login form (the page) or the API's title (Swagger UI), and bytes over the wire. Median of 5
// fresh browser contexts each.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import { UserStore } from '../../agent/users/store.js';
import { launchChromium, PHONE_ON_WIFI, throttle } from '../browser.js';
import { startBenchAgent } from './agent.js';
import { median, printTable } from './report.js';

const RUNS = 5;

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
    const traffic = await throttle(page);
    await page.goto(url);
    await page.locator(ready).first().waitFor();
    const ms = await page.evaluate(() => performance.now());
    return { ms, bytes: traffic.bytes };
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
  const browser = await launchChromium();
  try {
    const base = `http://127.0.0.1:${agent.port('http')}`;
    // The bench agent's users file (read again when it changes) gets a web user for Swagger UI.
    const admin = { username: 'bench-admin', password: 'bench-admin-password' };
    await new UserStore(join(dir, 'users.json')).add(admin.username, admin.password, ['admin']);
    const swagger = await measure(browser, `${base}/api/docs/`, '.swagger-ui .info .title', admin);
    const page = await measure(browser, `${base}/`, '#username', undefined);
    printTable(
      `page: the status page's first usable render against Swagger UI's (/api/docs) from the same agent; headless Chromium, ${PHONE_ON_WIFI}; median of ${RUNS}`,
      [
        {
          name: 'first usable render, ms',
          baselineName: 'Swagger UI',
          baseline: swagger.ms,
          value: page.ms,
          target: 1,
          higherIsBetter: false,
        },
        {
          name: 'bytes over the wire, kB',
          baselineName: 'Swagger UI',
          baseline: swagger.bytes / 1000,
          value: page.bytes / 1000,
          target: 1,
          higherIsBetter: false,
        },
      ],
    );
  } finally {
    await browser.close();
    await agent.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
