using System.Diagnostics;
using System.Globalization;
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
    private readonly MatchingRuntime _models;
    private ModelRuntime _runtime = null!;
    private readonly StreamingOptions _options;
    private readonly FrameRateLimit _rate;
    private readonly IServerStreamWriter<StreamResponse> _responses;
    private readonly ILogger _logger;
    private readonly ServerMetrics _metrics;
    private readonly SemaphoreSlim _pairSlots;
    private readonly Channel<Task<Outgoing>> _ordered;
    private readonly string _peer;
    private readonly CallActivity? _activity;
    private StreamSettings _settings = null!;
    private TrackLinker? _tracks;
    private bool? _rotate;
    private CancellationToken _drain;
    private CancellationToken _call;
    private ulong? _lastSequence;
    private long _frames;
    private long _pairs;
    private long _rejected;
    private long _dropped;
    private long _failed;

    /// <param name="activity">Told of every message read and response written, so that shutdown tells a finishing stream from a stuck one.</param>
    public StreamSession(MatchingRuntime runtime, StreamingOptions options, FrameRateLimit rate, IServerStreamWriter<StreamResponse> responses, string peer, ServerMetrics metrics, ILogger logger,
        CallActivity? activity = null)
    {
        _activity = activity;
        _models = runtime;
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
    /// <exception cref="RpcException">The status that ends the call, once every frame read has been answered.</exception>
    public async Task RunAsync(IAsyncStreamReader<StreamRequest> requests, CancellationToken cancellationToken, CancellationToken stopping = default)
    {
        using var reader = new StreamRequestReader(requests, cancellationToken, stopping);
        if (await reader.FirstAsync(_options.ConfigTimeoutSeconds).ConfigureAwait(false) is not { } first)
        {
            return;
        }

        if (first.PayloadCase != StreamRequest.PayloadOneofCase.Config)
        {
            throw Answers.BeganWithoutConfig(first);
        }

        // The stream's model, by the name its config gives (empty: the default), which must be serving.
        _runtime = _models.Resolve(first.Config.Model, "StreamConfig.model");
        if (!_runtime.IsReady)
        {
            throw Answers.NotReady(_runtime.NotReadyReason);
        }

        _settings = StreamSettings.Parse(first.Config, _runtime.Matcher.Manifest, _peer);
        _tracks = _settings.TrackIds ? new TrackLinker() : null;
        // The pairs' token: the call's, and at shutdown the drain time's end, after which queued pairs are dropped
        // by the batcher and answered DROPPED.
        using var drain = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        using var draining = stopping.Register(() => drain.CancelAfter(_options.ShutdownDrain));
        _drain = drain.Token;
        _call = cancellationToken;
        using Pairing pairing = _settings.Keyframes
            ? new KeyframePairing(_settings, MatchedAsync, _runtime.Batcher.EnqueueAsync, drain.Token)
            : new ConsecutivePairing(_settings.Match, MatchedAsync, drain.Token);
        if (first.Config.Resume is { } resume)
        {
            await ResumeAsync(resume, pairing).ConfigureAwait(false);
        }

        var started = Stopwatch.GetTimestamp();
        ServerLog.StreamStarted(_logger, _settings.Name, _peer, _settings.Match.Threshold, _settings.Match.MaxMatches);
        _metrics.StreamStarted();
        var writer = WriteLoopAsync(cancellationToken);
        try
        {
            while (await reader.NextAsync(_lastSequence).ConfigureAwait(false) is { } request)
            {
                await AcceptAsync(request, pairing, cancellationToken).ConfigureAwait(false);
            }
        }
        catch (Exception e) when (e is ChannelClosedException || cancellationToken.IsCancellationRequested)
        {
            // The writer ended or the call was cancelled: the client is gone, nothing more can be answered.
        }
        finally
        {
            _ordered.Writer.TryComplete();
            // Everything already accepted is answered before the call ends, whatever ends it.
            await writer.ConfigureAwait(false);
            var seconds = Stopwatch.GetElapsedTime(started).TotalSeconds;
            _metrics.StreamEnded();
            ServerLog.StreamEnded(_logger, _settings.Name, _frames, _pairs, _rejected, _dropped, _failed, seconds);
        }
    }

    /// <summary>
    /// Primes the stream from what its client holds of it (another server served it so far): the reference frame, sent
    /// again, is prepared as any frame and becomes the one the next frame pairs with, without an answer of its own; the
    /// last matched pair's points and ids let continuing points keep their ids. The frame is re-validated like any
    /// other, and nothing of another stream is read.
    /// </summary>
    /// <exception cref="RpcException">INVALID_ARGUMENT naming the field the stream cannot go on from.</exception>
    private async Task ResumeAsync(StreamResume resume, Pairing pairing)
    {
        if (resume.Reference?.Image is not { } image)
        {
            throw Answers.BadResume(".reference.image", "is missing: send again the frame the next frame pairs with (the keyframe in keyframe mode, else the last frame answered with anything but INVALID).");
        }

        var sequence = resume.Reference.Sequence;
        PreparedFrame prepared;
        try
        {
            prepared = await _runtime.Preparer.PrepareAsync(ProtoMapping.ToFrameInput(image), sequence, resume.Reference.TimestampUs, null,
                _settings.Match.Letterbox, _drain).ConfigureAwait(false);
        }
        catch (FrameRejectedException e)
        {
            throw Answers.BadResume(".reference.image", $"cannot be used: {e.Message}");
        }

        var last = sequence;
        if (resume.Tracks is { } tracks)
        {
            last = Math.Max(last, tracks.LastPair?.Sequence1 ?? 0);
            try
            {
                ResumeTracks(tracks);
            }
            catch
            {
                prepared.Release();
                throw;
            }
        }

        _rotate = prepared.Rotated;
        _lastSequence = last;
        if (pairing.Reference(prepared) is { } unexpected)
        {
            unexpected.Release();
            throw new InvalidOperationException("A resumed stream's pairing held a frame already.");
        }

        ServerLog.StreamResumed(_logger, _settings.Name, last, resume.Tracks?.NextTrackId ?? 0);
    }

    private void ResumeTracks(TrackState tracks)
    {
        if (_tracks is null)
        {
            throw Answers.BadResume(".tracks", "is set, but StreamConfig.track_ids is off: send the same settings the stream had.");
        }

        var pair = tracks.LastPair ?? new PairMatches();
        var matches = pair.Matches ?? new Matches();
        var ids = matches.TrackIds.ToArray();
        if (matches.Keypoints0.Count != 2 * ids.Length || matches.Keypoints1.Count != 2 * ids.Length)
        {
            throw Answers.BadResume(".tracks.last_pair.matches", string.Create(CultureInfo.InvariantCulture,
                $"must hold two keypoint values per track id in each frame: {ids.Length} ids, {matches.Keypoints0.Count} values in keypoints0, {matches.Keypoints1.Count} in keypoints1."));
        }

        if (tracks.LastPair is not null && pair.Sequence1 <= pair.Sequence0)
        {
            throw Answers.BadResume(".tracks.last_pair.sequence1", string.Create(CultureInfo.InvariantCulture, $"({pair.Sequence1}) must be greater than sequence0 ({pair.Sequence0})."));
        }

        var seen = new HashSet<ulong>();
        foreach (var id in ids)
        {
            if (id == 0 || !seen.Add(id))
            {
                throw Answers.BadResume(".tracks.last_pair.matches.track_ids", string.Create(CultureInfo.InvariantCulture, $"holds {(id == 0 ? "0, which is no id" : $"{id} twice")}: send them as received."));
            }
        }

        var largest = ids.Length == 0 ? 0 : ids.Max();
        if (tracks.NextTrackId <= largest)
        {
            throw Answers.BadResume(".tracks.next_track_id", string.Create(CultureInfo.InvariantCulture,
                $"({tracks.NextTrackId}) must be greater than every track id received (the largest here is {largest}): one more than the largest id of the stream."));
        }

        _tracks.Resume(pair.Sequence0, pair.Sequence1, matches.Keypoints0.ToArray(), matches.Keypoints1.ToArray(), ids, tracks.NextTrackId);
    }

    /// <summary>One message after the config: a frame is answered (in order, now or once its pair ends); anything else ends the call.</summary>
    private async Task AcceptAsync(StreamRequest request, Pairing pairing, CancellationToken cancellationToken)
    {
        _activity?.Touch();
        if (request.PayloadCase != StreamRequest.PayloadOneofCase.Frame)
        {
            throw request.PayloadCase == StreamRequest.PayloadOneofCase.Config ? Answers.SecondConfig() : Answers.EmptyMessage();
        }

        var frame = request.Frame;
        _frames++;
        _metrics.FramesReceived();
        if (!_rate.TryTake())
        {
            throw Answers.TooFast(_rate.Rate, frame.Sequence);
        }

        if (_lastSequence is { } last && frame.Sequence <= last)
        {
            await RejectAsync(Answers.OutOfOrder(frame.Sequence, last), cancellationToken).ConfigureAwait(false);
            return;
        }

        if (await PrepareAsync(frame, cancellationToken).ConfigureAwait(false) is { } prepared)
        {
            _lastSequence = frame.Sequence;
            await PairAsync(pairing, prepared, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>The prepared frame; or null once the frame is answered INVALID (it cannot be used) or DROPPED (the drain time ran out first).</summary>
    private async ValueTask<PreparedFrame?> PrepareAsync(Frame frame, CancellationToken cancellationToken)
    {
        try
        {
            // The stream's first usable frame decides whether frames are turned; later frames follow it, so every
            // pair reaches the model in one orientation even if frame shapes change. The wait for decode memory
            // ends with the drain time at shutdown: a frame already read is answered, never held.
            var prepared = await _runtime.Preparer.PrepareAsync(ProtoMapping.ToFrameInput(frame.Image), frame.Sequence, frame.TimestampUs, _rotate,
                _settings.Match.Letterbox, _drain).ConfigureAwait(false);
            _rotate ??= prepared.Rotated;
            return prepared;
        }
        catch (FrameRejectedException e)
        {
            await RejectAsync(Answers.Invalid(frame.Sequence, e.Message), cancellationToken).ConfigureAwait(false);
            return null;
        }
        catch (OperationCanceledException) when (Draining)
        {
            _lastSequence = frame.Sequence;
            await DropAsync(Answers.DrainExpired(frame.Sequence, _options.ShutdownDrainSeconds), cancellationToken).ConfigureAwait(false);
            return null;
        }
    }

    /// <summary>Pairs an accepted frame and queues the pair (or answers it at once).</summary>
    /// <exception cref="RpcException">The batcher has stopped: the call ends UNAVAILABLE.</exception>
    private async Task PairAsync(Pairing pairing, PreparedFrame frame, CancellationToken cancellationToken)
    {
        if (pairing.Reference(frame) is not { } reference)
        {
            await SendAsync(Answers.FirstFrame(frame.Sequence), cancellationToken).ConfigureAwait(false);
            return;
        }

        bool slot;
        try
        {
            slot = await TakePairSlotAsync().ConfigureAwait(false);
        }
        catch
        {
            pairing.Abandon(reference, frame);
            throw;
        }

        if (!slot)
        {
            pairing.Abandon(reference, frame);
            await DropAsync(_options.Overflow == OverflowMode.Drop
                ? Answers.Dropped(frame.Sequence, _options.MaxPendingPairsPerStream)
                : Answers.DrainExpired(frame.Sequence, _options.ShutdownDrainSeconds), cancellationToken).ConfigureAwait(false);
            return;
        }

        // The response takes its place in order first: if the batcher refuses the pair, it still answers.
        var (pair, response) = pairing.Start(reference, frame, () => _pairSlots.Release());
        try
        {
            await _ordered.Writer.WriteAsync(response, cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            // The writer ended (the client is gone): the pair is not needed.
            pair.CancelIfWaiting();
            throw;
        }

        try
        {
            await _runtime.Batcher.EnqueueAsync(pair, _drain).ConfigureAwait(false);
        }
        catch (ChannelClosedException)
        {
            throw Answers.StoppingBeforeQueued();
        }
        catch (OperationCanceledException) when (Draining)
        {
            // The pair never got in; it is cancelled, so its response (in order already) says DROPPED.
        }
    }

    /// <summary>One of this stream's pair slots; false when none is to be had: all taken with Streaming:Overflow=Drop, or the drain time ran out while waiting.</summary>
    private async ValueTask<bool> TakePairSlotAsync()
    {
        if (_options.Overflow == OverflowMode.Drop)
        {
            return _pairSlots.Wait(0, CancellationToken.None);
        }

        try
        {
            await _pairSlots.WaitAsync(_drain).ConfigureAwait(false);
            return true;
        }
        catch (OperationCanceledException) when (Draining)
        {
            return false;
        }
    }

    /// <summary>Shutdown's drain time ran out, the call itself goes on.</summary>
    private bool Draining => _drain.IsCancellationRequested && !_call.IsCancellationRequested;

    private Task DropAsync(StreamResponse dropped, CancellationToken cancellationToken)
    {
        Interlocked.Increment(ref _dropped);
        _metrics.FrameDropped();
        return SendAsync(dropped, cancellationToken);
    }

    /// <summary>Awaits a pair, with the inliers keyframe mode judges by (−1: not matched). Never faults.</summary>
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
            var matched = new MatchedPair(frame0.Sequence, frame1.Sequence, frame0.TimestampUs, frame1.TimestampUs, frame1.PreprocessMs,
                outcome.Matches, outcome.Timings, transform, TrackRadius(frame0));
            return (new Outgoing(null, matched), transform is null ? outcome.Matches.Count : (int)transform.Inliers);
        }
        catch (Exception e)
        {
            return (new Outgoing(Unmatched(frame0.Sequence, frame1.Sequence, e)), -1);
        }
    }

    /// <summary>The answer to a pair that did not come back matched, counted by why.</summary>
    private StreamResponse Unmatched(ulong sequence0, ulong sequence1, Exception error)
    {
        if (error is OperationCanceledException && Draining)
        {
            // Shutdown's drain time ran out with this pair still queued: answered, and counted as a drop.
            Interlocked.Increment(ref _dropped);
            _metrics.FrameDropped();
            return Answers.DrainExpired(sequence0, sequence1, _options.ShutdownDrainSeconds);
        }

        if (error is OperationCanceledException && _call.IsCancellationRequested)
        {
            // The client cancelled or disconnected: nobody reads this answer, and nothing failed.
            _metrics.PairAbandoned();
        }
        else
        {
            Interlocked.Increment(ref _failed);
            _metrics.Error(ErrorReason.PairFailed);
        }

        return Answers.Failed(sequence0, sequence1, error);
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
        ServerLog.FrameRejected(_logger, _settings.Name, rejection.Status.Sequence, rejection.Status.Message);
        return SendAsync(rejection, cancellationToken);
    }

    private Task SendAsync(StreamResponse response, CancellationToken cancellationToken) =>
        _ordered.Writer.WriteAsync(Task.FromResult<Outgoing>(response), cancellationToken).AsTask();

    private async Task WriteLoopAsync(CancellationToken cancellationToken)
    {
        try
        {
            await foreach (var next in _ordered.Reader.ReadAllAsync(cancellationToken).ConfigureAwait(false))
            {
                // A cancelled call stops waiting at once; its queued pairs are dropped by the batcher later. A client
                // that stops reading holds the write; at shutdown, calls still open after the drain time are aborted
                // (ShutdownCoordinator), which ends it.
                var reply = await next.WaitAsync(cancellationToken).ConfigureAwait(false);
                await _responses.WriteAsync(Respond(reply), cancellationToken).ConfigureAwait(false);
                _activity?.Touch();
            }
        }
        catch (Exception e) when (e is OperationCanceledException or IOException or InvalidOperationException)
        {
            // The call is over (client cancelled or disconnected): stop the reader too.
            _ordered.Writer.TryComplete();
        }
    }

    /// <summary>
    /// The one place a stream's response is built: a frame status as made, or a matched pair with its track ids (given
    /// here, where pairs arrive in frame order) and keyframe flag.
    /// </summary>
    private StreamResponse Respond(in Outgoing reply)
    {
        if (reply.Pair is not { } matched)
        {
            return reply.Status!;
        }

        var matches = ProtoMapping.ToMatches(matched.Matches);
        if (_tracks is not null)
        {
            matches.TrackIds.AddRange(_tracks.Link(matched.Sequence0, matched.Sequence1, matched.Matches.Keypoints0, matched.Matches.Keypoints1, matched.TrackRadiusPx));
        }

        return new StreamResponse
        {
            Pair = new PairMatches
            {
                Sequence0 = matched.Sequence0,
                Sequence1 = matched.Sequence1,
                Timestamp0Us = matched.Timestamp0Us,
                Timestamp1Us = matched.Timestamp1Us,
                Matches = matches,
                Timings = ProtoMapping.ToTimings(matched.Timings, matched.PreprocessMs),
                Transform = matched.Transform,
                NewKeyframe = reply.NewKeyframe,
            },
        };
    }
}
