using System.Net;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using VideoMatch.Engine.Inference;
using VideoMatch.Server;
using VideoMatch.Server.Hosting;
using VideoMatch.Cli.Tests.Video;
using VideoMatch.Tests;

namespace VideoMatch.Cli.Tests;

/// <summary>Every mistake a new user makes gets one line that names the problem and what to do; nothing leaks .NET's text.</summary>
public sealed class MessageTests(LoopbackServer server) : IClassFixture<LoopbackServer>, IDisposable
{
    private readonly DirectoryInfo _folder = Directory.CreateTempSubdirectory("videomatch-messages-");

    public void Dispose() => _folder.Delete(recursive: true);

    [Fact]
    public async Task Stream_ClipOfKnownLength_AnswersEveryFrame()
    {
        var clip = Path.Combine(_folder.FullName, "clip.mkv");
        await FfmpegVideoDecoderTests.RunFfmpegAsync("-v", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=160x120:rate=30", "-frames:v", "30", "-c:v", "ffv1", clip);
        var lines = Path.Combine(_folder.FullName, "pairs.ndjson");

        var (exit, _, error) = await CliTests.RunAsync("stream", clip, "--server", server.Url, "--out", lines);

        Assert.True(exit == 0, error);
        Assert.Equal(29, (await File.ReadAllLinesAsync(lines)).Length);
        Assert.Matches(@"frames sent\s*│\s*30\s", error);
    }

    [Fact]
    public async Task Stream_StillImage_ExitsOneSayingTwoFramesAreNeeded()
    {
        var image = Path.Combine(_folder.FullName, "still.png");
        await FfmpegVideoDecoderTests.RunFfmpegAsync("-v", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=160x120", "-frames:v", "1", image);

        var (exit, _, error) = await CliTests.RunAsync("stream", image, "--server", server.Url);

        Assert.Equal(1, exit);
        Assert.Contains("holds 1 frame; a stream pairs consecutive frames, so it needs at least two", error, StringComparison.Ordinal);
        Assert.DoesNotContain("NaN", error, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("", "is empty (0 bytes)")]
    [InlineData("not a video\n", "is not a video or image ffmpeg can read")]
    public async Task Stream_FileThatIsNoVideo_SaysSoWithoutBlamingTheInstall(string content, string expected)
    {
        var file = Path.Combine(_folder.FullName, "bad.mp4");
        await File.WriteAllTextAsync(file, content);

        var (exit, _, error) = await CliTests.RunAsync("stream", file, "--server", server.Url);

        Assert.Equal(1, exit);
        Assert.Contains(expected, error, StringComparison.Ordinal);
        Assert.DoesNotContain("installed", error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Stabilize_OutputFormatFfmpegCannotWrite_FailsBeforeAnyMatching()
    {
        var clip = Path.Combine(_folder.FullName, "clip.mkv");
        await FfmpegVideoDecoderTests.RunFfmpegAsync("-v", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=160x120:rate=30", "-frames:v", "5", "-c:v", "ffv1", clip);

        // A server that is not there: the check must come before the first call.
        var (exit, _, error) = await CliTests.RunAsync("stabilize", clip, Path.Combine(_folder.FullName, "out.xyz"), "--server", "http://127.0.0.1:9");

        Assert.Equal(1, exit);
        Assert.Contains("ffmpeg cannot write '.xyz' files", error, StringComparison.Ordinal);
        Assert.DoesNotContain("could not reach", error, StringComparison.Ordinal);
    }

    [Fact]
    public void Describe_ServerShuttingDown_SaysSoNotThatItIsUnreachable()
    {
        var e = new Grpc.Core.RpcException(new Grpc.Core.Status(Grpc.Core.StatusCode.Unavailable,
            "The server is shutting down; every frame it read was answered (the last was 14). Reconnect and resend the rest."));

        var message = Cli.Describe(e, "http://127.0.0.1:50051");

        Assert.StartsWith("the server at http://127.0.0.1:50051 is running but not serving: The server is shutting down; every frame", message, StringComparison.Ordinal);
        Assert.DoesNotContain("could not reach", message, StringComparison.Ordinal);
    }

    [Fact]
    public void Describe_TransportFailure_SaysItCouldNotReachTheServer()
    {
        var e = new Grpc.Core.RpcException(new Grpc.Core.Status(Grpc.Core.StatusCode.Unavailable, "Error connecting to subchannel.",
            new System.Net.Http.HttpRequestException("Connection refused (127.0.0.1:9)")));

        var message = Cli.Describe(e, "http://127.0.0.1:9");

        Assert.StartsWith("could not reach the server at http://127.0.0.1:9", message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("--max-matches", "-5", "--max-matches '-5' is not valid: give 0 (all) or a positive count.")]
    [InlineData("--threshold", "abc", "--threshold 'abc' is not valid: give a score in [0, 1)")]
    [InlineData("--threshold", "1.5", "--threshold '1.5' is not valid")]
    public async Task Match_OptionOutOfRange_NamesTheOptionAndWhatItTakes(string option, string value, string expected)
    {
        var (exit, _, error) = await CliTests.RunAsync("match", "a.png", "b.png", "--server", server.Url, option, value);

        Assert.NotEqual(0, exit);
        Assert.Contains(expected, error, StringComparison.Ordinal);
        Assert.DoesNotContain("System.", error, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("--streams", "0")]
    [InlineData("--fps", "-1")]
    [InlineData("--seconds", "0")]
    public async Task Bench_NonPositiveSetting_NamesTheOption(string option, string value)
    {
        var (exit, _, error) = await CliTests.RunAsync("bench", "--server", server.Url, option, value);

        Assert.NotEqual(0, exit);
        Assert.Contains($"{option} '{value}' is not valid", error, StringComparison.Ordinal);
        Assert.DoesNotContain("Parameter", error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Match_FileThatIsNoImage_SaysSoWithoutParameterNames()
    {
        var text = Path.Combine(_folder.FullName, "a.png");
        await File.WriteAllTextAsync(text, "not an image");

        var (exit, _, error) = await CliTests.RunAsync("match", text, text, "--server", server.Url);

        Assert.Equal(1, exit);
        Assert.Contains("a.png is not an image this tool can read (JPEG, PNG, WebP, BMP, GIF or ICO)", error, StringComparison.Ordinal);
        Assert.DoesNotContain("(Parameter", error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Info_ServerDown_HasNoDoublePeriod()
    {
        var (exit, _, error) = await CliTests.RunAsync("info", "--server", "http://127.0.0.1:9");

        Assert.Equal(1, exit);
        Assert.DoesNotContain("..", error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Info_ServerStillLoadingItsModel_ShowsNotServingAndWhatItIsDoing()
    {
        using var loaded = new ManualResetEventSlim();
        await using var app = ServerApp.Build(TestServerSettings.Arguments("--urls", "http://127.0.0.1:0"), builder =>
            builder.Services.AddSingleton<MatcherFactory>((options, size) =>
            {
                loaded.Wait(Limits.Call);
                return ModelLoader.Open(options, size);
            }));
        // The start blocks in the model's load: Kestrel listens first, so the server is there but not serving.
        var starting = Task.Run(() => app.StartAsync());
        string? address = null;
        await Limits.UntilAsync(() => (address = app.Services.GetRequiredService<Microsoft.AspNetCore.Hosting.Server.IServer>()
            .Features.Get<IServerAddressesFeature>()?.Addresses.FirstOrDefault(a => !a.EndsWith(":0", StringComparison.Ordinal))) is not null, "the server to listen");

        var (exit, output, error) = await CliTests.RunAsync("info", "--server", address!);
        var (matchExit, _, matchError) = await CliTests.RunAsync("bench", "--seconds", "1", "--server", address!);
        loaded.Set();
        await starting.DefaultTimeout();
        await app.StopAsync().DefaultTimeout();

        Assert.True(exit == 2, error);
        Assert.Contains("NOT_SERVING", output, StringComparison.Ordinal);
        Assert.Contains("│ reason │ The server is loading model 'embedded'; retry when grpc.health.v1 reports SERVING. │", output, StringComparison.Ordinal);
        Assert.DoesNotContain("could not reach", error, StringComparison.Ordinal);
        Assert.Equal(1, matchExit);
        Assert.Contains("is running but not serving: The server is loading model 'embedded'", matchError, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Info_TheServersMetricsPort_SaysItIsNotTheGrpcPort()
    {
        var metricsPort = Ports.Free();
        await using var metrics = await LoopbackServer.StartAsync(false, $"--Metrics:Url=http://127.0.0.1:{metricsPort}");

        var (exit, output, error) = await CliTests.RunAsync("info", "--server", $"http://127.0.0.1:{metricsPort}");

        Assert.Equal(1, exit);
        Assert.Equal("", output);
        Assert.Contains($"http://127.0.0.1:{metricsPort} speaks HTTP/1.1 only, so it is not a VideoMatch gRPC port; it may be the metrics port", error, StringComparison.Ordinal);
        Assert.Single(error.Trim().Split('\n'));
    }

    [Fact]
    public async Task Info_HttpsAgainstPlaintextServer_SaysToUseHttp()
    {
        var address = server.Url.Replace("http://", "https://", StringComparison.Ordinal);

        var (exit, _, error) = await CliTests.RunAsync("info", "--server", address);

        Assert.Equal(1, exit);
        Assert.Contains("answers in plaintext. Use http://", error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Info_Http1OnlyPortLikeMetrics_SaysItIsNotTheGrpcPort()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Loopback, 0, l => l.Protocols = HttpProtocols.Http1));
        await using var http1 = builder.Build();
        http1.MapGet("/metrics", () => "# metrics");
        await http1.StartAsync();

        var (exit, _, error) = await CliTests.RunAsync("info", "--server", http1.Urls.First());

        Assert.Equal(1, exit);
        Assert.Contains("speaks HTTP/1.1 only, so it is not a VideoMatch gRPC port", error, StringComparison.Ordinal);
        Assert.DoesNotContain("HTTP_1_1_REQUIRED", error, StringComparison.Ordinal);
    }
}
