'use strict';
// The client under test: the installed package when VIDEOMATCH_CLIENT_PACKAGE names its folder (test.sh packs this
// folder with npm pack and installs the tarball), else this folder's source.
const path = require('node:path');

const folder = process.env.VIDEOMATCH_CLIENT_PACKAGE ? path.resolve(process.env.VIDEOMATCH_CLIENT_PACKAGE) : path.resolve(__dirname, '..');
module.exports = { folder, installed: Boolean(process.env.VIDEOMATCH_CLIENT_PACKAGE), client: require(folder) };
