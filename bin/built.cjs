// The commands run the bundled supervisor (dist/bundle/tendril.cjs). A
// checkout that was never built (no `npm install`), or an installation
// missing a dependency, would otherwise end in a MODULE_NOT_FOUND stack trace.
'use strict';
const { join } = require('node:path');

/** Runs fn(bundle) and exits with its status, or says in one line what is missing. */
exports.load = (prog, fn) => {
  let m;
  try {
    m = require(join(__dirname, '../dist/bundle/tendril.cjs'));
  } catch (e) {
    if (e?.code !== 'MODULE_NOT_FOUND') throw e;
    process.stderr.write(`${prog}: ${String(e.message).split('\n')[0]}; tendril is not built or not completely installed ` +
      '(in a checkout: npm install; otherwise reinstall tendril)\n');
    process.exit(1);
  }
  fn(m).then((code) => { process.exitCode = code; });
};
