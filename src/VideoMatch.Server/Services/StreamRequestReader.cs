using Grpc.Core;
using VideoMatch.Contracts.V1;

namespace VideoMatch.Server.Services;

/// <summary>
/// Reads one MatchStream's messages. Whatever gRPC's reader throws is turned into the answer that ends the call here,
/// by <see cref="Answers.ReadFailure"/>, for the config and every frame alike; a client that went away ends reading
/// quietly. Waiting for a message stops at the server's stop signal; a message already read is seen through.
/// </summary>
internal sealed class StreamRequestReader(IAsyncStreamReader<StreamRequest> requests, CancellationToken call, CancellationToken stopping) : IDisposable
{
    private readonly CancellationTokenSource _waiting = CancellationTokenSource.CreateLinkedTokenSource(call, stopping);
    private long _read;

    /// <summary>The stream's first message, or null when the client ended the stream (or went away) before sending one.</summary>
    /// <exception cref="RpcException">No message within <paramref name="timeoutSeconds"/>, the server is stopping, or the message is unreadable.</exception>
    public async Task<StreamRequest?> FirstAsync(double timeoutSeconds)
    {
        using var first = CancellationTokenSource.CreateLinkedTokenSource(_waiting.Token);
        first.CancelAfter(TimeSpan.FromSeconds(timeoutSeconds));
        try
        {
            return await ReadAsync(first.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!call.IsCancellationRequested)
        {
            throw stopping.IsCancellationRequested ? Answers.ShuttingDownBeforeConfig() : Answers.NoConfigInTime(timeoutSeconds);
        }
        catch (Exception) when (call.IsCancellationRequested)
        {
            return null;
        }
    }

    /// <summary>The next message, or null when the client has ended the stream (or gone away).</summary>
    /// <param name="lastSequence">The last frame read, for the answer that ends the call at the stop signal.</param>
    /// <exception cref="RpcException">The server is stopping, or the message is unreadable.</exception>
    public async Task<StreamRequest?> NextAsync(ulong? lastSequence)
    {
        try
        {
            return await ReadAsync(_waiting.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!call.IsCancellationRequested)
        {
            throw Answers.ShuttingDown(lastSequence);
        }
        catch (Exception) when (call.IsCancellationRequested)
        {
            return null;
        }
    }

    public void Dispose() => _waiting.Dispose();

    private async Task<StreamRequest?> ReadAsync(CancellationToken cancellationToken)
    {
        try
        {
            if (!await requests.MoveNext(cancellationToken).ConfigureAwait(false))
            {
                return null;
            }

            _read++;
            return requests.Current;
        }
        catch (Exception e) when (!call.IsCancellationRequested && Answers.ReadFailure(e, _read + 1) is { } answer)
        {
            throw answer;
        }
    }
}
