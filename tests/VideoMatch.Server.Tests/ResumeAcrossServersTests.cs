using System.Diagnostics;
using System.Globalization;
using System.Numerics;
using System.Runtime.CompilerServices;
using Google.Protobuf;
using VideoMatch.Client;
using VideoMatch.Contracts.V1;
using VideoMatch.Synthetic;
using VideoMatch.Tests;
using Xunit.Abstractions;

namespace VideoMatch.Server.Tests;

/// <summary>
/// Cameras that survive their servers: three server processes on loopback behind one client (round-robin), four
/// streams with keyframes and track ids; the server that serves two of them is stopped mid-stream, later a new one
/// starts and another is stopped. Every frame is answered once, in order, as one uninterrupted server answers it.
/// </summary>
[Collection(SoakRunsAlone.Name)]
public sealed partial class ResumeAcrossServersTests(ITestOutputHelper output)
{
    private const int Cameras = 4;
    private const int FramesPerPhase = 8;
    private static readonly string[] Settings = ["--Inference:EmbeddedWidth=160", "--Inference:EmbeddedHeight=128", "--Inference:WarmUp=false"];

    [Fact]
    public async Task Resume_ServersStoppedAndStartedUnderFourCameras_EveryFrameAnsweredOnceAsByOneServer()
    {
        var ports = Enumerable.Range(0, 4).Select(_ => Ports.Free()).Distinct().ToArray();
        Assert.Equal(4, ports.Length);
        var servers = new List<ServerProcess>();
        try
        {
            foreach (var port in ports.Take(3))
            {
                servers.Add(await ServerProcess.StartAsync(output, [.. Settings, "--urls", $"http://127.0.0.1:{port}"]));
            }

            var options = new VideoMatchClientOptions();
            foreach (var port in ports)
            {
                // The fourth is not running yet: round-robin skips it until it is.
                options.Addresses.Add(new Uri($"http://127.0.0.1:{port}"));
            }

            using var client = new VideoMatchClient(options);
            var moves = new List<StreamMove>();
            var resume = new StreamResumeOptions { Moved = move => { lock (moves) { moves.Add(move); } } };
            var phases = new[] { new TaskCompletionSource(), new TaskCompletionSource() };
            var answered = new int[Cameras];
            var runs = new Task<List<StreamResponse>>[Cameras];
            for (var camera = 0; camera < Cameras; camera++)
            {
                var c = camera;
                runs[c] = Task.Run(async () =>
                {
                    var responses = new List<StreamResponse>();
                    await foreach (var response in client.StreamAsync(Frames(c, phases), Config(c), resume).WithCancellation(CancellationToken.None))
                    {
                        responses.Add(response);
                        Interlocked.Increment(ref answered[c]);
                    }

                    return responses;
                });
                // One camera after another, once the one before is answered: by then the channel has connected to every
                // server, and round-robin spreads the cameras over all three (one server gets two).
                await Limits.UntilAsync(() => Volatile.Read(ref answered[c]) > 0 || runs[c].IsCompleted, $"camera {c}'s first answer");
            }

            // Phase 0 answered everywhere: stop the server that serves two cameras while phase 1's frames flow.
            await Limits.UntilAsync(() => answered.All(a => Volatile.Read(ref a) >= FramesPerPhase), "every camera's first frames to be answered");
            var busiest = servers.OrderByDescending(s => Streams(s)).First();
            Assert.Equal(2, Streams(busiest));
            phases[0].SetResult();
            busiest.Terminate();

            // Phase 1 answered: a new server starts, and another one that serves a camera is stopped.
            await Limits.UntilAsync(() => answered.All(a => Volatile.Read(ref a) >= 2 * FramesPerPhase), "every camera's second frames to be answered");
            servers.Add(await ServerProcess.StartAsync(output, [.. Settings, "--urls", $"http://127.0.0.1:{ports[3]}"]));
            var next = servers.First(s => !s.HasExited && s != busiest && Streams(s) > 0);
            phases[1].SetResult();
            next.Terminate();

            var results = await Task.WhenAll(runs).DefaultTimeout();
            Assert.Equal(0, await busiest.ExitCodeAsync());
            Assert.Equal(0, await next.ExitCodeAsync());

            // The same frames through one server, without a move.
            var survivor = servers.First(s => !s.HasExited);
            for (var c = 0; c < Cameras; c++)
            {
                var expected = await OnOneServerAsync(survivor.Address, Frames(c, null), Config(c));
                Assert.Equal(3 * FramesPerPhase, results[c].Count);
                Assert.Equal(Describe(expected), Describe(results[c]));
            }

            output.WriteLine(string.Join(Environment.NewLine, moves.Select(m => $"moved after {m.LastAnswered}, {m.Resent} sent again, {m.Attempts} connections: {m.Cause.StatusCode}")));
            Assert.True(moves.Count >= 3, $"{moves.Count} moves");
            Assert.Contains(results.SelectMany(r => r), r => r.Pair?.NewKeyframe == true);
        }
        finally
        {
            foreach (var server in servers)
            {
                await server.DisposeAsync();
            }
        }
    }

