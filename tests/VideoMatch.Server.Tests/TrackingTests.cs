using System.Numerics;
using Google.Protobuf;
using Grpc.Core;
using VideoMatch.Contracts.V1;
using VideoMatch.Synthetic;
using VideoMatch.Tests;

namespace VideoMatch.Server.Tests;

/// <summary>Keyframe mode and track ids over gRPC, on synthetic camera motion with known truth.</summary>
public sealed class TrackingTests : IClassFixture<ServerFactory>
{
    private static readonly int Width = TestServerSettings.ModelWidth;
    private static readonly int Height = TestServerSettings.ModelHeight;
    private static readonly TexturedScene SceneA = new(seed: 31);
    private static readonly TexturedScene SceneB = new(seed: 32);
    private readonly ServerFactory _server;

    public TrackingTests(ServerFactory server) => _server = server;


    [Fact]
    public async Task Keyframes_SlowPan_EveryFrameMatchedAgainstTheFirstWithItsTotalMotion()
    {
        var frames = Enumerable.Range(0, 6).Select(i => Render(SceneA, Pan(2.5f * i, -1f * i))).ToArray();

        var responses = await StreamAsync(new StreamConfig { Keyframes = true, Estimate = TransformModel.Similarity, RekeyMinInliers = 30 }, frames);

        Assert.Equal(FrameStatusCode.FirstFrame, responses[0].Status.Code);
        for (var i = 1; i < frames.Length; i++)
        {
            var pair = responses[i].Pair;
            Assert.Equal(0ul, pair.Sequence0);
            Assert.Equal((ulong)i, pair.Sequence1);
            Assert.False(pair.NewKeyframe);
            // The content moves opposite to the window: frame 0 → frame i is a shift of (−2.5 i, +i).
            Assert.Equal(-2.5 * i, pair.Transform.Matrix[2], 0.5);
            Assert.Equal(1.0 * i, pair.Transform.Matrix[5], 0.5);
        }
    }

    [Fact]
    public async Task Keyframes_SceneCut_ReKeysAtTheCutAndMatchesLaterFramesAgainstIt()
    {
        // Frames 0–3 show scene A, 4–8 scene B. All are sent at once, so frames after the cut are first queued
        // against the old keyframe and must be matched again against the new one.
        var frames = Enumerable.Range(0, 9).Select(i => i < 4 ? Render(SceneA, Pan(i, 0)) : Render(SceneB, Pan(i, 0))).ToArray();

        var responses = await StreamAsync(new StreamConfig { Keyframes = true, Estimate = TransformModel.Similarity, RekeyMinInliers = 30 }, frames);

        var pairs = responses.Skip(1).Select(r => r.Pair).ToArray();
        Assert.All(pairs, p => Assert.NotNull(p));
        Assert.Equal([0ul, 0ul, 0ul, 0ul, 4ul, 4ul, 4ul, 4ul], pairs.Select(p => p.Sequence0));
        Assert.Equal([false, false, false, true, false, false, false, false], pairs.Select(p => p.NewKeyframe));
        Assert.True(pairs[3].Transform.Inliers < 30, $"the cut pair kept {pairs[3].Transform.Inliers} inliers");
        foreach (var pair in pairs.Skip(4))
        {
            Assert.Equal(-(double)(pair.Sequence1 - 4), pair.Transform.Matrix[2], 0.5);
        }
    }

    [Fact]
    public async Task Keyframes_SentAllAtOnce_AnswersAsIfPairsRanOneAfterAnother()
    {
        // Two cuts and motion that leaves the keyframe's view: the lock-step answers are the reference.
        var frames = Enumerable.Range(0, 10).Select(i => Render(i is >= 3 and < 7 ? SceneB : SceneA, Pan(6f * i, 0))).ToArray();
        var config = new StreamConfig { Keyframes = true, RekeyMinInliers = 120 };

        var pipelined = await StreamAsync(config, frames);
        var lockStep = await StreamLockStepAsync(config, frames);

        Assert.Equal(Describe(lockStep), Describe(pipelined));
        Assert.Contains(lockStep, r => r.Pair?.NewKeyframe == true);
    }

