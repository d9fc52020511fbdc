// Fastify compiles every route's validators (AJV) and response serializers (fast-json-stringify) when
// it starts: about a quarter of a second of the agent's start here (more on a Pi), for routes most
// runs never see. These are Fastify's own compilers, each route's compiled when it is first used.
import AjvCompiler from '@fastify/ajv-compiler';
import SerializerSelector from '@fastify/fast-json-stringify-compiler';

type ValidatorFactory = AjvCompiler.ValidatorFactory;
type SerializerFactory = SerializerSelector.SerializerFactory;

export interface LazyCompilers {
  buildValidator: ValidatorFactory;
  buildSerializer: SerializerFactory;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- stands for any compiled function
type Compiled = ((...args: any[]) => any) & { errors?: unknown };

/** A schema AJV or fast-json-stringify refuses fails its route's first request (a 500), not the start. */
export function lazyCompilers(): LazyCompilers {
  /** `compile()` on the first call; the validator's `errors` (what Fastify reads after a failure) copied after each. */
  function lazily(compile: () => Compiled): Compiled {
    let compiled: Compiled | undefined;
    const call: Compiled = function (this: unknown, ...args: unknown[]) {
      const fn = (compiled ??= compile());
      const result: unknown = fn.apply(this, args);
      call.errors = fn.errors;
      return result;
    };
    return call;
  }
  const validators = AjvCompiler();
  const serializers = SerializerSelector();
  return {
    buildValidator: (externalSchemas, options) => {
      const compile = validators(externalSchemas, options);
      return (route) => {
        // Fastify lower-cases a header schema's keys only for its own compiler, and takes this one for a custom compiler.
        if (route.httpPart === 'headers')
          throw new Error(`${route.method} ${route.url}: header schemas are not supported (keys would stay as written)`);
        return lazily(() => compile(route)) as ReturnType<ReturnType<ValidatorFactory>>;
      };
    },
    buildSerializer: (externalSchemas, options) => {
      const compile = serializers(externalSchemas, options);
      return (route) => lazily(() => compile(route)) as ReturnType<ReturnType<SerializerFactory>>;
    },
  };
}