    [Fact]
    public async Task Resume_DrainTimeRunsOutWithPairsQueued_ThoseFramesAreMatchedOnTheNextServer()
    {
        // A drain of 0 s: at SIGTERM every pair not matched yet is answered DROPPED with resend_elsewhere. A resuming
        // client hands none of those on; it sends those frames again where the stream resumes.
        var ports = new[] { Ports.Free(), Ports.Free() };
        await using var first = await ServerProcess.StartAsync(output, [.. Settings, "--Streaming:ShutdownDrainSeconds=0", "--Batching:MaxBatchSize=1", "--urls", $"http://127.0.0.1:{ports[0]}"]);
        // The second is not running yet: round-robin puts the stream on the first server, and finds this one once it is up.
        using var client = new VideoMatchClient(Balanced(first.Address, $"http://127.0.0.1:{ports[1]}"));
        var moves = new List<StreamMove>();
        var answered = new Answered();
        var run = ReadAllAsync(client.StreamAsync(Burst(), Config(0), new StreamResumeOptions { MaxAttempts = 40, Deadline = Limits.Call, Moved = moves.Add }), answered);
        // Sent as fast as the client may (16 unanswered at most), so pairs are queued when the server stops.
        await Limits.UntilAsync(() => answered.Count >= 6, "the first answers");
        first.Terminate();
        Assert.Equal(0, await first.ExitCodeAsync());
        await using var second = await ServerProcess.StartAsync(output, [.. Settings, "--urls", $"http://127.0.0.1:{ports[1]}"]);
        var results = await run.DefaultTimeout();

        var ended = EndedLine().Match(first.Log);
        Assert.True(ended.Success, first.Log);
        output.WriteLine($"first server: {ended.Value}; moves: {string.Join("; ", moves.Select(m => $"after {m.LastAnswered}, {m.Resent} sent again: {m.Cause.Detail}"))}");
        Assert.True(int.Parse(ended.Groups[1].Value, CultureInfo.InvariantCulture) > 0, $"the drain dropped no pair, so nothing was to send again: {ended.Value}");
        Assert.DoesNotContain(results, r => r.Status?.Code == FrameStatusCode.Dropped);
        // The move names what ended the stream on the stopping server, not the refused connections while none was up.
        Assert.Equal(Grpc.Core.StatusCode.Unavailable, Assert.Single(moves).Cause.StatusCode);
        Assert.Contains("shutting down", moves[0].Cause.Detail, StringComparison.Ordinal);
        Assert.Equal(Describe(await OnOneServerAsync(second.Address, Burst(), Config(0))), Describe(results));
    }

    [Fact]
    public async Task Resume_ServerCrashesMidStream_TheStreamGoesOnAsOnOneServer()
    {
        // SIGKILL: no drain, no UNAVAILABLE; the connection just breaks. Every frame not answered goes to the next server.
        var ports = new[] { Ports.Free(), Ports.Free() };
        await using var first = await ServerProcess.StartAsync(output, [.. Settings, "--urls", $"http://127.0.0.1:{ports[0]}"]);
        using var client = new VideoMatchClient(Balanced(first.Address, $"http://127.0.0.1:{ports[1]}"));
        var moves = new List<StreamMove>();
        var answered = new Answered();
        var run = ReadAllAsync(client.StreamAsync(Burst(), Config(2), new StreamResumeOptions { MaxAttempts = 40, Deadline = Limits.Call, Moved = moves.Add }), answered);
        await Limits.UntilAsync(() => answered.Count >= 6, "the first answers");
        first.Crash();
        await using var second = await ServerProcess.StartAsync(output, [.. Settings, "--urls", $"http://127.0.0.1:{ports[1]}"]);
        var results = await run.DefaultTimeout();

        output.WriteLine(string.Join("; ", moves.Select(m => $"after {m.LastAnswered}, {m.Resent} sent again: {m.Cause.StatusCode} {m.Cause.Detail}")));
        Assert.Equal(Describe(await OnOneServerAsync(second.Address, Burst(), Config(2))), Describe(results));
        Assert.Single(moves);
    }

