using System.Security.Cryptography;
using System.Text;
using Grpc.AspNetCore.Server;
using Grpc.Core;
using Microsoft.Extensions.Options;
using VideoMatch.Server.Observability;

namespace VideoMatch.Server.Security;

/// <summary>
/// Checks <c>authorization: Bearer KEY</c> against <see cref="SecurityOptions.ApiKeys"/> from the request's headers,
/// before gRPC reads a byte of its body (constant-time comparison): a refused call costs no parsing and holds no
/// slot, however large or slow its body. No keys configured: every call passes. grpc.health.v1 always passes, for
/// probes. A refusal is a trailers-only gRPC answer, UNAUTHENTICATED, counted as a call error.
/// </summary>
internal sealed class ApiKeyMiddleware(RequestDelegate next, IOptions<SecurityOptions> options, ServerMetrics metrics)
{
    private const string HealthService = "grpc.health.v1.Health";
    private readonly byte[][] _keys = [.. options.Value.ApiKeys.Select(Encoding.UTF8.GetBytes)];

    public Task InvokeAsync(HttpContext context)
    {
        if (_keys.Length == 0 || context.GetEndpoint()?.Metadata.GetMetadata<GrpcMethodMetadata>() is not { } grpc
            || grpc.Method.ServiceName == HealthService)
        {
            return next(context);
        }

        var refusal = Refusal(context.Request.Headers.Authorization.ToString());
        if (refusal is null)
        {
            return next(context);
        }

        metrics.Error(ErrorReason.Call(StatusCode.Unauthenticated));
        GrpcRefusal.Write(context, StatusCode.Unauthenticated, refusal);
        return Task.CompletedTask;
    }

    /// <summary>Why the header is refused (printable ASCII, as grpc-message needs no escaping then); null when a key matches.</summary>
    private string? Refusal(string header)
    {
        if (!header.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase))
        {
            return "This server requires an API key: send the header 'authorization: Bearer <key>'.";
        }

        var presented = Encoding.UTF8.GetBytes(header["Bearer ".Length..].Trim());
        var known = false;
        foreach (var key in _keys)
        {
            // Every key is compared, in constant time, so timing tells nothing about which key was close.
            known |= CryptographicOperations.FixedTimeEquals(presented, key);
        }

        return known ? null : "The API key is not valid for this server.";
    }
}
