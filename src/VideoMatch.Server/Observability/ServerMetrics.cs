using Prometheus;
using VideoMatch.Engine.Batching;

namespace VideoMatch.Server.Observability;

/// <summary>Why a frame or a call did not end in matches; the <c>reason</c> label of <c>videomatch_errors_total</c>.</summary>
internal static class ErrorReason
{
    /// <summary>A frame was answered INVALID (bad pixels, sizes, sequence).</summary>
    public const string InvalidFrame = "invalid_frame";

    /// <summary>A pair was answered FAILED: the model threw, or its stream ended first.</summary>
    public const string PairFailed = "pair_failed";

    /// <summary>The model threw on a whole batch.</summary>
    public const string BatchFailed = "batch_failed";

    /// <summary>A call ended with a non-OK gRPC status; the label is <c>call_</c> and the status code in snake case.</summary>
    public static string Call(Grpc.Core.StatusCode code) => "call_" + code switch
    {
        Grpc.Core.StatusCode.InvalidArgument => "invalid_argument",
        Grpc.Core.StatusCode.ResourceExhausted => "resource_exhausted",
        Grpc.Core.StatusCode.Unauthenticated => "unauthenticated",
        Grpc.Core.StatusCode.Unavailable => "unavailable",
        Grpc.Core.StatusCode.DeadlineExceeded => "deadline_exceeded",
        Grpc.Core.StatusCode.Cancelled => "cancelled",
        Grpc.Core.StatusCode.Internal => "internal",
        Grpc.Core.StatusCode.FailedPrecondition => "failed_precondition",
        Grpc.Core.StatusCode.PermissionDenied => "permission_denied",
        Grpc.Core.StatusCode.Unknown => "unknown",
        _ => "other",
    };
}

/// <summary>
/// The server's Prometheus metrics, in a registry of its own (one per server, so hosts in one process do not
/// mix counts). Served as text on the metrics port's <c>/metrics</c>, with the process's CPU, memory and GC figures.
/// </summary>
internal sealed class ServerMetrics : IBatchObserver
{
    private readonly Gauge _activeStreams;
    private readonly Counter _streams;
    private readonly Counter _frames;
    private readonly Counter _pairs;
    private readonly Counter _matches;
    private readonly Counter _dropped;
    private readonly Counter _errors;
    private readonly Counter _batches;
    private readonly Histogram _batchSize;
    private readonly Histogram _queueWait;
    private readonly Histogram _inference;
    private readonly Gauge _queueLength;
    private readonly Gauge _ready;
    private readonly Counter _framesEncoded;
    private readonly Counter _matcherPairs;
    private readonly Counter _evictions;
    private readonly Gauge _bankInUse;
    private readonly Gauge _bankSlots;
    private Func<int>? _queueLengthSource;
    private VideoMatch.Engine.Inference.ModelWork? _work;