    [Fact]
    public async Task Resume_ServerHangsMidStream_KeepAlivePingsNoticeAndTheStreamGoesOn()
    {
        // SIGSTOP: the connection stays open and nothing answers (a hung pod, a node gone without a FIN). Only the
        // client's HTTP/2 pings (1 s here, 10 s by default) notice it.
        var ports = new[] { Ports.Free(), Ports.Free() };
        await using var first = await ServerProcess.StartAsync(output, [.. Settings, "--urls", $"http://127.0.0.1:{ports[0]}"]);
        await using var second = await ServerProcess.StartAsync(output, [.. Settings, "--urls", $"http://127.0.0.1:{ports[1]}"]);
        var options = Balanced(first.Address, second.Address);
        (options.KeepAlive, options.KeepAliveTimeout) = (TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(1));
        using var client = new VideoMatchClient(options);
        var moves = new List<StreamMove>();
        var frames = await Burst().ToListAsync();

        var hung = Stopwatch.StartNew();
        var noticed = TimeSpan.Zero;
        await using var session = await client.OpenStreamAsync(Config(3), new StreamResumeOptions
        {
            // The hung server's port still takes TCP connections, so round-robin may send an attempt back to it; each
            // such connection is dropped by the pings again. Enough attempts that a run of those cannot end the stream.
            MaxAttempts = 40,
            Deadline = Limits.Call,
            Moved = move => { moves.Add(move); noticed = hung.Elapsed; },
        });
        var answered = new Answered();
        var reading = ReadAllAsync(session.Responses, answered);
        for (var i = 0; i < frames.Count; i++)
        {
            if (i == frames.Count / 2)
            {
                await Limits.UntilAsync(() => answered.Count == i, "the first half answered");
                var serving = first.Log.Contains("Stream camera-3 from", StringComparison.Ordinal) ? first : second;
                serving.Freeze();
                hung.Restart();
            }

            await session.SendAsync(frames[i]).DefaultTimeout();
        }

        await session.CompleteAsync();
        var results = await reading.DefaultTimeout();
        output.WriteLine($"moved {noticed.TotalSeconds:F1} s after the server hung; {string.Join("; ", moves.Select(m => $"after {m.LastAnswered}, {m.Resent} sent again, {m.Attempts} connections: {m.Cause.StatusCode} {m.Cause.Detail}"))}");

        var survivor = first.Log.Contains("SIGSTOP", StringComparison.Ordinal) ? second : first;
        Assert.Equal(Describe(await OnOneServerAsync(survivor.Address, Burst(), Config(3))), Describe(results));
        Assert.Single(moves);
        // Each connection to the hung server: 1 s without a frame, 1 s for the ping's answer, .NET's own timer, the backoff.
        // Measured: 1 to 4 connections, 3.9 to 25.8 s. Without pings it would never move.
        Assert.True(noticed < TimeSpan.FromSeconds(60), $"the stream moved {noticed.TotalSeconds:F1} s after the server hung");
    }

    [Fact]
    public async Task OpenStreamWithResume_ServerStoppedMidStream_TheSessionGoesOnAsOnOneServer()
    {
        // Frames from a camera callback (SendAsync one by one, responses read beside it), the server stopped halfway.
        var ports = new[] { Ports.Free(), Ports.Free() };
        await using var first = await ServerProcess.StartAsync(output, [.. Settings, "--urls", $"http://127.0.0.1:{ports[0]}"]);
        ServerProcess? second = null;
        try
        {
            using var client = new VideoMatchClient(Balanced(first.Address, $"http://127.0.0.1:{ports[1]}"));
            var moves = new List<StreamMove>();
            var frames = await Burst().ToListAsync();
            await using var session = await client.OpenStreamAsync(Config(1), new StreamResumeOptions { MaxAttempts = 40, Deadline = Limits.Call, Moved = moves.Add });
            var reading = ReadAllAsync(session.Responses);
            for (var i = 0; i < frames.Count; i++)
            {
                if (i == frames.Count / 2)
                {
                    first.Terminate();
                    Assert.Equal(0, await first.ExitCodeAsync());
                    second = await ServerProcess.StartAsync(output, [.. Settings, "--urls", $"http://127.0.0.1:{ports[1]}"]);
                }

                await session.SendAsync(frames[i]).DefaultTimeout();
            }

            await session.CompleteAsync();
            var results = await reading.DefaultTimeout();

            Assert.Equal(Describe(await OnOneServerAsync(second!.Address, Burst(), Config(1))), Describe(results));
            Assert.Single(moves);
        }
        finally
        {
            if (second is not null)
            {
                await second.DisposeAsync();
            }
        }
    }

