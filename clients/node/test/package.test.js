'use strict';
// The client as its users install it: the package that npm pack makes (test.sh installs its tarball and points
// VIDEOMATCH_CLIENT_PACKAGE at it), with the contract inside and TypeScript types that strict code compiles against.
const test = require('node:test');
const assert = require('node:assert');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const { folder, installed } = require('../support/subject');

const here = path.resolve(__dirname, '..');
const tsc = path.join(here, 'node_modules', 'typescript', 'bin', 'tsc');

/** Type-checks one file of test/types against the package's types under strict TypeScript; returns tsc's result. */
function typeCheck(file) {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'videomatch-types-'));
  try {
    fs.writeFileSync(path.join(work, 'tsconfig.json'), JSON.stringify({
      compilerOptions: {
        strict: true, noEmit: true, target: 'es2022', lib: ['es2022'], module: 'commonjs', moduleResolution: 'node10',
        // The package's own index.d.ts is checked too (no skipLibCheck); 'videomatch-client' is the folder under test.
        types: ['node'], typeRoots: [path.join(here, 'node_modules', '@types')], baseUrl: work, paths: { 'videomatch-client': [folder] },
      },
      files: [path.join(__dirname, 'types', file)],
    }));
    const run = spawnSync(process.execPath, [tsc, '-p', work, '--pretty', 'false'], { encoding: 'utf8', timeout: 120000 });
    return { status: run.status, output: `${run.stdout}${run.stderr}` };
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

test('the tests run against the installed package, which carries the contract and its types', (t) => {
  t.diagnostic(`videomatch-client from ${folder}`);
  if (!installed) {
    t.skip('VIDEOMATCH_CLIENT_PACKAGE is not set: test.sh installs the packed tarball and sets it');
    return;
  }
  assert.ok(!folder.startsWith(here + path.sep), `the tests used the source folder ${folder}, not an installed package`);
  const manifest = JSON.parse(fs.readFileSync(path.join(folder, 'package.json'), 'utf8'));
  assert.strictEqual(manifest.types, 'index.d.ts');
  assert.ok(fs.existsSync(path.join(folder, 'index.d.ts')));
  assert.ok(fs.existsSync(path.join(folder, 'proto', 'videomatch', 'v1', 'videomatch.proto')), 'the package has no copy of the contract');
  assert.strictEqual(fs.readFileSync(path.join(folder, 'proto', 'videomatch', 'v1', 'videomatch.proto'), 'utf8'),
    fs.readFileSync(path.join(here, '..', '..', 'protos', 'videomatch', 'v1', 'videomatch.proto'), 'utf8'), 'the packed contract is not protos/');
  assert.ok(!fs.existsSync(path.join(folder, 'test')), 'the tests were packed');
});

test('strict TypeScript compiles code that uses the whole client', () => {
  const run = typeCheck('usage.ts');
  assert.strictEqual(run.status, 0, run.output);
});

test('the types refuse misuse: a number as an image, a status read as a pair, an unknown transform model', () => {
  const run = typeCheck('misuse.ts');
  assert.notStrictEqual(run.status, 0, 'misuse.ts type-checked');
  const lines = [...run.output.matchAll(/misuse\.ts\((\d+),\d+\): error TS\d+/g)].map((m) => Number(m[1]));
  assert.deepStrictEqual([...new Set(lines)].sort((a, b) => a - b), [5, 7, 8], run.output);
});
