// The real driver: the kernel's sysfs GPIO interface through onoff (edges by epoll). onoff numbers
// lines the sysfs way, so each line is turned into chip base + offset first (chip.ts).
import type { Gpio as OnoffGpio } from 'onoff';
import { listChips, pickChip, sysfsNumber } from './chip.js';
import type { GpioDriver, Level } from './driver.js';

export async function sysfsDriver(sysfsPath: string, chipLabel: string): Promise<GpioDriver> {
  const chip = pickChip(listChips(sysfsPath), chipLabel);
  // Loaded only here: onoff loads a native addon (epoll) that machines without GPIO need not load.
  const { Gpio } = (await import('onoff')) as unknown as { Gpio: typeof OnoffGpio & { accessible: boolean } };
  if (!Gpio.accessible) throw new Error('GPIO is not accessible: run the agent as a user in group gpio');
  const open: OnoffGpio[] = [];
  const release = (g: OnoffGpio) => {
    g.unwatchAll();
    g.unexport();
    open.splice(open.indexOf(g), 1);
  };
  return {
    description: `sysfs ${chip.label} (${chip.name}, base ${chip.base})`,
    input(line, changed) {
      const g = new Gpio(sysfsNumber(chip, line), 'in', 'both');
      open.push(g);
      g.watch((err, value) => {
        if (!err) changed(value as Level);
      });
      return { read: () => g.readSync() as Level, close: () => release(g) };
    },
    output(line, initial) {
      const g = new Gpio(sysfsNumber(chip, line), initial ? 'high' : 'low');
      open.push(g);
      return { write: (level) => g.writeSync(level), close: () => release(g) };
    },
    close() {
      for (const g of [...open]) release(g);
    },
  };
}
