// Which sysfs GPIO number a line has. The sysfs interface numbers every chip's lines from the chip's
// base: on Raspberry Pi OS kernels before 6.6 the header chip's base was 0 (GPIO17 was 17); from 6.6
// on it is 512 or more (GPIO17 is 529 on a Pi 4; the Pi 5's RP1 chip starts at 571). So a line is
// found by the chip's label and the base the kernel gave it, read from /sys/class/gpio/gpiochip*/.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

export interface GpioChip {
  /** Its sysfs folder, e.g. gpiochip512. */
  name: string;
  label: string;
  base: number;
  lines: number;
}

/** Labels of the chips that carry a Raspberry Pi's 40-pin header (Pi 5, Pi 4, earlier ones). */
const PI_HEADER_CHIPS = ['pinctrl-rp1', 'pinctrl-bcm2712', 'pinctrl-bcm2711', 'pinctrl-bcm2835'];

export class GpioChipError extends Error {}

export function listChips(sysfsPath: string): GpioChip[] {
  const dir = join(sysfsPath, 'class/gpio');
  if (!existsSync(dir)) throw new GpioChipError(`${dir} does not exist: this kernel has no sysfs GPIO (or this machine no GPIO)`);
  const read = (chip: string, file: string) => readFileSync(join(dir, chip, file), 'utf8').trim();
  return readdirSync(dir)
    .filter((name) => name.startsWith('gpiochip'))
    .map((name) => ({ name, label: read(name, 'label'), base: Number(read(name, 'base')), lines: Number(read(name, 'ngpio')) }))
    .filter((c) => Number.isInteger(c.base) && Number.isInteger(c.lines))
    .sort((a, b) => a.base - b.base);
}

/** The chip with this label; `auto`: the Pi's header chip, else the only chip there is. */
export function pickChip(chips: GpioChip[], want: string): GpioChip {
  const labels = chips.map((c) => `${c.label} (${c.name})`).join(', ') || 'none';
  if (want !== 'auto') {
    const chip = chips.find((c) => c.label === want);
    if (!chip) throw new GpioChipError(`gpio.chip: no GPIO chip is labelled ${want}; there are: ${labels}`);
    return chip;
  }
  for (const label of PI_HEADER_CHIPS) {
    const chip = chips.find((c) => c.label === label);
    if (chip) return chip;
  }
  if (chips.length === 1) return chips[0];
  throw new GpioChipError(`gpio.chip: not a Raspberry Pi's header chip among ${labels}: name one by its label`);
}

/** The sysfs number of a line of a chip. */
export function sysfsNumber(chip: GpioChip, line: number): number {
  if (line >= chip.lines) throw new GpioChipError(`line ${line}: ${chip.label} has lines 0-${chip.lines - 1}`);
  return chip.base + line;
}
