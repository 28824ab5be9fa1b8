using System.Numerics;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Grpc.Core;
using Grpc.Core.Interceptors;
using Grpc.Health.V1;
using Grpc.Net.Client;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using VideoMatch.Client;
using VideoMatch.Contracts.V1;
using VideoMatch.Tests;

namespace VideoMatch.Server.Tests;

public sealed class SecurityTests : IDisposable
{
    private const string Key = "test-key-0123456789abcdef";

    /// <summary>Every call gets a deadline: a refused connection must fail, never wait.</summary>

    private readonly DirectoryInfo _folder = Directory.CreateTempSubdirectory("videomatch-tls-");
    private readonly TestCertificates _certificates;

    public SecurityTests() => _certificates = new TestCertificates(_folder.FullName);

    public void Dispose() => _folder.Delete(recursive: true);

    [Fact]
    public async Task Tls_CertificateFromSettings_ServesOverHttps()
    {
        await using var server = await LoopbackServer.StartAsync(https: true, _certificates.ServerSettings());
        using var client = new VideoMatchClient(new VideoMatchClientOptions { Address = server.Address, AllowUntrustedServerCertificate = true });

        var info = await client.GetModelInfoAsync(Limits.Token());

        Assert.Equal("https", server.Address.Scheme);
        Assert.Equal("videomatch-embedded-patch-matcher", info.ModelName);
    }

