'use strict';
// Streams ten gray frames of a window panning over a texture and prints each pair's median motion.
//   node clients/node/examples/stream.js [host:port]
const { VideoMatchClient } = require('../src/client');
const { texture, crop, medianMotion } = require('../support/scenes');

async function main() {
  const client = new VideoMatchClient(process.argv[2] || '127.0.0.1:50051');
  const picture = texture(600, 800);
  const stream = client.openStream({ name: 'node-example' });
  const printing = (async () => {
    for await (const result of stream) {
      if (result.kind === 'pair') {
        const [dx, dy] = medianMotion(result.matches);
        console.log(`frames ${result.sequence0}->${result.sequence1}: ${result.matches.count} matches, median motion (${dx.toFixed(2)}, ${dy.toFixed(2)}) px`);
      } else {
        console.log(`frame ${result.sequence}: ${result.code} ${result.message}`);
      }
    }
  })();
  for (let i = 0; i < 10; i++) await stream.send(crop(picture, 20 + 4 * i, 20 + 2 * i, 640, 480));
  stream.end();
  await printing;
  client.close();
}

main().catch((error) => { console.error(error.message); process.exit(1); });
