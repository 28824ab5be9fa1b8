using System.Threading.Channels;
using VideoMatch.Client;
using VideoMatch.Contracts.V1;

namespace VideoMatch.Cli.Commands;

/// <summary>How frames reach the server: one call on one server, or resuming on another (<see cref="Cli.Streamer"/>).</summary>
internal delegate IAsyncEnumerable<StreamResponse> Streamer(VideoMatchClient client, IAsyncEnumerable<Frame> frames, StreamConfig config, CancellationToken cancellationToken);

/// <summary>
/// The one streaming loop of <c>stream</c>, <c>stabilize</c> and <c>bench</c>: a feed writes frames into a bounded
/// channel (it runs at most a few frames ahead of what the call has sent, so a slow server slows the feed, never
/// the other way round), the streamer sends them, and every response is counted, then handed to the command.
/// </summary>
internal static class StreamHarness
{
    /// <summary>Frames the feed may run ahead of the call.</summary>
    private const int Ahead = 8;

    /// <summary>Streams until the feed has completed and every response has come back.</summary>
    /// <param name="feed">Writes the frames, then completes the writer (with the error, if it failed).</param>
    /// <param name="answer">Called with each response after it was counted; null: only counted.</param>
    /// <returns>What the stream counted: frames sent, responses by kind, latencies.</returns>
    public static async Task<StreamTally> RunAsync(VideoMatchClient client, Streamer stream, StreamConfig config,
        Func<ChannelWriter<Frame>, CancellationToken, Task> feed, Func<StreamResponse, StreamTally, Task>? answer, CancellationToken cancellationToken)
    {
        var tally = new StreamTally();
        var frames = Channel.CreateBounded<Frame>(new BoundedChannelOptions(Ahead) { FullMode = BoundedChannelFullMode.Wait, SingleReader = true, SingleWriter = true });
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var feeding = feed(frames.Writer, stop.Token);
        try
        {
            await foreach (var response in stream(client, SendAsync(frames.Reader, tally, stop.Token), config, stop.Token).ConfigureAwait(false))
            {
                tally.Count(response);
                if (answer is not null)
                {
                    await answer(response, tally).ConfigureAwait(false);
                }
            }

            // The feed's own failure (a video that stops decoding) surfaces here, after what was sent was answered.
            await feeding.ConfigureAwait(false);
        }
        finally
        {
            await stop.CancelAsync().ConfigureAwait(false);
            await feeding.ContinueWith(static _ => { }, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default).ConfigureAwait(false);
        }

        return tally;
    }

    /// <summary>Hands the channel's frames to the call, noting when each is sent (latency is measured from there).</summary>
    private static async IAsyncEnumerable<Frame> SendAsync(ChannelReader<Frame> frames, StreamTally tally,
        [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken)
    {
        await foreach (var frame in frames.ReadAllAsync(cancellationToken).ConfigureAwait(false))
        {
            tally.Sending(frame.Sequence);
            yield return frame;
        }
    }
}
