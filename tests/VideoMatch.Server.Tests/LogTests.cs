using System.Net;
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
/// What the built server writes to its console for hostile requests: one line each (two console lines: the category
/// header and the message), never a stack trace, and a bounded number per connection.
/// </summary>
public sealed partial class LogTests(ITestOutputHelper output)
{
    /// <summary>One bad-request line with its header, its detail cut to 300 characters: well under this.</summary>
    private const int MaxBytesPerHostileRequest = 700;

    public static TheoryData<string, string, byte[], string?> HostileBodies() => new()
    {
        { "garbage MatchPair", "MatchPair", RawGrpc.Framed(0, [0xFF, 0xFF, 0xFF, 0xFF]), null },
        { "garbage stream message", "MatchStream", RawGrpc.Framed(0, [0xFF, 0xFF, 0xFF, 0xFF]), null },
        { "stream compressed without grpc-encoding", "MatchStream", RawGrpc.Framed(1, [0x08, 0x01]), null },
        { "stream length 0xFFFFFFFF", "MatchStream", [0, 0xFF, 0xFF, 0xFF, 0xFF, 1, 2, 3], null },
        { "MatchPair gzip that is not gzip", "MatchPair", RawGrpc.Framed(1, [0x08, 0x01, 0x02, 0x03]), "gzip" },
        { "MatchPair compressed flag 2", "MatchPair", RawGrpc.Framed(2, [0x08, 0x01]), null },
    };

    [Theory]
    [MemberData(nameof(HostileBodies))]
    public async Task HostileRequest_LogsOneLineWithoutAStackTrace(string _, string method, byte[] body, string? encoding)
    {
        await using var server = await ServerProcess.StartAsync(output, "--Inference:EmbeddedWidth=160", "--Inference:EmbeddedHeight=128", "--Inference:WarmUp=false");
        using var http = Http2();
        var before = server.Log.Length;

        for (var i = 0; i < 3; i++)
        {
            await PostAsync(http, server.Address, method, body, encoding);
        }

        await Limits.UntilAsync(() => BadRequestLines(server.Log[before..]) == 3, "three bad-request lines");
        var logged = server.Log[before..];
        Assert.DoesNotContain("   at ", logged, StringComparison.Ordinal);
        Assert.DoesNotContain("Exception", logged, StringComparison.Ordinal);
        Assert.True(logged.Length <= 3 * MaxBytesPerHostileRequest, $"{logged.Length} bytes for 3 requests:\n{logged}");
    }

    [Fact]
    public async Task ManyBadRequestsOnOneConnection_RateLimitedThenCounted()
    {
        await using var server = await ServerProcess.StartAsync(output, "--Inference:EmbeddedWidth=160", "--Inference:EmbeddedHeight=128", "--Inference:WarmUp=false");
        var before = server.Log.Length;
        using (var http = Http2())
        {
            for (var i = 0; i < 40; i++)
            {
                await PostAsync(http, server.Address, "MatchPair", RawGrpc.Framed(0, [0xFF, 0xFF, 0xFF, 0xFF]), null);
            }
        }

        // The connection's close brings the count of lines left out.
        await Limits.UntilAsync(() => server.Log[before..].Contains("more bad requests from", StringComparison.Ordinal), "the line counting those left out");
        var logged = server.Log[before..];

        Assert.Equal(5, BadRequestLines(logged));
        Assert.Matches("35 more bad requests from 127.0.0.1:[0-9]+ were not logged", logged);
    }

    [Fact]
    public async Task ClientCancellations_LogNothingAtInformation()
    {
        // Before: 2.2 KB of stack trace per cancelled stream.
        await using var server = await ServerProcess.StartAsync(output, "--Inference:EmbeddedWidth=160", "--Inference:EmbeddedHeight=128", "--Inference:WarmUp=false");
        using var channel = GrpcChannel.ForAddress(server.Address);
        var client = new VideoMatcher.VideoMatcherClient(channel.Intercept(new DefaultDeadline()));
        var video = new SyntheticVideo(seed: 21, width: 160, height: 128);
        var before = server.Log.Length;

        for (var i = 0; i < 5; i++)
        {
            using var cancelled = new CancellationTokenSource();
            using var call = client.MatchStream(cancellationToken: cancelled.Token);
            await call.RequestStream.WriteAsync(new StreamRequest { Config = new StreamConfig { StreamName = $"cancelled-{i}" } });
            await call.RequestStream.WriteAsync(new StreamRequest { Frame = video.Frame(0, Vector2.Zero) });
            await call.RequestStream.WriteAsync(new StreamRequest { Frame = video.Frame(1, Vector2.One) });
            Assert.True(await call.ResponseStream.MoveNext());
            await cancelled.CancelAsync();
        }

        await Limits.UntilAsync(() => Regex.Count(server.Log[before..], "Stream cancelled-[0-9] ended") == 5, "the five streams to end");
        var logged = server.Log[before..];

        Assert.DoesNotContain("   at ", logged, StringComparison.Ordinal);
        Assert.DoesNotContain("Exception", logged, StringComparison.Ordinal);
        // Each stream's own two lines (started, ended), and nothing else.
        Assert.True(logged.Length < 5 * 2 * 400, $"{logged.Length} bytes for 5 cancelled streams:\n{logged}");
    }

    private static int BadRequestLines(string log) => Regex.Count(log, "Bad request: ");

    /// <summary>One client, one HTTP/2 connection (h2c with prior knowledge).</summary>
    private static HttpClient Http2() => new(new SocketsHttpHandler()) { Timeout = Limits.Call };

    internal static async Task PostAsync(HttpClient http, string address, string method, byte[] body, string? encoding)
    {
        using var request = RawGrpc.Request(address, method, body, encoding);
        using var response = await http.SendAsync(request).WaitAsync(Limits.Call);
        await response.Content.ReadAsByteArrayAsync().WaitAsync(Limits.Call);
    }
}
