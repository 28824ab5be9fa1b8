using System.Diagnostics;
using System.Numerics;
using System.Text.RegularExpressions;
using Grpc.Core;
using Grpc.Core.Interceptors;
using Grpc.Net.Client;
using VideoMatch.Contracts.V1;
using VideoMatch.Tests;
using Xunit.Abstractions;

namespace VideoMatch.Server.Tests;

/// <summary>
/// The built server as a process, stopped with SIGTERM under load and with clients that would hold it: every frame
/// read is answered (matched, or DROPPED naming the drain time), nothing is reset, and it exits 0 in bounded time.
/// </summary>
[Collection(SoakRunsAlone.Name)]
public sealed partial class ShutdownTests(ITestOutputHelper output)
{
    private const double DrainSeconds = 2;

    [Fact]
    public async Task Sigterm_64StreamsOnTheDefaultModel_EveryFrameReadAnsweredNoResetExitZero()
    {
        // The default embedded model (640×480): on 2 cores the backlog takes far longer to match than the drain.
        // Batches of 1, the CPU's default: before the server's FIN waited for the client's (LingeringClose), up to 6 of
        // 64 streams ended INTERNAL "the HTTP/2 server closed the connection" in about one run in five.
        await using var server = await ServerProcess.StartAsync(output, $"--Streaming:ShutdownDrainSeconds={DrainSeconds}", "--Inference:WarmUp=false", "--Batching:MaxBatchSize=1");
        // Eight connections of eight streams (the server allows 16 per connection).
        var channels = Enumerable.Range(0, 8).Select(_ => GrpcChannel.ForAddress(server.Address)).ToArray();
        var video = new SyntheticVideo(seed: 61, width: 320, height: 240);
        var frames = Enumerable.Range(0, 4).Select(i => video.Raw(new Vector2(i, 0))).ToArray();
        var answers = 0;
        var streams = Enumerable.Range(0, 64).Select(s => RunUntilEndedAsync(new VideoMatcher.VideoMatcherClient(channels[s % 8].Intercept(new DefaultDeadline())), frames, () => Interlocked.Increment(ref answers))).ToArray();
        // A backlog: every stream answered at least its first frame, and pairs queued behind.
        await Limits.UntilAsync(() => Volatile.Read(ref answers) >= 128, "the 64 streams to be answered twice each on average");

        var stopped = Stopwatch.StartNew();
        server.Terminate();
        var results = await Task.WhenAll(streams).WaitAsync(Limits.Call);
        var exitCode = await server.ExitCodeAsync();

        foreach (var channel in channels)
        {
            channel.Dispose();
        }

        var drained = results.Sum(r => r.Drained);
        output.WriteLine($"64 streams: {results.Sum(r => r.Answered.Count)} frames answered, {drained} of them DROPPED by the drain; exit after {stopped.Elapsed.TotalSeconds:F1} s");
        foreach (var ending in results.Select(r => r.Ending.Status.Detail).Distinct())
        {
            output.WriteLine($"ending: {ending}");
        }
        foreach (var result in results)
        {
            // Every stream ends with the documented status: none sees its connection closed before it.
            Assert.True(result.Ending.StatusCode == StatusCode.Unavailable, $"a stream ended {result.Ending.StatusCode}: {result.Ending.Status.Detail}");
            // Every frame the server read was answered, in order; the ending names the last one when there was one.
            Assert.Equal(Enumerable.Range(0, result.Answered.Count).Select(i => (ulong)i), result.Answered);
            if (LastAnswered().Match(result.Ending.Status.Detail) is { Success: true } last)
            {
                Assert.Equal(result.Answered.Count - 1, int.Parse(last.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture));
            }
            else
            {
                Assert.True(result.Answered.Count == 0 || result.Ending.Status.Detail.Contains("frames sent so far were answered", StringComparison.Ordinal), result.Ending.Status.Detail);
            }
        }

        Assert.True(drained > 0, "the backlog outlasted the drain, so some pairs were answered DROPPED");
        Assert.Equal(0, exitCode);
        // Bounded by design: the drain, a 2 s grace, 3 s of host margin, and the one batch that may still be running.
        Assert.True(stopped.Elapsed < TimeSpan.FromSeconds(DrainSeconds + 12), $"exit took {stopped.Elapsed.TotalSeconds:F1} s");
    }

