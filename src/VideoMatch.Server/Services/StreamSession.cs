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
/// One MatchStream call. The reader (this call's handler) checks and prepares each frame, asks the stream's
/// <see cref="Pairing"/> for the frame to match it against, and queues the pair in the shared batcher; a single
/// writer loop sends responses in frame order, because each frame's response — a pending pair or an immediate status
/// — enters one ordered channel as a task. Every frame gets exactly one response. Track ids are given in the writer
/// loop, which sees pairs in frame order.
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
    private readonly Channel<Task<Outgoing>> _ordered;
    private readonly string _peer;
    private StreamSettings _settings = null!;
    private TrackLinker? _tracks;
    private bool? _rotate;
    private CancellationToken _drain;
    private CancellationToken _call;
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
        if (!await ReadConfigAsync(requests, cancellationToken, stopping).ConfigureAwait(false))
        {
            return;
        }

        var first = requests.Current;
        if (first.PayloadCase != StreamRequest.PayloadOneofCase.Config)
        {
            throw Answers.BeganWithoutConfig(first);
        }

        _settings = StreamSettings.Parse(first.Config, _runtime.Matcher.Manifest, _peer);
        _tracks = _settings.TrackIds ? new TrackLinker() : null;
        // The pairs' token: the call's, and at shutdown the drain time's end, after which queued pairs are dropped
        // by the batcher and answered DROPPED.
        using var drain = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        using var draining = stopping.Register(() => drain.CancelAfter(_options.ShutdownDrain));
        _drain = drain.Token;
        using Pairing pairing = _settings.Keyframes
            ? new KeyframePairing(_settings, MatchedAsync, _runtime.Batcher.EnqueueAsync, drain.Token)
            : new ConsecutivePairing(_settings.Match, MatchedAsync, drain.Token);
        var started = Stopwatch.GetTimestamp();
        LogStreamStarted(_settings.Name, _peer, _settings.Match.Threshold, _settings.Match.MaxMatches);
        _metrics.StreamStarted();
        _call = cancellationToken;
        var writer = WriteLoopAsync(cancellationToken);
        RpcException? ending = null;
        try
        {
            ending = await ReadLoopAsync(requests, pairing, cancellationToken, stopping).ConfigureAwait(false);
        }
        finally
        {
            _ordered.Writer.TryComplete();
            // Everything already accepted is answered before the call ends, error or not.
            await writer.ConfigureAwait(false);
            var seconds = Stopwatch.GetElapsedTime(started).TotalSeconds;
            _metrics.StreamEnded();
            LogStreamEnded(_settings.Name, _frames, _pairs, _rejected, _dropped, _failed, seconds);
        }

        if (ending is not null)
        {
            throw ending;
        }
    }

    /// <summary>
    /// Waits for the first message within <see cref="StreamingOptions.ConfigTimeoutSeconds"/>; false when the client
    /// ended the stream before sending anything.
    /// </summary>
    private async Task<bool> ReadConfigAsync(IAsyncStreamReader<StreamRequest> requests, CancellationToken cancellationToken, CancellationToken stopping)
    {
        using var waiting = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, stopping);
        waiting.CancelAfter(_options.ConfigTimeout);
        try
        {
            return await requests.MoveNext(waiting.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw stopping.IsCancellationRequested ? Answers.ShuttingDownBeforeConfig() : Answers.NoConfigInTime(_options.ConfigTimeoutSeconds);
        }
        catch (Google.Protobuf.InvalidProtocolBufferException e)
        {
            throw Answers.NotAStreamRequest(1, e.Message);
        }
        catch (InvalidDataException e)
        {
            throw Answers.BadFraming(1, e.Message);
        }
        catch (IOException e) when (TooLarge(e, cancellationToken))
        {
            throw Answers.MessageTooLarge(1, e.Message);
        }
    }

    /// <summary>Reads frames until the client ends the stream; returns the status that ends the call, or null.</summary>
    private async Task<RpcException?> ReadLoopAsync(IAsyncStreamReader<StreamRequest> requests, Pairing pairing, CancellationToken cancellationToken, CancellationToken stopping)
    {
        ulong? lastSequence = null;
        // Only waiting for the next message stops at shutdown; a message already read is seen through.
        using var reading = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, stopping);
        try
        {
            while (await requests.MoveNext(reading.Token).ConfigureAwait(false))
            {
                var request = requests.Current;
                if (request.PayloadCase != StreamRequest.PayloadOneofCase.Frame)
                {
                    return request.PayloadCase == StreamRequest.PayloadOneofCase.Config ? Answers.SecondConfig() : Answers.EmptyMessage();
                }

                var frame = request.Frame;
                _frames++;
                _metrics.FramesReceived();
                if (!_rate.TryTake())
                {
                    return Answers.TooFast(_rate.Rate, frame.Sequence);
                }

                if (lastSequence is { } last && frame.Sequence <= last)
                {
                    await RejectAsync(Answers.OutOfOrder(frame.Sequence, last), cancellationToken).ConfigureAwait(false);
                    continue;
                }

                // Waits below end with the drain time at shutdown: a frame already read is answered, never held.
                (PreparedFrame? Frame, StreamResponse? Rejection) prepared;
                try
                {
                    prepared = await PrepareAsync(frame, _drain).ConfigureAwait(false);
                }
                catch (OperationCanceledException) when (Draining)
                {
                    lastSequence = frame.Sequence;
                    await DropAsync(Answers.DrainExpired(frame.Sequence, _options.ShutdownDrainSeconds), cancellationToken).ConfigureAwait(false);
                    continue;
                }

                if (prepared.Frame is null)
                {
                    await RejectAsync(prepared.Rejection!, cancellationToken).ConfigureAwait(false);
                    continue;
                }

                lastSequence = frame.Sequence;
                if (!await PairAsync(pairing, prepared.Frame, cancellationToken).ConfigureAwait(false))
                {
                    return Answers.StoppingBeforeQueued();
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
            return Answers.NotAStreamRequest(_frames + 2, e.Message);
        }
        catch (InvalidDataException e)
        {
            return Answers.BadFraming(_frames + 2, e.Message);
        }
        catch (IOException e) when (TooLarge(e, cancellationToken))
        {
            return Answers.MessageTooLarge(_frames + 2, e.Message);
        }
        catch (OperationCanceledException) when (stopping.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
        {
            return Answers.ShuttingDown(lastSequence);
        }
    }

    /// <summary>The prepared frame, or the INVALID answer saying why it cannot be used.</summary>
    private async ValueTask<(PreparedFrame? Frame, StreamResponse? Rejection)> PrepareAsync(Frame frame, CancellationToken cancellationToken)
    {
        try
        {
            // The stream's first usable frame decides whether frames are turned; later frames follow it, so every
            // pair reaches the model in one orientation even if frame shapes change.
            var prepared = await _runtime.Preparer.PrepareAsync(ProtoMapping.ToFrameInput(frame.Image), frame.Sequence, frame.TimestampUs, _rotate,
                _settings.Match.Letterbox, cancellationToken).ConfigureAwait(false);
            _rotate ??= prepared.Rotated;
            return (prepared, null);
        }
        catch (FrameRejectedException e)
        {
            return (null, Answers.Invalid(frame.Sequence, e.Message));
        }
    }

    /// <summary>Pairs an accepted frame and queues the pair (or answers it at once); false if the batcher has stopped.</summary>
    private async Task<bool> PairAsync(Pairing pairing, PreparedFrame frame, CancellationToken cancellationToken)
    {
        if (pairing.Reference(frame) is not { } reference)
        {
            await SendAsync(Answers.FirstFrame(frame.Sequence), cancellationToken).ConfigureAwait(false);
            return true;
        }

        if (_options.Overflow == OverflowMode.Drop && !_pairSlots.Wait(0, CancellationToken.None))
        {
            pairing.Abandon(reference, frame);
            Interlocked.Increment(ref _dropped);
            _metrics.FrameDropped();
            await SendAsync(Answers.Dropped(frame.Sequence, _options.MaxPendingPairsPerStream), cancellationToken).ConfigureAwait(false);
            return true;
        }

        if (_options.Overflow == OverflowMode.Wait)
        {
            try
            {
                await _pairSlots.WaitAsync(_drain).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (Draining)
            {
                pairing.Abandon(reference, frame);
                await DropAsync(Answers.DrainExpired(frame.Sequence, _options.ShutdownDrainSeconds), cancellationToken).ConfigureAwait(false);
                return true;
            }
            catch
            {
                pairing.Abandon(reference, frame);
                throw;
            }
        }

        // The response takes its place in order first: if the batcher refuses the pair, it still answers.
        var (pair, response) = pairing.Start(reference, frame, () => _pairSlots.Release());
        try
        {
            await _ordered.Writer.WriteAsync(response, cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            pair.CancelIfWaiting();
            throw;
        }

        try
        {
            await _runtime.Batcher.EnqueueAsync(pair, _drain).ConfigureAwait(false);
            return true;
        }
        catch (ChannelClosedException)
        {
            return false;
        }
        catch (OperationCanceledException) when (Draining)
        {
            // The pair never got in; it is cancelled, so its response (in order already) says DROPPED.
            return true;
        }
    }

    /// <summary>gRPC's reader refusing a length prefix too large to read at all (not a connection that broke).</summary>
    private static bool TooLarge(IOException e, CancellationToken call) =>
        !call.IsCancellationRequested && e.Message.StartsWith("Message too large", StringComparison.Ordinal);

    /// <summary>Shutdown's drain time ran out, the call itself goes on.</summary>
    private bool Draining => _drain.IsCancellationRequested && !_call.IsCancellationRequested;

    private Task DropAsync(StreamResponse dropped, CancellationToken cancellationToken)
    {
        Interlocked.Increment(ref _dropped);
        _metrics.FrameDropped();
        return SendAsync(dropped, cancellationToken);
    }

    /// <summary>Awaits a pair and builds its response, with the inliers keyframe mode judges by (−1: not matched).</summary>
    private async Task<(Outgoing Reply, int Inliers)> MatchedAsync(PairRequest pair)
    {
        var (frame0, frame1) = (pair.Frame0, pair.Frame1);
        try
        {
            // At the drain time's end even a pair inside a running batch is answered (DROPPED) without waiting for
            // it; the batch finishes on its own and lets the frames go.
            var outcome = await pair.Completion.WaitAsync(_drain).ConfigureAwait(false);
            // Fitted before the pair is counted: a fit that throws makes the pair FAILED, counted once.
            var transform = ProtoMapping.EstimateTransform(_settings.Match.Estimate, _settings.Match.InlierThresholdPx, outcome.Matches);
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
        catch (OperationCanceledException) when (Draining)
        {
            // Shutdown's drain time ran out with this pair still queued: answered, and counted as a drop.
            Interlocked.Increment(ref _dropped);
            _metrics.FrameDropped();
            return (new Outgoing(Answers.DrainExpired(frame0.Sequence, frame1.Sequence, _options.ShutdownDrainSeconds)), -1);
        }
        catch (OperationCanceledException e) when (_call.IsCancellationRequested)
        {
            // The client cancelled or disconnected: nobody reads this answer, and nothing failed.
            _metrics.PairAbandoned();
            return (new Outgoing(Answers.Failed(frame0.Sequence, frame1.Sequence, e)), -1);
        }
        catch (Exception e)
        {
            Interlocked.Increment(ref _failed);
            _metrics.Error(ErrorReason.PairFailed);
            return (new Outgoing(Answers.Failed(frame0.Sequence, frame1.Sequence, e)), -1);
        }
    }

    /// <summary>The linking radius in pixels of <paramref name="shared"/>: the stream's, or the model's default scaled to the frame.</summary>
    private double TrackRadius(PreparedFrame shared)
    {
        if (_settings.TrackRadiusPx > 0)
        {
            return _settings.TrackRadiusPx;
        }

        var manifest = _runtime.Matcher.Manifest;
        var scale = (double)Math.Max(shared.OriginalWidth, shared.OriginalHeight) / Math.Max(manifest.Input.Width, manifest.Input.Height);
        return manifest.TrackRadiusModelPx * scale;
    }

    private Task RejectAsync(StreamResponse rejection, CancellationToken cancellationToken)
    {
        _rejected++;
        _metrics.Error(ErrorReason.InvalidFrame);
        LogFrameRejected(_settings.Name, rejection.Status.Sequence, rejection.Status.Message);
        return SendAsync(rejection, cancellationToken);
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

                // A client that stops reading holds this write; at shutdown, calls still open after the drain time
                // are aborted (ShutdownCoordinator), which ends it.
                await _responses.WriteAsync(reply.Response, cancellationToken).ConfigureAwait(false);
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
