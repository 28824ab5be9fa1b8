using Grpc.Core;
using Microsoft.Extensions.Options;
using VideoMatch.Contracts.V1;
using VideoMatch.Engine.Batching;
using VideoMatch.Engine.Frames;
using VideoMatch.Server.Hosting;
using VideoMatch.Server.Observability;
using VideoMatch.Server.Security;

namespace VideoMatch.Server.Services;

/// <summary>The videomatch.v1.VideoMatcher service, bound by <see cref="VideoMatcherMethods"/>.</summary>
internal sealed class VideoMatcherService(
    MatchingRuntime runtime,
    IOptions<StreamingOptions> streaming,
    IOptions<LimitsOptions> limits,
    IOptions<SecurityOptions> security,
    ConnectionStreamLimiter connections,
    IHostApplicationLifetime lifetime,
    TimeProvider time,
    ServerMetrics metrics,
    ILogger<VideoMatcherService> logger)
{
    public async Task MatchStream(IAsyncStreamReader<StreamRequest> requestStream, IServerStreamWriter<StreamResponse> responseStream, ServerCallContext context)
    {
        // Not serving at all (starting, stopping): refused before a message is read. Which model the stream uses, and
        // whether that one serves, its config says.
        if (runtime.Models.All(m => !m.IsReady))
        {
            throw Answers.NotReady(runtime.NotReadyReason);
        }

        using var slot = connections.Acquire(context.GetHttpContext().Connection.Id ?? context.Peer);
        var rate = new FrameRateLimit(security.Value.MaxFramesPerSecondPerStream, time);
        var session = new StreamSession(runtime, streaming.Value, rate, responseStream, context.Peer, metrics, logger,
            context.GetHttpContext().Features.Get<CallActivity>());
        await session.RunAsync(requestStream, context.CancellationToken, lifetime.ApplicationStopping).ConfigureAwait(false);
    }

    public async Task<MatchPairResponse> MatchPair(MatchPairRequest request, ServerCallContext context)
    {
        var model = EnsureReady(request.Model, "MatchPairRequest.model");
        var settings = MatchSettings.Parse(request, model.Matcher.Manifest);
        metrics.FramesReceived(2);
        var frame0 = await PrepareAsync(model, request.Image0, "image0", 0, null, settings.Letterbox, context.CancellationToken).ConfigureAwait(false);
        PreparedFrame frame1;
        try
        {
            // Image 1 is turned as image 0 was, so both reach the model in one orientation.
            frame1 = await PrepareAsync(model, request.Image1, "image1", 1, frame0.Rotated, settings.Letterbox, context.CancellationToken).ConfigureAwait(false);
        }
        catch
        {
            frame0.Release();
            throw;
        }

        var pair = new PairRequest(frame0, frame1, settings.Threshold, settings.MaxMatches, context.CancellationToken);
        try
        {
            await model.Batcher.EnqueueAsync(pair, context.CancellationToken).ConfigureAwait(false);
        }
        catch (System.Threading.Channels.ChannelClosedException)
        {
            throw Answers.ShuttingDownUnary();
        }

        try
        {
            var outcome = await pair.Completion.ConfigureAwait(false);
            var transform = ProtoMapping.EstimateTransform(settings.Estimate, settings.InlierThresholdPx, outcome.Matches);
            metrics.PairMatched(outcome.Matches.Count);
            return new MatchPairResponse
            {
                Matches = ProtoMapping.ToMatches(outcome.Matches),
                Timings = ProtoMapping.ToTimings(outcome.Timings, frame0.PreprocessMs + frame1.PreprocessMs),
                Transform = transform,
            };
        }
        catch (OperationCanceledException e) when (context.CancellationToken.IsCancellationRequested)
        {
            // The client cancelled, disconnected or ran out of time: churn, not a failure.
            metrics.PairAbandoned();
            throw new RpcException(Answers.PairFailure(0, 1, e));
        }
        catch (Exception e) when (e is not RpcException)
        {
            // The same failure a stream answers with FAILED: UNAVAILABLE when stopping, INTERNAL for a model error.
            metrics.Error(ErrorReason.PairFailed);
            throw new RpcException(Answers.PairFailure(0, 1, e));
        }
    }

    public Task<ModelInfo> GetModelInfo(GetModelInfoRequest request, ServerCallContext context) =>
        Task.FromResult(Describe(EnsureReady(request.Model, "GetModelInfoRequest.model")));

    /// <summary>Every model, serving or not: a model that is not serving has only its name and why.</summary>
    public Task<ListModelsResponse> ListModels(ListModelsRequest request, ServerCallContext context)
    {
        var response = new ListModelsResponse { DefaultModel = runtime.Default.Name };
        response.Models.AddRange(runtime.Models.Select(model => model.IsReady
            ? Describe(model)
            : new ModelInfo { Name = model.Name, Serving = false, NotServingReason = model.NotReadyReason }));
        return Task.FromResult(response);
    }

    private ModelInfo Describe(ModelRuntime model)
    {
        var manifest = model.Matcher.Manifest;
        return new ModelInfo
        {
            Name = model.Name,
            Serving = true,
            ModelName = manifest.Name,
            InputWidth = (uint)manifest.Input.Width,
            InputHeight = (uint)manifest.Input.Height,
            PreferredPixelFormat = PixelFormat.Gray8,
            DefaultMatchThreshold = manifest.DefaultThreshold,
            MaxMatchesPerPair = (uint)manifest.MaxMatchesPerPair,
            MaxBatchSize = (uint)model.Batcher.MaxBatchSize,
            ExecutionProvider = model.Matcher.ExecutionProvider,
            MaxImageDimension = (uint)limits.Value.MaxImageDimension,
            MaxMessageBytes = (ulong)limits.Value.MaxMessageBytes,
            RotatesToFit = manifest.Input.RotateToFit,
            Graph = model.Matcher.Graph,
        };
    }

    private static async ValueTask<PreparedFrame> PrepareAsync(ModelRuntime model, Image image, string name, ulong sequence, bool? rotate, bool letterbox, CancellationToken cancellationToken)
    {
        try
        {
            return await model.Preparer.PrepareAsync(ProtoMapping.ToFrameInput(image), sequence, 0, rotate, letterbox, cancellationToken).ConfigureAwait(false);
        }
        catch (FrameRejectedException e)
        {
            throw Answers.BadImage(name, e.Message);
        }
    }

    /// <summary>The model named <paramref name="name"/> (empty: the default), which must be serving.</summary>
    private ModelRuntime EnsureReady(string name, string field)
    {
        var model = runtime.Resolve(name, field);
        return model.IsReady ? model : throw Answers.NotReady(model.NotReadyReason);
    }
}
