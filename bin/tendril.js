#!/usr/bin/env node
import { importBuilt } from './built.js';

const { main } = await importBuilt('tendril', 'supervisor/cli.js');
process.exitCode = await main(process.argv.slice(2));
