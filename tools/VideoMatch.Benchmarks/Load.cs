using System.Text.Json;
using VideoMatch.Cli.Commands;
using VideoMatch.Client;
using VideoMatch.Server;

/// <summary>
/// The full server over gRPC, driven by the project's load generator (the CLI's <c>bench</c>) in one process, so a
/// machine without dotnet needs only this tool's self-contained publish (tools/bench-gpu): N streams × F frames/s
/// for S seconds at the model's input size; pairs/s, latency and frames left unanswered.
/// </summary>
internal static class Load
{
    public static async Task RunAsync(Settings settings, double framesPerSecond)
    {
        await using var app = ServerApp.Build([.. settings.ServerArguments(), "--Streaming:MaxPendingPairsPerStream=8", "--Batching:QueueCapacity=512"]);
        await app.StartAsync();
        var (width, height) = InputSize(settings);
        using var client = new VideoMatchClient(new Uri(app.Urls.First()));
        var bench = new BenchSettings(settings.Streams, framesPerSecond, TimeSpan.FromSeconds(settings.Seconds), width, height);
        // A short first run opens the connections and runs the first batches of each size.
        await BenchRunner.RunAsync(client, bench with { Duration = TimeSpan.FromSeconds(2) }, CancellationToken.None);
        var report = await BenchRunner.RunAsync(client, bench, CancellationToken.None);
        await app.StopAsync();

        Console.WriteLine("| streams × fps | seconds | pairs/s | frames answered/s | p50 / p95 / p99 latency (ms) | dropped | unanswered |");
        Console.WriteLine("|---|---|---|---|---|---|---|");
        Console.WriteLine($"| {report.Streams} × {framesPerSecond:G} | {report.Seconds:F1} | {report.PairsPerSecond:F1} | {report.ResponsesPerSecond:F1} | " +
            $"{report.LatencyP50Ms:F1} / {report.LatencyP95Ms:F1} / {report.LatencyP99Ms:F1} | {report.Dropped} | {report.Unanswered} |");
        if (settings.Json is { } json)
        {
            await File.WriteAllTextAsync(json, JsonSerializer.Serialize(new Dictionary<string, object>
            {
                ["streams"] = report.Streams, ["fps"] = framesPerSecond, ["seconds"] = report.Seconds, ["batch"] = settings.Batch,
                ["provider"] = settings.Provider, ["precision"] = settings.Precision, ["pairs_per_s"] = report.PairsPerSecond,
                ["responses_per_s"] = report.ResponsesPerSecond, ["p50_ms"] = report.LatencyP50Ms, ["p95_ms"] = report.LatencyP95Ms,
                ["p99_ms"] = report.LatencyP99Ms, ["dropped"] = report.Dropped, ["failed"] = report.Failed, ["unanswered"] = report.Unanswered,
            }));
        }
    }

    private static (int Width, int Height) InputSize(Settings settings) =>
        settings.Model is { } folder && VideoMatch.Engine.Inference.ModelManifest.Load(folder) is { } manifest
            ? (manifest.Input.Width, manifest.Input.Height)
            : (settings.Width, settings.Height);
}