    [Fact]
    public async Task Sigterm_ClientsThatWouldHoldTheServer_ExitWithinTheDrainTime()
    {
        var metricsPort = Ports.Free();
        await using var server = await ServerProcess.StartAsync(output, $"--Streaming:ShutdownDrainSeconds={DrainSeconds}", "--Inference:EmbeddedWidth=320",
            "--Inference:EmbeddedHeight=256", "--Inference:WarmUp=false", $"--Metrics:Url=http://127.0.0.1:{metricsPort}");
        using var channel = GrpcChannel.ForAddress(server.Address);
        var client = new VideoMatcher.VideoMatcherClient(channel.Intercept(new DefaultDeadline()));

        // A stream that never sends its config; one that sends frames and never reads; a MatchPair whose body never ends.
        using var silent = client.MatchStream(deadline: Limits.Deadline);
        using var deaf = client.MatchStream(deadline: Limits.Deadline);
        var video = new SyntheticVideo(seed: 62, width: 320, height: 240);
        // Its writes block once the server, whose answers are never read, stops reading: they run on their own.
        var deafWrites = Task.Run(async () =>
        {
            try
            {
                await deaf.RequestStream.WriteAsync(new StreamRequest { Config = new StreamConfig() });
                for (ulong i = 0; i < 400; i++)
                {
                    await deaf.RequestStream.WriteAsync(new StreamRequest { Frame = video.Frame(i, new Vector2(i % 7, 0)) });
                }
            }
            catch (Exception e) when (e is RpcException or IOException or InvalidOperationException or System.Net.Http.HttpProtocolException)
            {
                // The server aborted the call at the end of its drain.
            }
        });

        var halfSent = RawHttp2.PostWithoutEndAsync(server.Port, "/videomatch.v1.VideoMatcher/MatchPair", TimeSpan.FromSeconds(30));
        var watch = new Grpc.Health.V1.Health.HealthClient(channel).Watch(new Grpc.Health.V1.HealthCheckRequest(), deadline: Limits.Deadline);
        Assert.True(await watch.ResponseStream.MoveNext());
        // The silent and deaf streams and the watch are open calls on the server (the half-sent MatchPair is answered at once).
        await Limits.UntilAsync(() => ObservabilityTests.ScrapeAsync(metricsPort).Result["videomatch_open_calls"] >= 3, "the three stuck calls to be open");

        var stopped = Stopwatch.StartNew();
        server.Terminate();
        var silentEnding = await Assert.ThrowsAsync<RpcException>(() => silent.ResponseStream.MoveNext());
        output.WriteLine($"silent stream ended after {stopped.Elapsed.TotalSeconds:F1} s");
        var exitCode = await server.ExitCodeAsync();

        Assert.Equal(StatusCode.Unavailable, silentEnding.StatusCode);
        Assert.Contains("no StreamConfig had arrived", silentEnding.Status.Detail, StringComparison.Ordinal);
        Assert.Equal(0, exitCode);
        // Bounded by design: the drain, the 2 s grace, up to 5 s for calls still making progress, 3 s of host margin
        // (past which Kestrel closes a connection a client keeps open after its stream ended).
        Assert.True(stopped.Elapsed < TimeSpan.FromSeconds(DrainSeconds + 12), $"exit took {stopped.Elapsed.TotalSeconds:F1} s");
        Assert.Contains("were aborted", server.Log, StringComparison.Ordinal);
        await halfSent.DefaultTimeout();
        await deafWrites.WaitAsync(Limits.Call);
    }

    [Fact]
    public async Task Sigterm_SlowReaderBesideAStuckStreamOnOneConnection_SlowReaderAnsweredInFullEndsUnavailable()
    {
        // A client that reads, but slowly (as every client on a loaded machine does), still holds answers when the drain
        // time and the grace have passed. Before, every call still open then was aborted with its connection: the slow
        // reader saw INTERNAL instead of its answers and UNAVAILABLE. Now only calls that make no progress are reset.
        await using var server = await ServerProcess.StartAsync(output, "--Streaming:ShutdownDrainSeconds=1", "--Inference:WarmUp=false",
            "--Inference:EmbeddedWidth=320", "--Inference:EmbeddedHeight=256");
        using var channel = GrpcChannel.ForAddress(server.Address);
        var client = new VideoMatcher.VideoMatcherClient(channel.Intercept(new DefaultDeadline()));
        var video = new SyntheticVideo(seed: 63, width: 320, height: 256);

        // On the same connection: a stream that never reads its answers.
        using var stuck = client.MatchStream(deadline: Limits.Deadline);
        await stuck.RequestStream.WriteAsync(new StreamRequest { Config = new StreamConfig() });
        var stuckWrites = Task.Run(async () =>
        {
            try
            {
                for (ulong i = 0; i < 200; i++)
                {
                    await stuck.RequestStream.WriteAsync(new StreamRequest { Frame = video.Frame(i, new Vector2(i % 5, 0)) });
                }
            }
            catch (Exception e) when (e is RpcException or IOException or InvalidOperationException or System.Net.Http.HttpProtocolException)
            {
                // Reset once the server gives up on it.
            }
        });

        using var slow = client.MatchStream(deadline: Limits.Deadline);
        await slow.RequestStream.WriteAsync(new StreamRequest { Config = new StreamConfig() });
        var sent = 0UL;
        var sending = Task.Run(async () =>
        {
            try
            {
                for (; sent < 20; sent++)
                {
                    await slow.RequestStream.WriteAsync(new StreamRequest { Frame = video.Frame(sent, new Vector2(sent % 7, 1)) });
                }
            }
            catch (Exception e) when (e is RpcException or IOException or InvalidOperationException)
            {
                // The server stopped reading.
            }
        });
        var answered = new List<ulong>();
        Assert.True(await slow.ResponseStream.MoveNext());
        answered.Add(slow.ResponseStream.Current.Status.Sequence);
        await Limits.UntilAsync(() => sent >= 20, "20 frames to be sent");

        server.Terminate();
        RpcException? ending = null;
        try
        {
            while (await slow.ResponseStream.MoveNext())
            {
                var response = slow.ResponseStream.Current;
                answered.Add(response.Pair?.Sequence1 ?? response.Status.Sequence);
                await Task.Delay(300);
            }
        }
        catch (RpcException e)
        {
            ending = e;
        }

        output.WriteLine($"slow reader: {answered.Count} answers, ended {ending?.StatusCode}: {ending?.Status.Detail}");
        Assert.NotNull(ending);
        Assert.Equal(StatusCode.Unavailable, ending.StatusCode);
        // Every frame the server read is answered in order (frames still in flight at the stop signal were not read).
        Assert.Equal(Enumerable.Range(0, answered.Count).Select(i => (ulong)i), answered);
        Assert.True(answered.Count >= 12, "enough answers were left for the slow reader to outlast the drain time and the grace");
        Assert.Contains($"the last was {answered[^1]}", ending.Status.Detail, StringComparison.Ordinal);
        Assert.Equal(0, await server.ExitCodeAsync());
        await stuckWrites.WaitAsync(Limits.Call);
        await sending.WaitAsync(Limits.Call);
    }

