using Microsoft.AspNetCore.Diagnostics.HealthChecks;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.AspNetCore.Server.Kestrel.Https;
using Microsoft.Extensions.Options;
using VideoMatch.Engine.Batching;
using VideoMatch.Engine.Inference;
using VideoMatch.Server.Hosting;
using VideoMatch.Server.Observability;
using VideoMatch.Server.Security;
using VideoMatch.Server.Services;

namespace VideoMatch.Server;

/// <summary>Builds the server: the process's entry point and the in-process hosts of tests and benchmarks use this one path.</summary>
internal static class ServerApp
{
    public static WebApplication Build(string[] args, Action<WebApplicationBuilder>? customize = null)
    {
        // The content root is the application's folder, so appsettings.json is found wherever the process starts;
        // relative paths in settings (model folder, certificates) are the user's, resolved against the working
        // directory (which `dotnet run` sets to the directory it was typed in, see the project file).
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions { Args = args, ContentRootPath = AppContext.BaseDirectory });
        var unknown = SettingsCatalog.Unknown(builder.Configuration);
        if (unknown.Count > 0)
        {
            throw new InvalidOperationException($"Settings not understood: {string.Join("; ", unknown)}. Run with --help to list every setting and its default.");
        }

        // The host's own "Hosting failed to start" trace and the health-check service's log of a not-ready answer
        // (normal during warm-up) say nothing the one-line start-up error and the readiness probe do not.
        builder.Logging.AddFilter("Microsoft.Extensions.Hosting.Internal.Host", LogLevel.Critical);
        builder.Logging.AddFilter("Microsoft.Extensions.Diagnostics.HealthChecks", LogLevel.Critical);
        // gRPC's per-call lines (a bad message, a client's cancellation) carry stack traces at Information and Debug;
        // BadRequestLog writes one line per such call instead. Its warnings and errors (a handler that threw) stay.
        builder.Logging.AddFilter("Grpc.AspNetCore.Server.ServerCallHandler", LogLevel.Warning);
        var security = builder.Configuration.GetSection(SecurityOptions.Section).Get<SecurityOptions>() ?? new SecurityOptions();
        var metrics = builder.Configuration.GetSection(MetricsOptions.Section).Get<MetricsOptions>() ?? new MetricsOptions();
        // Null when metrics are off, or when the setting is bad, which the options validation reports at start.
        var metricsPort = metrics.Enabled ? MetricsOptionsValidator.Port(metrics.Url) : null;
        var certificates = ServerCertificates.Load(security);
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            // gRPC needs HTTP/2; plaintext endpoints then speak it with prior knowledge (h2c). The metrics port
            // speaks HTTP/1.1, which Prometheus and Kubernetes' HTTP probes use.
            kestrel.ConfigureEndpointDefaults(endpoint =>
            {
                endpoint.Protocols = endpoint.IPEndPoint?.Port == metricsPort ? HttpProtocols.Http1 : HttpProtocols.Http2;
                // Outermost, on the raw socket: clients still sending when a connection closes keep what they had not read.
                endpoint.Use(LingeringClose.Use);
            });
            if (certificates is not null)
            {
                ConfigureTls(kestrel, certificates);
            }
        });
        // Defaults that hold wherever the process starts: loopback port 50051, https when a certificate is
        // configured. --urls, Urls or ASPNETCORE_URLS override them; with a certificate every one must be https.
        var urls = builder.Configuration[WebHostDefaults.ServerUrlsKey];
        if (string.IsNullOrEmpty(urls))
        {
            urls = security.UsesTls ? "https://127.0.0.1:50051" : "http://127.0.0.1:50051";
        }

        GrpcAddresses.Check(urls.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries), security.UsesTls);

        if (metricsPort is { } port)
        {
            if (urls.Split(';').Any(url => url.EndsWith($":{port}", StringComparison.Ordinal) || url.EndsWith($":{port}/", StringComparison.Ordinal)))
            {
                throw new InvalidOperationException($"Metrics:Url uses port {port}, which the gRPC endpoints ({urls}) also use; give metrics a port of its own, or set Metrics:Url to empty to turn it off.");
            }

            urls += ";" + metrics.Url;
        }

        builder.WebHost.UseUrls(urls);

        builder.Services.AddVideoMatch(builder.Configuration);
        customize?.Invoke(builder);

        var app = builder.Build();
        // Every setting is checked now, before anything binds or loads: a bad one stops here with its reason.
        _ = app.Services.GetRequiredService<IOptions<InferenceOptions>>().Value;
        _ = app.Services.GetRequiredService<IOptions<BatchingOptions>>().Value;
        _ = app.Services.GetRequiredService<IOptions<StreamingOptions>>().Value;
        _ = app.Services.GetRequiredService<IOptions<LimitsOptions>>().Value;
        _ = app.Services.GetRequiredService<IOptions<SecurityOptions>>().Value;
        _ = app.Services.GetRequiredService<IOptions<MetricsOptions>>().Value;
        var calls = app.Services.GetRequiredService<CallTracker>();
        app.Services.GetRequiredService<ServerMetrics>().TrackCalls(() => calls.Open);
        app.UseMiddleware<BadRequestLog>();
        app.UseMiddleware<ApiKeyMiddleware>();
        app.UseMiddleware<CallTrackingMiddleware>();
        app.UseMiddleware<UnaryFramingMiddleware>();
        app.MapGrpcService<VideoMatcherService>();
        app.MapGrpcHealthChecksService();
        if (security.Reflection)
        {
            app.MapGrpcReflectionService();
        }

        if (metricsPort is { } side)
        {
            MapOperatorEndpoints(app, side);
        }

        return app;
    }

    /// <summary>
    /// Metrics and HTTP probes, answered on the metrics port only: connections are told apart by the local port
    /// they arrived on (the Host header is the client's to choose), and the metrics port answers nothing else.
    /// </summary>
    private static void MapOperatorEndpoints(WebApplication app, int port)
    {
        var metrics = app.Services.GetRequiredService<ServerMetrics>();
        app.MapWhen(context => context.Connection.LocalPort == port, operatorPort =>
        {
            operatorPort.UseRouting();
            operatorPort.UseEndpoints(endpoints =>
            {
                endpoints.MapGet("/metrics", () => Results.Text(metrics.Exporter.Scrape(), "text/plain; version=0.0.4; charset=utf-8"));
                endpoints.MapHealthChecks("/healthz/live", new HealthCheckOptions { Predicate = check => check.Tags.Contains(HealthTags.Live) });
                endpoints.MapHealthChecks("/healthz/ready", new HealthCheckOptions { Predicate = check => check.Tags.Contains(HealthTags.Ready) });
            });
        });
    }

    private static void ConfigureTls(KestrelServerOptions kestrel, ServerCertificates certificates) =>
        kestrel.ConfigureHttpsDefaults(https =>
        {
            https.ServerCertificate = certificates.Server;
            if (certificates.ClientAuthority is not null)
            {
                https.ClientCertificateMode = ClientCertificateMode.RequireCertificate;
                https.ClientCertificateValidation = (certificate, _, _) => certificates.AcceptsClient(certificate);
            }
        });
}

