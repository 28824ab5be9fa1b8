using Google.Protobuf;
using Grpc.Core.Interceptors;
using VideoMatch.Contracts.V1;
using VideoMatch.Engine.Models;
using VideoMatch.Tests;

namespace VideoMatch.Server.Tests;

/// <summary>
/// An EfficientLoFTR export (the tiny fixture through tools/export) served end to end over gRPC. Skips without the
/// fixtures or the exporter's Python.
/// </summary>
public sealed class EfficientLoFTRServerTests
{

    [ExportedModelFact("tiny")]
    public async Task MatchPairAndStream_ExportedTinyModel_ServedWithItsInfoAndTheFixtureShift()
    {
        using var server = new ServerFactory(new Dictionary<string, string?> { ["Inference:ModelPath"] = ExportedModels.Folder("tiny") });
        var (image0, image1) = FixturePair("pd");

        var info = await server.Client.GetModelInfoAsync(new GetModelInfoRequest(), deadline: Limits.Deadline);
        var pair = await server.Client.MatchPairAsync(new MatchPairRequest { Image0 = image0, Image1 = image1, MatchThreshold = 0f }, deadline: Limits.Deadline);

        Assert.Equal("tiny-128x160", info.ModelName);
        Assert.Equal((160u, 128u, 320u), (info.InputWidth, info.InputHeight, info.MaxMatchesPerPair));
        Assert.Equal(0.2f, info.DefaultMatchThreshold);
        // Pair d: image 1 is image 0 moved by (−16, −8) px; the fixture's random weights find 32 such cell matches.
        Assert.Equal(32u, pair.Matches.Count);
        AssertShift(pair.Matches);

        var responses = await Streams.RunAsync(server.Client, new StreamConfig { MatchThreshold = 0f },
            [new Frame { Sequence = 1, Image = image0 }, new Frame { Sequence = 2, Image = image1 }]);

        Assert.Equal(2, responses.Count);
        Assert.Equal(FrameStatusCode.FirstFrame, responses[0].Status.Code);
        Assert.Equal(pair.Matches.Keypoints1, responses[1].Pair.Matches.Keypoints1);
    }

    [ExportedModelFact("tiny")]
    public async Task Start_ExportFailingItsSelfCheck_NeverServesAndSaysWhy()
    {
        using var server = new ServerFactory(new Dictionary<string, string?> { ["Inference:ModelPath"] = ExportedModels.Tampered("tiny") });
        var health = new Grpc.Health.V1.Health.HealthClient(server.Channel);

        var status = await health.CheckAsync(new Grpc.Health.V1.HealthCheckRequest(), deadline: Limits.Deadline);
        var error = await Assert.ThrowsAsync<Grpc.Core.RpcException>(async () => await server.Client.GetModelInfoAsync(new GetModelInfoRequest(), deadline: Limits.Deadline));

        Assert.Equal(Grpc.Health.V1.HealthCheckResponse.Types.ServingStatus.NotServing, status.Status);
        Assert.Equal(Grpc.Core.StatusCode.Unavailable, error.StatusCode);
        Assert.Contains("failed its self-check", error.Status.Detail, StringComparison.Ordinal);
        // Every image-1 point moved by 2 px: at least that far, for every match (near-duplicate matches 2 px apart may pair crosswise).
        var moved = System.Text.RegularExpressions.Regex.Match(error.Status.Detail, @"largest keypoint difference ([0-9.]+) px \(([0-9]+) above 0.001 px");
        Assert.True(moved.Success && double.Parse(moved.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture) >= 2, error.Status.Detail);
    }

    [ExportedModelFact("tiny")]
    public async Task Stream_Fp16SplitExport_PassesItsSelfCheckAndServes()
    {
        // Before: every --fp16 export failed its own self-check (flipped slots' scores were compared), so the server
        // stayed NOT_SERVING; and the split had no fp16 graphs at all.
        using var server = new ServerFactory(new Dictionary<string, string?>
        {
            ["Inference:ModelPath"] = ExportedModels.Folder("tiny", "--split", "--fp16"),
            ["Inference:Precision"] = "fp16",
        });
        var (image0, image1) = FixturePair("pd");

        var info = await server.Client.GetModelInfoAsync(new GetModelInfoRequest(), deadline: Limits.Deadline);
        var pairs = await Streams.PairsAsync(server.Client, new StreamConfig { MatchThreshold = 0f }, [image0, image1, image0]);

        Assert.Equal("split graphs (encoder encoder-fp16.onnx once per frame + matcher matcher-fp16.onnx), fp16", info.Graph);
        Assert.EndsWith("-fp16", info.ModelName, StringComparison.Ordinal);
        Assert.Equal(2, pairs.Count);
        Assert.All(pairs, p => Assert.True(p.Matches.Count >= 20, $"{p.Matches.Count} matches"));
    }

