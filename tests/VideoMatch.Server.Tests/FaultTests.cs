using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Numerics;
using Grpc.Core;
using Grpc.Core.Interceptors;
using Grpc.Net.Client;
using Microsoft.Extensions.DependencyInjection;
using VideoMatch.Contracts.V1;
using VideoMatch.Engine.Batching;
using VideoMatch.Engine.Inference;
using VideoMatch.Server.Hosting;
using VideoMatch.Tests;
using Xunit.Abstractions;

namespace VideoMatch.Server.Tests;

public sealed class FaultTests(ITestOutputHelper output)
{

    [Fact]
    public async Task MatchStream_HundredClientsDisconnectMidStream_NoWorkLeftAndOtherStreamIntact()
    {
        // The in-memory host shows every call as one connection: lift the per-connection stream limit here.
        using var server = new ServerFactory(new Dictionary<string, string?> { ["Batching:MaxBatchDelayMs"] = "20", ["Security:MaxStreamsPerConnection"] = "1000" });
        var offsets = SyntheticVideo.Offsets(seed: 41, count: 8);
        var steadyVideo = new SyntheticVideo(seed: 42);
        var steady = Streams.RunAsync(server.Client, new StreamConfig { StreamName = "steady" },
            offsets.Select((o, i) => steadyVideo.Frame((ulong)i, o)));
        var leaving = new SyntheticVideo(seed: 40, width: 160, height: 120);

        for (var i = 0; i < 100; i++)
        {
            using var cancel = new CancellationTokenSource();
            using var call = server.Client.MatchStream(cancellationToken: cancel.Token);
            await call.RequestStream.WriteAsync(new StreamRequest { Config = new StreamConfig() });
            for (ulong f = 0; f < 3; f++)
            {
                await call.RequestStream.WriteAsync(new StreamRequest { Frame = leaving.Frame(f, new Vector2(f, 0)) });
            }

            await cancel.CancelAsync();
        }

        var responses = await steady.WaitAsync(Limits.Call);
        // A pair queued after every abandoned one: when it is answered, the queue must be empty.
        var last = await server.Client.MatchPairAsync(new MatchPairRequest { Image0 = leaving.Raw(Vector2.Zero), Image1 = leaving.Raw(Vector2.One) });

        Assert.Equal(8, responses.Count);
        for (var i = 1; i < 8; i++)
        {
            MatchAssertions.RecoversMotion(responses[i].Pair.Matches, SyntheticVideo.Motion(offsets[i - 1], offsets[i]));
        }

        Assert.True(last.Matches.Count > 0);
        Assert.Equal(0, server.Services.GetRequiredService<MatchingRuntime>().Batcher.QueueLength);
    }

    [Fact]
    public async Task MatchStream_ModelThrowsOnOneBatch_OnlyThatPairFailsAndServerCarriesOn()
    {
        using var server = new ServerFactory(
            new Dictionary<string, string?> { ["Batching:MaxBatchSize"] = "1" },
            services => services.AddSingleton<MatcherFactory>((options, maxBatch) => new FailingMatcher(ModelLoader.Open(options, maxBatch), failOnSequence: 13)));
        var video = new SyntheticVideo(seed: 50);

        var responses = await Streams.RunAsync(server.Client, new StreamConfig(),
            Enumerable.Range(10, 7).Select(i => video.Frame((ulong)i, new Vector2(i - 10, 0))));

        Assert.Equal(7, responses.Count);
        Assert.Equal(FrameStatusCode.Failed, responses[3].Status.Code);
        Assert.Equal(13UL, responses[3].Status.Sequence);
        Assert.Contains("injected model failure", responses[3].Status.Message, StringComparison.Ordinal);
        foreach (var i in new[] { 1, 2, 4, 5, 6 })
        {
            // Frame 13 still became the reference: the next pair is (13, 14).
            Assert.Equal((ulong)(9 + i), responses[i].Pair.Sequence0);
            MatchAssertions.RecoversMotion(responses[i].Pair.Matches, new Vector2(-1, 0));
        }
    }

