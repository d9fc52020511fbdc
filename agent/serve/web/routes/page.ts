// The status page: static files built by scripts/build-page.ts (dist/page; in the single executable,
// assets written out at start), served without credentials (the page logs in through the API) and
// precompressed. Its script and stylesheet carry a content hash in their names: cached for good;
// index.html is checked every time, with a policy that lets it load only the agent's own files.
import { dirname } from 'node:path';
import fastifyStatic from '@fastify/static';
import type { FastifyPluginAsync } from 'fastify';
import { findUp } from '../../../lib/find-up.js';
import { assetPath, isSea } from '../../../lib/sea.js';

/** Where the built page is: the build's (dist/page), or the single executable's assets. */
export function pageFolder(): string | undefined {
  if (isSea()) return dirname(assetPath('web/page/index.html'));
  const index = findUp('dist/page/index.html');
  return index && dirname(index);
}

const POLICY = [
  "default-src 'self'",
  "connect-src 'self'",
  "img-src 'self' data:",
  "style-src 'self'",
  "script-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

export const pageRoutes: FastifyPluginAsync<{ root: string }> = async (app, { root }) => {
  // Every file of the page is public: it holds no data; what it shows comes from the API.
  app.addHook('onRoute', (route) => {
    route.config = { ...(route.config as object), access: 'public' };
  });
  await app.register(fastifyStatic, {
    root,
    wildcard: false,
    preCompressed: true,
    index: ['index.html'],
    globIgnore: ['**/*.br', '**/*.gz'],
    setHeaders(res, path: string) {
      res.header('X-Content-Type-Options', 'nosniff');
      if (path.replace(/\.(br|gz)$/, '').endsWith('.html')) {
        res.header('Cache-Control', 'no-cache');
        res.header('Content-Security-Policy', POLICY);
        res.header('X-Frame-Options', 'DENY');
        res.header('Referrer-Policy', 'no-referrer');
      } else res.header('Cache-Control', 'public, max-age=31536000, immutable');
    },
  });
};
