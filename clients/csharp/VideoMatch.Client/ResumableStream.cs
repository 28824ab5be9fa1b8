using System.Globalization;
using System.Runtime.CompilerServices;
using System.Threading.Channels;
using Grpc.Core;
using VideoMatch.Contracts.V1;

namespace VideoMatch.Client;

/// <summary>How a stream survives its server: <see cref="VideoMatchClient.StreamAsync(IAsyncEnumerable{Frame}, StreamConfig?, StreamResumeOptions, CancellationToken)"/>.</summary>
public sealed class StreamResumeOptions
{
    /// <summary>Connections tried for one move before giving up. Default 6.</summary>
    public int MaxAttempts { get; set; } = 6;

    /// <summary>Wait before the second attempt, doubled after each (up to <see cref="MaxBackoff"/>). Default 100 ms.</summary>
    public TimeSpan InitialBackoff { get; set; } = TimeSpan.FromMilliseconds(100);

    /// <summary>Longest wait between attempts. Default 2 s.</summary>
    public TimeSpan MaxBackoff { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>Longest time one move may take, attempts and waits together. Default 30 s.</summary>
    public TimeSpan Deadline { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// Frames sent and not yet answered, at most (the client keeps them to send again after a move). Keep it at or
    /// below the server's Streaming:MaxPendingPairsPerStream plus a few. Default 16.
    /// </summary>
    public int MaxUnanswered { get; set; } = 16;

    /// <summary>Called after each move, once the stream goes on on its new server.</summary>
    public Action<StreamMove>? Moved { get; set; }
}

/// <summary>A stream that moved: why, after which frame, and how many frames it sent again.</summary>
/// <param name="Cause">The status that ended the stream on its former server.</param>
/// <param name="LastAnswered">The sequence number of the last frame answered before the move (null: none yet).</param>
/// <param name="Resent">Frames sent again on the new server.</param>
/// <param name="Attempts">Connections it took.</param>
public sealed record StreamMove(Status Cause, ulong? LastAnswered, int Resent, int Attempts);

/// <summary>
/// One resumable stream: a pump takes the caller's frames into a small queue; each attempt (a MatchStream call)
/// sends the config (with the resume data once a frame was answered), the frames not yet answered, then new frames
/// from the queue, and reads responses into the caller's sequence. A failure that a move can cure starts the next
/// attempt; anything else ends the sequence with its error.
/// </summary>
internal sealed class ResumableStream(VideoMatcher.VideoMatcherClient matcher, Metadata? headers, StreamConfig config, StreamResumeOptions options)
{
    private readonly Lock _lock = new();
    private readonly StreamResumePoint _point = new(config);
    private int _resent;

    public async IAsyncEnumerable<StreamResponse> RunAsync(IAsyncEnumerable<Frame> frames, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        // Room for one more frame not yet answered: taken by the pump, given back by each answer.
        using var room = new SemaphoreSlim(options.MaxUnanswered, options.MaxUnanswered);
        var inbox = Channel.CreateBounded<Frame>(new BoundedChannelOptions(1) { SingleReader = true, SingleWriter = true });
        // Bounded: a caller that reads slowly holds the call back (HTTP/2 flow control), and no answer piles up here.
        var output = Channel.CreateBounded<StreamResponse>(new BoundedChannelOptions(Math.Max(1, options.MaxUnanswered)) { SingleReader = true, SingleWriter = true });
        var pump = PumpAsync(frames, inbox.Writer, room, stop.Token);
        var driver = DriveAsync(inbox.Reader, output.Writer, room, stop.Token);
        try
        {
            await foreach (var response in output.Reader.ReadAllAsync(stop.Token).ConfigureAwait(false))
            {
                yield return response;
            }

            await driver.ConfigureAwait(false);
        }
        finally
        {
            await stop.CancelAsync().ConfigureAwait(false);
            await Task.WhenAll(pump, driver).ContinueWith(static _ => { }, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default).ConfigureAwait(false);
        }
    }

    /// <summary>The caller's frames into the queue, each once there is room for one more unanswered frame.</summary>
    private static async Task PumpAsync(IAsyncEnumerable<Frame> frames, ChannelWriter<Frame> inbox, SemaphoreSlim room, CancellationToken cancellationToken)
    {
        try
        {
            await foreach (var frame in frames.WithCancellation(cancellationToken).ConfigureAwait(false))
            {
                await room.WaitAsync(cancellationToken).ConfigureAwait(false);
                await inbox.WriteAsync(frame, cancellationToken).ConfigureAwait(false);
            }

            inbox.TryComplete();
        }
        catch (Exception e)
        {
            inbox.TryComplete(e);
        }
    }

    private async Task DriveAsync(ChannelReader<Frame> inbox, ChannelWriter<StreamResponse> output, SemaphoreSlim room, CancellationToken cancellationToken)
    {
        // A move: what ended the stream, after which frame, when, and how many connections failed since.
        RpcException? cause = null;
        ulong? movedAfter = null;
        var moveStarted = 0L;
        var failures = 0;
        try
        {
            while (true)
            {
                using var attempt = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
                using var call = matcher.MatchStream(headers, cancellationToken: attempt.Token);
                var sending = SendAsync(call.RequestStream, inbox, attempt.Token);
                // The server is stopping and could not match this frame in its drain time: from it on, every frame
                // of this call goes again to the next server, and none of their answers here is handed on.
                FrameStatus? stopping = null;
                try
                {
                    while (await call.ResponseStream.MoveNext(attempt.Token).ConfigureAwait(false))
                    {
                        var response = call.ResponseStream.Current;
                        if (stopping is not null || response.Status?.ResendElsewhere == true)
                        {
                            stopping ??= response.Status;
                            continue;
                        }

                        lock (_lock)
                        {
                            _point.Answered(response);
                        }

                        room.Release();
                        if (cause is not null)
                        {
                            options.Moved?.Invoke(new StreamMove(cause.Status, movedAfter, _resent, failures + 1));
                            (cause, failures) = (null, 0);
                        }

                        await output.WriteAsync(response, cancellationToken).ConfigureAwait(false);
                    }

                    if (stopping is not null)
                    {
                        // The call ended (its drain done) with frames to send again: a move, as UNAVAILABLE is.
                        throw new RpcException(new Status(StatusCode.Unavailable, stopping.Message));
                    }

                    await sending.ConfigureAwait(false);
                    output.TryComplete();
                    return;
                }
                catch (Exception e) when (Movable(e, cancellationToken) is { } status)
                {
                    await attempt.CancelAsync().ConfigureAwait(false);
                    await sending.ContinueWith(static _ => { }, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default).ConfigureAwait(false);
                    if (cause is null)
                    {
                        (moveStarted, failures) = (System.Diagnostics.Stopwatch.GetTimestamp(), 0);
                        lock (_lock)
                        {
                            movedAfter = _point.LastAnswered;
                        }
                    }
                    else
                    {
                        failures++;
                    }

                    cause ??= status; // what ended the stream on its server, not the failed connections since
                    var elapsed = System.Diagnostics.Stopwatch.GetElapsedTime(moveStarted);
                    if (failures >= options.MaxAttempts || elapsed >= options.Deadline)
                    {
                        throw Ended($"{failures + 1} connections over {elapsed.TotalSeconds:F1} s found no server to resume it on", status);
                    }

                    var backoff = TimeSpan.FromTicks(Math.Min(options.MaxBackoff.Ticks, options.InitialBackoff.Ticks << Math.Min(failures, 20)));
                    await Task.Delay(backoff, cancellationToken).ConfigureAwait(false);
                }
                catch (RpcException e) when (cause is not null && !cancellationToken.IsCancellationRequested)
                {
                    // The new server refused the resume (or failed otherwise): say where the stream stopped.
                    throw Ended("the server it moved to refused it", e);
                }
            }
        }
        catch (Exception e)
        {
            output.TryComplete(e);
        }
    }

    /// <summary>The config (resuming once a usable frame was answered), the frames not answered, then new frames.</summary>
    private async Task SendAsync(IClientStreamWriter<StreamRequest> requests, ChannelReader<Frame> inbox, CancellationToken cancellationToken)
    {
        StreamConfig first;
        Frame[] again;
        lock (_lock)
        {
            first = _point.CanResume ? new StreamConfig(config) { Resume = _point.Build(config) } : config;
            again = [.. _point.Unanswered];
        }

        _resent = again.Length;

        await requests.WriteAsync(new StreamRequest { Config = first }, cancellationToken).ConfigureAwait(false);
        foreach (var frame in again)
        {
            await requests.WriteAsync(new StreamRequest { Frame = frame }, cancellationToken).ConfigureAwait(false);
        }

        await foreach (var frame in inbox.ReadAllAsync(cancellationToken).ConfigureAwait(false))
        {
            lock (_lock)
            {
                // Recorded before it is written: if this call fails now, the next one sends it again.
                _point.Sent(frame);
            }

            await requests.WriteAsync(new StreamRequest { Frame = frame }, cancellationToken).ConfigureAwait(false);
        }

        await requests.CompleteAsync().ConfigureAwait(false);
    }

    /// <summary>The status a move can cure (the server went away or is draining), or null.</summary>
    private static RpcException? Movable(Exception error, CancellationToken cancellationToken)
    {
        if (cancellationToken.IsCancellationRequested || error is not RpcException rpc)
        {
            return null;
        }

        return rpc.StatusCode switch
        {
            StatusCode.Unavailable => rpc,
            // A connection reset or closed under the stream (the server's process ended).
            StatusCode.Internal or StatusCode.Unknown when rpc.Status.DebugException is HttpRequestException or HttpProtocolException or IOException => rpc,
            _ => null,
        };
    }

    /// <summary>The error that ends a stream that could not go on, naming the last frame answered.</summary>
    private RpcException Ended(string why, RpcException error)
    {
        ulong? last;
        lock (_lock)
        {
            last = _point.LastAnswered;
        }

        return new RpcException(new Status(error.StatusCode, string.Create(CultureInfo.InvariantCulture,
            $"The stream could not go on: {why} (the last frame answered was {(last is { } l ? l.ToString(CultureInfo.InvariantCulture) : "none")}; send the frames after it to a new stream). {error.Status.Detail}"),
            error.Status.DebugException));
    }
}
