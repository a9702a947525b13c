// The commands run the compiled supervisor in dist/. A checkout that was never
// built (no `npm install`), or an installation missing a dependency, would
// otherwise end in an ERR_MODULE_NOT_FOUND stack trace.

/** Imports dist/SUBPATH, or says in one line what is missing and exits 1. */
export async function importBuilt(prog, subpath) {
  try {
    return await import(new URL(`../dist/${subpath}`, import.meta.url).href);
  } catch (e) {
    if (e?.code !== 'ERR_MODULE_NOT_FOUND') throw e;
    process.stderr.write(`${prog}: ${String(e.message).split('\n')[0]}; tendril is not built or not completely installed ` +
      '(in a checkout: npm install; otherwise reinstall tendril)\n');
    process.exit(1);
  }
}
