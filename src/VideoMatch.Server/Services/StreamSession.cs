using System.Diagnostics;
using System.Threading.Channels;
using Grpc.Core;
using VideoMatch.Contracts.V1;
using VideoMatch.Engine.Batching;
using VideoMatch.Engine.Frames;
using VideoMatch.Engine.Geometry;
using VideoMatch.Engine.Inference;
using VideoMatch.Server.Hosting;
using VideoMatch.Server.Observability;
using VideoMatch.Server.Security;

namespace VideoMatch.Server.Services;

/// <summary>
/// One MatchStream call. The reader (this call's handler) checks and prepares each frame, pairs it with the
/// previous usable frame (or, in keyframe mode, the keyframe) and queues the pair in the shared batcher; a single
/// writer loop sends responses in frame order, because each frame's response — a pending pair or an immediate
/// status — enters one ordered channel as a task. Every frame gets exactly one response.
/// </summary>
/// <remarks>
/// Keyframe mode without stalls: a frame is queued against the keyframe known when it is read. Each frame's step
/// waits for the step before it, so re-keying happens in frame order; a step whose frame was queued against a
/// keyframe that has since been replaced matches again against the new one. The answers are those of running
/// the pairs one after another, while pairs of one stream still share batches.
/// Track ids are given in the writer loop, which sees pairs in frame order.
/// </remarks>
// The pair-slot semaphore is not disposed: pairs of a cancelled call release it after the call has ended,
// and a SemaphoreSlim that never hands out a wait handle holds nothing that needs disposing.
#pragma warning disable CA1001
internal sealed partial class StreamSession
#pragma warning restore CA1001
{
    /// <summary>Keyframe mode re-keys below this many inliers when the stream sets no threshold.</summary>
    public const int DefaultRekeyMinInliers = 50;

    private readonly MatchingRuntime _runtime;
    private readonly StreamingOptions _options;
    private readonly FrameRateLimit _rate;
    private readonly IServerStreamWriter<StreamResponse> _responses;
    private readonly ILogger _logger;
    private readonly ServerMetrics _metrics;
    private readonly SemaphoreSlim _pairSlots;
    private readonly Channel<Task<Outgoing>> _ordered;
    private readonly Lock _keyLock = new();
    private readonly string _peer;
    private string _name = "";
    private float _threshold;
    private int _maxMatches;
    private TransformKind _estimate;
    private double _inlierThresholdPx;
    private bool _keyframes;
    private int _rekeyMinInliers;
    private TrackLinker? _tracks;
    private double _trackRadiusPx;
    // Keyframe mode: the current keyframe (this session holds one reference) and the last queued step.
    private PreparedFrame? _keyframe;
    private Task _keyChain = Task.CompletedTask;
    private bool? _rotate;
    private bool _letterbox;
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
        _ordered = Channel.CreateBounded<Task<Outgoing>>(new BoundedChannelOptions(2 * options.MaxPendingPairsPerStream + 8)
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
            // Steps still in flight (a cancelled call) may read the keyframe; free it after the last one.
            _ = _keyChain.ContinueWith(_ => ReleaseKeyframe(), CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
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
        _keyframes = config.Keyframes;
        if (config.RekeyMinInliers > 0 && !config.Keyframes)
        {
            throw new RpcException(new Status(StatusCode.InvalidArgument, "rekey_min_inliers is set but keyframes is not; set keyframes = true to use keyframe mode."));
        }

        _rekeyMinInliers = config.RekeyMinInliers == 0 ? DefaultRekeyMinInliers : (int)Math.Min(config.RekeyMinInliers, int.MaxValue);
        if (!(config.TrackRadiusPx >= 0f && config.TrackRadiusPx <= 1000f))
        {
            throw new RpcException(new Status(StatusCode.InvalidArgument, $"track_radius_px must be in [0, 1000] pixels (0: the model's default); got {config.TrackRadiusPx}."));
        }

        if (config.TrackRadiusPx > 0f && !config.TrackIds)
        {
            throw new RpcException(new Status(StatusCode.InvalidArgument, "track_radius_px is set but track_ids is not; set track_ids = true to get track ids."));
        }

        _tracks = config.TrackIds ? new TrackLinker() : null;
        _letterbox = config.Letterbox;
        _trackRadiusPx = config.TrackRadiusPx;
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
                    // The stream's first usable frame decides whether frames are turned; later frames follow it, so
                    // every pair reaches the model in one orientation even if frame shapes change.
                    prepared = _runtime.Preparer.Prepare(ProtoMapping.ToFrameInput(frame.Image), frame.Sequence, frame.TimestampUs, _rotate, _letterbox);
                    _rotate ??= prepared.Rotated;
                }
                catch (FrameRejectedException e)
                {
                    await RejectAsync(frame.Sequence, e.Message, cancellationToken).ConfigureAwait(false);
                    continue;
                }

                lastSequence = frame.Sequence;
                PreparedFrame? reference;
                if (_keyframes)
                {
                    lock (_keyLock)
                    {
                        // The keyframe as known now; the frame's step corrects it if an earlier frame re-keys.
                        reference = _keyframe?.AddReference();
                        _keyframe ??= prepared;
                    }
                }
                else
                {
                    reference = previous;
                    previous = prepared;
                }

                if (reference is null)
                {
                    await SendAsync(ProtoMapping.Status(frame.Sequence, FrameStatusCode.FirstFrame,
                        "First frame of the stream: kept as the reference for the next frame."), cancellationToken).ConfigureAwait(false);
                    continue;
                }

                if (_options.Overflow == OverflowMode.Drop && !_pairSlots.Wait(0, CancellationToken.None))
                {
                    reference.Release();
                    if (_keyframes)
                    {
                        prepared.Release();
                    }

                    _dropped++;
                    _metrics.FrameDropped();
                    await SendAsync(ProtoMapping.Status(frame.Sequence, FrameStatusCode.Dropped,
                        $"Dropped: this stream already has {_options.MaxPendingPairsPerStream} pairs in flight. Send slower or use Streaming:Overflow=Wait."), cancellationToken).ConfigureAwait(false);
                    continue;
                }

                if (_options.Overflow == OverflowMode.Wait)
                {
                    await WaitForSlotAsync(reference, _keyframes ? prepared : null, cancellationToken).ConfigureAwait(false);
                }

                // The pair takes over the reference's hold and adds its own to the new frame.
                var pair = new PairRequest(reference, prepared.AddReference(), _threshold, _maxMatches, cancellationToken);
                // The response takes its place in order first: if the batcher refuses the pair, it still answers.
                Task<Outgoing> response;
                if (_keyframes)
                {
                    // The step takes over this reader's hold on the frame.
                    response = KeyframeStepAsync(_keyChain, pair, prepared, cancellationToken);
                    _keyChain = response;
                }
                else
                {
                    response = AwaitPairAsync(pair);
                }

                await _ordered.Writer.WriteAsync(response, cancellationToken).ConfigureAwait(false);
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

    /// <summary>Waits for a pair slot; on cancellation releases the holds the pair would have taken over.</summary>
    private async Task WaitForSlotAsync(PreparedFrame reference, PreparedFrame? frame, CancellationToken cancellationToken)
    {
        try
        {
            await _pairSlots.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            reference.Release();
            frame?.Release();
            throw;
        }
    }

    private async Task<Outgoing> AwaitPairAsync(PairRequest pair)
    {
        try
        {
            return (await MatchedAsync(pair).ConfigureAwait(false)).Reply;
        }
        finally
        {
            _pairSlots.Release();
        }
    }

    /// <summary>
    /// One frame of keyframe mode: waits for the step before it (so keyframes change in frame order), matches again
    /// if the keyframe changed since the frame was queued, and makes the frame the keyframe when its inliers fall
    /// below the threshold. Never faults; owns one hold on <paramref name="frame"/> and one pair slot.
    /// </summary>
    private async Task<Outgoing> KeyframeStepAsync(Task previous, PairRequest speculative, PreparedFrame frame, CancellationToken cancellationToken)
    {
        try
        {
            await previous.ConfigureAwait(false);
            var pair = speculative;
            PreparedFrame key;
            lock (_keyLock)
            {
                key = _keyframe!.AddReference();
            }

            if (ReferenceEquals(key, speculative.Frame0))
            {
                key.Release();
            }
            else
            {
                // An earlier frame became the keyframe after this one was queued: its first pair is discarded.
                _ = speculative.Completion.ContinueWith(static t => _ = t.Exception, CancellationToken.None,
                    TaskContinuationOptions.OnlyOnFaulted | TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
                pair = new PairRequest(key, frame.AddReference(), _threshold, _maxMatches, cancellationToken);
                try
                {
                    await _runtime.Batcher.EnqueueAsync(pair, cancellationToken).ConfigureAwait(false);
                }
                catch (Exception e) when (e is ChannelClosedException or OperationCanceledException)
                {
                    // The batcher cancelled the pair; its response says it was not matched.
                }
            }

            var (reply, inliers) = await MatchedAsync(pair).ConfigureAwait(false);
            if (inliers >= 0 && inliers < _rekeyMinInliers)
            {
                PreparedFrame replaced;
                lock (_keyLock)
                {
                    replaced = _keyframe!;
                    _keyframe = frame.AddReference();
                }

                replaced.Release();
                reply.Response.Pair.NewKeyframe = true;
            }

            return reply;
        }
        finally
        {
            frame.Release();
            _pairSlots.Release();
        }
    }

    /// <summary>Awaits a pair and builds its response, with the inliers keyframe mode judges by (−1: not matched).</summary>
    private async Task<(Outgoing Reply, int Inliers)> MatchedAsync(PairRequest pair)
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
            var response = new StreamResponse
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
            var inliers = transform is null ? outcome.Matches.Count : (int)transform.Inliers;
            return (new Outgoing(response, outcome.Matches, TrackRadius(frame0)), inliers);
        }
        catch (OperationCanceledException)
        {
            Interlocked.Increment(ref _failed);
            _metrics.Error(ErrorReason.PairFailed);
            return (new Outgoing(ProtoMapping.Status(frame1.Sequence, FrameStatusCode.Failed, $"Frames {frame0.Sequence} and {frame1.Sequence} were not matched: the stream ended or the server is stopping.")), -1);
        }
        catch (Exception e)
        {
            Interlocked.Increment(ref _failed);
            _metrics.Error(ErrorReason.PairFailed);
            return (new Outgoing(ProtoMapping.Status(frame1.Sequence, FrameStatusCode.Failed, $"Matching frames {frame0.Sequence} and {frame1.Sequence} failed: {e.Message}")), -1);
        }
    }

    /// <summary>The linking radius in pixels of <paramref name="shared"/>: the stream's, or the model's default scaled to the frame.</summary>
    private double TrackRadius(PreparedFrame shared)
    {
        if (_trackRadiusPx > 0)
        {
            return _trackRadiusPx;
        }

        var input = _runtime.Matcher.Manifest.Input;
        var scale = (double)Math.Max(shared.OriginalWidth, shared.OriginalHeight) / Math.Max(input.Width, input.Height);
        return _runtime.Matcher.Manifest.TrackRadiusModelPx * scale;
    }

    private void ReleaseKeyframe()
    {
        PreparedFrame? key;
        lock (_keyLock)
        {
            key = _keyframe;
            _keyframe = null;
        }

        key?.Release();
    }

    private Task RejectAsync(ulong sequence, string reason, CancellationToken cancellationToken)
    {
        _rejected++;
        _metrics.Error(ErrorReason.InvalidFrame);
        LogFrameRejected(_name, sequence, reason);
        return SendAsync(ProtoMapping.Status(sequence, FrameStatusCode.Invalid, reason), cancellationToken);
    }

    private Task SendAsync(StreamResponse response, CancellationToken cancellationToken) =>
        _ordered.Writer.WriteAsync(Task.FromResult(new Outgoing(response)), cancellationToken).AsTask();

    private async Task WriteLoopAsync(CancellationToken cancellationToken)
    {
        try
        {
            await foreach (var next in _ordered.Reader.ReadAllAsync(cancellationToken).ConfigureAwait(false))
            {
                // A cancelled call stops waiting at once; its queued pairs are dropped by the batcher later.
                var reply = await next.WaitAsync(cancellationToken).ConfigureAwait(false);
                if (_tracks is not null && reply.Matches is { } matches)
                {
                    var pair = reply.Response.Pair;
                    pair.Matches.TrackIds.AddRange(_tracks.Link(pair.Sequence0, pair.Sequence1, matches.Keypoints0, matches.Keypoints1, reply.TrackRadiusPx));
                }

                await _responses.WriteAsync(reply.Response, cancellationToken).ConfigureAwait(false);
            }
        }
        catch (Exception e) when (e is OperationCanceledException or IOException or InvalidOperationException)
        {
            // The call is over (client cancelled or disconnected): stop the reader too.
            _ordered.Writer.TryComplete();
        }
    }

    /// <summary>A response in the making; a matched pair brings its points and linking radius for the track ids.</summary>
    private readonly record struct Outgoing(StreamResponse Response, PairMatchResult? Matches = null, double TrackRadiusPx = 0);

    [LoggerMessage(Level = LogLevel.Information, Message = "Stream {Stream} from {Peer} started (threshold {Threshold}, max matches {MaxMatches})")]
    private partial void LogStreamStarted(string stream, string peer, float threshold, int maxMatches);

    [LoggerMessage(Level = LogLevel.Information, Message = "Stream {Stream} ended after {Seconds:F1} s: {Frames} frames, {Pairs} pairs matched, {Rejected} rejected, {Dropped} dropped, {Failed} failed")]
    private partial void LogStreamEnded(string stream, long frames, long pairs, long rejected, long dropped, long failed, double seconds);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Stream {Stream}: frame {Sequence} rejected: {Reason}")]
    private partial void LogFrameRejected(string stream, ulong sequence, string reason);
}
