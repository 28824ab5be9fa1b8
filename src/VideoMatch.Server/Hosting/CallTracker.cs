using System.Collections.Concurrent;
using Grpc.AspNetCore.Server;
using Grpc.Core;
using Microsoft.Extensions.Options;
using VideoMatch.Server.Observability;
using VideoMatch.Server.Security;

namespace VideoMatch.Server.Hosting;

/// <summary>
/// Every gRPC call open now, whatever its method or state (a stream before its config, a health watch), so that
/// metrics count them all, health watches are bounded, and shutdown can end what a client would hold open.
/// </summary>
internal sealed class CallTracker
{
    private const string HealthWatch = "/grpc.health.v1.Health/Watch";
    private readonly ConcurrentDictionary<HttpContext, bool> _calls = new();

    /// <summary>Calls open now.</summary>
    public int Open => _calls.Count;

    /// <summary>grpc.health.v1 Watch calls open now.</summary>
    public int Watches => _calls.Count(c => c.Value);

    public static bool IsWatch(HttpContext context) => context.Request.Path == HealthWatch;

    public void Enter(HttpContext context) => _calls[context] = IsWatch(context);

    public void Leave(HttpContext context) => _calls.TryRemove(context, out _);

    /// <summary>
    /// Aborts the calls <paramref name="which"/> picks (the client sees its stream reset), and with
    /// <paramref name="connections"/> their connections too (a client that stopped reading would otherwise keep its
    /// connection open after the stream ends); returns how many.
    /// </summary>
    public int Abort(Func<HttpContext, bool, bool> which, bool connections = false)
    {
        var aborted = 0;
        foreach (var (context, watch) in _calls)
        {
            if (which(context, watch))
            {
                context.Abort();
                if (connections)
                {
                    context.Features.Get<Microsoft.AspNetCore.Connections.Features.IConnectionLifetimeFeature>()?.Abort();
                }

                aborted++;
            }
        }

        return aborted;
    }
}

/// <summary>
/// Tracks each gRPC call in <see cref="CallTracker"/>, and refuses a health watch over
/// <see cref="SecurityOptions.MaxHealthWatches"/> (RESOURCE_EXHAUSTED) or once the server is stopping (UNAVAILABLE).
/// </summary>
internal sealed class CallTrackingMiddleware(RequestDelegate next, CallTracker calls, IOptions<SecurityOptions> security, IHostApplicationLifetime lifetime)
{
    public async Task InvokeAsync(HttpContext context)
    {
        if (context.GetEndpoint()?.Metadata.GetMetadata<GrpcMethodMetadata>() is null)
        {
            await next(context).ConfigureAwait(false);
            return;
        }

        if (CallTracker.IsWatch(context))
        {
            if (lifetime.ApplicationStopping.IsCancellationRequested)
            {
                GrpcRefusal.Write(context, StatusCode.Unavailable, "The server is shutting down; watch another instance.");
                return;
            }

            if (calls.Watches >= security.Value.MaxHealthWatches)
            {
                GrpcRefusal.Write(context, StatusCode.ResourceExhausted,
                    $"This server already serves {security.Value.MaxHealthWatches} health watches (Security:MaxHealthWatches); use Check, or watch from fewer clients.");
                return;
            }
        }

        calls.Enter(context);
        try
        {
            await next(context).ConfigureAwait(false);
        }
        finally
        {
            calls.Leave(context);
        }
    }
}

/// <summary>
/// At shutdown: health watches end at once with NOT_SERVING (<see cref="HealthWatchShutdown"/>; their clients reconnect
/// elsewhere), and every call still open once
/// <see cref="StreamingOptions.ShutdownDrainSeconds"/> and a short grace have passed is aborted, so the host never
/// waits on a client that stopped reading or a body that never ends.
/// </summary>
internal sealed partial class ShutdownCoordinator(CallTracker calls, IOptions<StreamingOptions> streaming, IHostApplicationLifetime lifetime, ILogger<ShutdownCoordinator> logger)
    : IHostedService
{
    /// <summary>Past the drain time: for answers already made to reach clients that read.</summary>
    public static readonly TimeSpan Grace = TimeSpan.FromSeconds(2);

    /// <summary>The host's own limit, which must not cut the drain short; past it Kestrel resets what is left.</summary>
    public static TimeSpan HostTimeout(StreamingOptions streaming) => streaming.ShutdownDrain + Grace + TimeSpan.FromSeconds(3);

    private CancellationTokenRegistration _stopping;

    public Task StartAsync(CancellationToken cancellationToken)
    {
        _stopping = lifetime.ApplicationStopping.Register(() => _ = EndCallsAsync());
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => _stopping.DisposeAsync().AsTask();

    private async Task EndCallsAsync()
    {
        await Task.Delay(streaming.Value.ShutdownDrain + Grace, CancellationToken.None).ConfigureAwait(false);
        var aborted = calls.Abort((_, _) => true, connections: true);
        if (aborted > 0)
        {
            ServerLog.Aborted(logger, aborted, streaming.Value.ShutdownDrainSeconds);
        }
    }
}
