// Preloaded into kinesis-mock (node --require) by scripts/emulators.sh.
// kinesis-local hard-codes its listen host to 0.0.0.0 (no setting for it),
// which node turns into server.listen(port, cb): every interface. A test
// emulator has no business on the network, so a listen() that names a port
// but no host is pinned to 127.0.0.1 here.
'use strict';
const net = require('net');
const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  if (typeof args[0] === 'number' && (args.length === 1 || typeof args[1] === 'function')) {
    args.splice(1, 0, '127.0.0.1');
  }
  return listen.apply(this, args);
};
