using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Numerics;
using System.Text.RegularExpressions;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Core.Interceptors;
using Grpc.Net.Client;
using VideoMatch.Contracts.V1;
using VideoMatch.Tests;
using Xunit.Abstractions;

namespace VideoMatch.Server.Tests;

/// <summary>
/// Everything at once against the built server, for VIDEOMATCH_HOSTILE_SOAK_SECONDS (default 60): normal streams,
/// garbage bodies, image and JPEG bombs, damaged JPEGs, cancelled streams and reset connections, health probes; then
/// SIGTERM with streams open. Every frame read is answered once in order, the exit code is 0, health answers
/// throughout, resident memory stays bounded and each hostile request costs a bounded number of log bytes.
/// </summary>
[Collection(SoakRunsAlone.Name)]
public sealed partial class HostileSoakTests(ITestOutputHelper output)
{
    /// <summary>Growth of resident memory over the soak: the decode budget (256 MiB) and the model's arena at batch 8, with room.</summary>
    private const long AllowedGrowthBytes = 768L * 1024 * 1024;

    /// <summary>A bad-request line with its console header (the detail is cut to 300 characters).</summary>
    private const int MaxLogBytesPerHostileRequest = 700;

    /// <summary>A stream's start and end lines.</summary>
    private const int MaxLogBytesPerStream = 2 * 400;

    private const int Width = 320;
    private const int Height = 256;