    [Fact]
    public async Task MatchPairAndStream_SameModelFailure_SameAnswer()
    {
        // MatchPair's frames are numbered 0 and 1: the injected failure hits the pair whose frame 1 is sequence 1.
        using var server = new ServerFactory(
            new Dictionary<string, string?> { ["Batching:MaxBatchSize"] = "1" },
            services => services.AddSingleton<MatcherFactory>((options, maxBatch) => new FailingMatcher(ModelLoader.Open(options, maxBatch), failOnSequence: 1)));
        var video = new SyntheticVideo(seed: 51);

        var unary = await Assert.ThrowsAsync<RpcException>(async () => await server.Client.MatchPairAsync(
            new MatchPairRequest { Image0 = video.Raw(System.Numerics.Vector2.Zero), Image1 = video.Raw(new System.Numerics.Vector2(1, 0)) },
            deadline: Limits.Deadline));
        var streamed = await Streams.RunAsync(server.Client, new StreamConfig(),
            [video.Frame(0, System.Numerics.Vector2.Zero), video.Frame(1, new System.Numerics.Vector2(1, 0))]);

        const string expected = "Matching frames 0 and 1 failed: The model failed on a batch of 1 pairs: injected model failure";
        Assert.Equal(StatusCode.Internal, unary.StatusCode);
        Assert.Equal(expected, unary.Status.Detail);
        Assert.Equal(FrameStatusCode.Failed, streamed[1].Status.Code);
        Assert.Equal(expected, streamed[1].Status.Message);
    }

    [Fact]
    public async Task MatchPair_ServerForcedToStopWhileQueued_UnavailableNotUnknown()
    {
        // A model that holds the batch until the batcher is stopped by force: the pair fails as the server stops.
        var gate = new ManualResetEventSlim();
        GatedMatcher gated = null!;
        using var server = new ServerFactory(
            new Dictionary<string, string?> { ["Batching:MaxBatchSize"] = "1" },
            services => services.AddSingleton<MatcherFactory>((options, maxBatch) => gated = new GatedMatcher(ModelLoader.Open(options, maxBatch), gate)));
        var video = new SyntheticVideo(seed: 52);
        var runtime = server.Services.GetRequiredService<MatchingRuntime>();
        var request = new MatchPairRequest { Image0 = video.Raw(System.Numerics.Vector2.Zero), Image1 = video.Raw(System.Numerics.Vector2.One) };
        var first = server.Client.MatchPairAsync(request, deadline: Limits.Deadline).ResponseAsync;
        Assert.True(gated.Entered.Wait(Limits.Call), "the first pair never reached the model");
        var queued = server.Client.MatchPairAsync(request, deadline: Limits.Deadline).ResponseAsync;
        await Limits.UntilAsync(() => runtime.Batcher.QueueLength == 1, "the second pair never reached the queue");

        using (var forced = new CancellationTokenSource())
        {
            await forced.CancelAsync();
            var stopping = runtime.Batcher.StopAsync(forced.Token);
            gate.Set();
            await stopping.WaitAsync(Limits.Call);
        }

        var error = await Assert.ThrowsAsync<RpcException>(() => queued);
        Assert.Equal(StatusCode.Unavailable, error.StatusCode);
        Assert.Contains("the stream ended or the server is stopping", error.Status.Detail, StringComparison.Ordinal);
        await first.WaitAsync(Limits.Call);
    }

