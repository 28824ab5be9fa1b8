using Grpc.Core;
using Microsoft.Extensions.Options;
using VideoMatch.Engine.Batching;
using VideoMatch.Engine.Frames;
using VideoMatch.Engine.Inference;
using VideoMatch.Server.Observability;

namespace VideoMatch.Server.Hosting;

/// <summary>Opens a model the server runs; replaceable so tests can run a model that misbehaves on purpose.</summary>
internal delegate IPairMatcher MatcherFactory(InferenceOptions options, int maxBatchSize);

/// <summary>
/// Owns the models the server serves (<see cref="ModelRuntime"/>: each with its own batcher, frame bank and warm-up)
/// for the server's lifetime. Starts once the server listens: loads each model in turn (a model that cannot load
/// stops the process with the reason), then each reports ready on its own. Requests choose a model by name
/// (<see cref="Resolve"/>); the server is ready while its default model is. Stops after the server has drained its
/// calls: ends what is queued, then frees the models.
/// </summary>
internal sealed class MatchingRuntime : IHostedLifecycleService, IAsyncDisposable
{
    private readonly IHostApplicationLifetime _lifetime;
    private readonly ILogger _logger;
    private readonly Dictionary<string, ModelRuntime> _byName;
    private readonly Lock _stopLock = new();
    private Task? _stopped;

    public MatchingRuntime(
        IOptions<InferenceOptions> inference,
        IOptions<BatchingOptions> batching,
        IOptions<LimitsOptions> limits,
        IOptions<ModelsOptions> models,
        TimeProvider time,
        MatcherFactory openMatcher,
        ServerMetrics metrics,
        IHostApplicationLifetime lifetime,
        ILoggerFactory loggers)
    {
        _lifetime = lifetime;
        _logger = loggers.CreateLogger<MatchingRuntime>();
        var (slots, defaultName) = ModelSet.From(inference.Value, batching.Value, models.Value.Entries);
        Models = [.. slots.Select(slot => new ModelRuntime(slot, limits.Value, time, openMatcher, metrics, loggers))];
        _byName = Models.ToDictionary(m => m.Name, StringComparer.Ordinal);
        Default = _byName[defaultName];
    }

    /// <summary>Every model, in the order they load.</summary>
    public IReadOnlyList<ModelRuntime> Models { get; }

    /// <summary>The model a request that names none gets.</summary>
    public ModelRuntime Default { get; }

    /// <summary>Ready while the default model is: the readiness probe and grpc.health.v1's "" follow it.</summary>
    public bool IsReady => Default.IsReady;

    public string NotReadyReason => Default.NotReadyReason;

    /// <summary>The default model's warm-up batch sizes.</summary>
    public IReadOnlyList<int> WarmedUpBatchSizes => Default.WarmedUpBatchSizes;

    /// <summary>False when any model's batcher loop has died.</summary>
    public bool IsAlive => Models.All(m => m.IsAlive);

    public IPairMatcher Matcher => Default.Matcher;

    public PairBatcher Batcher => Default.Batcher;

    public FramePreparer Preparer => Default.Preparer;

    /// <summary>The model named <paramref name="name"/> (empty: the default).</summary>
    /// <exception cref="RpcException">INVALID_ARGUMENT naming the models this server serves.</exception>
    public ModelRuntime Resolve(string name, string field) =>
        name.Length == 0 ? Default
        : _byName.TryGetValue(name, out var model) ? model
        : throw new RpcException(new Status(StatusCode.InvalidArgument,
            $"{field} '{Printable(name)}' names no model of this server; it serves {string.Join(", ", Models.Select(m => $"'{m.Name}'"))} (the default, used when {field} is empty: '{Default.Name}')."));

    public Task StartingAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StartAsync(CancellationToken cancellationToken)
    {
        // Not ready from the stop signal on, before any service's stopping work (health says NOT_SERVING, new calls
        // get UNAVAILABLE) while streams drain.
        _lifetime.ApplicationStopping.Register(StopServing);
        return Task.CompletedTask;
    }

    /// <summary>
    /// Runs once every hosted service has started, Kestrel included: a taken port fails the start before any model
    /// loads and warms up. Health reports not ready (and calls get UNAVAILABLE) until the default model is ready.
    /// </summary>
    public async Task StartedAsync(CancellationToken cancellationToken)
    {
        if (FramePreparer.DecoderProblem is { } decoders)
        {
            ServerLog.DecoderMissing(_logger, decoders);
        }

        foreach (var model in Models)
        {
            await model.StartAsync(() => _lifetime.ApplicationStopping.IsCancellationRequested, cancellationToken).ConfigureAwait(false);
        }

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
        // stops), and the batchers must not be disposed under a stop that is still ending them.
        lock (_stopLock)
        {
            return _stopped ??= Task.WhenAll(Models.Select(m => m.AbandonAsync(cancellationToken)));
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

        foreach (var model in Models)
        {
            await model.DisposeAsync().ConfigureAwait(false);
        }
    }

    private void StopServing()
    {
        foreach (var model in Models)
        {
            model.StopServing();
        }
    }

    /// <summary>A name from a request, safe to put in a message: at most 64 characters, control characters escaped.</summary>
    private static string Printable(string name)
    {
        var cut = name.Length > 64 ? name[..64] + "…" : name;
        return string.Concat(cut.Select(c => char.IsControl(c) ? $"\\u{(int)c:x4}" : c.ToString()));
    }
}

/// <summary>The <c>Models</c> section: several models, each under its name.</summary>
internal sealed class ModelsOptions
{
    public IReadOnlyList<KeyValuePair<string, ModelEntryOptions>> Entries { get; set; } = [];
}