    [Fact]
    public async Task Tls_DnsNameWithTls_ServesOverHttpsAndPlaintextIsRefused()
    {
        // dns:///localhost:port resolves to 127.0.0.1 (served) and ::1 (nothing there: round-robin skips it).
        await using var server = await LoopbackServer.StartAsync(https: true, _certificates.ServerSettings());
        var name = new Uri($"dns:///localhost:{server.Address.Port}");
        using var client = new VideoMatchClient(new VideoMatchClientOptions { Address = name, Tls = true, AllowUntrustedServerCertificate = true });
        using var plaintext = new VideoMatchClient(new VideoMatchClientOptions { Address = name });

        var info = await client.GetModelInfoAsync(Limits.Token());
        var error = await Assert.ThrowsAsync<RpcException>(() => plaintext.GetModelInfoAsync(Limits.Token()));

        Assert.Equal("videomatch-embedded-patch-matcher", info.ModelName);
        Assert.NotEqual(StatusCode.OK, error.StatusCode);
        var wrong = Assert.Throws<ArgumentException>(() => new VideoMatchClient(new VideoMatchClientOptions { Address = server.Address, Tls = true }));
        Assert.Contains("https:// is TLS", wrong.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Tls_PlaintextClient_IsRefused()
    {
        await using var server = await LoopbackServer.StartAsync(https: true, _certificates.ServerSettings());
        using var client = new VideoMatchClient(new Uri($"http://127.0.0.1:{server.Address.Port}"));

        var error = await Assert.ThrowsAsync<RpcException>(() => client.GetModelInfoAsync(Limits.Token()));

        Assert.NotEqual(StatusCode.OK, error.StatusCode);
    }

    [Fact]
    public async Task MutualTls_CertificateFromTheAuthority_IsAccepted()
    {
        await using var server = await LoopbackServer.StartAsync(https: true, _certificates.MutualSettings());
        using var client = new VideoMatchClient(new VideoMatchClientOptions
        {
            Address = server.Address,
            AllowUntrustedServerCertificate = true,
            ClientCertificate = _certificates.Client,
        });

        var info = await client.GetModelInfoAsync(Limits.Token());

        Assert.Equal((uint)TestServerSettings.ModelWidth, info.InputWidth);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task MutualTls_NoCertificateOrAnotherAuthoritys_IsRefused(bool rogue)
    {
        await using var server = await LoopbackServer.StartAsync(https: true, _certificates.MutualSettings());
        using var client = new VideoMatchClient(new VideoMatchClientOptions
        {
            Address = server.Address,
            AllowUntrustedServerCertificate = true,
            ClientCertificate = rogue ? _certificates.Rogue : null,
        });

        var error = await Assert.ThrowsAsync<RpcException>(() => client.GetModelInfoAsync(Limits.Token()));

        // TLS 1.3 checks the client certificate after the handshake: refusal shows as a failed connection
        // (UNAVAILABLE) or a reset request (INTERNAL), never as an answer.
        Assert.True(error.StatusCode is StatusCode.Unavailable or StatusCode.Internal, $"got {error.StatusCode}: {error.Status.Detail}");
    }

    [Fact]
    public async Task MutualTls_ServerCertificateFromTheAuthority_IsRefused()
    {
        // Signed by the right CA but issued for servers only (no client-authentication purpose).
        await using var server = await LoopbackServer.StartAsync(https: true, _certificates.MutualSettings());
        using var client = new VideoMatchClient(new VideoMatchClientOptions
        {
            Address = server.Address,
            AllowUntrustedServerCertificate = true,
            ClientCertificate = _certificates.ServerOnly,
        });

        var error = await Assert.ThrowsAsync<RpcException>(() => client.GetModelInfoAsync(Limits.Token()));

        Assert.True(error.StatusCode is StatusCode.Unavailable or StatusCode.Internal, $"got {error.StatusCode}: {error.Status.Detail}");
    }

    [Fact]
    public async Task ApiKey_UnaryWhoseBodyNeverEnds_AnsweredFromItsHeadersAtOnce()
    {
        await using var server = await LoopbackServer.StartAsync(false, $"--Security:ApiKeys:0={Key}");

        // Raw HTTP/2: a MatchPair without a key whose gRPC frame announces 16 MB, of which 1 KB is sent.
        var answer = await RawHttp2.PostWithoutEndAsync(server.Address.Port, "/videomatch.v1.VideoMatcher/MatchPair", TimeSpan.FromSeconds(10));

        // The answer (its headers, ending the stream) comes while the body is still open: nothing waited for it.
        Assert.True(answer.Answered, "no response to a half-sent unauthenticated request within 10 s");
        Assert.True(answer.EndsStream, "the refusal is a complete (trailers-only) response");
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Reflection_Setting_ServesOrRefusesTheReflectionService(bool enabled)
    {
        await using var server = await LoopbackServer.StartAsync(false, $"--Security:Reflection={enabled}");
        using var channel = GrpcChannel.ForAddress(server.Address);
        var bytes = Marshallers.Create<byte[]>(b => b, b => b);
        var method = new Method<byte[], byte[]>(MethodType.DuplexStreaming, "grpc.reflection.v1alpha.ServerReflection", "ServerReflectionInfo", bytes, bytes);
        using var call = channel.CreateCallInvoker().AsyncDuplexStreamingCall(method, null, new CallOptions(deadline: Limits.Deadline));
        try
        {
            // ServerReflectionRequest { list_services = "" } (field 7, length-delimited, empty).
            await call.RequestStream.WriteAsync([0x3A, 0x00]);
            await call.RequestStream.CompleteAsync();
        }
        catch (RpcException) when (!enabled)
        {
            // The server may refuse the call before the request is written; the answer is read below.
        }

        if (enabled)
        {
            Assert.True(await call.ResponseStream.MoveNext());
            Assert.Contains("videomatch.v1.VideoMatcher", System.Text.Encoding.UTF8.GetString(call.ResponseStream.Current), StringComparison.Ordinal);
        }
        else
        {
            var error = await Assert.ThrowsAsync<RpcException>(() => call.ResponseStream.MoveNext());
            Assert.Equal(StatusCode.Unimplemented, error.StatusCode);
        }
    }

    [Theory]
    [InlineData(null, "requires an API key")]
    [InlineData("wrong-key-0123456789abcdef", "not valid")]
    public async Task ApiKey_MissingOrWrong_Unauthenticated(string? key, string message)
    {
        using var server = new ServerFactory(new Dictionary<string, string?> { ["Security:ApiKeys:0"] = Key });
        var client = new VideoMatcher.VideoMatcherClient(server.Channel.Intercept(new DefaultDeadline()));
        var headers = key is null ? null : new Metadata { { "authorization", $"Bearer {key}" } };

        var error = await Assert.ThrowsAsync<RpcException>(() => client.GetModelInfoAsync(new GetModelInfoRequest(), headers, Limits.Deadline).ResponseAsync);

        Assert.Equal(StatusCode.Unauthenticated, error.StatusCode);
        Assert.Contains(message, error.Status.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ApiKey_Valid_AllowsEveryRpcAndHealthNeedsNone()
    {
        using var server = new ServerFactory(new Dictionary<string, string?> { ["Security:ApiKeys:0"] = "another-key-0123456789", ["Security:ApiKeys:1"] = Key });
        var headers = new Metadata { { "authorization", $"Bearer {Key}" } };
        var client = new VideoMatcher.VideoMatcherClient(server.Channel.Intercept(new DefaultDeadline()));
        var video = new SyntheticVideo(seed: 3, width: 160, height: 120);

        var info = await client.GetModelInfoAsync(new GetModelInfoRequest(), headers, Limits.Deadline);
        var pair = await client.MatchPairAsync(new MatchPairRequest { Image0 = video.Raw(Vector2.Zero), Image1 = video.Raw(Vector2.One) }, headers, Limits.Deadline);
        var health = await new Health.HealthClient(server.Channel).CheckAsync(new HealthCheckRequest(), deadline: Limits.Deadline);

        Assert.Equal((uint)TestServerSettings.ModelWidth, info.InputWidth);
        Assert.True(pair.Matches.Count > 0);
        Assert.Equal(HealthCheckResponse.Types.ServingStatus.Serving, health.Status);
    }

    [Fact]
    public async Task StreamsPerConnection_OverTheLimit_ResourceExhaustedOthersUnaffected()
    {
        await using var server = await LoopbackServer.StartAsync(false, "--Security:MaxStreamsPerConnection=2");
        using var channel = GrpcChannel.ForAddress(server.Address);
        var client = new VideoMatcher.VideoMatcherClient(channel.Intercept(new DefaultDeadline()));
        using var first = await OpenAsync(client);
        using var second = await OpenAsync(client);

        // The client may send a stream's request only with its first message; the server refuses the stream
        // before reading it, so the write may fail first. Either way the refusal is read from the response.
        using var third = client.MatchStream(deadline: Limits.Deadline);
        try
        {
            await third.RequestStream.WriteAsync(new StreamRequest { Config = new StreamConfig() });
        }
        catch (RpcException)
        {
        }

        var error = await Assert.ThrowsAsync<RpcException>(() => third.ResponseStream.MoveNext());
        using var otherChannel = GrpcChannel.ForAddress(server.Address);
        var other = await Streams.RunAsync(new VideoMatcher.VideoMatcherClient(otherChannel.Intercept(new DefaultDeadline())), new StreamConfig(),
            [new SyntheticVideo(4).Frame(0, Vector2.Zero), new SyntheticVideo(4).Frame(1, Vector2.One)]);

        Assert.Equal(StatusCode.ResourceExhausted, error.StatusCode);
        Assert.Contains("Security:MaxStreamsPerConnection", error.Status.Detail, StringComparison.Ordinal);
        Assert.NotNull(other[1].Pair);
    }

    [Fact]
    public async Task Stream_NoConfigWithinTheTimeout_DeadlineExceededNamingTheSetting()
    {
        using var server = new ServerFactory(new Dictionary<string, string?> { ["Streaming:ConfigTimeoutSeconds"] = "0.5" });
        using var call = server.Client.MatchStream(deadline: Limits.Deadline);

        var error = await Assert.ThrowsAsync<RpcException>(() => call.ResponseStream.MoveNext());

        Assert.Equal(StatusCode.DeadlineExceeded, error.StatusCode);
        Assert.Contains("No StreamConfig arrived within 0.5 s", error.Status.Detail, StringComparison.Ordinal);
        Assert.Contains("Streaming:ConfigTimeoutSeconds", error.Status.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task StreamName_WithLineBreaksAndTerminalEscapes_LoggedEscapedOnOneLine()
    {
        var logs = new CapturedLogs();
        using var server = new ServerFactory(new Dictionary<string, string?> { ["Logging:LogLevel:VideoMatch"] = "Information" },
            services => services.AddSingleton<ILoggerProvider>(logs));
        const string Forged = "cam\r\ninfo: VideoMatch.Server[0]\n      Server ready\u001b[2J\u001b[31m\u202egnp.exe";

        var responses = await Streams.RunAsync(server.Client, new StreamConfig { StreamName = Forged }, [new SyntheticVideo(seed: 63, width: 320, height: 240).Frame(0, System.Numerics.Vector2.Zero)]);

        Assert.Single(responses);
        var started = Assert.Single(logs.Messages, m => m.Contains(" started (threshold", StringComparison.Ordinal));
        Assert.DoesNotContain(started, c => char.IsControl(c) || char.GetUnicodeCategory(c) == System.Globalization.UnicodeCategory.Format);
        Assert.Contains(@"cam\u000d\u000ainfo: VideoMatch.Server[0]\u000a      Server ready\u001b[2J\u001b[31m\u202egnp.exe", started, StringComparison.Ordinal);
    }

    [Fact]
    public async Task HealthWatch_OverTheLimit_ResourceExhaustedChecksStillAnswer()
    {
        await using var server = await LoopbackServer.StartAsync(false, "--Security:MaxHealthWatches=2");
        using var channel = GrpcChannel.ForAddress(server.Address);
        var health = new Health.HealthClient(channel);
        using var first = health.Watch(new HealthCheckRequest(), deadline: Limits.Deadline);
        using var second = health.Watch(new HealthCheckRequest(), deadline: Limits.Deadline);
        Assert.True(await first.ResponseStream.MoveNext());
        Assert.True(await second.ResponseStream.MoveNext());

        using var third = health.Watch(new HealthCheckRequest(), deadline: Limits.Deadline);
        var error = await Assert.ThrowsAsync<RpcException>(() => third.ResponseStream.MoveNext());
        var check = await health.CheckAsync(new HealthCheckRequest(), deadline: Limits.Deadline);

        Assert.Equal(StatusCode.ResourceExhausted, error.StatusCode);
        Assert.Contains("Security:MaxHealthWatches", error.Status.Detail, StringComparison.Ordinal);
        Assert.Equal(HealthCheckResponse.Types.ServingStatus.Serving, check.Status);
    }

    [Fact]
    public async Task FrameRate_StreamFasterThanLimit_AnsweredThenResourceExhausted()
    {
        using var server = new ServerFactory(new Dictionary<string, string?> { ["Security:MaxFramesPerSecondPerStream"] = "5" });
        var video = new SyntheticVideo(seed: 6, width: 64, height: 64);
        using var call = server.Client.MatchStream(deadline: Limits.Deadline);
        var answered = new List<StreamResponse>();
        var reading = Assert.ThrowsAsync<RpcException>(async () =>
        {
            while (await call.ResponseStream.MoveNext())
            {
                answered.Add(call.ResponseStream.Current);
            }
        });
        try
        {
            await call.RequestStream.WriteAsync(new StreamRequest { Config = new StreamConfig() });
            for (ulong i = 0; i < 20; i++)
            {
                await call.RequestStream.WriteAsync(new StreamRequest { Frame = video.Frame(i, new Vector2(i, 0)) });
            }
        }
        catch (RpcException)
        {
            // The server ended the call part-way: later writes fail, as they should.
        }

        var error = await reading.WaitAsync(Limits.Call);

        Assert.Equal(StatusCode.ResourceExhausted, error.StatusCode);
        Assert.Contains("more than 5 frames per second", error.Status.Detail, StringComparison.Ordinal);
        Assert.InRange(answered.Count, 5, 7);
    }

    /// <summary>Opens a stream and waits until the server answers its first frame, so the server surely holds its slot.</summary>
    private static async Task<AsyncDuplexStreamingCall<StreamRequest, StreamResponse>> OpenAsync(VideoMatcher.VideoMatcherClient client)
    {
        var call = client.MatchStream(deadline: Limits.Deadline);
        await call.RequestStream.WriteAsync(new StreamRequest { Config = new StreamConfig() });
        await call.RequestStream.WriteAsync(new StreamRequest { Frame = new SyntheticVideo(seed: 9, width: 32, height: 32).Frame(0, Vector2.Zero) });
        Assert.True(await call.ResponseStream.MoveNext());
        Assert.Equal(FrameStatusCode.FirstFrame, call.ResponseStream.Current.Status.Code);
        return call;
    }
}

/// <summary>Every message the server logs, formatted, for tests that check what reaches the log.</summary>
internal sealed class CapturedLogs : ILoggerProvider, ILogger
{
    private readonly System.Collections.Concurrent.ConcurrentQueue<string> _messages = new();

    public IReadOnlyCollection<string> Messages => _messages;

    public ILogger CreateLogger(string categoryName) => this;

    public IDisposable? BeginScope<TState>(TState state)
        where TState : notnull => null;

    public bool IsEnabled(LogLevel logLevel) => true;

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
        _messages.Enqueue(formatter(state, exception));

    public void Dispose()
    {
    }
}
