#!/usr/bin/env node
import { main } from '../dist/supervisor/cli.js';

process.exitCode = await main(process.argv.slice(2));
