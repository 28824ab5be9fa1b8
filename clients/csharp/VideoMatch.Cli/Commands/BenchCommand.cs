using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Spectre.Console;

namespace VideoMatch.Cli.Commands;

/// <summary><c>videomatch bench</c>: synthetic load from N concurrent streams.</summary>
internal static class BenchCommand
{
    private static readonly JsonSerializerOptions Json = new() { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };

    public static Command Create(CliContext context)
    {
        var streams = CliOptions.Count("--streams", "Concurrent streams, 1..1000. Default 4.", 4, 1, 1000, "-n");
        var fps = CliOptions.Positive("--fps", "Frames per second per stream. Default 30.", 30, 1000, "-f");
        var seconds = CliOptions.Positive("--seconds", "How long to send. Default 10.", 10, 86400);
        var size = new Option<string?>("--size") { Description = "Frame size WxH. Default: the model's input size (GRAY8 frames, the server's cheapest path)." };
        var json = new Option<FileInfo?>("--json") { Description = "Also write the report as JSON to FILE." };
        var threshold = CliOptions.Threshold("Match threshold for the streams, in [0, 1). Default: the model's.");
        var command = new Command("bench", "Load-test a server: N streams × F frames/s for S seconds; report pairs/s, latency and what was dropped.")
        {
            streams, fps, seconds, size, json, threshold, Cli.Resume,
        };
        command.SetAction(Cli.Guard(context, async (parse, cancellationToken) =>
        {
            using var client = Cli.Connect(parse);
            var (width, height) = parse.GetValue(size) is { } text ? ParseSize(text) : await ModelSizeAsync(client, cancellationToken).ConfigureAwait(false);
            var settings = new BenchSettings(parse.GetValue(streams), parse.GetValue(fps), TimeSpan.FromSeconds(parse.GetValue(seconds)), width, height, parse.GetValue(threshold));
            await context.Error.WriteLineAsync($"bench: {settings.Streams} streams × {settings.FramesPerSecond} frames/s for {settings.Duration.TotalSeconds} s, {width}×{height} GRAY8, against {parse.GetValue(Cli.Server)}").ConfigureAwait(false);
            var report = await BenchRunner.RunAsync(client, settings, cancellationToken, Cli.Streamer(parse, context)).ConfigureAwait(false);
            Render(context, report);
            if (parse.GetValue(json) is { } file)
            {
                await File.WriteAllTextAsync(file.FullName, JsonSerializer.Serialize(report, Json), cancellationToken).ConfigureAwait(false);
            }

            return report.Unanswered == 0 ? 0 : 1;
        }));
        return command;
    }

    internal static (int Width, int Height) ParseSize(string text)
    {
        var parts = text.Split('x', 'X', '×');
        if (parts.Length == 2 && int.TryParse(parts[0], CultureInfo.InvariantCulture, out var w) && int.TryParse(parts[1], CultureInfo.InvariantCulture, out var h) && w > 0 && h > 0)
        {
            return (w, h);
        }

        throw new FormatException($"--size '{text}' is not WIDTHxHEIGHT (for example 640x480).");
    }

    private static async Task<(int, int)> ModelSizeAsync(Client.VideoMatchClient client, CancellationToken cancellationToken)
    {
        var info = await client.GetModelInfoAsync(cancellationToken).ConfigureAwait(false);
        return ((int)info.InputWidth, (int)info.InputHeight);
    }

    private static void Render(CliContext context, BenchReport report)
    {
        var console = context.Tables;
        var table = new Table().AddColumn("bench").AddColumn("result");
        table.AddRow("streams × target fps", $"{report.Streams} × {report.TargetFramesPerSecond}");
        table.AddRow("frames sent / answered / unanswered", $"{report.FramesSent} / {report.Responses} / {report.Unanswered}");
        table.AddRow("pairs matched / first / dropped / invalid / failed", $"{report.Pairs} / {report.FirstFrames} / {report.Dropped} / {report.Invalid} / {report.Failed}");
        table.AddRow("time", $"{report.Seconds:F2} s");
        table.AddRow("pairs/s", report.PairsPerSecond.ToString("F2", CultureInfo.InvariantCulture));
        table.AddRow("responses/s (ingest)", report.ResponsesPerSecond.ToString("F1", CultureInfo.InvariantCulture));
        table.AddRow("latency p50 / p95 / p99", $"{report.LatencyP50Ms:F1} / {report.LatencyP95Ms:F1} / {report.LatencyP99Ms:F1} ms");
        console.Write(table);
    }
}
