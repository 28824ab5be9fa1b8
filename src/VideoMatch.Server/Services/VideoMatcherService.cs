using Grpc.Core;
using Microsoft.Extensions.Options;
using VideoMatch.Contracts.V1;
using VideoMatch.Engine.Batching;
using VideoMatch.Engine.Frames;
using VideoMatch.Server.Hosting;
using VideoMatch.Server.Observability;
using VideoMatch.Server.Security;

namespace VideoMatch.Server.Services;

/// <summary>The videomatch.v1.VideoMatcher service.</summary>
internal sealed class VideoMatcherService(
    MatchingRuntime runtime,
    IOptions<StreamingOptions> streaming,
    IOptions<LimitsOptions> limits,
    IOptions<SecurityOptions> security,
    ConnectionStreamLimiter connections,
    IHostApplicationLifetime lifetime,
    TimeProvider time,
    ServerMetrics metrics,
    ILogger<VideoMatcherService> logger) : VideoMatcher.VideoMatcherBase
{
    public override async Task MatchStream(IAsyncStreamReader<StreamRequest> requestStream, IServerStreamWriter<StreamResponse> responseStream, ServerCallContext context)
    {
        EnsureReady();
        using var slot = connections.Acquire(context.GetHttpContext().Connection.Id ?? context.Peer);
        var rate = new FrameRateLimit(security.Value.MaxFramesPerSecondPerStream, time);
        var session = new StreamSession(runtime, streaming.Value, rate, responseStream, context.Peer, metrics, logger);
        await session.RunAsync(requestStream, context.CancellationToken, lifetime.ApplicationStopping).ConfigureAwait(false);
    }

    public override async Task<MatchPairResponse> MatchPair(MatchPairRequest request, ServerCallContext context)
    {
        EnsureReady();
        var threshold = request.MatchThreshold ?? runtime.Matcher.Manifest.DefaultThreshold;
        if (!(threshold >= 0f && threshold < 1f))
        {
            throw new RpcException(new Status(StatusCode.InvalidArgument, $"match_threshold must be in [0, 1); got {request.MatchThreshold}."));
        }

        var (estimate, inlierThresholdPx) = ProtoMapping.TransformOptions(request.Estimate, request.InlierThresholdPx);
        metrics.FramesReceived(2);
        var frame0 = Prepare(request.Image0, "image0", 0, null, request.Letterbox);
        PreparedFrame frame1;
        try
        {
            // Image 1 is turned as image 0 was, so both reach the model in one orientation.
            frame1 = Prepare(request.Image1, "image1", 1, frame0.Rotated, request.Letterbox);
        }
        catch
        {
            frame0.Release();
            throw;
        }

        var pair = new PairRequest(frame0, frame1, threshold, (int)Math.Min(request.MaxMatches, int.MaxValue), context.CancellationToken);
        try
        {
            await runtime.Batcher.EnqueueAsync(pair, context.CancellationToken).ConfigureAwait(false);
        }
        catch (System.Threading.Channels.ChannelClosedException)
        {
            throw new RpcException(new Status(StatusCode.Unavailable, "The server is shutting down; retry on another instance."));
        }

        try
        {
            var outcome = await pair.Completion.ConfigureAwait(false);
            var transform = ProtoMapping.EstimateTransform(estimate, inlierThresholdPx, outcome.Matches);
            metrics.PairMatched(outcome.Matches.Count);
            return new MatchPairResponse
            {
                Matches = ProtoMapping.ToMatches(outcome.Matches),
                Timings = ProtoMapping.ToTimings(outcome.Timings, frame0.PreprocessMs + frame1.PreprocessMs),
                Transform = transform,
            };
        }
        catch (InvalidOperationException e)
        {
            throw new RpcException(new Status(StatusCode.Internal, e.Message));
        }
    }

    public override Task<ModelInfo> GetModelInfo(GetModelInfoRequest request, ServerCallContext context)
    {
        EnsureReady();
        var manifest = runtime.Matcher.Manifest;
        return Task.FromResult(new ModelInfo
        {
            ModelName = manifest.Name,
            InputWidth = (uint)manifest.Input.Width,
            InputHeight = (uint)manifest.Input.Height,
            PreferredPixelFormat = PixelFormat.Gray8,
            DefaultMatchThreshold = manifest.DefaultThreshold,
            MaxMatchesPerPair = (uint)manifest.MaxMatchesPerPair,
            MaxBatchSize = (uint)runtime.Batcher.MaxBatchSize,
            ExecutionProvider = runtime.Matcher.ExecutionProvider,
            MaxImageDimension = (uint)limits.Value.MaxImageDimension,
            MaxMessageBytes = (ulong)limits.Value.MaxMessageBytes,
            RotatesToFit = manifest.Input.RotateToFit,
        });
    }

    private PreparedFrame Prepare(Image image, string name, ulong sequence, bool? rotate, bool letterbox)
    {
        try
        {
            return runtime.Preparer.Prepare(ProtoMapping.ToFrameInput(image), sequence, rotate: rotate, letterbox: letterbox);
        }
        catch (FrameRejectedException e)
        {
            throw new RpcException(new Status(StatusCode.InvalidArgument, $"{name}: {e.Message}"));
        }
    }

    private void EnsureReady()
    {
        if (!runtime.IsReady)
        {
            throw new RpcException(new Status(StatusCode.Unavailable, runtime.NotReadyReason ?? "The model is still loading or the server is stopping; retry when grpc.health.v1 reports SERVING."));
        }
    }
}
