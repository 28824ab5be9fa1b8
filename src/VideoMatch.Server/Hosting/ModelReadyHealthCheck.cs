using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace VideoMatch.Server.Hosting;

/// <summary>Serving once the model is loaded and warmed up; not serving while loading or stopping.</summary>
internal sealed class ModelReadyHealthCheck(MatchingRuntime runtime) : IHealthCheck
{
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default) =>
        Task.FromResult(runtime.IsReady
            ? HealthCheckResult.Healthy("Model loaded and warmed up.")
            : HealthCheckResult.Unhealthy("Model loading or server stopping."));
}