    [Fact]
    public async Task Soak_NormalAndHostileTrafficThenSigterm_EveryFrameReadAnsweredInOrderAndBounded()
    {
        var seconds = double.Parse(Environment.GetEnvironmentVariable("VIDEOMATCH_HOSTILE_SOAK_SECONDS") ?? "60", CultureInfo.InvariantCulture);
        await using var server = await ServerProcess.StartAsync(output, $"--Inference:EmbeddedWidth={Width}", $"--Inference:EmbeddedHeight={Height}",
            "--Inference:WarmUp=false", "--Streaming:ShutdownDrainSeconds=2");
        using var channel = GrpcChannel.ForAddress(server.Address, new GrpcChannelOptions { MaxSendMessageSize = null });
        var client = new VideoMatcher.VideoMatcherClient(channel.Intercept(new DefaultDeadline()));
        using var probeChannel = GrpcChannel.ForAddress(server.Address);
        var health = new Grpc.Health.V1.Health.HealthClient(probeChannel);
        var video = new SyntheticVideo(seed: 71, width: Width, height: Height);
        var frames = Enumerable.Range(0, 8).Select(i => video.Raw(new Vector2(i, i % 3))).ToArray();

        // One stream first, so the model's and the runtime's first-use memory is in the baseline.
        await Streams.RunAsync(client, new StreamConfig(), frames.Select((image, i) => new Frame { Sequence = (ulong)i, Image = image }));
        var baseline = server.Resident;
        var logBefore = server.Log.Length;

        using var soaking = new CancellationTokenSource(TimeSpan.FromSeconds(seconds));
        var tally = new Tally();
        var workers = new List<Task>
        {
            Task.Run(() => HealthAsync(health, () => server.Resident, tally, soaking.Token)),
            Task.Run(() => GarbageAsync(server.Address, tally, soaking.Token)),
            Task.Run(() => BombsAsync(client, tally, soaking.Token)),
            Task.Run(() => CancelsAndResetsAsync(client, server.Port, frames, tally, soaking.Token)),
        };
        workers.AddRange(Enumerable.Range(0, 3).Select(s => Task.Run(() => NormalStreamsAsync(client, frames, s, tally, soaking.Token))));
        await Task.WhenAll(workers).WaitAsync(TimeSpan.FromSeconds(seconds) + Limits.Call);

        // The end: streams open and sending when the stop signal comes, each on a connection of its own, as cameras are.
        var cameras = Enumerable.Range(0, 4).Select(_ => GrpcChannel.ForAddress(server.Address)).ToArray();
        var open = cameras.Select(camera => OpenStreamAsync(new VideoMatcher.VideoMatcherClient(camera.Intercept(new DefaultDeadline())), frames)).ToArray();
        await Limits.UntilAsync(() => open.All(s => s.Answered.Count > 2), "the last streams to be answered");
        var logged = server.Log[logBefore..];
        server.Terminate();
        var endings = await Task.WhenAll(open.Select(s => s.Ended)).WaitAsync(Limits.Call);
        var exitCode = await server.ExitCodeAsync();
        foreach (var camera in cameras)
        {
            camera.Dispose();
        }

        var report = string.Create(CultureInfo.InvariantCulture,
            $"hostile soak, {seconds:F0} s: {tally.NormalFrames} normal frames in {tally.NormalStreams} streams, {tally.Garbage} garbage bodies, " +
            $"{tally.Bombs} bombs and damaged JPEGs, {tally.Cancels} cancelled streams, {tally.Resets} reset connections, {tally.Probes} health probes " +
            $"(slowest {tally.SlowestProbe.TotalMilliseconds:F0} ms); RSS {baseline / 1048576.0:F0} → peak {tally.PeakResident / 1048576.0:F0} MiB; " +
            $"{logged.Length} log bytes");
        output.WriteLine(report);
        if (Environment.GetEnvironmentVariable("VIDEOMATCH_SOAK_REPORT") is { Length: > 0 } file)
        {
            await File.AppendAllTextAsync(file, report + Environment.NewLine);
        }

        Assert.True(tally.NormalStreams > 0 && tally.Garbage > 0 && tally.Bombs > 0 && tally.Cancels > 0 && tally.Resets > 0, report);
        Assert.Equal(0, exitCode);
        Assert.True(tally.SlowestProbe < TimeSpan.FromSeconds(2), $"health answered within 2 s throughout: {report}");
        Assert.True(tally.PeakResident - baseline < AllowedGrowthBytes, report);
        Assert.DoesNotContain("   at ", logged, StringComparison.Ordinal);
        var hostile = tally.Garbage + tally.Bombs;
        var streams = tally.NormalStreams + tally.Cancels + tally.BombStreams;
        Assert.True(logged.Length <= (hostile * MaxLogBytesPerHostileRequest) + (streams * MaxLogBytesPerStream), report);
        foreach (var (stream, ending) in open.Zip(endings))
        {
            // Every answer came once, in order, with no gap, and the call ended with the documented status, which says
            // which frame was answered last: the client resends from the next.
            Assert.Equal(Enumerable.Range(0, stream.Answered.Count).Select(i => (ulong)i), stream.Answered);
            Assert.True(ending.StatusCode == StatusCode.Unavailable && ending.Status.Detail.StartsWith("The server is shutting down", StringComparison.Ordinal),
                $"a camera open at SIGTERM ended {ending.StatusCode}: {ending.Status.DebugException?.Message ?? ending.Status.Detail}");
            Assert.Contains($"the last was {stream.Answered[^1]}", ending.Status.Detail, StringComparison.Ordinal);
        }
    }

    private static async Task HealthAsync(Grpc.Health.V1.Health.HealthClient health, Func<long> resident, Tally tally, CancellationToken stop)
    {
        while (!stop.IsCancellationRequested)
        {
            tally.PeakResident = Math.Max(tally.PeakResident, resident());
            var asked = Stopwatch.GetTimestamp();
            var answer = await health.CheckAsync(new Grpc.Health.V1.HealthCheckRequest(), deadline: DateTime.UtcNow.AddSeconds(10), cancellationToken: CancellationToken.None);
            tally.Probe(Stopwatch.GetElapsedTime(asked), answer.Status);
            await Task.Delay(100, CancellationToken.None);
        }
    }