/// <summary>Service registration.</summary>
internal static class ServiceRegistration
{
    public static IServiceCollection AddVideoMatch(this IServiceCollection services, IConfiguration configuration)
    {
        AddValidated<InferenceOptions, InferenceOptionsValidator>(services, configuration, InferenceOptions.Section);
        AddValidated<BatchingOptions, BatchingOptionsValidator>(services, configuration, BatchingOptions.Section);
        services.AddOptions<BatchingOptions>().PostConfigure<IOptions<InferenceOptions>>((batching, inference) => batching.ChooseFor(inference.Value.IsCuda));
        AddValidated<StreamingOptions, StreamingOptionsValidator>(services, configuration, StreamingOptions.Section);
        AddValidated<LimitsOptions, LimitsOptionsValidator>(services, configuration, LimitsOptions.Section);
        AddValidated<SecurityOptions, SecurityOptionsValidator>(services, configuration, SecurityOptions.Section);
        AddValidated<MetricsOptions, MetricsOptionsValidator>(services, configuration, MetricsOptions.Section);

        var limits = configuration.GetSection(LimitsOptions.Section).Get<LimitsOptions>() ?? new LimitsOptions();
        services.AddGrpc(options =>
        {
            options.MaxReceiveMessageSize = limits.MaxMessageBytes;
            options.MaxSendMessageSize = limits.MaxMessageBytes;
            options.EnableDetailedErrors = false;
            options.Interceptors.Add<MetricsInterceptor>();
            options.Interceptors.Add<HealthWatchShutdown>();
            // gzip as before, but a body marked gzip that is not gzip is answered INVALID_ARGUMENT, not UNKNOWN.
            options.CompressionProviders = [new CheckedGzipProvider()];
        });
        services.AddSingleton<Grpc.AspNetCore.Server.Model.IServiceMethodProvider<VideoMatcherService>, VideoMatcherMethods>();
        // Reflection finds services through the generated base class, which VideoMatcherService does not use: named here.
        services.AddSingleton(new Grpc.Reflection.ReflectionServiceImpl(VideoMatch.Contracts.V1.VideoMatcher.Descriptor,
            Grpc.Health.V1.Health.Descriptor, Grpc.Reflection.V1Alpha.ServerReflection.Descriptor));
        services.AddGrpcReflection();
        // grpc.health.v1: "" and the service's name answer readiness (the default model loaded and warmed up); each
        // model's name answers for that model; "liveness" answers whether the process still serves (every batcher's
        // loop is alive), for liveness probes.
        services.Configure<ModelsOptions>(models => models.Entries = ModelSet.Entries(configuration));
        var names = ModelSet.Names(configuration);
        var checks = services.AddGrpcHealthChecks(health =>
        {
            health.Services.Clear();
            health.Services.Map("", check => check.Tags.Contains(HealthTags.Ready));
            health.Services.Map(VideoMatch.Contracts.V1.VideoMatcher.Descriptor.FullName, check => check.Tags.Contains(HealthTags.Ready));
            health.Services.Map(HealthTags.Live, check => check.Tags.Contains(HealthTags.Live));
            foreach (var name in names)
            {
                health.Services.Map(name, check => check.Tags.Contains(HealthTags.Model(name)));
            }
        })
            .AddCheck<ModelReadyHealthCheck>("model", tags: [HealthTags.Ready])
            .AddCheck<LivenessHealthCheck>("batcher", tags: [HealthTags.Live]);
        foreach (var name in names)
        {
            checks.Add(new Microsoft.Extensions.Diagnostics.HealthChecks.HealthCheckRegistration(
                $"model {name}", provider => new NamedModelHealthCheck(provider.GetRequiredService<MatchingRuntime>(), name), null, [HealthTags.Model(name)]));
        }

        services.AddSingleton(TimeProvider.System);
        services.AddSingleton<ConnectionStreamLimiter>();
        services.AddSingleton<CallTracker>();
        services.AddHostedService<ShutdownCoordinator>();
        // The host waits for the streams' drain (Streaming:ShutdownDrainSeconds), then a little more.
        var streaming = configuration.GetSection(StreamingOptions.Section).Get<StreamingOptions>() ?? new StreamingOptions();
        services.Configure<HostOptions>(host => host.ShutdownTimeout = ShutdownCoordinator.HostTimeout(streaming));
        services.AddSingleton<ServerMetrics>();
        services.AddSingleton<MatcherFactory>((options, maxBatchSize) => ModelLoader.Open(options, maxBatchSize));
        services.AddSingleton<MatchingRuntime>();
        services.AddHostedService(provider => provider.GetRequiredService<MatchingRuntime>());
        return services;
    }

    private static void AddValidated<TOptions, TValidator>(IServiceCollection services, IConfiguration configuration, string section)
        where TOptions : class
        where TValidator : class, IValidateOptions<TOptions>
    {
        services.AddOptions<TOptions>().Bind(configuration.GetSection(section)).ValidateOnStart();
        services.AddSingleton<IValidateOptions<TOptions>, TValidator>();
    }
}
