/**
 * GET /api/openapi.json and the interactive reference at GET /api/docs.
 *
 * The page is Swagger UI from the `swagger-ui-dist` package (pinned by package-lock.json), its
 * files served by this route from node_modules: the page loads nothing from anywhere but this
 * service (its Content-Security-Policy says so to the browser), works offline, and runs no
 * third-party script on the admin cookie's origin.
 *
 * The document declares how each route authenticates (`security`), from the same table the
 * authentication gate reads (app.ts PUBLIC_ROUTES): the session cookie by default, none for
 * public routes, the X-Webhook-Secret header for the instances' routes, a bearer token for /metrics.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { VERSION } from '../version.ts';
import type { Router } from './router.ts';

/** The security schemes a route may name (components.securitySchemes of the document). */
export const SECURITY_SCHEMES = {
  sessionCookie: {
    type: 'apiKey',
    in: 'cookie',
    name: 'next-auth.session-token',
    description:
      'The session cookie set by POST /api/auth/callback/credentials (named __Secure-next-auth.session-token over https). State-changing requests must come from this origin (README "Security").',
  },
  webhookSecret: {
    type: 'apiKey',
    in: 'header',
    name: 'X-Webhook-Secret',
    description: "The annotator's per-start webhook secret, known only to its Label Studio instance (with X-Annotator-Id on /api/webhook).",
  },
  metricsToken: { type: 'http', scheme: 'bearer', description: 'METRICS_TOKEN' },
} as const;
export type SecurityScheme = keyof typeof SECURITY_SCHEMES;

const ASSETS: Record<string, string> = {
  'swagger-ui.css': 'text/css; charset=utf-8',
  'swagger-ui-bundle.js': 'text/javascript; charset=utf-8',
};

const PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>LabelFleet API</title>
<link rel="stylesheet" href="/api/docs/swagger-ui.css">
</head>
<body>
<div id="docs"></div>
<script src="/api/docs/swagger-ui-bundle.js"></script>
<script src="/api/docs/init.js"></script>
</body>
</html>
`;

// validatorUrl null: Swagger UI would otherwise send the document to a public validator.
const INIT = `window.ui = SwaggerUIBundle({ url: '/api/openapi.json', dom_id: '#docs', validatorUrl: null, deepLinking: true });\n`;

/** Only this service: scripts and styles from here (Swagger UI sets inline styles), no framing. */
const PAGE_CSP =
  "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

/**
 * Serves the docs page, its assets and /api/openapi.json. `securityOf` names each document path's
 * credential; `finish` adds what other modules document across routes (openapi-pipeline.ts).
 */
export function registerDocs(
  app: Router,
  securityOf: (documentPath: string) => SecurityScheme | 'none' | 'session',
  finish: (doc: OpenApiDocument) => OpenApiDocument = (doc) => doc,
) {
  const dist = path.dirname(createRequire(import.meta.url).resolve('swagger-ui-dist/package.json'));
  const files = new Map<string, Buffer>();
  const asset = (name: string) => {
    let body = files.get(name);
    if (!body) files.set(name, (body = readFileSync(path.join(dist, name))));
    return body;
  };

  for (const [name, type] of Object.entries(ASSETS)) {
    app.get(`/api/docs/${name}`, (c) =>
      c.body(new Uint8Array(asset(name)), 200, { 'Content-Type': type, 'Cache-Control': 'public, max-age=3600' }),
    );
  }
  app.get('/api/docs/init.js', (c) => c.body(INIT, 200, { 'Content-Type': 'text/javascript; charset=utf-8' }));
  app.get('/api/docs', (c) => c.html(PAGE, 200, { 'Content-Security-Policy': PAGE_CSP }));

  for (const [name, scheme] of Object.entries(SECURITY_SCHEMES)) app.openAPIRegistry.registerComponent('securitySchemes', name, scheme);
  app.openAPIRegistry.registerPath({
    method: 'get',
    path: '/metrics',
    tags: ['system'],
    summary: 'Prometheus metrics (404 unless METRICS_TOKEN is set)',
    responses: {
      200: { description: 'Prometheus text exposition', content: { 'text/plain': { schema: { type: 'string' } } } },
      401: { description: 'Missing or wrong bearer token' },
      404: { description: 'METRICS_TOKEN is not set' },
    },
  });

  let document: unknown;
  app.get('/api/openapi.json', (c) => {
    document ??= finish(
      withSecurity(
        app.getOpenAPI31Document({
          openapi: '3.1.0',
          info: { title: 'LabelFleet admin API', version: VERSION, description: 'See README.md for conventions.' },
          security: [{ sessionCookie: [] }],
        }) as unknown as OpenApiDocument,
        securityOf,
      ),
    );
    return c.json(document as object, 200);
  });
}

export interface OpenApiDocument {
  paths?: Record<string, Record<string, { security?: unknown }>>;
}

/** Sets each operation's `security` unless it is the document's default (the session cookie). */
function withSecurity(doc: OpenApiDocument, securityOf: (documentPath: string) => SecurityScheme | 'none' | 'session') {
  for (const [documentPath, operations] of Object.entries(doc.paths ?? {})) {
    const scheme = securityOf(documentPath);
    if (scheme === 'session') continue;
    for (const operation of Object.values(operations)) operation.security = scheme === 'none' ? [] : [{ [scheme]: [] }];
  }
  return doc;
}
