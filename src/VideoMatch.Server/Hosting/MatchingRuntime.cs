using Microsoft.Extensions.Options;
using VideoMatch.Engine.Batching;
using VideoMatch.Engine.Frames;
using VideoMatch.Engine.Inference;
using VideoMatch.Server.Observability;

namespace VideoMatch.Server.Hosting;

/// <summary>Opens the model the server runs; replaceable so tests can run a model that misbehaves on purpose.</summary>
internal delegate IPairMatcher MatcherFactory(InferenceOptions options, int maxBatchSize);

/// <summary>
/// Owns the model, the shared batcher and the frame preparer for the server's lifetime. Starts once the
/// server listens: loads the model (a failure stops the process with the reason), warms it up, then reports
/// ready. Stops after the server has drained its calls: runs what is queued, then frees the model.
/// </summary>
internal sealed partial class MatchingRuntime(
    IOptions<InferenceOptions> inference,
    IOptions<BatchingOptions> batching,
    IOptions<LimitsOptions> limits,
    TimeProvider time,
    MatcherFactory openMatcher,
    ServerMetrics metrics,
    IHostApplicationLifetime lifetime,
    ILoggerFactory loggers) : IHostedLifecycleService, IAsyncDisposable
{
    private readonly ILogger _logger = loggers.CreateLogger<MatchingRuntime>();
    private IPairMatcher? _matcher;
    private PairBatcher? _batcher;
    private FramePreparer? _preparer;
    private volatile bool _ready;
    private readonly Lock _stopLock = new();
    private Task? _stopped;

    public bool IsReady => _ready;

    private volatile string _phase = "loading its model";
    private volatile string? _failed;

    /// <summary>Why the server is not serving now, for callers and health: what it is doing, or why it never will.</summary>
    public string NotReadyReason => _failed ?? $"The server is {_phase}; retry when grpc.health.v1 reports SERVING.";

    /// <summary>The batch sizes the warm-up ran, in order; empty without warm-up.</summary>
    public IReadOnlyList<int> WarmedUpBatchSizes { get; private set; } = [];

    /// <summary>False only when the batcher's loop has died: nothing would be served again without a restart.</summary>
    public bool IsAlive => _batcher?.IsHealthy ?? true;

    public IPairMatcher Matcher => _matcher ?? throw NotReady();

    public PairBatcher Batcher => _batcher ?? throw NotReady();

    public FramePreparer Preparer => _preparer ?? throw NotReady();

    public Task StartingAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StartAsync(CancellationToken cancellationToken)
    {
        // Not ready from the stop signal on, before any service's stopping work (health says NOT_SERVING, new calls
        // get UNAVAILABLE) while streams drain.
        lifetime.ApplicationStopping.Register(StopServing);
        return Task.CompletedTask;
    }

    /// <summary>
    /// Runs once every hosted service has started, Kestrel included: a taken port fails the start before the model
    /// loads and warms up. Health reports not ready (and calls get UNAVAILABLE) until this has finished.
    /// </summary>
    public async Task StartedAsync(CancellationToken cancellationToken)
    {
        var options = inference.Value;
        if (FramePreparer.DecoderProblem is { } decoders)
        {
            ServerLog.DecoderMissing(_logger, decoders);
        }

        _matcher = openMatcher(options, batching.Value.MaxBatchSize);
        // Loading and the self-check cannot be interrupted; a stop signal that arrived meanwhile ends the start here.
        cancellationToken.ThrowIfCancellationRequested();
        var manifest = _matcher.Manifest;
        ServerLog.ModelLoaded(_logger, manifest.Name, _matcher.Graph, manifest.Input.Width, manifest.Input.Height, _matcher.ExecutionProvider, batching.Value.MaxBatchSize);
        if (batching.Value.MaxBatchSizeChoice is { } choice)
        {
            ServerLog.BatchSizeChosen(_logger, choice);
        }

        // Before the batcher starts: the matcher runs on one thread at a time.
        if (!SelfChecked(options, manifest))
        {
            return;
        }

        cancellationToken.ThrowIfCancellationRequested();
        _preparer = new FramePreparer(manifest.Input.Width, manifest.Input.Height, limits.Value.MaxImageDimension, manifest.Input.RotateToFit,
            limits.Value.MaxImagePixels, new DecodeBudget(limits.Value.MaxDecodeMegabytes * 1024L * 1024));
        _batcher = new PairBatcher(_matcher, batching.Value, time, loggers.CreateLogger<PairBatcher>());
        _batcher.Start();
        metrics.TrackQueue(() => _batcher.QueueLength);
        if (options.WarmUp)
        {
            _phase = $"warming up model {manifest.Name} (a first run of each batch size)";
            await WarmUpAsync(options.WarmUpBatchSizes, cancellationToken).ConfigureAwait(false);
        }
        else
        {
            ServerLog.ReadyWithoutWarmUp(_logger, manifest.Name);
        }

        // Metrics count client traffic only, from here on: the batches, and the frames and pairs the model ran.
        _batcher.Observer = metrics;
        metrics.TrackModel(_matcher.Work);
        _ready = !lifetime.ApplicationStopping.IsCancellationRequested;
        metrics.ModelReady(_ready);
    }

    /// <summary>At the stop signal: not ready any more (health says NOT_SERVING, new calls get UNAVAILABLE) while streams drain.</summary>
    public Task StoppingAsync(CancellationToken cancellationToken)
    {
        StopServing();
        return Task.CompletedTask;
    }

    public Task StoppedAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    /// <summary>
    /// After the server has stopped (the web host, registered after this service, stops first: every call has
    /// ended, each frame answered or dropped by the drain time): a batch still running serves nobody, so it is
    /// ended rather than waited for; on a slow machine one batch of a large model takes many seconds.
    /// </summary>
    public Task StopAsync(CancellationToken cancellationToken)
    {
        // One stop, shared: the host's stop and the container's disposal can overlap (a test host disposed while it
        // stops), and the batcher must not be disposed under a stop that is still ending it.
        lock (_stopLock)
        {
            return _stopped ??= StopOnceAsync(cancellationToken);
        }
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            await StopAsync(CancellationToken.None).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            // The host's stop was cut short; what is left is disposed below all the same.
        }

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
        ServerLog.WarmedUp(_logger, warmed, work.PairsMatched, work.FramesEncoded, elapsedMs);
    }

    private void StopServing()
    {
        _phase = "stopping";
        _ready = false;
        metrics.ModelReady(false);
    }

    private async Task StopOnceAsync(CancellationToken cancellationToken)
    {
        StopServing();
        if (_batcher is not null)
        {
            await _batcher.AbandonAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    private static InvalidOperationException NotReady() => new("The model is not loaded yet.");

    /// <summary>
    /// Runs a model folder's self-check: a folder is trusted only as far as it checks out. False (the server stays
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

        _phase = $"running model {manifest.Name}'s self-check";
        SelfCheckReport report;
        try
        {
            report = SelfCheck.Run(Matcher, manifest.SelfCheckPath(manifest.SourceFile), SelfCheckTolerances.For(options.Precision));
        }
        catch (InvalidDataException e)
        {
            _failed = $"The model's self-check could not run, so the server does not report SERVING: {e.Message} Run videomatch verify on the model folder, or set Inference:SelfCheck=false to serve it unchecked.";
            ServerLog.SelfCheckUnusable(_logger, e.Message);
            return false;
        }

        if (!report.Passed)
        {
            _failed = $"The model failed its self-check on this machine, so the server does not report SERVING: {report}. Run videomatch verify on the model folder, or export it again.";
            ServerLog.SelfCheckFailed(_logger, report);
            return false;
        }

        ServerLog.SelfCheckPassed(_logger, report);
        return true;
    }
}
