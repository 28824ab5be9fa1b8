using System.Diagnostics.Metrics;
using VideoMatch.Engine.Batching;
using VideoMatch.Engine.Inference;

namespace VideoMatch.Server.Observability;

/// <summary>Why a frame or a call did not end in matches; the <c>reason</c> label of <c>videomatch_errors_total</c>.</summary>
internal static class ErrorReason
{
    /// <summary>A frame was answered INVALID (bad pixels, sizes, sequence).</summary>
    public const string InvalidFrame = "invalid_frame";

    /// <summary>A pair was answered FAILED (or MatchPair INTERNAL/UNAVAILABLE): the model threw, or the server stopped under it. A client that went away first is no failure: <see cref="ServerMetrics.PairAbandoned"/>.</summary>
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
/// The server's metrics: instruments of the <c>VideoMatch</c> meter (System.Diagnostics.Metrics; OpenTelemetry
/// collects them by that name), served in the Prometheus format on the metrics port's <c>/metrics</c> by a
/// <see cref="PrometheusExporter"/> that reads this server's meter only.
/// </summary>
/// <remarks>
/// Each instrument is declared by its Prometheus name; its instrument name and unit follow from it (see
/// <see cref="PrometheusExporter"/>): <c>videomatch_queue_wait_seconds</c> is the histogram
/// <c>videomatch.queue_wait</c> in s.
/// </remarks>
internal sealed class ServerMetrics : IDisposable
{
    /// <summary>The meter's name, for OpenTelemetry's <c>AddMeter</c>.</summary>
    public const string MeterName = "VideoMatch";

    private static readonly KeyValuePair<string, object?>[] NoTags = [];

    private readonly Meter _meter;
    private readonly UpDownCounter<long> _activeStreams;
    private readonly Counter<long> _streams;
    private readonly Counter<long> _frames;
    private readonly Counter<long> _pairs;
    private readonly Counter<long> _matches;
    private readonly Counter<long> _dropped;
    private readonly Counter<long> _errors;
    private readonly Counter<long> _batches;
    private readonly Counter<long> _endedByClient;
    private readonly Counter<long> _abandoned;
    private readonly Histogram<double> _batchSize;
    private readonly Histogram<double> _queueWait;
    private readonly Histogram<double> _inference;
    private readonly Lock _modelsLock = new();
    private ModelMetrics[] _models = [];
    private Func<int>? _openCalls;

