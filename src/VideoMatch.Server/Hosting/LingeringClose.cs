using System.IO.Pipelines;
using Microsoft.AspNetCore.Connections;

namespace VideoMatch.Server.Hosting;

/// <summary>
/// A lingering close for every connection (a Kestrel connection middleware, outermost, on the raw socket). When Kestrel
/// is done with a connection — its last stream ended, at shutdown or on a protocol error — it has sent all it will, but
/// a client may still be sending frames it wrote before it read the stream's end. Closing the socket with those bytes
/// unread makes TCP reset the connection, and the client's kernel then drops what the client had not read yet: the last
/// answers and the status (seen as "broken pipe" or "the server closed the connection" instead of UNAVAILABLE). So the
/// socket is read, and what arrives dropped, until the client closes its side or <see cref="Linger"/> has passed.
/// <para>
/// The server's own end of the socket (its FIN) waits for that too. A stream the server ended while its client was
/// still sending is reset by Kestrel with NO_ERROR after its status; the client then abandons the request body, which
/// takes it a moment. A FIN that arrives in that moment makes .NET's HTTP/2 client fail the stream with "the server
/// closed the connection" although its answers and status had arrived. A client closes the connection itself once its
/// last stream is done after GOAWAY, so waiting for the client's FIN costs nothing when all is well.
/// </para>
/// </summary>
internal static class LingeringClose
{
    /// <summary>Longest a closing connection waits for its client to stop sending.</summary>
    public static readonly TimeSpan Linger = TimeSpan.FromSeconds(1);

    public static ConnectionDelegate Use(ConnectionDelegate next) => async connection =>
    {
        var transport = connection.Transport;
        var output = new FinHeld(transport.Output);
        connection.Transport = new Duplex(new KeptOpen(transport.Input), output);
        try
        {
            await next(connection).ConfigureAwait(false);
        }
        finally
        {
            connection.Transport = transport;
            await DrainAsync(transport.Input, connection.ConnectionClosed).ConfigureAwait(false);
            // Kestrel's bytes went out as it wrote them; the FIN (or the failure it completed with) goes now.
            await transport.Output.CompleteAsync(output.Completion).ConfigureAwait(false);
        }
    };

    private static async Task DrainAsync(PipeReader input, CancellationToken closed)
    {
        using var linger = CancellationTokenSource.CreateLinkedTokenSource(closed);
        linger.CancelAfter(Linger);
        try
        {
            while (true)
            {
                // A read Kestrel cancelled when it ended the connection itself (CancelPendingRead) comes back
                // canceled once: that is no end of the client's data, so the linger reads on.
                var result = await input.ReadAsync(linger.Token).ConfigureAwait(false);
                input.AdvanceTo(result.Buffer.End);
                if (result.IsCompleted)
                {
                    break;
                }
            }
        }
        catch (Exception e) when (e is OperationCanceledException or IOException or InvalidOperationException or ConnectionResetException or ConnectionAbortedException)
        {
            // The linger is over, or the connection is gone already: nothing more to wait for.
        }

        await input.CompleteAsync().ConfigureAwait(false);
    }

    private sealed class Duplex(PipeReader input, PipeWriter output) : IDuplexPipe
    {
        public PipeReader Input { get; } = input;

        public PipeWriter Output { get; } = output;
    }

    /// <summary>The socket's writer as Kestrel sees it, except that completing it leaves the socket's side open for the linger.</summary>
    private sealed class FinHeld(PipeWriter inner) : PipeWriter
    {
        /// <summary>What Kestrel completed the writer with (null: a clean end).</summary>
        public Exception? Completion { get; private set; }

        public override bool CanGetUnflushedBytes => inner.CanGetUnflushedBytes;

        public override long UnflushedBytes => inner.UnflushedBytes;

        public override void Advance(int bytes) => inner.Advance(bytes);

        public override void CancelPendingFlush() => inner.CancelPendingFlush();

        public override void Complete(Exception? exception = null) => Completion ??= exception;

        public override ValueTask<FlushResult> FlushAsync(CancellationToken cancellationToken = default) => inner.FlushAsync(cancellationToken);

        public override Memory<byte> GetMemory(int sizeHint = 0) => inner.GetMemory(sizeHint);

        public override Span<byte> GetSpan(int sizeHint = 0) => inner.GetSpan(sizeHint);

        public override ValueTask<FlushResult> WriteAsync(ReadOnlyMemory<byte> source, CancellationToken cancellationToken = default) => inner.WriteAsync(source, cancellationToken);
    }

    /// <summary>The socket's reader as Kestrel sees it, except that completing it leaves the socket's side open for the linger.</summary>
    private sealed class KeptOpen(PipeReader inner) : PipeReader
    {
        public override void AdvanceTo(SequencePosition consumed) => inner.AdvanceTo(consumed);

        public override void AdvanceTo(SequencePosition consumed, SequencePosition examined) => inner.AdvanceTo(consumed, examined);

        public override void CancelPendingRead() => inner.CancelPendingRead();

        public override void Complete(Exception? exception = null)
        {
            // Kestrel is done reading; DrainAsync reads on and completes the socket's reader.
        }

        public override ValueTask<ReadResult> ReadAsync(CancellationToken cancellationToken = default) => inner.ReadAsync(cancellationToken);

        public override bool TryRead(out ReadResult result) => inner.TryRead(out result);
    }
}
