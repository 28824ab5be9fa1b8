using Grpc.Core;
using Grpc.Core.Interceptors;
using Grpc.Health.V1;

namespace VideoMatch.Server.Hosting;

/// <summary>
/// Ends each <c>grpc.health.v1.Health/Watch</c> at the stop signal the way a watcher can act on: the last message is
/// NOT_SERVING, then the call ends with OK. grpc-dotnet's own completion at shutdown ends the call without telling
/// the watcher why, and aborting it resets the stream (the client sees INTERNAL "RST_STREAM").
/// </summary>
internal sealed class HealthWatchShutdown(IHostApplicationLifetime lifetime) : Interceptor
{
    private const string Watch = "/grpc.health.v1.Health/Watch";

    public override async Task ServerStreamingServerHandler<TRequest, TResponse>(TRequest request, IServerStreamWriter<TResponse> responseStream, ServerCallContext context, ServerStreamingServerMethod<TRequest, TResponse> continuation)
    {
        if (context.Method != Watch || responseStream is not IServerStreamWriter<HealthCheckResponse> health)
        {
            await continuation(request, responseStream, context).ConfigureAwait(false);
            return;
        }

        var writer = new LastWordWriter(health);
        var watching = continuation(request, (IServerStreamWriter<TResponse>)(object)writer, context);
        var stopping = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using (lifetime.ApplicationStopping.Register(() => stopping.TrySetResult()))
        {
            await Task.WhenAny(watching, stopping.Task).ConfigureAwait(false);
        }

        if (lifetime.ApplicationStopping.IsCancellationRequested && !context.CancellationToken.IsCancellationRequested)
        {
            // The health service's own loop ends at the same signal; whatever it does from now on is not written.
            _ = watching.ContinueWith(static t => _ = t.Exception, CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted, TaskScheduler.Default);
            await writer.EndAsync(new HealthCheckResponse { Status = HealthCheckResponse.Types.ServingStatus.NotServing }).ConfigureAwait(false);
            return;
        }

        await watching.ConfigureAwait(false);
    }

    /// <summary>The health service's writes, one at a time, until a last message closes it to further writes.</summary>
    // The semaphore is not disposed: the health service may still call after the call ended, and a SemaphoreSlim
    // that never hands out a wait handle holds nothing that needs disposing.
#pragma warning disable CA1001
    private sealed class LastWordWriter(IServerStreamWriter<HealthCheckResponse> inner) : IServerStreamWriter<HealthCheckResponse>
    {
        private readonly SemaphoreSlim _turn = new(1, 1);
        private bool _ended;

        public WriteOptions? WriteOptions
        {
            get => inner.WriteOptions;
            set => inner.WriteOptions = value;
        }

        public async Task WriteAsync(HealthCheckResponse message)
        {
            await _turn.WaitAsync().ConfigureAwait(false);
            try
            {
                if (!_ended)
                {
                    await inner.WriteAsync(message).ConfigureAwait(false);
                }
            }
            finally
            {
                _turn.Release();
            }
        }

        public async Task EndAsync(HealthCheckResponse last)
        {
            await _turn.WaitAsync().ConfigureAwait(false);
            try
            {
                _ended = true;
                await inner.WriteAsync(last).ConfigureAwait(false);
            }
            finally
            {
                _turn.Release();
            }
        }
    }
#pragma warning restore CA1001
}
