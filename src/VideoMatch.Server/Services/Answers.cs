using System.Globalization;
using Grpc.Core;
using VideoMatch.Contracts.V1;

namespace VideoMatch.Server.Services;

/// <summary>
/// Every answer the service gives that is not a match, in one place: the in-stream frame statuses and the statuses
/// that end a call. docs/SECURITY.md lists them; tests assert their texts.
/// </summary>
internal static class Answers
{
    // --- frame statuses (the stream goes on) ---------------------------------------------------------------------

    public static StreamResponse FirstFrame(ulong sequence) =>
        Frame(sequence, FrameStatusCode.FirstFrame, "First frame of the stream: kept as the reference for the next frame.");

    public static StreamResponse Invalid(ulong sequence, string reason) => Frame(sequence, FrameStatusCode.Invalid, reason);

    public static StreamResponse OutOfOrder(ulong sequence, ulong last) => Invalid(sequence,
        string.Create(CultureInfo.InvariantCulture, $"Sequence number {sequence} does not follow {last}; sequence numbers must increase within a stream."));

    public static StreamResponse Dropped(ulong sequence, int pending) => Frame(sequence, FrameStatusCode.Dropped,
        string.Create(CultureInfo.InvariantCulture, $"Dropped: this stream already has {pending} pairs in flight. Send slower or use Streaming:Overflow=Wait."));

    /// <summary>A pair that did not come back matched: FAILED with the reason <see cref="PairFailure"/> gives.</summary>
    public static StreamResponse Failed(ulong sequence0, ulong sequence1, Exception error) =>
        Frame(sequence1, FrameStatusCode.Failed, PairFailure(sequence0, sequence1, error).Detail);

    // --- statuses that end a call ---------------------------------------------------------------------------------

    /// <summary>
    /// What a pair's failure means, the same for a stream (as FAILED with this text) and for MatchPair (as this
    /// status): the stream ending or the server stopping is UNAVAILABLE, a model error INTERNAL.
    /// </summary>
    public static Status PairFailure(ulong sequence0, ulong sequence1, Exception error) => error switch
    {
        OperationCanceledException => new Status(StatusCode.Unavailable, string.Create(CultureInfo.InvariantCulture,
            $"Frames {sequence0} and {sequence1} were not matched: the stream ended or the server is stopping.")),
        _ => new Status(StatusCode.Internal, string.Create(CultureInfo.InvariantCulture,
            $"Matching frames {sequence0} and {sequence1} failed: {error.Message}")),
    };

    /// <summary>
    /// What ends a call whose message gRPC's reader could not read, by the exception's type (null: not a reading
    /// failure this maps; the caller lets it go). <paramref name="message"/> counts the stream's messages from 1.
    /// </summary>
    public static RpcException? ReadFailure(Exception error, long message) => error switch
    {
        Google.Protobuf.InvalidProtocolBufferException e => NotAStreamRequest(message, e.Message),
        // Framing the reader refuses: a compressed flag other than 0 or 1, a message cut short.
        InvalidDataException e => BadFraming(message, e.Message),
        // The reader's own statuses: a message over the size limit, and a compressed flag without grpc-encoding.
        RpcException { StatusCode: StatusCode.ResourceExhausted } e => MessageTooLarge(message, e.Status.Detail),
        RpcException { StatusCode: StatusCode.Internal or StatusCode.Unimplemented } e => BadFraming(message, e.Status.Detail),
        // A length prefix too large to read at all ("Message too large: N"); a broken connection cancels the call first.
        IOException e => MessageTooLarge(message, e.Message),
        _ => null,
    };

    public static RpcException InvalidArgument(string detail) => new(new Status(StatusCode.InvalidArgument, detail));

    public static RpcException BeganWithoutConfig(StreamRequest first) => InvalidArgument(
        $"The stream began with {(first.PayloadCase == StreamRequest.PayloadOneofCase.Frame ? $"frame {first.Frame.Sequence}" : "an empty message")}; send a StreamConfig as the first message of every stream, then frames.");

    public static RpcException SecondConfig() => InvalidArgument(
        "A second StreamConfig arrived; a stream is configured once, by its first message. Open a new stream to change settings.");

    public static RpcException EmptyMessage() => InvalidArgument(
        "A message with neither config nor frame arrived; every message after the config must carry a frame.");

    public static RpcException NotAStreamRequest(long message, string reason) => InvalidArgument(string.Create(CultureInfo.InvariantCulture,
        $"Message {message} of the stream is not a valid StreamRequest ({reason}); earlier frames were answered."));