    public ServerMetrics(IMeterFactory meters)
    {
        ArgumentNullException.ThrowIfNull(meters);
        _meter = meters.Create(MeterName);
        // Listening before the instruments exist: every measurement from the first is seen.
        Exporter = new PrometheusExporter(_meter);
        _activeStreams = CreateUpDownCounter("videomatch_active_streams", "{stream}", "MatchStream calls open now.");
        _streams = CreateCounter("videomatch_streams_total", "{stream}", "MatchStream calls that got past their config.");
        _frames = CreateCounter("videomatch_frames_received_total", "{frame}", "Frames received on streams, and images received by MatchPair.");
        _pairs = CreateCounter("videomatch_pairs_matched_total", "{pair}", "Pairs answered with matches (streams and MatchPair).");
        _matches = CreateCounter("videomatch_matches_total", "{match}", "Keypoint matches sent to clients.");
        _dropped = CreateCounter("videomatch_frames_dropped_total", "{frame}", "Frames answered DROPPED because their stream had too many pairs in flight (Streaming:Overflow=Drop).");
        _errors = CreateCounter("videomatch_errors_total", "{error}", "Frames, pairs, batches and calls that ended without matches, by reason.");
        _endedByClient = CreateCounter("videomatch_calls_ended_by_client_total", "{call}", "Calls the client ended before their answer: cancelled or disconnected (reason=\"cancelled\"), or past its deadline (reason=\"deadline\"). Normal churn, not server errors.");
        _abandoned = CreateCounter("videomatch_pairs_abandoned_total", "{pair}", "Pairs left unmatched because their client cancelled or disconnected first: normal churn, not errors.");
        _batches = CreateCounter("videomatch_batches_total", "{batch}", "Batches the model ran (warm-up not counted).");
        _batchSize = CreateHistogram("videomatch_batch_size", "{pair}", "Pairs per model run.", [1, 2, 4, 8, 16, 32, 64, 128]);
        _queueWait = CreateHistogram("videomatch_queue_wait_seconds", "s", "Time a pair waited in the batcher's queue before its batch ran; the autoscaling signal.", Exponential(0.0005, 2, 14));
        _inference = CreateHistogram("videomatch_inference_seconds", "s", "Time of one model run (one batch), preprocessing excluded.", Exponential(0.001, 2, 14));
        Checked(_meter.CreateObservableGauge(InstrumentName("videomatch_open_calls", "{call}", counter: false), () => (double)(_openCalls?.Invoke() ?? 0), "{call}",
            "gRPC calls open now: every method, streams before their config and health watches included."), "videomatch_open_calls");
        // Per model (label model="NAME"): its queue, readiness, the work its matcher did and its frame bank.
        CreatePerModelGauge("videomatch_queue_length", "{pair}", "Pairs waiting in the model's batcher queue.", m => m.Queue?.Invoke() ?? 0);
        CreatePerModelGauge("videomatch_model_ready", "", "1 once the model is loaded and warmed up (and passed its self-check), 0 while loading, stopping or failed.", m => m.Ready ? 1 : 0);
        CreatePerModelCounter("videomatch_frames_encoded_total", "{frame}", "Frames run through a per-frame encoder (a split model's, or XFeat's extractor), warm-up not counted; once per frame while its features stay cached.", m => m.Work is { } w ? w.FramesEncoded - m.EncodedBefore : 0);
        CreatePerModelCounter("videomatch_matcher_pairs_total", "{pair}", "Pairs run through the model's pair matcher, warm-up not counted.", m => m.Work is { } w ? w.PairsMatched - m.MatchedBefore : 0);
        CreatePerModelCounter("videomatch_frame_bank_evictions_total", "{frame}", "Cached frame features dropped to make room in a full frame bank (those frames are encoded again if used).", m => m.Work?.Evictions ?? 0);
        CreatePerModelGauge("videomatch_frame_bank_slots_in_use", "{slot}", "Frame-bank slots holding a frame's features (split models).", m => m.Work?.Bank().InUse ?? 0);
        CreatePerModelGauge("videomatch_frame_bank_slots", "{slot}", "Frame-bank slots in all (Inference:FrameBankSlots; 0 without a split model).", m => m.Work?.Bank().Capacity ?? 0);
        // The frame-level reasons exist from the start (at 0), so rate() and alerts see them before the first error.
        foreach (var reason in new[] { ErrorReason.InvalidFrame, ErrorReason.PairFailed, ErrorReason.BatchFailed })
        {
            _errors.Add(0, Reason(reason));
        }

        _endedByClient.Add(0, Reason("cancelled"));
        _endedByClient.Add(0, Reason("deadline"));
    }

    /// <summary>What <c>/metrics</c> serves.</summary>
    public PrometheusExporter Exporter { get; }

    /// <summary>The metrics of model <paramref name="name"/> (label <c>model</c>): its batches, queue, readiness and work.</summary>
    public ModelMetrics ForModel(string name)
    {
        lock (_modelsLock)
        {
            if (_models.FirstOrDefault(m => m.Name == name) is { } known)
            {
                return known;
            }

            var model = new ModelMetrics(this, name);
            _models = [.. _models, model];
            return model;
        }
    }

    /// <summary>Where the open-calls gauge reads from when scraped.</summary>
    public void TrackCalls(Func<int> open) => _openCalls = open;

    public void StreamStarted()
    {
        _streams.Add(1);
        _activeStreams.Add(1);
    }

    public void StreamEnded() => _activeStreams.Add(-1);

    public void FramesReceived(int count = 1) => _frames.Add(count);

    public void PairMatched(int matches)
    {
        _pairs.Add(1);
        _matches.Add(matches);
    }

    public void FrameDropped() => _dropped.Add(1);

    /// <summary>A pair whose client cancelled or disconnected before its answer: nobody reads it, nothing failed.</summary>
    public void PairAbandoned() => _abandoned.Add(1);

    /// <summary>A call the client ended (<paramref name="deadline"/>: its deadline passed) rather than the server.</summary>
    public void CallEndedByClient(bool deadline) => _endedByClient.Add(1, Reason(deadline ? "deadline" : "cancelled"));

    public void Error(string reason) => _errors.Add(1, Reason(reason));

    public void Dispose()
    {
        Exporter.Dispose();
        _meter.Dispose();
    }

