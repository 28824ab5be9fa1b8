// Each marked line must fail type-checking (test/package.test.js counts the errors and their lines).
import { VideoMatchClient } from 'videomatch-client';

export async function misuse(client: VideoMatchClient): Promise<void> {
  await client.stream([42]); // error: a number is no image
  const results = await client.stream(['a.png']);
  void results[0].sequence0; // error: a status result has no sequence0 (narrow on kind first)
  await client.matchPair('a.png', 'b.png', { estimate: 'projective' }); // error: no such transform model
}
