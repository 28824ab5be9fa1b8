using Grpc.Core;
using VideoMatch.Cli.Commands;
using VideoMatch.Client;
using VideoMatch.Contracts.V1;
using VideoMatch.Server;

/// <summary>
/// How fast the server takes in frames, set against a plain gRPC echo driven the same way: the CLI's load
/// generator sends 640×480 GRAY8 frames as fast as each server answers. The echo parses each frame and answers
/// at once. VideoMatch runs its whole path (validation, preprocessing, pairing, batching, post-processing,
/// ordered responses) around a model that returns no matches at once, so the figure is the server's own cost;
/// a third run puts the embedded CPU model back, where the model sets the pace (responses keep frame order).
/// </summary>
internal static class Ingest
{
    public static async Task RunAsync(Settings settings)
    {
        var bench = new BenchSettings(settings.Streams, 1000, TimeSpan.FromSeconds(settings.Seconds), settings.Width, settings.Height);
        Console.WriteLine($"ingest: {bench.Streams} streams, {bench.Width}×{bench.Height} GRAY8, as fast as answered (target {bench.FramesPerSecond} frames/s per stream), {settings.Seconds} s each");
        Console.WriteLine();

        var echo = await MeasureAsync(EchoHost(), bench);
        var videomatch = await MeasureAsync(VideoMatchHost(settings, noOpModel: true), bench);
        var withModel = await MeasureAsync(VideoMatchHost(settings, noOpModel: false), bench);

        Console.WriteLine("| server | frames answered/s | pairs matched/s | p50 / p99 pair latency (ms) | unanswered |");
        Console.WriteLine("|---|---|---|---|---|");
        Print("plain gRPC echo (parses each frame, answers at once)", echo);
        Print("VideoMatch server path, no-op model", videomatch);
        Print($"VideoMatch with the embedded model on CPU ({settings.Width}×{settings.Height})", withModel);
        Console.WriteLine();
        Console.WriteLine($"ingest ratio VideoMatch / echo = {videomatch.ResponsesPerSecond / echo.ResponsesPerSecond:F3}");
    }

    private static void Print(string name, BenchReport r) =>
        Console.WriteLine($"| {name} | {r.ResponsesPerSecond:F0} | {r.PairsPerSecond:F2} | {r.LatencyP50Ms:F1} / {r.LatencyP99Ms:F1} | {r.Unanswered} |");

    private static async Task<BenchReport> MeasureAsync(WebApplication app, BenchSettings bench)
    {
        await using (app)
        {
            await app.StartAsync();
            using var client = new VideoMatchClient(new Uri(app.Urls.First()));
            // A short first run opens connections and warms both sides.
            await BenchRunner.RunAsync(client, bench with { Duration = TimeSpan.FromSeconds(1) }, CancellationToken.None);
            var report = await BenchRunner.RunAsync(client, bench, CancellationToken.None);
            await app.StopAsync();
            return report;
        }
    }

    private static WebApplication EchoHost()
    {
        var builder = WebApplication.CreateBuilder(Arguments());
        builder.Services.AddGrpc(o => o.MaxReceiveMessageSize = 16 * 1024 * 1024);
        var app = builder.Build();
        app.MapGrpcService<EchoService>();
        return app;
    }

    private static WebApplication VideoMatchHost(Settings settings, bool noOpModel) =>
        ServerApp.Build(Arguments($"--Inference:EmbeddedWidth={settings.Width}", $"--Inference:EmbeddedHeight={settings.Height}"), builder =>
        {
            if (noOpModel)
            {
                builder.Services.AddSingleton<VideoMatch.Server.Hosting.MatcherFactory>((options, maxBatch) =>
                    new NoOpMatcher(VideoMatch.Engine.Models.EmbeddedMatcherModel.Manifest(options.EmbeddedWidth, options.EmbeddedHeight), maxBatch));
            }
        });

    private static string[] Arguments(params string[] more) =>
    [
        "--urls", "http://127.0.0.1:0",
        "--Metrics:Url=",
        "--Kestrel:EndpointDefaults:Protocols", "Http2",
        "--Logging:LogLevel:Default", "Warning",
        .. more,
    ];

    /// <summary>A model that answers every pair with no matches at once: what is left is the server's own work.</summary>
    private sealed class NoOpMatcher(VideoMatch.Engine.Inference.ModelManifest manifest, int maxBatchSize) : VideoMatch.Engine.Inference.IPairMatcher
    {
        public VideoMatch.Engine.Inference.ModelManifest Manifest => manifest;

        public string ExecutionProvider => "none";

        public int MaxBatchSize => maxBatchSize;

        public VideoMatch.Engine.Inference.ModelWork Work { get; } = new();

        public void Match(ReadOnlySpan<VideoMatch.Engine.Inference.PairInput> batch, Span<VideoMatch.Engine.Inference.PairMatchResult> results) =>
            results[..batch.Length].Fill(VideoMatch.Engine.Inference.PairMatchResult.Empty);

        public void Dispose()
        {
        }
    }

    /// <summary>The same contract, doing nothing but parse and answer: the transport's ceiling.</summary>
    private sealed class EchoService : VideoMatcher.VideoMatcherBase
    {
        public override async Task MatchStream(IAsyncStreamReader<StreamRequest> requestStream, IServerStreamWriter<StreamResponse> responseStream, ServerCallContext context)
        {
            await foreach (var request in requestStream.ReadAllAsync(context.CancellationToken))
            {
                if (request.Frame is { } frame)
                {
                    await responseStream.WriteAsync(new StreamResponse { Status = new FrameStatus { Sequence = frame.Sequence, Code = FrameStatusCode.Dropped } });
                }
            }
        }

        public override Task<ModelInfo> GetModelInfo(GetModelInfoRequest request, ServerCallContext context) =>
            Task.FromResult(new ModelInfo { ModelName = "echo", InputWidth = 640, InputHeight = 480, PreferredPixelFormat = PixelFormat.Gray8 });
    }
}
