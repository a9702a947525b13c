#!/usr/bin/env node
// tendril-oci: an OCI runtime (runc's command line) for containerd's shim.
import { importBuilt } from './built.js';

const { main } = await importBuilt('tendril-oci', 'supervisor/oci/cli.js');
process.exitCode = await main(process.argv.slice(2));
