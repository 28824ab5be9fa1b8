using VideoMatch.Engine.Batching;
using VideoMatch.Engine.Frames;
using VideoMatch.Engine.Inference;
using VideoMatch.Server.Observability;

namespace VideoMatch.Server.Hosting;

/// <summary>
/// One model the server serves: its matcher, its own batcher queue, frame bank (inside a split matcher) and frame
/// preparer, and whether it is ready. Loads, self-checks and warms up once the server listens; a model that fails its
/// self-check stays NOT_SERVING with the reason while the others serve.
/// </summary>
internal sealed partial class ModelRuntime(
    ModelSlot slot,
    LimitsOptions limits,
    TimeProvider time,
    MatcherFactory openMatcher,
    ServerMetrics metrics,
    ILoggerFactory loggers) : IAsyncDisposable
{
    private readonly ServerMetrics.ModelMetrics _metrics = metrics.ForModel(slot.Name);
    private readonly ILogger _logger = loggers.CreateLogger<MatchingRuntime>();
    private IPairMatcher? _matcher;
    private PairBatcher? _batcher;
    private FramePreparer? _preparer;
    private volatile bool _ready;
    private volatile string? _phase;
    private volatile string? _failed;

    /// <summary>The name requests choose this model by.</summary>
    public string Name => slot.Name;

    public ModelSlot Slot => slot;

    public bool IsReady => _ready;

    /// <summary>Why this model is not serving now: what it is doing, or why it never will.</summary>
    public string NotReadyReason => _failed ?? $"The server is {_phase ?? $"loading model '{Name}'"}; retry when grpc.health.v1 reports SERVING.";

    /// <summary>The batch sizes the warm-up ran, in order; empty without warm-up.</summary>
    public IReadOnlyList<int> WarmedUpBatchSizes { get; private set; } = [];

    /// <summary>False only when the batcher's loop has died: nothing would be served again without a restart.</summary>
    public bool IsAlive => _batcher?.IsHealthy ?? true;

    public IPairMatcher Matcher => _matcher ?? throw NotLoaded();

    public PairBatcher Batcher => _batcher ?? throw NotLoaded();

    public FramePreparer Preparer => _preparer ?? throw NotLoaded();

    /// <summary>Loads the model (a failure stops the process with the reason), runs its self-check, starts its batcher and warms it up.</summary>
    public async Task StartAsync(Func<bool> stopping, CancellationToken cancellationToken)
    {
        var (options, batching) = (slot.Inference, slot.Batching);
        _matcher = openMatcher(options, batching.MaxBatchSize);
        // Loading and the self-check cannot be interrupted; a stop signal that arrived meanwhile ends the start here.
        cancellationToken.ThrowIfCancellationRequested();
        var manifest = _matcher.Manifest;
        ServerLog.ModelLoaded(_logger, Name, manifest.Name, _matcher.Graph, manifest.Input.Width, manifest.Input.Height, _matcher.ExecutionProvider, batching.MaxBatchSize);
        if (batching.MaxBatchSizeChoice is { } choice)
        {
            ServerLog.BatchSizeChosen(_logger, choice);
        }

        // Before the batcher starts: the matcher runs on one thread at a time.
        if (!SelfChecked(options, manifest))
        {
            return;
        }

        cancellationToken.ThrowIfCancellationRequested();
        _preparer = new FramePreparer(manifest.Input.Width, manifest.Input.Height, limits.MaxImageDimension, manifest.Input.RotateToFit,
            limits.MaxImagePixels, new DecodeBudget(limits.MaxDecodeMegabytes * 1024L * 1024), _matcher.FrameType);
        _batcher = new PairBatcher(_matcher, batching, time, loggers.CreateLogger<PairBatcher>());
        _batcher.Start();
        _metrics.Queue = () => _batcher.QueueLength;

        if (options.WarmUp)
        {
            _phase = $"warming up model '{Name}' (a first run of each batch size)";
            await WarmUpAsync(options.WarmUpBatchSizes, cancellationToken).ConfigureAwait(false);
        }
        else
        {
            ServerLog.ReadyWithoutWarmUp(_logger, Name);
        }

        // Metrics count client traffic only, from here on: the batches, and the frames and pairs the model ran.
        _batcher.Observer = _metrics;
        _metrics.TrackWork(_matcher.Work);
        _ready = !stopping();
        _metrics.Ready = _ready;
    }

    /// <summary>Not ready any more (health says NOT_SERVING, new calls get UNAVAILABLE) while streams drain.</summary>
    public void StopServing()
    {
        _phase = "stopping";
        _ready = false;
        _metrics.Ready = false;
    }

    /// <summary>Ends what is queued and the batch that runs: nobody waits for them once the server has stopped.</summary>
    public async Task AbandonAsync(CancellationToken cancellationToken)
    {
        StopServing();
        if (_batcher is not null)
        {
            await _batcher.AbandonAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_batcher is not null)
        {
            await _batcher.DisposeAsync().ConfigureAwait(false);
        }

        _matcher?.Dispose();
    }

    /// <summary>Runs each warm-up batch size once (default: 1 and the largest) so the first clients do not pay for ONNX Runtime's first runs.</summary>
    private async Task WarmUpAsync(IList<int> sizes, CancellationToken cancellationToken)
    {
        var started = time.GetTimestamp();
        var preparer = Preparer;
        var gray = new byte[preparer.Width * preparer.Height];
        new VideoMatch.Synthetic.TexturedScene(seed: 1).RenderGray(preparer.Width, preparer.Height, System.Numerics.Matrix3x2.Identity, gray);
        var input = FrameInput.Raw(FramePixelFormat.Gray8, preparer.Width, preparer.Height, 0, gray);
        var warmed = new List<int>();
        foreach (var size in (sizes.Count > 0 ? sizes : [1, Batcher.MaxBatchSize]).Select(s => Math.Min(s, Batcher.MaxBatchSize)).Distinct())
        {
            warmed.Add(size);
            var pairs = new PairRequest[size];
            for (var i = 0; i < size; i++)
            {
                pairs[i] = new PairRequest(preparer.Prepare(input), preparer.Prepare(input), 0.5f, 1, cancellationToken);
                await Batcher.EnqueueAsync(pairs[i], cancellationToken).ConfigureAwait(false);
            }

            await Task.WhenAll(pairs.Select(p => p.Completion)).ConfigureAwait(false);
        }

        var elapsedMs = time.GetElapsedTime(started).TotalMilliseconds;
        WarmedUpBatchSizes = warmed;
        var work = Matcher.Work;
        ServerLog.WarmedUp(_logger, Name, warmed, work.PairsMatched, work.FramesEncoded, elapsedMs);
    }

    /// <summary>
    /// Runs a model folder's self-check: a folder is trusted only as far as it checks out. False (the model stays
    /// NOT_SERVING, with the reason) when the check fails or cannot run: no self-check named, a file that is missing,
    /// cut, foreign or outside the folder. The embedded model is built here and needs none; XFeat + LighterGlue come
    /// without one, which the log says.
    /// </summary>
    private bool SelfChecked(InferenceOptions options, ModelManifest manifest)
    {
        if (manifest.SourceFile.Length == 0 && manifest.Family == ModelFamily.Dense)
        {
            return true;
        }

        if (!options.SelfCheck)
        {
            ServerLog.SelfCheckOff(_logger, manifest.Name);
            return true;
        }

        if (manifest.Family == ModelFamily.XFeatLighterGlue)
        {
            ServerLog.NoSelfCheck(_logger, manifest.Name);
            return true;
        }

        _phase = $"running the self-check of model '{Name}'";
        SelfCheckReport report;
        try
        {
            report = SelfCheck.Run(Matcher, manifest.SelfCheckPath(manifest.SourceFile), SelfCheckTolerances.For(options.Precision));
        }
        catch (InvalidDataException e)
        {
            _failed = $"Model '{Name}': its self-check could not run, so it does not report SERVING: {e.Message} Run videomatch verify on the model folder, or set Inference:SelfCheck=false to serve it unchecked.";
            ServerLog.SelfCheckUnusable(_logger, e.Message);
            return false;
        }

        if (!report.Passed)
        {
            _failed = $"Model '{Name}' failed its self-check on this machine, so it does not report SERVING: {report}. Run videomatch verify on the model folder, or export it again.";
            ServerLog.SelfCheckFailed(_logger, report);
            return false;
        }

        ServerLog.SelfCheckPassed(_logger, report);
        return true;
    }

    private InvalidOperationException NotLoaded() => new($"Model '{Name}' is not loaded yet.");
}
