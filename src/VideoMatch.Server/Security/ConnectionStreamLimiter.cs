using System.Collections.Concurrent;
using Grpc.Core;
using Microsoft.Extensions.Options;

namespace VideoMatch.Server.Security;

/// <summary>Counts MatchStream calls per HTTP/2 connection and refuses those past the limit.</summary>
internal sealed class ConnectionStreamLimiter(IOptions<SecurityOptions> options)
{
    private readonly ConcurrentDictionary<string, int> _streams = new(StringComparer.Ordinal);
    private readonly int _limit = options.Value.MaxStreamsPerConnection;

    /// <summary>Takes a slot for a stream on <paramref name="connection"/>; dispose the result to give it back.</summary>
    /// <exception cref="RpcException">RESOURCE_EXHAUSTED: the connection already holds the most streams allowed.</exception>
    public Lease Acquire(string connection)
    {
        var count = _streams.AddOrUpdate(connection, 1, static (_, n) => n + 1);
        if (count > _limit)
        {
            Release(connection);
            throw new RpcException(new Status(StatusCode.ResourceExhausted,
                $"This connection already has {_limit} open streams, the server's limit (Security:MaxStreamsPerConnection); end one or open another connection."));
        }

        return new Lease(this, connection);
    }

    private void Release(string connection)
    {
        if (_streams.AddOrUpdate(connection, 0, static (_, n) => n - 1) <= 0)
        {
            _streams.TryRemove(KeyValuePair.Create(connection, 0));
        }
    }

    internal readonly struct Lease(ConnectionStreamLimiter owner, string connection) : IDisposable
    {
        public void Dispose() => owner.Release(connection);
    }
}