    [Theory]
    [InlineData("")]
    [InlineData("videomatch.v1.VideoMatcher")]
    [InlineData("liveness")]
    public async Task Sigterm_HealthWatch_HearsNotServingThenEndsCleanly(string service)
    {
        // Before: the watch was reset at SIGTERM (INTERNAL "RST_STREAM error code 2") and never heard NOT_SERVING.
        await using var server = await ServerProcess.StartAsync(output, $"--Streaming:ShutdownDrainSeconds={DrainSeconds}", "--Inference:WarmUp=false");
        using var channel = GrpcChannel.ForAddress(server.Address);
        using var watch = new Grpc.Health.V1.Health.HealthClient(channel).Watch(new Grpc.Health.V1.HealthCheckRequest { Service = service }, deadline: Limits.Deadline);
        Assert.True(await watch.ResponseStream.MoveNext());
        Assert.Equal(Grpc.Health.V1.HealthCheckResponse.Types.ServingStatus.Serving, watch.ResponseStream.Current.Status);

        server.Terminate();
        var heard = new List<Grpc.Health.V1.HealthCheckResponse.Types.ServingStatus>();
        while (await watch.ResponseStream.MoveNext())
        {
            heard.Add(watch.ResponseStream.Current.Status);
        }

        Assert.Equal(Grpc.Health.V1.HealthCheckResponse.Types.ServingStatus.NotServing, heard.LastOrDefault());
        Assert.Equal(StatusCode.OK, watch.GetStatus().StatusCode);
        Assert.Equal(0, await server.ExitCodeAsync());
    }

    /// <summary>Sends the frames over and over until the server ends the call; what was answered, and how it ended.</summary>
    private static async Task<(List<ulong> Answered, int Drained, RpcException Ending)> RunUntilEndedAsync(VideoMatcher.VideoMatcherClient client, Image[] images, Action answeredOne)
    {
        using var call = client.MatchStream(deadline: Limits.Deadline);
        var answered = new List<ulong>();
        var drained = 0;
        var reading = Task.Run(async () =>
        {
            try
            {
                while (await call.ResponseStream.MoveNext())
                {
                    var response = call.ResponseStream.Current;
                    answered.Add(response.Pair?.Sequence1 ?? response.Status.Sequence);
                    answeredOne();
                    drained += response.Status?.Message.Contains("Streaming:ShutdownDrainSeconds", StringComparison.Ordinal) == true ? 1 : 0;
                    // A pair is matched or dropped by the drain; never failed because the model was stopped under it.
                    Assert.NotEqual(FrameStatusCode.Failed, response.Status?.Code ?? FrameStatusCode.Unspecified);
                }
            }
            catch (RpcException e)
            {
                return e;
            }

            return new RpcException(new Status(StatusCode.OK, "the stream ended without a status"));
        });
        try
        {
            await call.RequestStream.WriteAsync(new StreamRequest { Config = new StreamConfig() });
            for (ulong i = 0; !reading.IsCompleted; i++)
            {
                await call.RequestStream.WriteAsync(new StreamRequest { Frame = new Frame { Sequence = i, Image = images[i % (ulong)images.Length] } });
            }
        }
        catch (Exception e) when (e is RpcException or InvalidOperationException or IOException or System.Net.Http.HttpProtocolException)
        {
            // The server ended the call (and reset its request side); the reader has its status.
        }

        return (answered, drained, await reading.DefaultTimeout());
    }

    [GeneratedRegex(@"the last was (\d+)")]
    private static partial Regex LastAnswered();
}
