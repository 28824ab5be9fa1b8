using System.Globalization;
using Grpc.Core;
using Microsoft.AspNetCore.Connections.Features;
using VideoMatch.Server.Services;

namespace VideoMatch.Server.Hosting;

/// <summary>
/// One line for each gRPC call that a client's bad request ended (INVALID_ARGUMENT, RESOURCE_EXHAUSTED,
/// UNAUTHENTICATED, …) and for each server error, read from the status the call ended with, whoever wrote it: the
/// service, gRPC's reader, or a middleware that refused the call. Never a stack trace (gRPC's own per-call lines are
/// filtered out in <see cref="ServerApp"/>). A connection that keeps sending bad requests gets
/// <see cref="LinesPerConnection"/> lines per <see cref="Window"/>, then one line saying how many more there were.
/// A call the client cancelled is churn: a Debug line.
/// </summary>
internal sealed class BadRequestLog(RequestDelegate next, ILogger<BadRequestLog> logger, TimeProvider time)
{
    /// <summary>Lines one connection may cause per <see cref="Window"/>.</summary>
    public const int LinesPerConnection = 5;

    /// <summary>The rate limit's window.</summary>
    public static readonly TimeSpan Window = TimeSpan.FromSeconds(10);

    private const int MaxDetailLength = 300;

    public async Task InvokeAsync(HttpContext context)
    {
        await next(context).ConfigureAwait(false);
        if (!IsGrpc(context) || Status(context) is not { } status || status == StatusCode.OK)
        {
            return;
        }

        var method = StreamSettings.Printable(context.Request.Path.Value ?? "", 128);
        var peer = $"{context.Connection.RemoteIpAddress}:{context.Connection.RemotePort}";
        if (context.RequestAborted.IsCancellationRequested || status == StatusCode.Cancelled)
        {
            ServerLog.CallEndedByClient(logger, method, peer);
            return;
        }

        var serverError = status is StatusCode.Internal or StatusCode.Unknown or StatusCode.DataLoss;
        if (!serverError && status is StatusCode.Unavailable or StatusCode.Aborted)
        {
            // Shutdown and not-ready answers: the server's own state, told to every caller; logged elsewhere once.
            return;
        }

        var detail = StreamSettings.Printable(Uri.UnescapeDataString(Header(context, "grpc-message") ?? ""), MaxDetailLength);
        if (Limiter(context)?.Take(time.GetUtcNow()) == false)
        {
            return;
        }

        if (serverError)
        {
            ServerLog.CallFailed(logger, method, peer, status, detail);
        }
        else
        {
            ServerLog.BadRequest(logger, method, peer, status, detail);
        }
    }

    private static bool IsGrpc(HttpContext context) =>
        context.Request.ContentType?.StartsWith("application/grpc", StringComparison.OrdinalIgnoreCase) == true && context.Request.Protocol == "HTTP/2";

    /// <summary>The grpc-status the call ended with: in the trailers, or in the headers of a trailers-only answer.</summary>
    private static StatusCode? Status(HttpContext context) =>
        int.TryParse(Header(context, "grpc-status"), NumberStyles.None, CultureInfo.InvariantCulture, out var code) ? (StatusCode)code : null;

    private static string? Header(HttpContext context, string name)
    {
        var trailers = context.Features.Get<Microsoft.AspNetCore.Http.Features.IHttpResponseTrailersFeature>()?.Trailers;
        if (trailers is not null && trailers.TryGetValue(name, out var value) && value.Count > 0)
        {
            return value[0];
        }

        return context.Response.Headers.TryGetValue(name, out value) && value.Count > 0 ? value[0] : null;
    }

    /// <summary>The connection's limiter, kept with the connection (Kestrel's per-connection items); null when there are none.</summary>
    private ConnectionLines? Limiter(HttpContext context)
    {
        if (context.Features.Get<IConnectionItemsFeature>()?.Items is not { } items)
        {
            return null;
        }

        lock (items)
        {
            if (items.TryGetValue(typeof(ConnectionLines), out var existing))
            {
                return (ConnectionLines)existing!;
            }

            var lines = new ConnectionLines(this, $"{context.Connection.RemoteIpAddress}:{context.Connection.RemotePort}");
            items[typeof(ConnectionLines)] = lines;
            // Bad requests left unlogged when the connection closes are counted in one last line.
            context.Features.Get<IConnectionLifetimeFeature>()?.ConnectionClosed.Register(lines.Closed);
            return lines;
        }
    }

    /// <summary>One connection's lines in the current window, and those left unlogged.</summary>
    private sealed class ConnectionLines(BadRequestLog log, string peer)
    {
        private readonly Lock _lock = new();
        private DateTimeOffset _windowStart = DateTimeOffset.MinValue;
        private int _lines;
        private int _suppressed;

        /// <summary>Whether this bad request gets its line (a line for those left unlogged in the last window comes first).</summary>
        public bool Take(DateTimeOffset now)
        {
            int suppressed;
            lock (_lock)
            {
                if (now - _windowStart >= Window)
                {
                    (_windowStart, _lines, suppressed, _suppressed) = (now, 0, _suppressed, 0);
                }
                else
                {
                    suppressed = 0;
                }

                if (_lines >= LinesPerConnection)
                {
                    _suppressed++;
                    return false;
                }

                _lines++;
            }

            if (suppressed > 0)
            {
                ServerLog.BadRequestsSuppressed(log.Logger, suppressed, peer, Window.TotalSeconds);
            }

            return true;
        }

        public void Closed()
        {
            int suppressed;
            lock (_lock)
            {
                (suppressed, _suppressed) = (_suppressed, 0);
            }

            if (suppressed > 0)
            {
                ServerLog.BadRequestsSuppressed(log.Logger, suppressed, peer, Window.TotalSeconds);
            }
        }
    }

    private ILogger Logger => logger;
}
