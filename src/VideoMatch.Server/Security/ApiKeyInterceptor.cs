using System.Security.Cryptography;
using System.Text;
using Grpc.Core;
using Grpc.Core.Interceptors;
using Microsoft.Extensions.Options;

namespace VideoMatch.Server.Security;

/// <summary>
/// Checks <c>authorization: Bearer KEY</c> against <see cref="SecurityOptions.ApiKeys"/> before any call runs
/// (constant-time comparison). No keys configured: every call passes. Health checks always pass, for probes.
/// </summary>
internal sealed class ApiKeyInterceptor : Interceptor
{
    private const string HealthService = "/grpc.health.v1.Health/";
    private readonly byte[][] _keys;

    public ApiKeyInterceptor(IOptions<SecurityOptions> options) =>
        _keys = [.. options.Value.ApiKeys.Select(Encoding.UTF8.GetBytes)];

    public override Task<TResponse> UnaryServerHandler<TRequest, TResponse>(TRequest request, ServerCallContext context, UnaryServerMethod<TRequest, TResponse> continuation)
    {
        Check(context);
        return continuation(request, context);
    }

    public override Task<TResponse> ClientStreamingServerHandler<TRequest, TResponse>(IAsyncStreamReader<TRequest> requestStream, ServerCallContext context, ClientStreamingServerMethod<TRequest, TResponse> continuation)
    {
        Check(context);
        return continuation(requestStream, context);
    }

    public override Task ServerStreamingServerHandler<TRequest, TResponse>(TRequest request, IServerStreamWriter<TResponse> responseStream, ServerCallContext context, ServerStreamingServerMethod<TRequest, TResponse> continuation)
    {
        Check(context);
        return continuation(request, responseStream, context);
    }

    public override Task DuplexStreamingServerHandler<TRequest, TResponse>(IAsyncStreamReader<TRequest> requestStream, IServerStreamWriter<TResponse> responseStream, ServerCallContext context, DuplexStreamingServerMethod<TRequest, TResponse> continuation)
    {
        Check(context);
        return continuation(requestStream, responseStream, context);
    }

    private void Check(ServerCallContext context)
    {
        if (_keys.Length == 0 || context.Method.StartsWith(HealthService, StringComparison.Ordinal))
        {
            return;
        }

        var header = context.RequestHeaders.GetValue("authorization");
        if (header is null || !header.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase))
        {
            throw new RpcException(new Status(StatusCode.Unauthenticated, "This server requires an API key: send the header 'authorization: Bearer <key>'."));
        }

        var presented = Encoding.UTF8.GetBytes(header["Bearer ".Length..].Trim());
        var known = false;
        foreach (var key in _keys)
        {
            // Every key is compared, in constant time, so timing tells nothing about which key was close.
            known |= CryptographicOperations.FixedTimeEquals(presented, key);
        }

        if (!known)
        {
            throw new RpcException(new Status(StatusCode.Unauthenticated, "The API key is not valid for this server."));
        }
    }
}