    [ExportedModelFact("tiny")]
    public async Task MatchPair_TopKExport_ReturnsAtMostK()
    {
        using var server = new ServerFactory(new Dictionary<string, string?> { ["Inference:ModelPath"] = ExportedModels.Folder("tiny", "--top-k", "16") });
        var (image0, image1) = FixturePair("pd");

        var info = await server.Client.GetModelInfoAsync(new GetModelInfoRequest(), deadline: Limits.Deadline);
        var pair = await server.Client.MatchPairAsync(new MatchPairRequest { Image0 = image0, Image1 = image1 }, deadline: Limits.Deadline);

        Assert.Equal(16u, info.MaxMatchesPerPair);
        Assert.Equal(16u, pair.Matches.Count);
        AssertShift(pair.Matches);
    }

    [ExportedModelFact("tiny")]
    public async Task Stream_SplitExport_EncodesEachFrameOnceAndCountsIt()
    {
        var metricsPort = Ports.Free();
        await using var server = await LoopbackServer.StartAsync(false, $"--Metrics:Url=http://127.0.0.1:{metricsPort}",
            $"--Inference:ModelPath={ExportedModels.Folder("tiny", "--split")}", "--Batching:MaxBatchSize=2");
        using var channel = Grpc.Net.Client.GrpcChannel.ForAddress(server.Address);
        var client = new VideoMatcher.VideoMatcherClient(channel.Intercept(new DefaultDeadline()));
        var (image0, image1) = FixturePair("pd");

        // Frames 0..5 alternate between the pair's images: every pair is (0, 1)-like, 32 matches each way round.
        var pairs = await Streams.PairsAsync(client, new StreamConfig { MatchThreshold = 0f }, Enumerable.Range(0, 6).Select(i => i % 2 == 0 ? image0 : image1));

        var metrics = await ObservabilityTests.ScrapeAsync(metricsPort);

        Assert.Equal(5, pairs.Count);
        Assert.All(pairs, p => Assert.True(p.Matches.Count >= 20, $"{p.Matches.Count} matches"));
        Assert.Equal(6, metrics["videomatch_frames_encoded_total"]);
        Assert.Equal(5, metrics["videomatch_matcher_pairs_total"]);
        Assert.Equal(8, metrics["videomatch_frame_bank_slots"]);
        Assert.InRange(metrics["videomatch_frame_bank_slots_in_use"], 0, 2);
        Assert.Equal(0, metrics["videomatch_frame_bank_evictions_total"]);
    }

    private static void AssertShift(Matches matches)
    {
        for (var i = 0; i < matches.Count; i++)
        {
            // Whole-cell matches, refined within their windows: within one cell of the true (−16, −8).
            Assert.InRange(matches.Keypoints1[2 * i] - matches.Keypoints0[2 * i], -24f, -8f);
            Assert.InRange(matches.Keypoints1[2 * i + 1] - matches.Keypoints0[2 * i + 1], -16f, 0f);
        }
    }

    /// <summary>A fixture pair as GRAY8 frames at the model's size, quantised as the export's self-check does.</summary>
    private static (Image Image0, Image Image1) FixturePair(string pair)
    {
        var (golden, _) = Safetensors.Read(Path.Combine(ExportedModels.Checkpoint("tiny")!, "golden.safetensors"));
        var pixels = golden[$"{pair}.pixel_values"].As<float>("F32");
        var images = new Image[2];
        const int plane = 160 * 128;
        for (var i = 0; i < 2; i++)
        {
            var gray = new byte[plane];
            for (var p = 0; p < plane; p++)
            {
                gray[p] = (byte)Math.Clamp(MathF.Round(pixels[(i * 3 * plane) + p] * 255f), 0, 255);
            }

            images[i] = new Image { Raw = new RawImage { Format = PixelFormat.Gray8, Width = 160, Height = 128, Data = ByteString.CopyFrom(gray) } };
        }

        return (images[0], images[1]);
    }
}
