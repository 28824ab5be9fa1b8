using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Options;
using VideoMatch.Engine.Batching;
using VideoMatch.Engine.Inference;
using VideoMatch.Server;
using VideoMatch.Server.Hosting;
using VideoMatch.Server.Services;

var builder = WebApplication.CreateBuilder(args);
// Defaults that hold wherever the process starts (appsettings.json is read from the working directory):
// plaintext HTTP/2 on loopback port 50051. --urls, Urls or ASPNETCORE_URLS and the Kestrel section override them.
builder.WebHost.ConfigureKestrel(kestrel => kestrel.ConfigureEndpointDefaults(endpoint => endpoint.Protocols = HttpProtocols.Http2));
if (string.IsNullOrEmpty(builder.Configuration[WebHostDefaults.ServerUrlsKey]))
{
    builder.WebHost.UseUrls("http://127.0.0.1:50051");
}

builder.Services.AddVideoMatch(builder.Configuration);

var app = builder.Build();
app.MapGrpcService<VideoMatcherService>();
app.MapGrpcHealthChecksService();
app.MapGrpcReflectionService();
try
{
    app.Run();
    return 0;
}
catch (Exception e) when (e is OptionsValidationException or InvalidOperationException)
{
    // A bad setting or a model that cannot load: one clear line for the operator, and a failing exit code.
    Console.Error.WriteLine($"VideoMatch server could not start: {e.Message}");
    return 1;
}

/// <summary>The server's entry point (public for the functional tests' host).</summary>
public partial class Program;

namespace VideoMatch.Server
{
    /// <summary>Service registration, shared by the server and its in-process hosts.</summary>
    internal static class ServiceRegistration
    {
        public static IServiceCollection AddVideoMatch(this IServiceCollection services, IConfiguration configuration)
        {
            AddValidated<InferenceOptions, InferenceOptionsValidator>(services, configuration, InferenceOptions.Section);
            AddValidated<BatchingOptions, BatchingOptionsValidator>(services, configuration, BatchingOptions.Section);
            AddValidated<StreamingOptions, StreamingOptionsValidator>(services, configuration, StreamingOptions.Section);
            AddValidated<LimitsOptions, LimitsOptionsValidator>(services, configuration, LimitsOptions.Section);

            var limits = configuration.GetSection(LimitsOptions.Section).Get<LimitsOptions>() ?? new LimitsOptions();
            services.AddGrpc(options =>
            {
                options.MaxReceiveMessageSize = limits.MaxMessageBytes;
                options.MaxSendMessageSize = limits.MaxMessageBytes;
                options.EnableDetailedErrors = false;
            });
            services.AddGrpcReflection();
            services.AddGrpcHealthChecks().AddCheck<ModelReadyHealthCheck>("model");
            services.AddSingleton(TimeProvider.System);
            services.AddSingleton<MatcherFactory>(ModelLoader.Open);
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
}