    /// <summary>The gRPC framing of a stream's message is broken (compressed flag, length); what the reader said.</summary>
    public static RpcException BadFraming(long message, string reason) => InvalidArgument(string.Create(CultureInfo.InvariantCulture,
        $"Message {message} of the stream is not a valid gRPC message ({reason}); earlier frames were answered. Use a gRPC library, or follow the length-prefixed framing of gRPC over HTTP/2."));

    public static RpcException MessageTooLarge(long message, string reason) => new(new Status(StatusCode.ResourceExhausted, string.Create(CultureInfo.InvariantCulture,
        $"Message {message} of the stream announces more bytes than can be read ({reason}); earlier frames were answered. Keep each message under Limits:MaxMessageBytes (GetModelInfo's max_message_bytes).")));

    public static RpcException BadImage(string name, string reason) => InvalidArgument($"{name}: {reason}");

    public static RpcException TooFast(double rate, ulong sequence) => new(new Status(StatusCode.ResourceExhausted, string.Create(CultureInfo.InvariantCulture,
        $"This stream sent more than {rate} frames per second (Security:MaxFramesPerSecondPerStream); frame {sequence} and later were not processed. Send slower.")));

    /// <summary>The drain's end of a stream; the trailer <see cref="ResumeAfterTrailer"/> names the last frame answered, for a client that resumes.</summary>
    public static RpcException ShuttingDown(ulong? lastAnswered) => new(new Status(StatusCode.Unavailable, string.Create(CultureInfo.InvariantCulture,
        $"The server is shutting down; every frame it read was answered (the last was {(lastAnswered is { } last ? last.ToString(CultureInfo.InvariantCulture) : "none")}). Reconnect and resend the rest, or resume the stream on another instance (StreamConfig.resume).")),
        lastAnswered is { } answered ? new Metadata { { ResumeAfterTrailer, answered.ToString(CultureInfo.InvariantCulture) } } : new Metadata());

    /// <summary>Trailer of a stream the server ended while draining: the sequence number of the last frame it answered; the stream can be resumed from there.</summary>
    public const string ResumeAfterTrailer = "videomatch-resume-after";

    /// <summary>Resume data the stream cannot go on from: INVALID_ARGUMENT naming the field.</summary>
    public static RpcException BadResume(string field, string problem) => InvalidArgument($"StreamConfig.resume{field} {problem}");

    /// <summary>DROPPED with <see cref="FrameStatus.ResendElsewhere"/>: a resuming client sends the frame again to the next server.</summary>
    public static StreamResponse DrainExpired(ulong sequence0, ulong sequence1, double seconds) => Resend(Frame(sequence1, FrameStatusCode.Dropped, string.Create(CultureInfo.InvariantCulture,
        $"Frames {sequence0} and {sequence1} were not matched: the server is shutting down and its drain time (Streaming:ShutdownDrainSeconds={seconds}) ran out. Send this frame to another instance.")));

    /// <summary>DROPPED with <see cref="FrameStatus.ResendElsewhere"/>: a resuming client sends the frame again to the next server.</summary>
    public static StreamResponse DrainExpired(ulong sequence, double seconds) => Resend(Frame(sequence, FrameStatusCode.Dropped, string.Create(CultureInfo.InvariantCulture,
        $"Frame {sequence} was not matched: the server is shutting down and its drain time (Streaming:ShutdownDrainSeconds={seconds}) ran out before it could be. Send it to another instance.")));

    public static RpcException NoConfigInTime(double seconds) => new(new Status(StatusCode.DeadlineExceeded, string.Create(CultureInfo.InvariantCulture,
        $"No StreamConfig arrived within {seconds} s of the stream's start (Streaming:ConfigTimeoutSeconds); send it as the first message.")));

    public static RpcException ShuttingDownBeforeConfig() => new(new Status(StatusCode.Unavailable,
        "The server is shutting down; no StreamConfig had arrived. Reconnect to another instance."));

    public static RpcException StoppingBeforeQueued() => new(new Status(StatusCode.Unavailable,
        "The server is shutting down; frames sent so far were answered. Reconnect and resend the rest."));

    public static RpcException ShuttingDownUnary() => new(new Status(StatusCode.Unavailable, "The server is shutting down; retry on another instance."));

    /// <summary>UNAVAILABLE with what the server is doing (loading, self-check, warm-up, stopping) or why it never serves.</summary>
    public static RpcException NotReady(string reason) => new(new Status(StatusCode.Unavailable, reason));

    private static StreamResponse Frame(ulong sequence, FrameStatusCode code, string message) =>
        new() { Status = new FrameStatus { Sequence = sequence, Code = code, Message = message } };

    private static StreamResponse Resend(StreamResponse response)
    {
        response.Status.ResendElsewhere = true;
        return response;
    }
}
