// Prints supervisor/oci/contract.ts as the C header native/oci includes
// (native/oci/Makefile: node dist/supervisor/oci/contract-header.js > contract.h).

import { version } from '../cli.js';
import { cHeader } from './contract.js';

process.stdout.write(cHeader(version()));