    public ServerMetrics()
    {
        Registry = Metrics.NewCustomRegistry();
        DotNetStats.Register(Registry);
        var factory = Metrics.WithCustomRegistry(Registry);
        _activeStreams = factory.CreateGauge("videomatch_active_streams", "MatchStream calls open now.");
        _streams = factory.CreateCounter("videomatch_streams_total", "MatchStream calls that got past their config.");
        _frames = factory.CreateCounter("videomatch_frames_received_total", "Frames received on streams, and images received by MatchPair.");
        _pairs = factory.CreateCounter("videomatch_pairs_matched_total", "Pairs answered with matches (streams and MatchPair).");
        _matches = factory.CreateCounter("videomatch_matches_total", "Keypoint matches sent to clients.");
        _dropped = factory.CreateCounter("videomatch_frames_dropped_total", "Frames answered DROPPED because their stream had too many pairs in flight (Streaming:Overflow=Drop).");
        _errors = factory.CreateCounter("videomatch_errors_total", "Frames, pairs, batches and calls that ended without matches, by reason.", ["reason"]);
        _batches = factory.CreateCounter("videomatch_batches_total", "Batches the model ran (warm-up not counted).");
        _batchSize = factory.CreateHistogram("videomatch_batch_size", "Pairs per model run.", new HistogramConfiguration
        {
            Buckets = [1, 2, 4, 8, 16, 32, 64, 128],
        });
        _queueWait = factory.CreateHistogram("videomatch_queue_wait_seconds", "Time a pair waited in the batcher's queue before its batch ran; the autoscaling signal.", new HistogramConfiguration
        {
            Buckets = Histogram.ExponentialBuckets(0.0005, 2, 14),
        });
        _inference = factory.CreateHistogram("videomatch_inference_seconds", "Time of one model run (one batch), preprocessing excluded.", new HistogramConfiguration
        {
            Buckets = Histogram.ExponentialBuckets(0.001, 2, 14),
        });
        _queueLength = factory.CreateGauge("videomatch_queue_length", "Pairs waiting in the batcher's queue.");
        _ready = factory.CreateGauge("videomatch_model_ready", "1 once the model is loaded and warmed up, 0 while loading or stopping.");
        _framesEncoded = factory.CreateCounter("videomatch_frames_encoded_total", "Frames run through a per-frame encoder (a split model's, or XFeat's extractor), warm-up included; once per frame while its features stay cached.");
        _matcherPairs = factory.CreateCounter("videomatch_matcher_pairs_total", "Pairs run through the model's pair matcher, warm-up included.");
        _evictions = factory.CreateCounter("videomatch_frame_bank_evictions_total", "Cached frame features dropped to make room in a full frame bank (those frames are encoded again if used).");
        _bankInUse = factory.CreateGauge("videomatch_frame_bank_slots_in_use", "Frame-bank slots holding a frame's features (split models).");
        _bankSlots = factory.CreateGauge("videomatch_frame_bank_slots", "Frame-bank slots in all (Inference:FrameBankSlots; 0 without a split model).");
        // The frame-level reasons exist from the start (at 0), so rate() and alerts see them before the first error.
        foreach (var reason in new[] { ErrorReason.InvalidFrame, ErrorReason.PairFailed, ErrorReason.BatchFailed })
        {
            _errors.WithLabels(reason).Publish();
        }

        Registry.AddBeforeCollectCallback(() =>
        {
            _queueLength.Set(_queueLengthSource?.Invoke() ?? 0);
            if (_work is { } work)
            {
                _framesEncoded.IncTo(work.FramesEncoded);
                _matcherPairs.IncTo(work.PairsMatched);
                _evictions.IncTo(work.Evictions);
                var (inUse, capacity) = work.Bank();
                _bankInUse.Set(inUse);
                _bankSlots.Set(capacity);
            }
        });
    }

    public CollectorRegistry Registry { get; }

    public void ModelReady(bool ready) => _ready.Set(ready ? 1 : 0);

    /// <summary>Where the queue length gauge reads from when scraped.</summary>
    public void TrackQueue(Func<int> queueLength) => _queueLengthSource = queueLength;

    /// <summary>Where the model-work counters and frame-bank gauges read from when scraped.</summary>
    public void TrackModel(VideoMatch.Engine.Inference.ModelWork work) => _work = work;

    public void StreamStarted()
    {
        _streams.Inc();
        _activeStreams.Inc();
    }

    public void StreamEnded() => _activeStreams.Dec();

    public void FramesReceived(int count = 1) => _frames.Inc(count);

    public void PairMatched(int matches)
    {
        _pairs.Inc();
        _matches.Inc(matches);
    }

    public void FrameDropped() => _dropped.Inc();

    public void Error(string reason) => _errors.WithLabels(reason).Inc();

    public void BatchRan(int size, TimeSpan inference, ReadOnlySpan<TimeSpan> queueWaits)
    {
        _batches.Inc();
        _batchSize.Observe(size);
        _inference.Observe(inference.TotalSeconds);
        foreach (var wait in queueWaits)
        {
            _queueWait.Observe(wait.TotalSeconds);
        }
    }

    public void BatchFailed(int size) => Error(ErrorReason.BatchFailed);
}