    private static async Task NormalStreamsAsync(VideoMatcher.VideoMatcherClient client, Image[] frames, int seed, Tally tally, CancellationToken stop)
    {
        var count = 12 + seed;
        while (!stop.IsCancellationRequested)
        {
            var responses = await Streams.RunAsync(client, new StreamConfig { StreamName = $"normal-{seed}" },
                Enumerable.Range(0, count).Select(i => new Frame { Sequence = (ulong)i, Image = frames[i % frames.Length] }));
            // Exactly one answer per frame, in order: FIRST_FRAME, then pairs.
            Assert.Equal(Enumerable.Range(0, count).Select(i => (ulong)i), responses.Select(r => r.Pair?.Sequence1 ?? r.Status.Sequence));
            Assert.All(responses.Skip(1), r => Assert.NotNull(r.Pair));
            tally.Normal(count);
        }
    }

    private static async Task GarbageAsync(string address, Tally tally, CancellationToken stop)
    {
        var bodies = LogTests.HostileBodies().Select(row => ((string)row[1], (byte[])row[2], (string?)row[3])).ToArray();
        var i = 0;
        while (!stop.IsCancellationRequested)
        {
            // A new connection now and then, so the per-connection line limit is not all that keeps the log small.
            using var http = new HttpClient(new SocketsHttpHandler()) { Timeout = Limits.Call };
            for (var k = 0; k < 8 && !stop.IsCancellationRequested; k++, i++)
            {
                var (method, body, encoding) = bodies[i % bodies.Length];
                await LogTests.PostAsync(http, address, method, body, encoding);
                Tally.Add(ref tally.Garbage);
                // Paced (a load generator's rate, not a wait for a condition): about 100 a second, so that the normal
                // streams share the two cores rather than queue behind garbage.
                await Task.Delay(10, CancellationToken.None);
            }
        }
    }

    private static async Task BombsAsync(VideoMatcher.VideoMatcherClient client, Tally tally, CancellationToken stop)
    {
        var jpeg = Jpeg();
        var cut = jpeg.AsSpan(0, jpeg.Length / 2).ToArray().Concat(new byte[] { 0xFF, 0xD9 }).ToArray();
        var patched = (byte[])jpeg.Clone();
        var sof = patched.AsSpan().IndexOf(new byte[] { 0xFF, 0xC0 });
        System.Buffers.Binary.BinaryPrimitives.WriteUInt16BigEndian(patched.AsSpan(sof + 5), 2160);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt16BigEndian(patched.AsSpan(sof + 7), 4096);
        Image[] bad =
        [
            Encoded(ImageEncoding.Png, VideoMatch.Tests.Frames.ImageBombs.PngDeclaring(8192, 8192, 196 * 1024)),
            Encoded(ImageEncoding.Png, VideoMatch.Tests.Frames.ImageBombs.PngDeclaring(4096, 2160, 40)),
            Encoded(ImageEncoding.Jpeg, cut),
            Encoded(ImageEncoding.Jpeg, patched),
        ];
        while (!stop.IsCancellationRequested)
        {
            var responses = await Streams.RunAsync(client, new StreamConfig { StreamName = "bombs" },
                bad.Select((image, i) => new Frame { Sequence = (ulong)i, Image = image }));
            Assert.Equal(bad.Length, responses.Count);
            Assert.All(responses, r => Assert.Equal(FrameStatusCode.Invalid, r.Status.Code));
            Tally.Add(ref tally.BombStreams);
            for (var i = 0; i < bad.Length; i++)
            {
                Tally.Add(ref tally.Bombs);
            }
        }
    }

    private static async Task CancelsAndResetsAsync(VideoMatcher.VideoMatcherClient client, int port, Image[] frames, Tally tally, CancellationToken stop)
    {
        while (!stop.IsCancellationRequested)
        {
            using (var cancelled = new CancellationTokenSource())
            {
                using var call = client.MatchStream(cancellationToken: cancelled.Token);
                await call.RequestStream.WriteAsync(new StreamRequest { Config = new StreamConfig { StreamName = "cancelled" } }, CancellationToken.None);
                for (var i = 0; i < 4; i++)
                {
                    await call.RequestStream.WriteAsync(new StreamRequest { Frame = new Frame { Sequence = (ulong)i, Image = frames[i] } }, CancellationToken.None);
                }

                await call.ResponseStream.MoveNext(CancellationToken.None).WaitAsync(Limits.Call, CancellationToken.None);
                await cancelled.CancelAsync();
                Tally.Add(ref tally.Cancels);
            }

            // A connection that starts HTTP/2 and is reset mid-frame.
            using (var tcp = new TcpClient())
            {
                await tcp.ConnectAsync(IPAddress.Loopback, port).WaitAsync(Limits.Call, CancellationToken.None);
                await tcp.GetStream().WriteAsync("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0"u8.ToArray(), CancellationToken.None);
                tcp.Client.LingerState = new LingerOption(true, 0);
                Tally.Add(ref tally.Resets);
            }
        }
    }