    [Fact]
    public async Task MatchStream_ConfigWithSeveralProblems_NamesThemAll()
    {
        using var server = new ServerFactory();

        var error = await Assert.ThrowsAsync<RpcException>(() => Streams.RunAsync(server.Client,
            new StreamConfig { MatchThreshold = 2f, RekeyMinInliers = 5, TrackRadiusPx = 3 }, []));

        Assert.Equal(StatusCode.InvalidArgument, error.StatusCode);
        Assert.Contains("match_threshold must be in [0, 1); got 2.", error.Status.Detail, StringComparison.Ordinal);
        Assert.Contains("rekey_min_inliers is set but keyframes is not", error.Status.Detail, StringComparison.Ordinal);
        Assert.Contains("track_radius_px is set but track_ids is not", error.Status.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Sigterm_StreamInFlight_AnswersEveryFrameReadThenExitsZero()
    {
        // A drain long enough for the backlog even on a loaded machine: this test is about pairs matched, not dropped.
        await using var server = await ServerProcess.StartAsync(output, "--Batching:MaxBatchSize=2", "--Inference:WarmUp=false", "--Streaming:ShutdownDrainSeconds=60");
        using var channel = GrpcChannel.ForAddress(server.Address);
        using var call = new VideoMatcher.VideoMatcherClient(channel.Intercept(new DefaultDeadline())).MatchStream();
        var video = new SyntheticVideo(seed: 60, width: 320, height: 240);
        await call.RequestStream.WriteAsync(new StreamRequest { Config = new StreamConfig() });
        for (ulong i = 0; i < 6; i++)
        {
            await call.RequestStream.WriteAsync(new StreamRequest { Frame = video.Frame(i, new Vector2(i, 0)) });
        }

        Assert.True(await call.ResponseStream.MoveNext());
        var answered = new List<ulong> { call.ResponseStream.Current.Status.Sequence };
        server.Terminate();

        var ending = await Assert.ThrowsAsync<RpcException>(async () =>
        {
            while (await call.ResponseStream.MoveNext())
            {
                var response = call.ResponseStream.Current;
                Assert.NotNull(response.Pair);
                answered.Add(response.Pair.Sequence1);
            }
        });
        var exitCode = await server.ExitCodeAsync();

        Assert.Equal(Enumerable.Range(0, answered.Count).Select(i => (ulong)i), answered);
        Assert.Equal(StatusCode.Unavailable, ending.StatusCode);
        Assert.Contains($"the last was {answered[^1]}", ending.Status.Detail, StringComparison.Ordinal);
        Assert.Equal(0, exitCode);
    }

    /// <summary>The real model, but every batch waits for a gate first.</summary>
    internal sealed class GatedMatcher(IPairMatcher inner, ManualResetEventSlim gate) : IPairMatcher
    {
        /// <summary>Set once a batch is inside the model, waiting on the gate.</summary>
        public ManualResetEventSlim Entered { get; } = new();

        public ModelManifest Manifest => inner.Manifest;

        public string ExecutionProvider => inner.ExecutionProvider;

        public int MaxBatchSize => inner.MaxBatchSize;

        public ModelWork Work => inner.Work;

        public void Match(ReadOnlySpan<PairInput> batch, Span<PairMatchResult> results)
        {
            Entered.Set();
            gate.Wait(Limits.Call);
            inner.Match(batch, results);
        }

        public void Dispose() => inner.Dispose();
    }

    /// <summary>The real model, except that a batch holding the pair ending at one sequence number throws.</summary>
    private sealed class FailingMatcher(IPairMatcher inner, ulong failOnSequence) : IPairMatcher
    {
        public ModelManifest Manifest => inner.Manifest;

        public string ExecutionProvider => inner.ExecutionProvider;

        public int MaxBatchSize => inner.MaxBatchSize;

        public ModelWork Work => inner.Work;

        public void Match(ReadOnlySpan<PairInput> batch, Span<PairMatchResult> results)
        {
            foreach (var pair in batch)
            {
                if (pair.Frame1.Sequence == failOnSequence)
                {
                    throw new InvalidOperationException("injected model failure");
                }
            }

            inner.Match(batch, results);
        }

        public void Dispose() => inner.Dispose();
    }
}
