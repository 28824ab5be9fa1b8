using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using System.Globalization;
using System.Net;
using System.Numerics;
using Grpc.Core;
using Grpc.Core.Interceptors;
using Grpc.Health.V1;
using Grpc.Net.Client;
using Microsoft.Extensions.DependencyInjection;
using VideoMatch.Contracts.V1;
using VideoMatch.Tests;

namespace VideoMatch.Server.Tests;

/// <summary>The operator's side port: Prometheus metrics after real traffic, HTTP and gRPC probes.</summary>
public sealed partial class ObservabilityTests
{

    [Fact]
    public async Task Metrics_AfterWarmUp_ModelWorkCountsClientTrafficOnlyAsBatchesDo()
    {
        var metricsPort = Ports.Free();
        await using var server = await LoopbackServer.StartAsync(false, $"--Metrics:Url=http://127.0.0.1:{metricsPort}", "--Inference:WarmUp=true");
        using var channel = GrpcChannel.ForAddress(server.Address);
        var client = new VideoMatcher.VideoMatcherClient(channel.Intercept(new DefaultDeadline()));
        var video = new SyntheticVideo(seed: 12, width: 320, height: 240);

        var before = await ScrapeAsync(metricsPort);
        await client.MatchPairAsync(new MatchPairRequest { Image0 = video.Raw(Vector2.Zero), Image1 = video.Raw(new Vector2(3, 1)) });
        var after = await ScrapeAsync(metricsPort);

        // The warm-up ran 9 pairs (batches of 1 and 8); neither the batches nor the pairs the model ran count them.
        Assert.Equal(0, before["videomatch_matcher_pairs_total"]);
        Assert.Equal(0, before.GetValueOrDefault("videomatch_batches_total"));
        Assert.Equal(1, after["videomatch_matcher_pairs_total"]);
        Assert.Equal(1, after["videomatch_batches_total"]);
    }

    [Fact]
    public async Task Metrics_AfterRealTraffic_CountFramesPairsBatchesAndErrors()
    {
        var metricsPort = Ports.Free();
        await using var server = await LoopbackServer.StartAsync(false, $"--Metrics:Url=http://127.0.0.1:{metricsPort}");
        using var channel = GrpcChannel.ForAddress(server.Address);
        var client = new VideoMatcher.VideoMatcherClient(channel.Intercept(new DefaultDeadline()));
        var video = new SyntheticVideo(seed: 11, width: 320, height: 240);

        // One stream: 6 good frames and one with a bad size (answered INVALID).
        using (var call = client.MatchStream(deadline: Limits.Deadline))
        {
            await call.RequestStream.WriteAsync(new StreamRequest { Config = new StreamConfig { StreamName = "metrics" } });
            for (ulong i = 0; i < 6; i++)
            {
                await call.RequestStream.WriteAsync(new StreamRequest { Frame = video.Frame(i, new Vector2(i * 2f, i)) });
            }

            var bad = video.Frame(6, Vector2.Zero);
            bad.Image.Raw.Width = 4000;
            await call.RequestStream.WriteAsync(new StreamRequest { Frame = bad });
            await call.RequestStream.CompleteAsync();
            var responses = 0;
            while (await call.ResponseStream.MoveNext(CancellationToken.None))
            {
                responses++;
            }

            Assert.Equal(7, responses);
        }

        // One MatchPair, and one stream refused because it began with a frame.
        await client.MatchPairAsync(new MatchPairRequest { Image0 = video.Raw(Vector2.Zero), Image1 = video.Raw(new Vector2(3, 1)) }, deadline: Limits.Deadline);
        using (var refused = client.MatchStream(deadline: Limits.Deadline))
        {
            await refused.RequestStream.WriteAsync(new StreamRequest { Frame = video.Frame(0, Vector2.Zero) });
            var error = await Assert.ThrowsAsync<RpcException>(() => refused.ResponseStream.MoveNext(CancellationToken.None));
            Assert.Equal(StatusCode.InvalidArgument, error.StatusCode);
        }

        var metrics = await ScrapeAsync(metricsPort);

        Assert.Equal(9, metrics["videomatch_frames_received_total"]);
        Assert.Equal(6, metrics["videomatch_pairs_matched_total"]);
        Assert.True(metrics["videomatch_matches_total"] > 6 * 20, $"matches_total {metrics["videomatch_matches_total"]}");
        Assert.Equal(1, metrics["videomatch_streams_total"]);
        Assert.Equal(0, metrics["videomatch_active_streams"]);
        Assert.Equal(1, metrics["videomatch_errors_total{reason=\"invalid_frame\"}"]);
        Assert.Equal(1, metrics["videomatch_errors_total{reason=\"call_invalid_argument\"}"]);
        Assert.Equal(0, metrics["videomatch_errors_total{reason=\"batch_failed\"}"]);
        Assert.Equal(0, metrics["videomatch_frames_dropped_total"]);
        Assert.Equal(6, metrics["videomatch_queue_wait_seconds_count"]);
        Assert.Equal(6, metrics["videomatch_batch_size_sum"]);
        Assert.InRange(metrics["videomatch_batches_total"], 1, 6);
        Assert.Equal(metrics["videomatch_batches_total"], metrics["videomatch_inference_seconds_count"]);
        Assert.True(metrics["videomatch_inference_seconds_sum"] > 0);
        Assert.Equal(1, metrics["videomatch_model_ready"]);
        Assert.Equal(0, metrics["videomatch_queue_length"]);
        Assert.True(metrics["process_cpu_seconds_total"] > 0);
    }

