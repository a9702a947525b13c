#!/usr/bin/env -S -u NODE_EXTRA_CA_CERTS node
// `tendril`. CommonJS, and the whole cold path in one bundled file: this is
// what `tendril run` pays before the guest starts. NODE_EXTRA_CA_CERTS is
// dropped (tendril makes no TLS connection): Node would read the CA bundle
// it names at every start, tripling its start-up on hosts that set it.
'use strict';
require('./built.cjs').load('tendril', (m) => m.main(process.argv.slice(2)));
