// Debian's Chromium, headless, driven by playwright-core: for the status page's tests and its
// benchmark. `throttle` makes a page see the network and CPU a phone on the Pi's Wi-Fi might have.
import { chromium, type Browser, type Page } from 'playwright-core';

export const CHROMIUM = '/usr/bin/chromium';

export function launchChromium(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--headless', '--no-sandbox', '--disable-gpu'] });
}

/** 20 Mbit/s with 20 ms latency, the CPU 4x slower than this machine: a phone on the Pi's Wi-Fi, roughly. */
export const PHONE_ON_WIFI = '20 Mbit/s, 20 ms latency, CPU 4x slower';
const NETWORK = { offline: false, latency: 20, downloadThroughput: 2.5e6, uploadThroughput: 2.5e6 };
const CPU_SLOWDOWN = 4;

/** What the page has loaded so far, counted as it goes. */
export interface Traffic {
  bytes: number;
  requests: number;
}

/** Throttle a page (before it loads anything) as PHONE_ON_WIFI says, and count its traffic. */
export async function throttle(page: Page): Promise<Traffic> {
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Network.enable');
  await cdp.send('Network.emulateNetworkConditions', NETWORK);
  await cdp.send('Emulation.setCPUThrottlingRate', { rate: CPU_SLOWDOWN });
  const traffic = { bytes: 0, requests: 0 };
  cdp.on('Network.loadingFinished', (e) => {
    traffic.bytes += e.encodedDataLength;
    traffic.requests++;
  });
  return traffic;
}
