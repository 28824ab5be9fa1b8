'use strict';
// npm pack's prepack (with "clean" its postpack): the package carries its own copy of the contract in proto/, since
// protos/ of the repository is not inside the package. A checkout reads protos/ directly (src/client.js).
const fs = require('node:fs');
const path = require('node:path');

const target = path.join(__dirname, '..', 'proto');
fs.rmSync(target, { recursive: true, force: true });
if (process.argv[2] !== 'clean') {
  fs.cpSync(path.join(__dirname, '..', '..', '..', 'protos', 'videomatch'), path.join(target, 'videomatch'), { recursive: true });
}
