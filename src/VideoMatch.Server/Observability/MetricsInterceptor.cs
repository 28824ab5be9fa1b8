using Grpc.Core;
using Grpc.Core.Interceptors;

namespace VideoMatch.Server.Observability;

/// <summary>
/// Counts calls that end with a non-OK status in <c>videomatch_errors_total{reason="call_…"}</c>, except those the
/// client ended (cancelled, disconnected, past its deadline), which go to <c>videomatch_calls_ended_by_client_total</c>
/// so that normal churn does not look like server errors. API-key
/// refusals never reach it: <see cref="Security.ApiKeyMiddleware"/> answers and counts them before the body is read.
/// </summary>
internal sealed class MetricsInterceptor(ServerMetrics metrics) : Interceptor
{
    public override async Task<TResponse> UnaryServerHandler<TRequest, TResponse>(TRequest request, ServerCallContext context, UnaryServerMethod<TRequest, TResponse> continuation)
    {
        try
        {
            return await continuation(request, context).ConfigureAwait(false);
        }
        catch (Exception e)
        {
            Count(e, context);
            throw;
        }
    }

    public override async Task DuplexStreamingServerHandler<TRequest, TResponse>(IAsyncStreamReader<TRequest> requestStream, IServerStreamWriter<TResponse> responseStream, ServerCallContext context, DuplexStreamingServerMethod<TRequest, TResponse> continuation)
    {
        try
        {
            await continuation(requestStream, responseStream, context).ConfigureAwait(false);
            CountIfClientEnded(context);
        }
        catch (Exception e)
        {
            Count(e, context);
            throw;
        }
    }

    public override async Task ServerStreamingServerHandler<TRequest, TResponse>(TRequest request, IServerStreamWriter<TResponse> responseStream, ServerCallContext context, ServerStreamingServerMethod<TRequest, TResponse> continuation)
    {
        try
        {
            await continuation(request, responseStream, context).ConfigureAwait(false);
            CountIfClientEnded(context);
        }
        catch (Exception e)
        {
            Count(e, context);
            throw;
        }
    }

    /// <summary>A streaming handler that returns once its client has gone (it stops quietly then): churn, counted as such.</summary>
    private void CountIfClientEnded(ServerCallContext context)
    {
        if (context.CancellationToken.IsCancellationRequested)
        {
            metrics.CallEndedByClient(deadline: context.Deadline <= DateTime.UtcNow);
        }
    }

    private void Count(Exception error, ServerCallContext context)
    {
        if (context.CancellationToken.IsCancellationRequested || error is RpcException { StatusCode: StatusCode.Cancelled or StatusCode.DeadlineExceeded } && context.Deadline <= DateTime.UtcNow)
        {
            metrics.CallEndedByClient(deadline: context.Deadline <= DateTime.UtcNow);
            return;
        }

        metrics.Error(ErrorReason.Call(error is RpcException rpc ? rpc.StatusCode : StatusCode.Unknown));
    }
}
