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
    private readonly TimeProvider _time;

    public CallTracker(TimeProvider time) => _time = time;

    /// <summary>Calls open now.</summary>
    public int Open => _calls.Count;

    /// <summary>grpc.health.v1 Watch calls open now.</summary>
    public int Watches => _calls.Count(c => c.Value);

    public static bool IsWatch(HttpContext context) => context.Request.Path == HealthWatch;

    public void Enter(HttpContext context)
    {
        context.Features.Set(new CallActivity(_time));
        _calls[context] = IsWatch(context);
    }

    public void Leave(HttpContext context) => _calls.TryRemove(context, out _);

    /// <summary>How long a call has gone without reading a message or writing a response (zero for a call that reports none).</summary>
    public static TimeSpan Idle(HttpContext context) => context.Features.Get<CallActivity>()?.Idle ?? TimeSpan.Zero;

    /// <summary>
    /// Resets every call that has made no progress for <paramref name="idle"/> (the client sees that stream reset,
    /// nothing else), and aborts its connection too when no other open call uses it: a client that stopped reading would
    /// keep its connection open after the stream ends, while a connection that still carries a stream in progress is
    /// left to close once that stream is done (aborting it would lose that stream's answers). Returns how many calls.
    /// </summary>
    public int AbortStuck(TimeSpan idle)
    {
        var open = _calls.Keys.Where(c => !c.RequestAborted.IsCancellationRequested).ToList();
        var stuck = open.Where(c => Idle(c) >= idle).ToList();
        var busy = open.Except(stuck).Select(c => c.Connection.Id).ToHashSet(StringComparer.Ordinal);
        foreach (var context in stuck)
        {
            context.Abort();
            if (!busy.Contains(context.Connection.Id))
            {
                context.Features.Get<Microsoft.AspNetCore.Connections.Features.IConnectionLifetimeFeature>()?.Abort();
            }
        }

        return stuck.Count;
    }

    /// <summary>Aborts every call still open, with its connection; returns how many.</summary>
    public int AbortAll()
    {
        var aborted = 0;
        foreach (var context in _calls.Keys)
        {
            context.Abort();
            context.Features.Get<Microsoft.AspNetCore.Connections.Features.IConnectionLifetimeFeature>()?.Abort();
            aborted++;
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
/// elsewhere). Once <see cref="StreamingOptions.ShutdownDrainSeconds"/> and a short grace have passed, a call still
/// open is aborted when it is stuck — it has neither read nor written for <see cref="Grace"/> (a client that stopped
/// reading, a body that never ends) — so the host never waits on it; a stream still delivering its answers to a client
/// that reads (slowly, or on a loaded machine) finishes them for up to <see cref="Finishing"/> more, and only then is
/// everything left aborted with its connection. A stuck call's connection is aborted with it only when it carries no
/// other open call: a stream still finishing on it would lose its answers.
/// </summary>
internal sealed partial class ShutdownCoordinator(CallTracker calls, IOptions<StreamingOptions> streaming, IHostApplicationLifetime lifetime, ILogger<ShutdownCoordinator> logger)
    : IHostedService
{
    /// <summary>Past the drain time: for answers already made to reach clients that read.</summary>
    public static readonly TimeSpan Grace = TimeSpan.FromSeconds(2);

    /// <summary>The host's own limit, which must not cut the drain short; past it Kestrel resets what is left.</summary>
    public static TimeSpan HostTimeout(StreamingOptions streaming) => streaming.ShutdownDrain + Grace + Finishing + LingeringClose.Linger + TimeSpan.FromSeconds(3);

    /// <summary>Past the drain time and the grace: how long calls that still make progress may take to finish.</summary>
    public static readonly TimeSpan Finishing = TimeSpan.FromSeconds(5);

    private static readonly TimeSpan Check = TimeSpan.FromMilliseconds(250);

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
        for (var waited = TimeSpan.Zero; calls.Open > 0 && waited < Finishing; waited += Check)
        {
            Report(calls.AbortStuck(Grace));
            await Task.Delay(Check, CancellationToken.None).ConfigureAwait(false);
        }

        Report(calls.AbortAll());
    }

    private void Report(int aborted)
    {
        if (aborted > 0)
        {
            ServerLog.Aborted(logger, aborted, streaming.Value.ShutdownDrainSeconds);
        }
    }
}

/// <summary>When a call last read a message or wrote a response; kept in the call's features, told by the code that reads and writes.</summary>
internal sealed class CallActivity(TimeProvider time)
{
    private long _last = time.GetTimestamp();

    /// <summary>Time since the call last made progress.</summary>
    public TimeSpan Idle => time.GetElapsedTime(Volatile.Read(ref _last));

    public void Touch() => Volatile.Write(ref _last, time.GetTimestamp());
}