    private static KeyValuePair<string, object?> Reason(string reason) => new("reason", reason);

    private static double[] Exponential(double start, double factor, int count)
    {
        var bounds = new double[count];
        for (var i = 0; i < count; i++)
        {
            bounds[i] = start * Math.Pow(factor, i);
        }

        return bounds;
    }

    private Counter<long> CreateCounter(string prometheusName, string unit, string description) =>
        Checked(_meter.CreateCounter<long>(InstrumentName(prometheusName, unit, counter: true), unit, description), prometheusName);

    private UpDownCounter<long> CreateUpDownCounter(string prometheusName, string unit, string description) =>
        Checked(_meter.CreateUpDownCounter<long>(InstrumentName(prometheusName, unit, counter: false), unit, description), prometheusName);

    private Histogram<double> CreateHistogram(string prometheusName, string unit, string description, double[] buckets) =>
        Checked(_meter.CreateHistogram(InstrumentName(prometheusName, unit, counter: false), unit, description, NoTags,
            new InstrumentAdvice<double> { HistogramBucketBoundaries = buckets }), prometheusName);

    private void CreatePerModelGauge(string prometheusName, string unit, string description, Func<ModelMetrics, double> read) =>
        Checked(_meter.CreateObservableGauge(InstrumentName(prometheusName, unit, counter: false), () => _models.Select(m => new Measurement<double>(read(m), m.Tag)), unit, description), prometheusName);

    private void CreatePerModelCounter(string prometheusName, string unit, string description, Func<ModelMetrics, long> read) =>
        Checked(_meter.CreateObservableCounter(InstrumentName(prometheusName, unit, counter: true), () => _models.Select(m => new Measurement<long>(read(m), m.Tag)), unit, description), prometheusName);

    /// <summary><c>videomatch_queue_wait_seconds</c> in s → <c>videomatch.queue_wait</c>; counters lose <c>_total</c>.</summary>
    private static string InstrumentName(string prometheusName, string unit, bool counter)
    {
        var name = counter && prometheusName.EndsWith("_total", StringComparison.Ordinal) ? prometheusName[..^"_total".Length] : prometheusName;
        name = unit == "s" && name.EndsWith("_seconds", StringComparison.Ordinal) ? name[..^"_seconds".Length] : name;
        return "videomatch." + name["videomatch_".Length..];
    }

    /// <summary>The exporter must give the instrument back the name it was declared with.</summary>
    private static T Checked<T>(T instrument, string prometheusName)
        where T : Instrument
    {
        var exported = PrometheusExporter.PrometheusName(instrument);
        return exported == prometheusName
            ? instrument
            : throw new InvalidOperationException($"Instrument {instrument.Name} would be exported as {exported}, not {prometheusName}.");
    }

    /// <summary>One model's metrics: every series carries its name as label <c>model</c>. Its batcher reports here.</summary>
    internal sealed class ModelMetrics(ServerMetrics metrics, string name) : IBatchObserver
    {
        private readonly KeyValuePair<string, object?>[] _tags = [new("model", name)];
        private volatile bool _ready;

        public string Name => name;

        public KeyValuePair<string, object?>[] Tag => _tags;

        public Func<int>? Queue { get; set; }

        public ModelWork? Work { get; private set; }

        public long EncodedBefore { get; private set; }

        public long MatchedBefore { get; private set; }

        public bool Ready
        {
            get => _ready;
            set => _ready = value;
        }

        /// <summary>
        /// Where the model-work counters and frame-bank gauges read from when scraped: from now on, so that work done
        /// before (the warm-up) is not counted, as <c>videomatch_batches_total</c> does not count it.
        /// </summary>
        public void TrackWork(ModelWork work)
        {
            EncodedBefore = work.FramesEncoded;
            MatchedBefore = work.PairsMatched;
            Work = work;
        }

        public void BatchRan(int size, TimeSpan inference, ReadOnlySpan<TimeSpan> queueWaits)
        {
            metrics._batches.Add(1, _tags);
            metrics._batchSize.Record(size, _tags);
            metrics._inference.Record(inference.TotalSeconds, _tags);
            foreach (var wait in queueWaits)
            {
                metrics._queueWait.Record(wait.TotalSeconds, _tags);
            }
        }

        public void BatchFailed(int size) => metrics.Error(ErrorReason.BatchFailed);
    }
}