    [Fact]
    public async Task Meter_VideoMatch_AnyListenerSeesWhatPrometheusServes()
    {
        using var server = new ServerFactory();
        var meters = server.Services.GetRequiredService<IMeterFactory>();
        var seen = new ConcurrentDictionary<string, long>();
        using var listener = new MeterListener
        {
            // What OpenTelemetry's AddMeter("VideoMatch") does, for this server's meter.
            InstrumentPublished = (instrument, l) =>
            {
                if (instrument.Meter.Name == "VideoMatch" && ReferenceEquals(instrument.Meter.Scope, meters))
                {
                    l.EnableMeasurementEvents(instrument);
                }
            },
        };
        listener.SetMeasurementEventCallback<long>((instrument, value, _, _) => seen.AddOrUpdate(instrument.Name, value, (_, sum) => sum + value));
        listener.Start();
        var video = new SyntheticVideo(seed: 13, width: 320, height: 240);

        await server.Client.MatchPairAsync(new MatchPairRequest { Image0 = video.Raw(Vector2.Zero), Image1 = video.Raw(new Vector2(3, 1)) }, deadline: Limits.Deadline);

        var scraped = server.Services.GetRequiredService<VideoMatch.Server.Observability.ServerMetrics>().Exporter.Scrape();
        Assert.Equal(1, seen["videomatch.pairs_matched"]);
        Assert.Equal(2, seen["videomatch.frames_received"]);
        Assert.Contains("\nvideomatch_pairs_matched_total 1\n", scraped, StringComparison.Ordinal);
        Assert.Contains("\nvideomatch_frames_received_total 2\n", scraped, StringComparison.Ordinal);
        Assert.Contains($"\nvideomatch_matches_total {seen["videomatch.matches"]}\n", scraped, StringComparison.Ordinal);
        // Histograms: cumulative buckets ending in +Inf, which equals the count.
        Assert.Contains("\nvideomatch_batch_size_bucket{model=\"embedded\",le=\"1\"} 1\n", scraped, StringComparison.Ordinal);
        Assert.Contains("\nvideomatch_batch_size_bucket{model=\"embedded\",le=\"+Inf\"} 1\n", scraped, StringComparison.Ordinal);
        Assert.Contains("\nvideomatch_batch_size_count{model=\"embedded\"} 1\n", scraped, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Probes_HttpAndGrpc_ReportLiveAndReadyOnTheirPorts()
    {
        var metricsPort = Ports.Free();
        await using var server = await LoopbackServer.StartAsync(false, $"--Metrics:Url=http://127.0.0.1:{metricsPort}", "--Security:ApiKeys:0=probe-test-key-0123456789");
        using var http = new HttpClient { Timeout = Limits.Call };
        using var channel = GrpcChannel.ForAddress(server.Address);
        var health = new Health.HealthClient(channel);

        using var live = await http.GetAsync(new Uri($"http://127.0.0.1:{metricsPort}/healthz/live"));
        using var ready = await http.GetAsync(new Uri($"http://127.0.0.1:{metricsPort}/healthz/ready"));
        using var elsewhere = await http.GetAsync(new Uri($"http://127.0.0.1:{metricsPort}/videomatch.v1.VideoMatcher/GetModelInfo"));
        Assert.Equal(HttpStatusCode.OK, live.StatusCode);
        Assert.Equal("Healthy", await live.Content.ReadAsStringAsync());
        Assert.Equal(HttpStatusCode.OK, ready.StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, elsewhere.StatusCode);

        // gRPC probes need no API key: "" and the service's name mean ready, "liveness" means alive.
        foreach (var service in new[] { "", "videomatch.v1.VideoMatcher", "liveness" })
        {
            var reply = await health.CheckAsync(new HealthCheckRequest { Service = service }, deadline: Limits.Deadline);
            Assert.Equal(HealthCheckResponse.Types.ServingStatus.Serving, reply.Status);
        }

        var unknown = await Assert.ThrowsAsync<RpcException>(() => health.CheckAsync(new HealthCheckRequest { Service = "no.such.Service" }, deadline: Limits.Deadline).ResponseAsync);
        Assert.Equal(StatusCode.NotFound, unknown.StatusCode);

        // The metrics are not served on the gRPC port.
        using var grpcPort = new HttpClient(new SocketsHttpHandler()) { DefaultRequestVersion = HttpVersion.Version20, DefaultVersionPolicy = HttpVersionPolicy.RequestVersionExact, Timeout = Limits.Call };
        using var notThere = await grpcPort.GetAsync(new Uri(server.Address, "/metrics"));
        Assert.Equal(HttpStatusCode.NotFound, notThere.StatusCode);
    }

    [Theory]
    [InlineData("/metrics")]
    [InlineData("/healthz/ready")]
    [InlineData("/healthz/live")]
    public async Task OperatorEndpoints_OnTheGrpcPortNamingTheMetricsHost_NotFound(string path)
    {
        var metricsPort = Ports.Free();
        await using var server = await LoopbackServer.StartAsync(false, $"--Metrics:Url=http://127.0.0.1:{metricsPort}", "--Security:ApiKeys:0=probe-test-key-0123456789");

        // The host (:authority) is the client's to choose; the port the connection came in on is not.
        var status = await RawHttp2.GetAsync(server.Address.Port, path, $"127.0.0.1:{metricsPort}", Limits.Call);
        using var http = new HttpClient { Timeout = Limits.Call };
        using var direct = await http.GetAsync(new Uri($"http://127.0.0.1:{metricsPort}{path}"));

        Assert.Equal(404, status);
        Assert.Equal(HttpStatusCode.OK, direct.StatusCode);
    }

    [Fact]
    public async Task Metrics_IdleCallsAndClientCancellations_CountedApartFromErrors()
    {
        var metricsPort = Ports.Free();
        await using var server = await LoopbackServer.StartAsync(false, $"--Metrics:Url=http://127.0.0.1:{metricsPort}");
        using var channel = GrpcChannel.ForAddress(server.Address);
        var client = new VideoMatcher.VideoMatcherClient(channel.Intercept(new DefaultDeadline()));

        // Two streams that never send a config are open calls, though not (yet) streams.
        using var idle1 = client.MatchStream(deadline: Limits.Deadline);
        using var idle2 = client.MatchStream(deadline: Limits.Deadline);
        await Limits.UntilAsync(() => ScrapeAsync(metricsPort).Result["videomatch_open_calls"] >= 2, "two open calls");
        var open = await ScrapeAsync(metricsPort);

        // A stream the client cancels: churn, not a server error.
        using (var cancelled = new CancellationTokenSource())
        {
            using var call = client.MatchStream(cancellationToken: cancelled.Token);
            var video = new SyntheticVideo(seed: 14, width: 160, height: 120);
            await call.RequestStream.WriteAsync(new StreamRequest { Config = new StreamConfig() });
            await call.RequestStream.WriteAsync(new StreamRequest { Frame = video.Frame(0, Vector2.Zero) });
            Assert.True(await call.ResponseStream.MoveNext());
            await cancelled.CancelAsync();
        }

        await Limits.UntilAsync(() => ScrapeAsync(metricsPort).Result["videomatch_calls_ended_by_client_total{reason=\"cancelled\"}"] >= 1, "the cancellation to be counted");
        var after = await ScrapeAsync(metricsPort);

        Assert.Equal(2, open["videomatch_open_calls"]);
        Assert.Equal(0, open["videomatch_active_streams"]);
        Assert.Equal(1, after["videomatch_calls_ended_by_client_total{reason=\"cancelled\"}"]);
        Assert.False(after.ContainsKey("videomatch_errors_total{reason=\"call_unknown\"}"), "a client's cancellation is no server error");
        Assert.False(after.ContainsKey("videomatch_errors_total{reason=\"call_cancelled\"}"), "a client's cancellation is no server error");
    }

    [Fact]
    public async Task Metrics_StreamsCancelledWithPairsInFlight_CountedAbandonedNotFailed()
    {
        // Before: 50 cancelled streams added 208 to errors_total{reason="pair_failed"}. The model is held shut until
        // every stream is cancelled, so their pairs are in flight then however fast or loaded the machine is.
        var gate = new ManualResetEventSlim();
        using var server = new ServerFactory(
            new Dictionary<string, string?> { ["Batching:MaxBatchSize"] = "1", ["Inference:WarmUp"] = "false" },
            services => services.AddSingleton<Hosting.MatcherFactory>((options, maxBatch) => new FaultTests.GatedMatcher(Engine.Inference.ModelLoader.Open(options, maxBatch), gate)));
        var metrics = server.Services.GetRequiredService<Observability.ServerMetrics>();
        var client = server.Client;
        var video = new SyntheticVideo(seed: 15, width: 320, height: 240);
        var frames = Enumerable.Range(0, 6).Select(i => video.Frame((ulong)i, new Vector2(i, 0))).ToArray();

        async Task CancelWithPairsInFlightAsync()
        {
            using var cancelled = new CancellationTokenSource();
            using var call = client.MatchStream(cancellationToken: cancelled.Token);
            await call.RequestStream.WriteAsync(new StreamRequest { Config = new StreamConfig() });
            foreach (var frame in frames)
            {
                await call.RequestStream.WriteAsync(new StreamRequest { Frame = frame });
            }

            // FIRST_FRAME is back: the five pairs after it are read, and queued or held in the model.
            Assert.True(await call.ResponseStream.MoveNext());
            await cancelled.CancelAsync();
        }

        await Task.WhenAll(Enumerable.Range(0, 8).Select(_ => CancelWithPairsInFlightAsync())).WaitAsync(Limits.Call);
        await Limits.UntilAsync(() => Parse(metrics.Exporter.Scrape())["videomatch_calls_ended_by_client_total{reason=\"cancelled\"}"] >= 8, "the cancellations to be counted");
        gate.Set();
        // The batcher runs pairs in order: once a later stream's pair is answered, every pair queued before it has
        // been run or dropped.
        using (var later = client.MatchStream(deadline: Limits.Deadline))
        {
            await later.RequestStream.WriteAsync(new StreamRequest { Config = new StreamConfig() });
            await later.RequestStream.WriteAsync(new StreamRequest { Frame = frames[0] });
            await later.RequestStream.WriteAsync(new StreamRequest { Frame = frames[1] });
            await later.RequestStream.CompleteAsync();
            while (await later.ResponseStream.MoveNext())
            {
            }
        }

        await Limits.UntilAsync(() => Parse(metrics.Exporter.Scrape()).GetValueOrDefault("videomatch_pairs_abandoned_total") >= 30, "pairs in flight at the cancellations to be counted as abandoned");
        var after = Parse(metrics.Exporter.Scrape());

        Assert.Equal(0, after["videomatch_errors_total{reason=\"pair_failed\"}"]);
        Assert.True(after["videomatch_pairs_matched_total"] >= 1, "the later stream's pair was matched");
    }

    /// <summary>Reads the text exposition into "name{labels}" → value.</summary>
    internal static async Task<Dictionary<string, double>> ScrapeAsync(int port)
    {
        using var http = new HttpClient { Timeout = Limits.Call };
        return Parse(await http.GetStringAsync(new Uri($"http://127.0.0.1:{port}/metrics")));
    }

    /// <summary>The text exposition as "name{labels}" → value.</summary>
    internal static Dictionary<string, double> Parse(string text)
    {
        var values = new Dictionary<string, double>(StringComparer.Ordinal);
        foreach (var line in text.Split('\n'))
        {
            if (line.Length == 0 || line[0] == '#')
            {
                continue;
            }

            var space = line.LastIndexOf(' ');
            var value = double.Parse(line[(space + 1)..], CultureInfo.InvariantCulture);
            values[line[..space]] = value;
            // Per-model series also add up under the name without their model label, as sum without(model) would.
            if (ModelLabel().Match(line[..space]) is { Success: true } model)
            {
                var key = line[..space].Remove(model.Index, model.Length).Replace("{}", "", StringComparison.Ordinal).Replace(",}", "}", StringComparison.Ordinal).Replace("{,", "{", StringComparison.Ordinal);
                values[key] = values.GetValueOrDefault(key) + value;
            }
        }

        return values;
    }

    [System.Text.RegularExpressions.GeneratedRegex("model=\"[^\"]*\"")]
    private static partial System.Text.RegularExpressions.Regex ModelLabel();
}
