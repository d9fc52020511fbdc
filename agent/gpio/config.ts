// The `gpio` section of the config: input lines that become readings, a status LED, an alarm output
// and a UPS HAT's power-fail input.
import { Type, type Static } from '@sinclair/typebox';
import { strict } from '../config/keys.js';

const line = Type.Integer({
  minimum: 0,
  maximum: 1023,
  description: 'line offset on the GPIO chip (the BCM number on a Pi: GPIO17 is 17), not the sysfs number',
});
const activeLow = Type.Boolean({ default: false, description: 'the line reads (or drives) 0 when active' });

const Input = Type.Object(
  {
    name: Type.String({ pattern: '^[A-Za-z0-9._-]+$', description: "the input's name" }),
    line,
    edge: Type.Union([Type.Literal('rising'), Type.Literal('falling'), Type.Literal('both')], {
      default: 'both',
      description: 'which changes become readings (after active-low: rising = becoming active)',
    }),
    debounceMs: Type.Integer({
      minimum: 0,
      maximum: 10000,
      default: 20,
      description: 'a change counts once the line has kept its level this long',
    }),
    activeLow,
    topic: Type.Optional(
      Type.String({
        minLength: 1,
        description: 'topic of its readings (default gpio/<name>); payload {"value":0|1,"edge":"rising"|"falling"}',
      }),
    ),
  },
  strict,
);

export const GpioConfigSchema = Type.Object(
  {
    driver: Type.Union([Type.Literal('none'), Type.Literal('sysfs'), Type.Literal('simulated')], {
      default: 'none',
      description:
        "none: no GPIO; sysfs: the kernel's GPIO lines through onoff (/sys/class/gpio; user in group gpio); simulated: lines in memory (machines without GPIO, tests)",
    }),
    chip: Type.String({
      minLength: 1,
      default: 'auto',
      description: "label of the GPIO chip the lines are on (see /sys/class/gpio/gpiochip*/label); auto: the Raspberry Pi's header chip",
    }),
    sysfsPath: Type.String({ minLength: 1, default: '/sys', description: 'where sysfs is mounted' }),
    inputs: Type.Array(Input, {
      default: [],
      description: 'input lines whose changes become readings, through ingest like any MQTT reading',
    }),
    statusLed: Type.Optional(
      Type.Object(
        { line, activeLow },
        {
          ...strict,
          description:
            "an LED showing the agent's state: steady (ok), slow blink (degraded: a sink failing, an alert firing), double blink (offline with a backlog), fast blink (error: a part of the data path not working)",
        },
      ),
    ),
    alarm: Type.Optional(
      Type.Object(
        {
          line,
          activeLow,
          alerts: Type.Array(Type.String({ minLength: 1 }), {
            default: [],
            description: 'alert names (a trailing * matches a prefix) that turn it on; empty: any alert',
          }),
        },
        { ...strict, description: 'a relay or buzzer, on while an alert fires' },
      ),
    ),
    powerFail: Type.Optional(
      Type.Object(
        {
          line,
          activeLow,
          debounceMs: Type.Integer({ minimum: 0, maximum: 10000, default: 100, description: 'the line must stay active this long' }),
          command: Type.Array(Type.String({ minLength: 1 }), {
            default: [],
            description:
              'run once the log is flushed (e.g. ["sudo", "/usr/sbin/poweroff"]; systemd then stops the agent cleanly); empty: the agent stops itself',
          }),
        },
        {
          ...strict,
          description: "a UPS HAT's power-fail input: when it becomes active the log is flushed and the agent shuts down cleanly",
        },
      ),
    ),
  },
  { ...strict, default: {} },
);

export type GpioConfig = Static<typeof GpioConfigSchema>;
export type GpioInputConfig = Static<typeof Input>;

/** Two uses of one line, or two inputs of one name, cannot both work. */
export function gpioProblems(gpio: GpioConfig): string[] {
  const problems: string[] = [];
  const uses = new Map<number, string>();
  const names = new Set<string>();
  const use = (key: string, n: number) => {
    const other = uses.get(n);
    if (other) problems.push(`${key}: line ${n} is also ${other}`);
    else uses.set(n, key);
  };
  gpio.inputs.forEach((input, i) => {
    if (names.has(input.name)) problems.push(`gpio.inputs[${i}].name: another input is named ${input.name}`);
    names.add(input.name);
    use(`gpio.inputs[${i}].line`, input.line);
  });
  if (gpio.statusLed) use('gpio.statusLed.line', gpio.statusLed.line);
  if (gpio.alarm) use('gpio.alarm.line', gpio.alarm.line);
  if (gpio.powerFail) use('gpio.powerFail.line', gpio.powerFail.line);
  return problems;
}