    [Fact]
    public async Task TrackIds_ConsecutivePairs_PointsKeepTheirIdsAlongTheMotion()
    {
        var frames = Enumerable.Range(0, 6).Select(i => Render(SceneA, Pan(3.3f * i, 1.7f * i))).ToArray();

        var responses = await StreamAsync(new StreamConfig { TrackIds = true }, frames);

        var pairs = responses.Skip(1).Select(r => r.Pair).ToArray();
        Assert.Equal(5, pairs.Length);
        // The default radius: half a coarse cell (8 px) of the embedded model, frames at the model size.
        const double radius = 4;
        for (var k = 0; k < pairs.Length; k++)
        {
            var matches = pairs[k].Matches;
            Assert.Equal((int)matches.Count, matches.TrackIds.Count);
            Assert.Equal(matches.TrackIds.Count, matches.TrackIds.Distinct().Count());
            if (k == 0)
            {
                Assert.Equal(Enumerable.Range(1, (int)matches.Count).Select(i => (ulong)i), matches.TrackIds);
                continue;
            }

            // A kept id: its point in the shared frame (frame k) lies within the radius in both pairs.
            var before = pairs[k - 1].Matches;
            var where = before.TrackIds.Select((id, i) => (id, i)).ToDictionary(x => x.id, x => x.i);
            var kept = 0;
            for (var m = 0; m < matches.TrackIds.Count; m++)
            {
                if (where.TryGetValue(matches.TrackIds[m], out var b))
                {
                    kept++;
                    var dx = matches.Keypoints0[2 * m] - before.Keypoints1[2 * b];
                    var dy = matches.Keypoints0[2 * m + 1] - before.Keypoints1[2 * b + 1];
                    Assert.True(Math.Sqrt((dx * dx) + (dy * dy)) <= radius + 1e-4, $"id {matches.TrackIds[m]} jumped {Math.Sqrt((dx * dx) + (dy * dy)):F2} px");
                }
                else
                {
                    Assert.True(matches.TrackIds[m] > before.TrackIds.Max(), "a new point reused an id");
                }
            }

            Assert.True(kept >= 0.7 * Math.Min(matches.Count, before.Count), $"pair {k}: only {kept} of {matches.Count} ids kept");
        }

        // Tracks run through the whole sequence.
        var everywhere = pairs.Select(p => p.Matches.TrackIds.ToHashSet()).Aggregate((a, b) => [.. a.Intersect(b)]);
        Assert.True(everywhere.Count >= 50, $"{everywhere.Count} ids persist over all 6 frames");
    }

    [Fact]
    public async Task TrackIds_KeyframeMode_KeyframePointsKeepTheirIds()
    {
        var frames = Enumerable.Range(0, 4).Select(i => Render(SceneA, Pan(2f * i, 0))).ToArray();

        var responses = await StreamAsync(new StreamConfig { TrackIds = true, Keyframes = true, RekeyMinInliers = 1, TrackRadiusPx = 0.5f }, frames);

        var pairs = responses.Skip(1).Select(r => r.Pair).ToArray();
        // Image-0 points of a dense matcher sit on the keyframe's grid: the same points, so the same ids.
        for (var k = 1; k < pairs.Length; k++)
        {
            var ids = pairs[k].Matches.TrackIds;
            for (var m = 0; m < ids.Count; m++)
            {
                var b = pairs[k - 1].Matches.TrackIds.IndexOf(ids[m]);
                if (b >= 0)
                {
                    Assert.Equal(pairs[k - 1].Matches.Keypoints0[2 * b], pairs[k].Matches.Keypoints0[2 * m], 0.5);
                }
            }

            var shared = ids.Intersect(pairs[k - 1].Matches.TrackIds).Count();
            Assert.True(shared >= 0.8 * Math.Min(ids.Count, pairs[k - 1].Matches.TrackIds.Count), $"pair {k}: {shared} shared ids");
        }
    }

