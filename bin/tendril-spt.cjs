#!/usr/bin/env -S -u NODE_EXTRA_CA_CERTS node
// Drop-in for solo5-spt: `tendril-spt ARGS` is `tendril run ARGS` (see tendril.cjs).
'use strict';
require('./built.cjs').load('tendril-spt', async (m) => {
  try {
    return await m.runVerb(process.argv.slice(2), 'tendril-spt');
  } catch (e) {
    return m.report('tendril-spt', e);
  }
});
