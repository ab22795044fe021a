/**
 * The layers of OpenDIP, checked on every `npm test` (as VS Code checks its layers) instead of hoped for.
 *
 *   domain      pure rules and types: imports nothing of ours but domain
 *   ports       the interfaces the pipeline needs from storage and the outside world: domain only
 *   logging     what pipeline and adapters log alike (a throttled warning): domain and ports only
 *   catalogue   the MHHS interfaces as data, and validation
 *   security    signing, PKI, at-rest encryption, access checks
 *   pipeline    ingest → route → deliver, replay, status, lifecycle: knows ports, never adapters
 *   adapters    SQLite, PostgreSQL, NATS, HTTP, mail: implement ports
 *   api         HTTP listeners and routes
 *   portal      the user and operator portals (server-rendered pages): pipeline and security, never api or adapters
 *   app.ts      the composition root: the only place adapters meet the pipeline (with cli and sim)
 *   assemble    one module per subsystem's wiring, used by app.ts (the composition root, split up) and by
 *               src/topology/delivery-process.ts (a delivery process's own composition root)
 *   cli, sim    commands and tools on top
 *   client      a participant's client: domain and security only, so it stays usable on its own
 *   openapi-client  the typed API clients generated from the listeners' OpenAPI documents: nothing of ours
 * Arrows point inward; nothing imports api, cli or app except the layers above them.
 */
const layer = (name, path, mayNotImport) => ({
  name: `${name}-layer`,
  severity: 'error',
  comment: `${name} may not import ${mayNotImport.join(', ')}`,
  from: { path },
  to: { path: `^src/(${mayNotImport.join('|')})` },
});

module.exports = {
  forbidden: [
    {
      name: 'domain-is-pure',
      severity: 'error',
      comment: 'the domain core imports nothing of ours but the domain',
      from: { path: '^src/domain/' },
      to: { path: '^src/', pathNot: '^src/domain/' },
    },
    {
      name: 'ports-are-interfaces',
      severity: 'error',
      comment: 'ports import the domain and each other only',
      from: { path: '^src/ports/' },
      to: { path: '^src/', pathNot: '^src/(domain|ports)/' },
    },
    {
      name: 'logging-is-shared',
      severity: 'error',
      comment: 'logging is used by pipeline and adapters alike, so imports only the domain and ports',
      from: { path: '^src/logging/' },
      to: { path: '^src/', pathNot: '^src/(domain|ports|logging)/' },
    },
    layer('catalogue', '^src/catalogue/', ['pipeline', 'adapters', 'api', 'cli', 'sim', 'client', 'assemble', 'app\\.ts', 'config\\.ts']),
    layer('security', '^src/security/', ['pipeline', 'adapters', 'api', 'cli', 'sim', 'client', 'assemble', 'app\\.ts', 'config\\.ts']),
    layer('pipeline', '^src/pipeline/', ['adapters', 'api', 'cli', 'sim', 'client', 'assemble', 'app\\.ts', 'config\\.ts']),
    layer('adapters', '^src/adapters/', ['pipeline', 'api', 'cli', 'sim', 'assemble', 'app\\.ts']),
    layer('api', '^src/api/', ['adapters', 'portal', 'cli', 'sim', 'assemble', 'app\\.ts']),
    layer('portal', '^src/portal/', ['adapters', 'api', 'cli', 'sim', 'client', 'assemble', 'app\\.ts']),
    layer('client', '^src/client/', ['pipeline', 'adapters', 'api', 'cli', 'sim', 'assemble', 'app\\.ts', 'config\\.ts']),
    {
      name: 'no-circular',
      severity: 'error',
      comment: 'import cycles make the order of initialisation an accident',
      from: { path: '^src/' },
      to: { circular: true },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
  },
};
