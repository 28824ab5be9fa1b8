using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace VideoMatch.Server.Hosting;

/// <summary>Tags that sort the health checks into readiness and liveness.</summary>
internal static class HealthTags
{
    /// <summary>Ready for traffic: the model is loaded and warmed up.</summary>
    public const string Ready = "ready";

    /// <summary>Alive: restarting would not help unless this fails. Also the grpc.health.v1 service name for liveness probes.</summary>
    public const string Live = "liveness";

    /// <summary>The tag of one model's readiness, answered for the grpc.health.v1 service named after the model.</summary>
    public static string Model(string name) => $"model:{name}";
}

/// <summary>Serving once model <paramref name="name"/> is loaded and warmed up (and passed its self-check).</summary>
internal sealed class NamedModelHealthCheck(MatchingRuntime runtime, string name) : IHealthCheck
{
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        var model = runtime.Models.First(m => m.Name == name);
        return Task.FromResult(model.IsReady ? HealthCheckResult.Healthy($"Model '{name}' loaded and warmed up.") : HealthCheckResult.Unhealthy(model.NotReadyReason));
    }
}

/// <summary>Serving once the model is loaded and warmed up; not serving while loading or stopping.</summary>
internal sealed class ModelReadyHealthCheck(MatchingRuntime runtime) : IHealthCheck
{
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default) =>
        Task.FromResult(runtime.IsReady
            ? HealthCheckResult.Healthy("Model loaded and warmed up.")
            : HealthCheckResult.Unhealthy(runtime.NotReadyReason));
}

/// <summary>Alive while loading, warming up and serving; dead only when the batcher's loop has ended on an error.</summary>
internal sealed class LivenessHealthCheck(MatchingRuntime runtime) : IHealthCheck
{
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default) =>
        Task.FromResult(runtime.IsAlive
            ? HealthCheckResult.Healthy("Serving or starting.")
            : HealthCheckResult.Unhealthy("The batcher's loop ended on an error; restart the process."));
}