    [System.Text.RegularExpressions.GeneratedRegex(@"Stream camera-0 ended after .*?, (\d+) dropped")]
    private static partial System.Text.RegularExpressions.Regex EndedLine();

    /// <summary>One client balancing round-robin over <paramref name="addresses"/> (some may not be running yet).</summary>
    private static VideoMatchClientOptions Balanced(params string[] addresses)
    {
        var options = new VideoMatchClientOptions();
        foreach (var address in addresses)
        {
            options.Addresses.Add(new Uri(address));
        }

        return options;
    }

    /// <summary>The frames through one server, without a move: what a stream that moved must equal.</summary>
    private static async Task<List<StreamResponse>> OnOneServerAsync(string address, IAsyncEnumerable<Frame> frames, StreamConfig config)
    {
        using var single = new VideoMatchClient(new Uri(address));
        return await single.StreamAsync(frames, config).ToListAsync();
    }

    /// <summary>Reads responses to their end on a task of its own, counting them as they come.</summary>
    private static Task<List<StreamResponse>> ReadAllAsync(IAsyncEnumerable<StreamResponse> responses, Answered? answered = null) => Task.Run(async () =>
    {
        var all = new List<StreamResponse>();
        await foreach (var response in responses)
        {
            all.Add(response);
            answered?.One();
        }

        return all;
    });

    /// <summary>Responses read so far, read from the test's task while the reading task adds to it.</summary>
    private sealed class Answered
    {
        private int _count;

        public int Count => Volatile.Read(ref _count);

        public void One() => Interlocked.Increment(ref _count);
    }

    /// <summary>Camera 0's frames of all three phases, without waits.</summary>
    private static IAsyncEnumerable<Frame> Burst() => Frames(0, null);

    private static StreamConfig Config(int camera) =>
        new() { StreamName = $"camera-{camera}", MatchThreshold = 0.2f, TrackIds = true, Keyframes = true, RekeyMinInliers = 60 };

    /// <summary>How many camera streams a server has started and not ended, from its log.</summary>
    private static int Streams(ServerProcess server) =>
        server.Log.Split('\n').Count(l => l.Contains("Stream camera-", StringComparison.Ordinal) && l.Contains(" started ", StringComparison.Ordinal))
        - server.Log.Split('\n').Count(l => l.Contains("Stream camera-", StringComparison.Ordinal) && l.Contains(" ended after ", StringComparison.Ordinal));

    /// <summary>A camera's frames: a pan with a cut in each phase (so keyframes change), each phase after its gate opens.</summary>
    private static async IAsyncEnumerable<Frame> Frames(int camera, TaskCompletionSource[]? phases, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var scenes = new[] { new TexturedScene(seed: 60 + camera), new TexturedScene(seed: 70 + camera) };
        for (var i = 0; i < 3 * FramesPerPhase; i++)
        {
            if (phases is not null && i % FramesPerPhase == 0 && i > 0)
            {
                await phases[(i / FramesPerPhase) - 1].Task.WaitAsync(cancellationToken).DefaultTimeout();
            }

            if (phases is not null && i >= FramesPerPhase)
            {
                // Frames keep flowing while a server stops, so some are in flight and sent again.
                await Task.Delay(20, cancellationToken);
            }

            var scene = scenes[(i / 5) % 2];
            yield return new Frame { Sequence = (ulong)(100 + i), Image = Render(scene, Matrix3x2.CreateTranslation(40 + (1.5f * i), 30 + (0.5f * i))) };
        }
    }

    private static Image Render(TexturedScene scene, Matrix3x2 view)
    {
        var gray = new byte[160 * 128];
        scene.RenderGray(160, 128, view, gray);
        return new Image { Raw = new RawImage { Format = PixelFormat.Gray8, Width = 160, Height = 128, Data = ByteString.CopyFrom(gray) } };
    }

    private static string[] Describe(List<StreamResponse> responses) =>
    [
        .. responses.Select(r => r.Pair is { } p
            ? string.Create(CultureInfo.InvariantCulture,
                $"{p.Sequence0}->{p.Sequence1} key={p.NewKeyframe} n={p.Matches.Count} s=[{string.Join(',', p.Matches.Scores.Select(BitConverter.SingleToInt32Bits))}] k1=[{string.Join(',', p.Matches.Keypoints1.Select(BitConverter.SingleToInt32Bits))}] ids=[{string.Join(',', p.Matches.TrackIds)}]")
            : $"{r.Status.Sequence} {r.Status.Code}"),
    ];
}
