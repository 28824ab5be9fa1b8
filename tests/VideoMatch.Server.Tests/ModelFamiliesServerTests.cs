using Grpc.Core;
using Grpc.Health.V1;
using Microsoft.Extensions.DependencyInjection;
using SkiaSharp;
using VideoMatch.Contracts.V1;
using VideoMatch.Tests;

namespace VideoMatch.Server.Tests;

/// <summary>
/// Several models behind one address: the embedded model, XFeat + LighterGlue and the tiny EfficientLoFTR split export,
/// each with its own batcher, chosen per request by name, each answering as a server of its own does.
/// </summary>
public sealed class ModelFamiliesServerTests
{
    private const string Extractor = "models/xfeat-lighterglue/xfeat_2048_640x360.onnx";

    private static Dictionary<string, string?> OneModel(string path) => new()
    {
        ["Inference:ModelPath"] = path,
        ["Inference:EmbeddedWidth"] = "320",
        ["Inference:EmbeddedHeight"] = "256",
    };

    private static Dictionary<string, string?> ThreeModels => new()
    {
        ["Models:embedded:Path"] = "",
        ["Models:xfeat:Path"] = Path.GetDirectoryName(SharedData.Find(Extractor)),
        ["Models:tiny:Path"] = ExportedModels.Folder("tiny", "--split"),
        ["Inference:DefaultModel"] = "tiny",
        ["Inference:EmbeddedWidth"] = "320",
        ["Inference:EmbeddedHeight"] = "256",
    };

    [ExportedModelFact("tiny")]
    public async Task Streams_ThreeModelsAtOnce_EachAnsweredAsItsOwnServerAnswers()
    {
        var frames = Frames();
        var expected = new Dictionary<string, List<PairMatches>>();
        foreach (var (name, path) in new[] { ("embedded", ""), ("xfeat", ThreeModels["Models:xfeat:Path"]!), ("tiny", ThreeModels["Models:tiny:Path"]!) })
        {
            using var alone = new ServerFactory(OneModel(path));
            expected[name] = await Streams.PairsAsync(alone.Client, new StreamConfig { MatchThreshold = 0.1f }, frames);
        }

        using var server = new ServerFactory(ThreeModels);
        var streams = expected.Keys.Select(name => Streams.PairsAsync(server.Client, new StreamConfig { MatchThreshold = 0.1f, Model = name }, frames)).ToArray();
        var answers = await Task.WhenAll(streams).DefaultTimeout();

        foreach (var (name, answer) in expected.Keys.Zip(answers))
        {
            Assert.Equal(expected[name].Count, answer.Count);
            Assert.True(answer.Sum(p => p.Matches.Count) > 0, $"model {name} matched nothing");
            for (var i = 0; i < answer.Count; i++)
            {
                Assert.Equal(expected[name][i].Matches.Keypoints0, answer[i].Matches.Keypoints0);
                Assert.Equal(expected[name][i].Matches.Keypoints1, answer[i].Matches.Keypoints1);
                Assert.Equal(expected[name][i].Matches.Scores, answer[i].Matches.Scores);
            }
        }

        // Three different models answered, not one three times, and each counted its own batches.
        Assert.Equal(3, answers.Select(a => a.Sum(p => p.Matches.Count)).Distinct().Count());
        var scraped = server.Services.GetRequiredService<Observability.ServerMetrics>().Exporter.Scrape();
        foreach (var name in expected.Keys)
        {
            Assert.Matches($"\\nvideomatch_batches_total{{model=\"{name}\"}} [1-9]", scraped);
            Assert.Contains($"\nvideomatch_model_ready{{model=\"{name}\"}} 1\n", scraped, StringComparison.Ordinal);
        }

        Assert.Contains("\nvideomatch_frames_encoded_total{model=\"tiny\"} 4\n", scraped, StringComparison.Ordinal);
    }

