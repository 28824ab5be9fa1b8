// Compiles under strict TypeScript against the package's types (test/package.test.js); never run.
import { MAX_PIXELS, ResumePoint, StreamResult, VideoMatchClient, grpc, prepareImage } from 'videomatch-client';

export async function use(): Promise<number> {
  const client = new VideoMatchClient('10.0.0.7:50051,10.0.0.8:50051', { apiKey: 'key', model: '', credentials: grpc.credentials.createInsecure() });
  const info = await client.modelInfo();
  const width: number = info.inputWidth;
  const serving: boolean = (await client.listModels()).models.every((m) => m.serving);
  const pair = await client.matchPair('a.jpg', Buffer.alloc(8), { threshold: 0.3, estimate: 'homography', maxPixels: null });
  const first: [number, number] = pair.keypoints0[0];
  const matrix: number[] | null = pair.transform?.matrix ?? null;
  const gray = new Uint8Array(width * info.inputHeight);
  const results: StreamResult[] = await client.stream([{ gray, width, height: info.inputHeight }], {
    resume: true, trackIds: true, keyframes: true, maxAttempts: 3, resumeDeadlineMs: 5000,
    onMove: (move) => { const after: number | null = move.lastAnswered; void after; void move.resent; },
  });
  let matched = 0;
  for (const r of results) {
    if (r.kind === 'pair') matched += r.matches.count + r.matches.trackIds.length + (r.newKeyframe ? 1 : 0) + r.timings.batchSize;
    else if (r.code === 'DROPPED') matched -= r.sequence;
  }
  const moving = client.openStream({ resume: true, maxUnanswered: 8, onMove: (move) => { matched += move.attempts; } });
  await moving.send('a.png');
  moving.end();
  const stream = client.openStream({ name: 'camera-1', estimate: 'similarity' });
  await stream.send({ rgb: Buffer.alloc(12), width: 2, height: 2 }, 0);
  stream.end();
  for await (const r of stream) matched += r.kind === 'status' ? r.message.length : r.sequence1;
  const point = new ResumePoint(false);
  const ready: boolean = point.canResume;
  const scale: number = prepareImage(new URL('file:///a.png'), MAX_PIXELS).scaleX;
  client.close();
  return matched + first[0] + (matrix ? matrix[0] : 0) + (serving && ready ? scale : 0);
}
