// Every benchmark module, in the order `npm run bench` runs them. A new
// module is one line here; bench/run.ts says how to write one.

import { bench as block } from './block.js';
import { bench as cold } from './cold.js';
import type { Bench } from './common.js';
import { bench as footprint } from './footprint.js';
import { bench as isolate } from './isolate.js';
import { bench as launch } from './launch.js';
import { bench as net } from './net.js';
import { bench as oci } from './oci.js';
import { bench as record } from './record.js';
import { bench as snapshot } from './snapshot.js';
import { bench as soak } from './soak.js';

export const MODULES: Bench[] = [cold, launch, soak, footprint, net, block, snapshot, record, oci, isolate];
