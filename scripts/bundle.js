// The commands' cold path in one file: dist/bundle/tendril.cjs, made by
// esbuild from the compiled dist/ (`tendril run` is what fast-boot users pay
// for, and Node loads one CommonJS file far faster than ~30 ES modules:
// measured in `npm run bench`, "cold"). Verbs stay lazy: each is
// initialised only when asked for, and the packages they need (fastify,
// pino, minimist, koffi's addon) are required from node_modules, not
// copied in. tendril-oci's create of a unikernel (the one Node start of a
// container's creation, run by native/oci) is a second bundle,
// dist/bundle/tendril-oci-create.cjs. The tests use dist/ as compiled.

import { rmSync } from 'node:fs';
import { join } from 'node:path';

export async function bundle(root) {
  const { build } = await import('esbuild');
  rmSync(join(root, 'dist/bundle'), { recursive: true, force: true });
  const common = {
    bundle: true,
    format: 'cjs',
    platform: 'node',
    target: 'node20',
    external: ['koffi', 'pino', 'fastify', 'minimist'],
    // dist/bundle is as deep as dist/supervisor, so paths made from import.meta.url stay right.
    define: { 'import.meta.url': 'import_meta_url' },
    banner: { js: "const import_meta_url = require('node:url').pathToFileURL(__filename).href;" },
    logLevel: 'warning',
  };
  await build({
    ...common,
    stdin: {
      contents: "export { main, report } from './supervisor/cli.js';\nexport { runVerb } from './supervisor/verbs/run.js';\n",
      resolveDir: join(root, 'dist'),
      sourcefile: 'tendril-entry.js',
    },
    outfile: join(root, 'dist/bundle/tendril.cjs'),
  });
  await build({
    ...common,
    stdin: {
      contents: "import { createMain } from './supervisor/oci/create-main.js';\ncreateMain(process.argv.slice(2));\n",
      resolveDir: join(root, 'dist'),
      sourcefile: 'tendril-oci-create-entry.js',
    },
    outfile: join(root, 'dist/bundle/tendril-oci-create.cjs'),
  });
}