    /// <summary>A stream that keeps sending until the server ends it; what it answered, and how it ended.</summary>
    private static OpenStream OpenStreamAsync(VideoMatcher.VideoMatcherClient client, Image[] frames)
    {
        var stream = new OpenStream();
        var call = client.MatchStream(deadline: Limits.Deadline);
        _ = Task.Run(async () =>
        {
            try
            {
                await call.RequestStream.WriteAsync(new StreamRequest { Config = new StreamConfig { StreamName = "open" } });
                for (ulong i = 0; i < 100_000; i++)
                {
                    await call.RequestStream.WriteAsync(new StreamRequest { Frame = new Frame { Sequence = i, Image = frames[i % (ulong)frames.Length] } });
                }
            }
            catch (Exception e) when (e is RpcException or IOException or InvalidOperationException)
            {
                // The server stopped reading.
            }
        });
        stream.Ended = Task.Run(async () =>
        {
            try
            {
                while (await call.ResponseStream.MoveNext(CancellationToken.None))
                {
                    var response = call.ResponseStream.Current;
                    lock (stream.Answered)
                    {
                        stream.Answered.Add(response.Pair?.Sequence1 ?? response.Status.Sequence);
                    }
                }

                throw new InvalidOperationException("The stream ended without a status.");
            }
            catch (RpcException e)
            {
                return e;
            }
            finally
            {
                call.Dispose();
            }
        });
        return stream;
    }

    private static Image Encoded(ImageEncoding encoding, byte[] data) => new() { Encoded = new EncodedImage { Encoding = encoding, Data = ByteString.CopyFrom(data) } };

    /// <summary>A 320×240 baseline JPEG of the synthetic scene.</summary>
    private static byte[] Jpeg()
    {
        var gray = new byte[320 * 240];
        new VideoMatch.Synthetic.TexturedScene(seed: 5).RenderGray(320, 240, Matrix3x2.Identity, gray);
        using var bitmap = new SkiaSharp.SKBitmap(new SkiaSharp.SKImageInfo(320, 240, SkiaSharp.SKColorType.Gray8, SkiaSharp.SKAlphaType.Opaque));
        System.Runtime.InteropServices.Marshal.Copy(gray, 0, bitmap.GetPixels(), gray.Length);
        using var data = bitmap.Encode(SkiaSharp.SKEncodedImageFormat.Jpeg, 90);
        return data.ToArray();
    }

    private sealed class OpenStream
    {
        public List<ulong> Answered { get; } = [];

        public Task<RpcException> Ended { get; set; } = Task.FromException<RpcException>(new InvalidOperationException("not started"));
    }

    private sealed class Tally
    {
        public int NormalStreams;
        public long NormalFrames;
        public int Garbage;
        public int Bombs;
        public int BombStreams;
        public int Cancels;
        public int Resets;
        public int Probes;
        public TimeSpan SlowestProbe;
        public long PeakResident;

        public static void Add(ref int field) => Interlocked.Increment(ref field);

        public void Normal(int frames)
        {
            Interlocked.Increment(ref NormalStreams);
            Interlocked.Add(ref NormalFrames, frames);
        }

        public void Probe(TimeSpan took, Grpc.Health.V1.HealthCheckResponse.Types.ServingStatus status)
        {
            Assert.Equal(Grpc.Health.V1.HealthCheckResponse.Types.ServingStatus.Serving, status);
            lock (this)
            {
                Probes++;
                SlowestProbe = took > SlowestProbe ? took : SlowestProbe;
            }
        }
    }
}
