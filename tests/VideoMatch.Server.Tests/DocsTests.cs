using System.Numerics;
using System.Text.RegularExpressions;
using Grpc.Core.Interceptors;
using Grpc.Net.Client;
using VideoMatch.Contracts.V1;
using VideoMatch.Server.Hosting;
using VideoMatch.Tests;

namespace VideoMatch.Server.Tests;

/// <summary>The docs a user reads name what exists: every setting and metric is documented, and nothing documented is gone.</summary>
public sealed partial class DocsTests
{
    [Fact]
    public void ReadmeSettingsTable_NamesEverySettingAndOnlySettingsThatExist()
    {
        var documented = new HashSet<string>(StringComparer.Ordinal);
        foreach (var row in File.ReadLines(Path.Combine(Repository.Root, "README.md")).Where(l => SettingRow().IsMatch(l)))
        {
            // "| `Inference:WarmUp`, `WarmUpBatchSizes` | …": later keys of a row share the first one's section.
            var keys = Code().Matches(row.Split('|')[1]).Select(m => m.Groups[1].Value).ToArray();
            var section = keys[0].Split(':')[0];
            documented.UnionWith(keys.Select(k => k.Contains(':', StringComparison.Ordinal) ? k : $"{section}:{k}"));
        }

        var settings = SettingsCatalog.Keys().ToHashSet(StringComparer.Ordinal);

        Assert.True(settings.Except(documented).Order(StringComparer.Ordinal).ToArray() is [], $"settings missing from the README's table: {string.Join(", ", settings.Except(documented))}");
        Assert.True(documented.Except(settings).Order(StringComparer.Ordinal).ToArray() is [], $"the README's table names settings that do not exist: {string.Join(", ", documented.Except(settings))}");
    }

    [Fact]
    public async Task ChartReadmeMetrics_NameEveryMetricServedAndOnlyThose()
    {
        var metricsPort = Ports.Free();
        await using var server = await LoopbackServer.StartAsync(false, $"--Metrics:Url=http://127.0.0.1:{metricsPort}");
        using var channel = GrpcChannel.ForAddress(server.Address);
        var video = new SyntheticVideo(seed: 13, width: 320, height: 240);
        // One pair, so that the histograms have a sample.
        await new VideoMatcher.VideoMatcherClient(channel.Intercept(new DefaultDeadline()))
            .MatchPairAsync(new MatchPairRequest { Image0 = video.Raw(Vector2.Zero), Image1 = video.Raw(new Vector2(2, 1)) });
        using var http = new HttpClient { Timeout = Limits.Call };
        var scraped = await http.GetStringAsync(new Uri($"http://127.0.0.1:{metricsPort}/metrics"));
        var served = TypeLine().Matches(scraped).Select(m => m.Groups[1].Value).ToHashSet(StringComparer.Ordinal);
        var readme = await File.ReadAllTextAsync(Path.Combine(Repository.Root, "charts", "videomatch", "README.md"));
        var table = readme.Split('\n').Where(l => l.StartsWith("| `videomatch_", StringComparison.Ordinal)).Select(l => l.Split('|')[1]);
        var documented = table.SelectMany(cell => MetricName().Matches(cell).Select(m => m.Value)).ToHashSet(StringComparer.Ordinal);

        Assert.True(served.Except(documented).ToArray() is [], $"metrics missing from charts/videomatch/README.md: {string.Join(", ", served.Except(documented))}");
        Assert.True(documented.Except(served).ToArray() is [], $"charts/videomatch/README.md names metrics the server does not serve: {string.Join(", ", documented.Except(served))}");
    }

    [GeneratedRegex(@"^\| `(Inference|Batching|Streaming|Limits|Security|Metrics):")]
    private static partial Regex SettingRow();

    [GeneratedRegex("`([^`]+)`")]
    private static partial Regex Code();

    [GeneratedRegex(@"^# TYPE (videomatch_\w+) ", RegexOptions.Multiline)]
    private static partial Regex TypeLine();

    [GeneratedRegex(@"videomatch_\w+")]
    private static partial Regex MetricName();
}
