using VideoMatch.Engine.Inference;

namespace VideoMatch.Server.Hosting;

/// <summary>
/// Every line the server writes, in one place with fixed event ids (as grpc-dotnet's <c>GrpcServerLog</c>): ids stay
/// stable for log queries and alerts, and each line is one line — never a stack trace for a client's bad request.
/// </summary>
internal static partial class ServerLog
{
    [LoggerMessage(EventId = 1, Level = LogLevel.Information, Message = "Model {Name} ({Model}) loaded: {Graph}, input {Width}×{Height}, execution provider {Provider}, batches of up to {MaxBatchSize}")]
    public static partial void ModelLoaded(ILogger logger, string name, string model, string graph, int width, int height, string provider, int maxBatchSize);

    [LoggerMessage(EventId = 7, Level = LogLevel.Information, Message = "{Choice}")]
    public static partial void BatchSizeChosen(ILogger logger, string choice);

    [LoggerMessage(EventId = 2, Level = LogLevel.Warning, Message = "JPEG frames will be answered INVALID: {Reason}")]
    public static partial void DecoderMissing(ILogger logger, string reason);

    [LoggerMessage(EventId = 3, Level = LogLevel.Information, Message = "Model {Report}")]
    public static partial void SelfCheckPassed(ILogger logger, SelfCheckReport report);

    [LoggerMessage(EventId = 4, Level = LogLevel.Error, Message = "Model {Report}; the server stays NOT_SERVING")]
    public static partial void SelfCheckFailed(ILogger logger, SelfCheckReport report);

    [LoggerMessage(EventId = 8, Level = LogLevel.Error, Message = "Model self-check could not run: {Reason}; the server stays NOT_SERVING")]
    public static partial void SelfCheckUnusable(ILogger logger, string reason);

    [LoggerMessage(EventId = 9, Level = LogLevel.Warning, Message = "Model {Model} serves without its self-check (Inference:SelfCheck=false): nothing shows its graphs compute what its manifest says")]
    public static partial void SelfCheckOff(ILogger logger, string model);

    [LoggerMessage(EventId = 17, Level = LogLevel.Information, Message = "Model {Model} has no self-check: XFeat + LighterGlue's published graphs come without one")]
    public static partial void NoSelfCheck(ILogger logger, string model);

    [LoggerMessage(EventId = 5, Level = LogLevel.Information, Message = "Model {Model} not warmed up (Inference:WarmUp=false); ready")]
    public static partial void ReadyWithoutWarmUp(ILogger logger, string model);

    [LoggerMessage(EventId = 6, Level = LogLevel.Information, Message = "Model {Name} warmed up (batch sizes {Sizes}: {Pairs} pairs, {Frames} frames encoded, not counted in metrics) in {Milliseconds:F0} ms; ready")]
    public static partial void WarmedUp(ILogger logger, string name, IReadOnlyList<int> sizes, long pairs, long frames, double milliseconds);

    [LoggerMessage(EventId = 10, Level = LogLevel.Information, Message = "Stream {Stream} from {Peer} started (threshold {Threshold}, max matches {MaxMatches})")]
    public static partial void StreamStarted(ILogger logger, string stream, string peer, float threshold, int maxMatches);

    [LoggerMessage(EventId = 21, Level = LogLevel.Information, Message = "Stream {Stream} resumed after frame {Sequence} (track ids from {NextTrackId})")]
    public static partial void StreamResumed(ILogger logger, string stream, ulong sequence, ulong nextTrackId);

    [LoggerMessage(EventId = 11, Level = LogLevel.Information, Message = "Stream {Stream} ended after {Seconds:F1} s: {Frames} frames, {Pairs} pairs matched, {Rejected} rejected, {Dropped} dropped, {Failed} failed")]
    public static partial void StreamEnded(ILogger logger, string stream, long frames, long pairs, long rejected, long dropped, long failed, double seconds);

    [LoggerMessage(EventId = 12, Level = LogLevel.Debug, Message = "Stream {Stream}: frame {Sequence} rejected: {Reason}")]
    public static partial void FrameRejected(ILogger logger, string stream, ulong sequence, string reason);

    [LoggerMessage(EventId = 13, Level = LogLevel.Information, Message = "Bad request: {Method} from {Peer} ended {Status}: {Detail}")]
    public static partial void BadRequest(ILogger logger, string method, string peer, Grpc.Core.StatusCode status, string detail);

    [LoggerMessage(EventId = 14, Level = LogLevel.Information, Message = "{Count} more bad requests from {Peer} were not logged (at most 5 lines per connection every {Seconds} s)")]
    public static partial void BadRequestsSuppressed(ILogger logger, int count, string peer, double seconds);

    [LoggerMessage(EventId = 15, Level = LogLevel.Warning, Message = "Call {Method} from {Peer} failed {Status}: {Detail}")]
    public static partial void CallFailed(ILogger logger, string method, string peer, Grpc.Core.StatusCode status, string detail);

    [LoggerMessage(EventId = 16, Level = LogLevel.Debug, Message = "Call {Method} from {Peer} ended by its client (cancelled, disconnected or past its deadline)")]
    public static partial void CallEndedByClient(ILogger logger, string method, string peer);

    [LoggerMessage(EventId = 20, Level = LogLevel.Warning, Message = "Shutdown: {Calls} calls still open past the drain time ({Seconds} s, Streaming:ShutdownDrainSeconds) made no progress and were aborted (a client not reading, or a request body that never ended)")]
    public static partial void Aborted(ILogger logger, int calls, double seconds);
}