    [Fact]
    public async Task TrackIds_NotAsked_NoIds()
    {
        var responses = await StreamAsync(new StreamConfig(), [Render(SceneA, Pan(0, 0)), Render(SceneA, Pan(1, 0))]);

        Assert.True(responses[1].Pair.Matches.Count > 0);
        Assert.Empty(responses[1].Pair.Matches.TrackIds);
        Assert.False(responses[1].Pair.NewKeyframe);
    }

    [Theory]
    [InlineData(false, 10u, false, 0f, "rekey_min_inliers is set but keyframes is not")]
    [InlineData(false, 0u, false, 2f, "track_radius_px is set but track_ids is not")]
    [InlineData(false, 0u, true, -1f, "track_radius_px must be in [0, 1000]")]
    [InlineData(true, 0u, true, float.PositiveInfinity, "track_radius_px must be in [0, 1000]")]
    public async Task Config_BadTrackingOptions_InvalidArgumentNamingTheField(bool keyframes, uint rekey, bool trackIds, float radius, string message)
    {
        using var call = _server.Client.MatchStream(deadline: Limits.Deadline);
        await call.RequestStream.WriteAsync(new StreamRequest { Config = new StreamConfig { Keyframes = keyframes, RekeyMinInliers = rekey, TrackIds = trackIds, TrackRadiusPx = radius } });

        var error = await Assert.ThrowsAsync<RpcException>(() => call.ResponseStream.MoveNext(CancellationToken.None));

        Assert.Equal(StatusCode.InvalidArgument, error.StatusCode);
        Assert.Contains(message, error.Status.Detail, StringComparison.Ordinal);
    }

    private async Task<List<StreamResponse>> StreamAsync(StreamConfig config, Image[] frames)
    {
        var responses = await Streams.RunAsync(_server.Client, config, frames.Select((image, i) => new Frame { Sequence = (ulong)i, Image = image }));

        Assert.Equal(frames.Length, responses.Count);
        return responses;
    }

    private async Task<List<StreamResponse>> StreamLockStepAsync(StreamConfig config, Image[] frames)
    {
        using var call = _server.Client.MatchStream(deadline: Limits.Deadline);
        await call.RequestStream.WriteAsync(new StreamRequest { Config = config });
        var responses = new List<StreamResponse>();
        for (var i = 0; i < frames.Length; i++)
        {
            await call.RequestStream.WriteAsync(new StreamRequest { Frame = new Frame { Sequence = (ulong)i, Image = frames[i] } });
            Assert.True(await call.ResponseStream.MoveNext(CancellationToken.None));
            responses.Add(call.ResponseStream.Current);
        }

        await call.RequestStream.CompleteAsync();
        Assert.False(await call.ResponseStream.MoveNext(CancellationToken.None));
        return responses;
    }

    private static string[] Describe(List<StreamResponse> responses) =>
        [.. responses.Select(r => r.Pair is { } p ? $"{p.Sequence0}->{p.Sequence1} key={p.NewKeyframe} matches={p.Matches.Count}" : $"{r.Status.Sequence} {r.Status.Code}")];

    private static Matrix3x2 Pan(float x, float y) => Matrix3x2.CreateTranslation(80 + x, 60 + y);

    private static Image Render(TexturedScene scene, Matrix3x2 view)
    {
        var gray = new byte[Width * Height];
        scene.RenderGray(Width, Height, view, gray);
        return new Image { Raw = new RawImage { Format = PixelFormat.Gray8, Width = (uint)Width, Height = (uint)Height, Data = ByteString.CopyFrom(gray) } };
    }
}
