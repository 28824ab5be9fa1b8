using System.Numerics;
using Grpc.Core;
using VideoMatch.Contracts.V1;
using VideoMatch.Tests;

namespace VideoMatch.Server.Tests;

public sealed class StreamingTests(ServerFactory server) : IClassFixture<ServerFactory>
{

    [Fact]
    public async Task MatchStream_ShiftedTexturedSequence_RecoversEveryShiftWithinOnePixel()
    {
        var video = new SyntheticVideo(seed: 21);
        var offsets = SyntheticVideo.Offsets(seed: 1, count: 7);

        var responses = await Streams.RunAsync(server.Client, new StreamConfig { StreamName = "shifts" },
            offsets.Select((o, i) => video.Frame((ulong)(100 + i), o)));

        Assert.Equal(offsets.Length, responses.Count);
        Assert.Equal(FrameStatusCode.FirstFrame, responses[0].Status.Code);
        Assert.Equal(100UL, responses[0].Status.Sequence);
        for (var i = 1; i < offsets.Length; i++)
        {
            var pair = responses[i].Pair;
            Assert.NotNull(pair);
            Assert.Equal((ulong)(99 + i), pair.Sequence0);
            Assert.Equal((ulong)(100 + i), pair.Sequence1);
            Assert.Equal((long)(100 + i) * 33_333, pair.Timestamp1Us);
            Assert.InRange(pair.Timings.BatchSize, 1u, 8u);
            MatchAssertions.RecoversMotion(pair.Matches, SyntheticVideo.Motion(offsets[i - 1], offsets[i]));
        }
    }

    [Fact]
    public async Task MatchStream_ConcurrentStreams_EachGetsItsOwnPairsInOrder()
    {
        const int streams = 4;
        const int frames = 6;
        var runs = Enumerable.Range(0, streams).Select(async s =>
        {
            var video = new SyntheticVideo(seed: 100 + s);
            var offsets = SyntheticVideo.Offsets(seed: 10 + s, count: frames);
            var responses = await Streams.RunAsync(server.Client, new StreamConfig { StreamName = $"camera-{s}" },
                offsets.Select((o, i) => video.Frame((ulong)(s * 1000 + i), o)));
            return (s, offsets, responses);
        });

        foreach (var (s, offsets, responses) in await Task.WhenAll(runs).WaitAsync(Limits.Call))
        {
            Assert.Equal(frames, responses.Count);
            for (var i = 1; i < frames; i++)
            {
                Assert.Equal((ulong)(s * 1000 + i - 1), responses[i].Pair.Sequence0);
                Assert.Equal((ulong)(s * 1000 + i), responses[i].Pair.Sequence1);
                MatchAssertions.RecoversMotion(responses[i].Pair.Matches, SyntheticVideo.Motion(offsets[i - 1], offsets[i]));
            }
        }
    }

    [Fact]
    public async Task MatchStream_BatchedAndOneAtATime_GiveEqualMatches()
    {
        using var single = new ServerFactory(new Dictionary<string, string?> { ["Batching:MaxBatchSize"] = "1" });
        using var batched = new ServerFactory(new Dictionary<string, string?> { ["Batching:MaxBatchSize"] = "8", ["Batching:MaxBatchDelayMs"] = "200" });

        var alone = await RunStreamsAsync(single.Client);
        var together = await RunStreamsAsync(batched.Client);

        Assert.Contains(together.SelectMany(r => r), r => r.Pair?.Timings.BatchSize > 1);
        Assert.All(alone.SelectMany(r => r), r => Assert.True(r.Pair is null || r.Pair.Timings.BatchSize == 1));
        for (var s = 0; s < alone.Length; s++)
        {
            for (var i = 1; i < alone[s].Count; i++)
            {
                var a = alone[s][i].Pair.Matches;
                var b = together[s][i].Pair.Matches;
                Assert.Equal(a.Count, b.Count);
                Assert.Equal(a.Keypoints0, b.Keypoints0);
                for (var k = 0; k < a.Keypoints1.Count; k++)
                {
                    Assert.Equal(a.Keypoints1[k], b.Keypoints1[k], 0.01f);
                }
            }
        }

        static async Task<List<StreamResponse>[]> RunStreamsAsync(VideoMatcher.VideoMatcherClient client) =>
            await Task.WhenAll(Enumerable.Range(0, 3).Select(s =>
            {
                var video = new SyntheticVideo(seed: 50 + s);
                return Streams.RunAsync(client, new StreamConfig { MatchThreshold = 0.2f },
                    SyntheticVideo.Offsets(seed: 70 + s, count: 4).Select((o, i) => video.Frame((ulong)i, o)));
            })).WaitAsync(Limits.Call);
    }

    [Fact]
    public async Task MatchStream_MaxMatchesAndThreshold_AreHonoured()
    {
        var video = new SyntheticVideo(seed: 8);
        var responses = await Streams.RunAsync(server.Client, new StreamConfig { MatchThreshold = 0.5f, MaxMatches = 25 },
            [video.Frame(1, Vector2.Zero), video.Frame(2, new Vector2(2.5f, -1.5f))]);

        var matches = responses[1].Pair.Matches;
        Assert.Equal(25u, matches.Count);
        Assert.All(matches.Scores, s => Assert.True(s > 0.5f));
    }

    [Fact]
    public async Task MatchStream_DropModeAndStreamFull_AnswersDroppedInOrder()
    {
        // One pair in flight per stream, and a batch that waits 2 s for company: frames 3 and 4 find the slot taken.
        using var dropping = new ServerFactory(new Dictionary<string, string?>
        {
            ["Streaming:Overflow"] = "Drop",
            ["Streaming:MaxPendingPairsPerStream"] = "1",
            ["Batching:MaxBatchDelayMs"] = "2000",
        });
        var video = new SyntheticVideo(seed: 17);

        var responses = await Streams.RunAsync(dropping.Client, new StreamConfig(),
            Enumerable.Range(1, 4).Select(i => video.Frame((ulong)i, new Vector2(i, 0))));

        Assert.Equal(FrameStatusCode.FirstFrame, responses[0].Status.Code);
        Assert.Equal((1UL, 2UL), (responses[1].Pair.Sequence0, responses[1].Pair.Sequence1));
        Assert.Equal((FrameStatusCode.Dropped, 3UL), (responses[2].Status.Code, responses[2].Status.Sequence));
        Assert.Equal((FrameStatusCode.Dropped, 4UL), (responses[3].Status.Code, responses[3].Status.Sequence));
        Assert.Contains("Streaming:Overflow=Wait", responses[3].Status.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task MatchStream_OneStreamCancelled_OtherStreamCompletes()
    {
        var video = new SyntheticVideo(seed: 9);
        using var cancel = new CancellationTokenSource();
        using var doomed = server.Client.MatchStream(cancellationToken: cancel.Token);
        await doomed.RequestStream.WriteAsync(new StreamRequest { Config = new StreamConfig() });
        for (ulong i = 0; i < 4; i++)
        {
            await doomed.RequestStream.WriteAsync(new StreamRequest { Frame = video.Frame(i, new Vector2(i, 0)) });
        }

        await cancel.CancelAsync();
        var offsets = SyntheticVideo.Offsets(seed: 4, count: 4);
        var responses = await Streams.RunAsync(server.Client, new StreamConfig(), offsets.Select((o, i) => video.Frame((ulong)i, o)));

        Assert.Equal(4, responses.Count);
        MatchAssertions.RecoversMotion(responses[3].Pair.Matches, SyntheticVideo.Motion(offsets[2], offsets[3]));
    }
}