    [ExportedModelFact("tiny")]
    public async Task Requests_UnknownModel_InvalidArgumentNamingTheKnownOnes()
    {
        using var server = new ServerFactory(ThreeModels);

        var stream = await Assert.ThrowsAsync<RpcException>(() => Streams.PairsAsync(server.Client, new StreamConfig { Model = "superglue" }, Frames()));
        var pair = await Assert.ThrowsAsync<RpcException>(async () => await server.Client.MatchPairAsync(
            new MatchPairRequest { Image0 = Frames()[0], Image1 = Frames()[1], Model = "superglue" }, deadline: Limits.Deadline));

        foreach (var (error, field) in new[] { (stream, "StreamConfig.model"), (pair, "MatchPairRequest.model") })
        {
            Assert.Equal(StatusCode.InvalidArgument, error.StatusCode);
            Assert.Equal($"{field} 'superglue' names no model of this server; it serves 'embedded', 'tiny', 'xfeat' (the default, used when {field} is empty: 'tiny').", error.Status.Detail);
        }
    }

    [ExportedModelFact("tiny")]
    public async Task ListModelsAndHealth_EveryModelByName_DefaultDecidesOverallHealth()
    {
        using var server = new ServerFactory(ThreeModels);
        var health = new Health.HealthClient(server.Channel);

        var list = await server.Client.ListModelsAsync(new ListModelsRequest(), deadline: Limits.Deadline);
        var xfeat = await server.Client.GetModelInfoAsync(new GetModelInfoRequest { Model = "xfeat" }, deadline: Limits.Deadline);
        var statuses = new Dictionary<string, HealthCheckResponse.Types.ServingStatus>();
        foreach (var service in new[] { "", "embedded", "xfeat", "tiny" })
        {
            statuses[service] = (await health.CheckAsync(new HealthCheckRequest { Service = service }, deadline: Limits.Deadline)).Status;
        }

        Assert.Equal("tiny", list.DefaultModel);
        Assert.Equal(["embedded", "tiny", "xfeat"], list.Models.Select(m => m.Name));
        Assert.All(list.Models, m => Assert.True(m.Serving, m.NotServingReason));
        Assert.Equal((360u, 640u), (xfeat.InputWidth, xfeat.InputHeight));
        Assert.Equal("xfeat", xfeat.Name);
        Assert.All(statuses.Values, s => Assert.Equal(HealthCheckResponse.Types.ServingStatus.Serving, s));
    }

    [ExportedModelFact("tiny")]
    public async Task Start_OneModelFailsItsSelfCheck_TheOthersServeAndHealthSaysWhich()
    {
        var settings = ThreeModels;
        settings["Models:tiny:Path"] = ExportedModels.Tampered("tiny");
        settings["Inference:DefaultModel"] = "embedded";
        using var server = new ServerFactory(settings);
        var health = new Health.HealthClient(server.Channel);

        var overall = await health.CheckAsync(new HealthCheckRequest(), deadline: Limits.Deadline);
        var tiny = await health.CheckAsync(new HealthCheckRequest { Service = "tiny" }, deadline: Limits.Deadline);
        var list = await server.Client.ListModelsAsync(new ListModelsRequest(), deadline: Limits.Deadline);
        var refused = await Assert.ThrowsAsync<RpcException>(async () => await server.Client.MatchPairAsync(
            new MatchPairRequest { Image0 = Frames()[0], Image1 = Frames()[1], Model = "tiny" }, deadline: Limits.Deadline));
        var served = await server.Client.MatchPairAsync(new MatchPairRequest { Image0 = Frames()[0], Image1 = Frames()[1], Model = "xfeat" }, deadline: Limits.Deadline);

        Assert.Equal(HealthCheckResponse.Types.ServingStatus.Serving, overall.Status);
        Assert.Equal(HealthCheckResponse.Types.ServingStatus.NotServing, tiny.Status);
        Assert.Contains("failed its self-check", list.Models.Single(m => m.Name == "tiny").NotServingReason, StringComparison.Ordinal);
        Assert.Equal(StatusCode.Unavailable, refused.StatusCode);
        Assert.Contains("Model 'tiny' failed its self-check", refused.Status.Detail, StringComparison.Ordinal);
        Assert.True(served.Matches.Count > 0);
    }

    /// <summary>Four 640×360 crops of a real photo, panning right.</summary>
    private static List<Image> Frames()
    {
        using var photo = SKBitmap.Decode(SharedData.Find("images/DSC_0410.jpg"));
        return [.. Enumerable.Range(0, 4).Select(i => PhotoFrames.Crop(photo, 200 + (6 * i), 150 + (2 * i), 640, 360))];
    }
}
