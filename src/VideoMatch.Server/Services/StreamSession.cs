using System.Diagnostics;
using System.Threading.Channels;
using Grpc.Core;
using VideoMatch.Contracts.V1;
using VideoMatch.Engine.Batching;
using VideoMatch.Engine.Frames;
using VideoMatch.Engine.Geometry;
using VideoMatch.Server.Hosting;
using VideoMatch.Server.Observability;
using VideoMatch.Server.Security;

namespace VideoMatch.Server.Services;

/// <summary>
/// One MatchStream call. The reader (this call's handler) checks and prepares each frame, pairs it with the
/// previous usable frame and queues the pair in the shared batcher; a single writer loop sends responses in
/// frame order, because each frame's response — a pending pair or an immediate status — enters one ordered
/// channel as a task. Every frame gets exactly one response.
/// </summary>
// The pair-slot semaphore is not disposed: pairs of a cancelled call release it after the call has ended,
// and a SemaphoreSlim that never hands out a wait handle holds nothing that needs disposing.
#pragma warning disable CA1001
internal sealed partial class StreamSession
#pragma warning restore CA1001
{
    private readonly MatchingRuntime _runtime;
    private readonly StreamingOptions _options;
    private readonly FrameRateLimit _rate;
    private readonly IServerStreamWriter<StreamResponse> _responses;
    private readonly ILogger _logger;
    private readonly ServerMetrics _metrics;
    private readonly SemaphoreSlim _pairSlots;
    private readonly Channel<Task<StreamResponse>> _ordered;
    private readonly string _peer;
    private string _name = "";
    private float _threshold;
    private int _maxMatches;
    private TransformKind _estimate;
    private double _inlierThresholdPx;
    private long _frames;
    private long _pairs;
    private long _rejected;
    private long _dropped;
    private long _failed;

    public StreamSession(MatchingRuntime runtime, StreamingOptions options, FrameRateLimit rate, IServerStreamWriter<StreamResponse> responses, string peer, ServerMetrics metrics, ILogger logger)
    {
        _runtime = runtime;
        _options = options;
        _rate = rate;
        _responses = responses;
        _peer = peer;
        _logger = logger;
        _metrics = metrics;
        _pairSlots = new SemaphoreSlim(options.MaxPendingPairsPerStream, options.MaxPendingPairsPerStream);
        // Bounded, Wait: a client that stops reading responses stalls the writer, this channel fills, and the
        // reader stops taking frames, so an unread stream holds a bounded amount of memory.
        _ordered = Channel.CreateBounded<Task<StreamResponse>>(new BoundedChannelOptions(2 * options.MaxPendingPairsPerStream + 8)
        {
            FullMode = BoundedChannelFullMode.Wait,
            SingleReader = true,
            SingleWriter = true,
        });
    }

    /// <param name="stopping">The server is shutting down: stop reading, answer what was read, end the call.</param>
    public async Task RunAsync(IAsyncStreamReader<StreamRequest> requests, CancellationToken cancellationToken, CancellationToken stopping = default)
    {
        if (!await requests.MoveNext(cancellationToken).ConfigureAwait(false))
        {
            return;
        }

        Configure(requests.Current);
        var started = Stopwatch.GetTimestamp();
        LogStreamStarted(_name, _peer, _threshold, _maxMatches);
        _metrics.StreamStarted();
        var writer = WriteLoopAsync(cancellationToken);
        RpcException? ending = null;
        try
        {
            ending = await ReadLoopAsync(requests, cancellationToken, stopping).ConfigureAwait(false);
        }
        finally
        {
            _ordered.Writer.TryComplete();
            // Everything already accepted is answered before the call ends, error or not.
            await writer.ConfigureAwait(false);
            var seconds = Stopwatch.GetElapsedTime(started).TotalSeconds;
            _metrics.StreamEnded();
            LogStreamEnded(_name, _frames, _pairs, _rejected, _dropped, _failed, seconds);
        }

        if (ending is not null)
        {
            throw ending;
        }
    }

    private void Configure(StreamRequest first)
    {
        if (first.PayloadCase != StreamRequest.PayloadOneofCase.Config)
        {
            var what = first.PayloadCase == StreamRequest.PayloadOneofCase.Frame ? $"frame {first.Frame.Sequence}" : "an empty message";
            throw new RpcException(new Status(StatusCode.InvalidArgument,
                $"The stream began with {what}; send a StreamConfig as the first message of every stream, then frames."));
        }

        var config = first.Config;
        _threshold = config.MatchThreshold ?? _runtime.Matcher.Manifest.DefaultThreshold;
        if (!(_threshold >= 0f && _threshold < 1f))
        {
            throw new RpcException(new Status(StatusCode.InvalidArgument, $"match_threshold must be in [0, 1); got {config.MatchThreshold}."));
        }

        _maxMatches = (int)Math.Min(config.MaxMatches, int.MaxValue);
        (_estimate, _inlierThresholdPx) = ProtoMapping.TransformOptions(config.Estimate, config.InlierThresholdPx);
        _name = config.StreamName.Length > 0 ? config.StreamName[..Math.Min(config.StreamName.Length, 128)] : _peer;
    }

    private async Task<RpcException?> ReadLoopAsync(IAsyncStreamReader<StreamRequest> requests, CancellationToken cancellationToken, CancellationToken stopping)
    {
        PreparedFrame? previous = null;
        ulong? lastSequence = null;
        // Only waiting for the next message stops at shutdown; a message already read is seen through.
        using var reading = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, stopping);
        try
        {
            while (await requests.MoveNext(reading.Token).ConfigureAwait(false))
            {
                var request = requests.Current;
                if (request.PayloadCase == StreamRequest.PayloadOneofCase.Config)
                {
                    return new RpcException(new Status(StatusCode.InvalidArgument,
                        "A second StreamConfig arrived; a stream is configured once, by its first message. Open a new stream to change settings."));
                }

                if (request.PayloadCase != StreamRequest.PayloadOneofCase.Frame)
                {
                    return new RpcException(new Status(StatusCode.InvalidArgument, "A message with neither config nor frame arrived; every message after the config must carry a frame."));
                }

                var frame = request.Frame;
                _frames++;
                _metrics.FramesReceived();
                if (!_rate.TryTake())
                {
                    return new RpcException(new Status(StatusCode.ResourceExhausted,
                        $"This stream sent more than {_rate.Rate} frames per second (Security:MaxFramesPerSecondPerStream); frame {frame.Sequence} and later were not processed. Send slower."));
                }

                if (lastSequence is { } last && frame.Sequence <= last)
                {
                    await RejectAsync(frame.Sequence, $"Sequence number {frame.Sequence} does not follow {last}; sequence numbers must increase within a stream.", cancellationToken).ConfigureAwait(false);
                    continue;
                }

                PreparedFrame prepared;
                try
                {
                    prepared = _runtime.Preparer.Prepare(ProtoMapping.ToFrameInput(frame.Image), frame.Sequence, frame.TimestampUs);
                }
                catch (FrameRejectedException e)
                {
                    await RejectAsync(frame.Sequence, e.Message, cancellationToken).ConfigureAwait(false);
                    continue;
                }

                lastSequence = frame.Sequence;
                if (previous is null)
                {
                    previous = prepared;
                    await SendAsync(ProtoMapping.Status(frame.Sequence, FrameStatusCode.FirstFrame,
                        "First frame of the stream: kept as the reference for the next frame."), cancellationToken).ConfigureAwait(false);
                    continue;
                }

                var reference = previous;
                previous = prepared;
                if (_options.Overflow == OverflowMode.Drop && !_pairSlots.Wait(0, CancellationToken.None))
                {
                    reference.Release();
                    _dropped++;
                    _metrics.FrameDropped();
                    await SendAsync(ProtoMapping.Status(frame.Sequence, FrameStatusCode.Dropped,
                        $"Dropped: this stream already has {_options.MaxPendingPairsPerStream} pairs in flight. Send slower or use Streaming:Overflow=Wait."), cancellationToken).ConfigureAwait(false);
                    continue;
                }

                if (_options.Overflow == OverflowMode.Wait)
                {
                    await _pairSlots.WaitAsync(cancellationToken).ConfigureAwait(false);
                }

                // The pair takes over the reference's hold and adds its own to the new frame.
                var pair = new PairRequest(reference, prepared.AddReference(), _threshold, _maxMatches, cancellationToken);
                // The response takes its place in order first: if the batcher refuses the pair, it still answers.
                await _ordered.Writer.WriteAsync(AwaitPairAsync(pair), cancellationToken).ConfigureAwait(false);
                try
                {
                    await _runtime.Batcher.EnqueueAsync(pair, cancellationToken).ConfigureAwait(false);
                }
                catch (ChannelClosedException)
                {
                    return new RpcException(new Status(StatusCode.Unavailable, "The server is shutting down; frames sent so far were answered. Reconnect and resend the rest."));
                }
            }

            return null;
        }
        catch (ChannelClosedException)
        {
            // The writer ended (client gone or server stopping); nothing more can be answered.
            return null;
        }
        catch (Google.Protobuf.InvalidProtocolBufferException e)
        {
            return new RpcException(new Status(StatusCode.InvalidArgument,
                $"Message {_frames + 2} of the stream is not a valid StreamRequest ({e.Message}); earlier frames were answered."));
        }
        catch (OperationCanceledException) when (stopping.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
        {
            return new RpcException(new Status(StatusCode.Unavailable,
                $"The server is shutting down; every frame it read was answered (the last was {lastSequence?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "none"}). Reconnect and resend the rest."));
        }
        finally
        {
            previous?.Release();
        }
    }

    private async Task<StreamResponse> AwaitPairAsync(PairRequest pair)
    {
        var frame0 = pair.Frame0;
        var frame1 = pair.Frame1;
        try
        {
            var outcome = await pair.Completion.ConfigureAwait(false);
            // Fitted before the pair is counted: a fit that throws makes the pair FAILED, counted once.
            var transform = ProtoMapping.EstimateTransform(_estimate, _inlierThresholdPx, outcome.Matches);
            Interlocked.Increment(ref _pairs);
            _metrics.PairMatched(outcome.Matches.Count);
            return new StreamResponse
            {
                Pair = new PairMatches
                {
                    Sequence0 = frame0.Sequence,
                    Sequence1 = frame1.Sequence,
                    Timestamp0Us = frame0.TimestampUs,
                    Timestamp1Us = frame1.TimestampUs,
                    Matches = ProtoMapping.ToMatches(outcome.Matches),
                    Timings = ProtoMapping.ToTimings(outcome.Timings, frame1.PreprocessMs),
                    Transform = transform,
                },
            };
        }
        catch (OperationCanceledException)
        {
            Interlocked.Increment(ref _failed);
            _metrics.Error(ErrorReason.PairFailed);
            return ProtoMapping.Status(frame1.Sequence, FrameStatusCode.Failed, $"Frames {frame0.Sequence} and {frame1.Sequence} were not matched: the stream ended or the server is stopping.");
        }
        catch (Exception e)
        {
            Interlocked.Increment(ref _failed);
            _metrics.Error(ErrorReason.PairFailed);
            return ProtoMapping.Status(frame1.Sequence, FrameStatusCode.Failed, $"Matching frames {frame0.Sequence} and {frame1.Sequence} failed: {e.Message}");
        }
        finally
        {
            _pairSlots.Release();
        }
    }

    private Task RejectAsync(ulong sequence, string reason, CancellationToken cancellationToken)
    {
        _rejected++;
        _metrics.Error(ErrorReason.InvalidFrame);
        LogFrameRejected(_name, sequence, reason);
        return SendAsync(ProtoMapping.Status(sequence, FrameStatusCode.Invalid, reason), cancellationToken);
    }

    private Task SendAsync(StreamResponse response, CancellationToken cancellationToken) =>
        _ordered.Writer.WriteAsync(Task.FromResult(response), cancellationToken).AsTask();

    private async Task WriteLoopAsync(CancellationToken cancellationToken)
    {
        try
        {
            await foreach (var next in _ordered.Reader.ReadAllAsync(cancellationToken).ConfigureAwait(false))
            {
                // A cancelled call stops waiting at once; its queued pairs are dropped by the batcher later.
                var response = await next.WaitAsync(cancellationToken).ConfigureAwait(false);
                await _responses.WriteAsync(response, cancellationToken).ConfigureAwait(false);
            }
        }
        catch (Exception e) when (e is OperationCanceledException or IOException or InvalidOperationException)
        {
            // The call is over (client cancelled or disconnected): stop the reader too.
            _ordered.Writer.TryComplete();
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Stream {Stream} from {Peer} started (threshold {Threshold}, max matches {MaxMatches})")]
    private partial void LogStreamStarted(string stream, string peer, float threshold, int maxMatches);

    [LoggerMessage(Level = LogLevel.Information, Message = "Stream {Stream} ended after {Seconds:F1} s: {Frames} frames, {Pairs} pairs matched, {Rejected} rejected, {Dropped} dropped, {Failed} failed")]
    private partial void LogStreamEnded(string stream, long frames, long pairs, long rejected, long dropped, long failed, double seconds);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Stream {Stream}: frame {Sequence} rejected: {Reason}")]
    private partial void LogFrameRejected(string stream, ulong sequence, string reason);
}
