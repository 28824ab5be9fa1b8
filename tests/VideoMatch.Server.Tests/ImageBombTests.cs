using System.Diagnostics;
using Google.Protobuf;
using Grpc.Core.Interceptors;
using Grpc.Net.Client;
using SkiaSharp;
using VideoMatch.Contracts.V1;
using VideoMatch.Tests;
using Xunit.Abstractions;

namespace VideoMatch.Server.Tests;

/// <summary>
/// The built server as a process, hit by a burst of image bombs and images at the pixel limit from 8 streams at
/// once: every frame is answered, health keeps answering, and resident memory stays within the stated bound.
/// </summary>
[Collection(SoakRunsAlone.Name)]
public sealed class ImageBombTests(ITestOutputHelper output)
{
    /// <summary>The bound docs/SECURITY.md states: growth of resident memory over the burst, decode budget (256 MiB) included.</summary>
    private const long AllowedGrowthBytes = 768L * 1024 * 1024;

    private const int StreamCount = 8;

    [Fact]
    public async Task Burst_BombsAndFramesAtThePixelLimit_AnsweredWithMemoryBoundedAndHealthAnswering()
    {
        await using var server = await ServerProcess.StartAsync(output, "--Inference:EmbeddedWidth=320", "--Inference:EmbeddedHeight=256", "--Inference:WarmUp=false");
        using var channel = GrpcChannel.ForAddress(server.Address, new GrpcChannelOptions { MaxSendMessageSize = null });
        var client = new VideoMatcher.VideoMatcherClient(channel.Intercept(new DefaultDeadline()));
        // Probes come on a connection of their own, as kubelet's do.
        using var probeChannel = GrpcChannel.ForAddress(server.Address);
        var health = new Grpc.Health.V1.Health.HealthClient(probeChannel);
        await Limits.UntilAsync(() => IsServing(health), "the server to report SERVING");

        var large = LargePng();
        Image[] burst =
        [
            Encoded(ImageEncoding.Png, VideoMatch.Tests.Frames.ImageBombs.PngDeclaring(8192, 8192, 196 * 1024)),
            Encoded(ImageEncoding.Png, large),
            Encoded(ImageEncoding.Png, VideoMatch.Tests.Frames.ImageBombs.PngDeclaring(8192, 8192, 40)),
            Encoded(ImageEncoding.Png, large),
        ];
        // One stream first, so the model's and the runtime's own first-use memory is in the baseline.
        await Streams.RunAsync(client, new StreamConfig(), burst.Select((image, i) => new Frame { Sequence = (ulong)i, Image = image }));
        var baseline = server.Resident;

        using var sampling = new CancellationTokenSource();
        var peak = baseline;
        var slowestHealth = TimeSpan.Zero;
        var sampler = Task.Run(async () =>
        {
            while (!sampling.IsCancellationRequested)
            {
                peak = Math.Max(peak, server.Resident);
                var asked = Stopwatch.GetTimestamp();
                await health.CheckAsync(new Grpc.Health.V1.HealthCheckRequest(), deadline: Limits.Deadline);
                var took = Stopwatch.GetElapsedTime(asked);
                slowestHealth = took > slowestHealth ? took : slowestHealth;
                await Task.Delay(50);
            }
        });
        var runs = await Task.WhenAll(Enumerable.Range(0, StreamCount).Select(_ =>
            Streams.RunAsync(client, new StreamConfig(), burst.Concat(burst).Select((image, i) => new Frame { Sequence = (ulong)i, Image = image })))).DefaultTimeout();
        await sampling.CancelAsync();
        await sampler.DefaultTimeout();
        var after = server.Resident;

        output.WriteLine($"large PNG {large.Length >> 10} KiB; RSS baseline {baseline >> 20} MiB, peak {peak >> 20} MiB, after {after >> 20} MiB; slowest health check {slowestHealth.TotalMilliseconds:F0} ms");
        foreach (var responses in runs)
        {
            Assert.Equal(8, responses.Count);
            Assert.All(new[] { 0, 2, 4, 6 }, i => Assert.Equal(FrameStatusCode.Invalid, responses[i].Status.Code));
            Assert.Contains("8192×8192", responses[0].Status.Message, StringComparison.Ordinal);
            Assert.NotNull(responses[3].Pair);
        }

        Assert.True(peak - baseline < AllowedGrowthBytes, $"resident memory grew {(peak - baseline) >> 20} MiB during the burst");
        Assert.True(slowestHealth < TimeSpan.FromSeconds(2), $"a health check took {slowestHealth.TotalMilliseconds:F0} ms");
    }

    private static bool IsServing(Grpc.Health.V1.Health.HealthClient health)
    {
        try
        {
            return health.Check(new Grpc.Health.V1.HealthCheckRequest(), deadline: DateTime.UtcNow.AddSeconds(2)).Status == Grpc.Health.V1.HealthCheckResponse.Types.ServingStatus.Serving;
        }
        catch (Grpc.Core.RpcException)
        {
            return false;
        }
    }

    private static Image Encoded(ImageEncoding encoding, byte[] data) => new() { Encoded = new EncodedImage { Encoding = encoding, Data = ByteString.CopyFrom(data) } };

    /// <summary>A valid 4096×2160 colour PNG (a smooth pattern, so it stays small): 35 MB once decoded.</summary>
    private static byte[] LargePng()
    {
        using var bitmap = new SKBitmap(new SKImageInfo(4096, 2160, SKColorType.Rgba8888, SKAlphaType.Opaque));
        var pixels = bitmap.GetPixelSpan();
        for (var y = 0; y < 2160; y++)
        {
            for (var x = 0; x < 4096; x++)
            {
                var at = 4 * ((y * 4096) + x);
                (pixels[at], pixels[at + 1], pixels[at + 2], pixels[at + 3]) = ((byte)(x >> 4), (byte)(y >> 3), (byte)((x + y) >> 5), 255);
            }
        }

        using var image = SKImage.FromBitmap(bitmap);
        using var data = image.Encode(SKEncodedImageFormat.Png, 100);
        return data.ToArray();
    }
}
