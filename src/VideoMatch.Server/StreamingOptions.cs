using Microsoft.Extensions.Options;

namespace VideoMatch.Server;

/// <summary>What a stream does when it sends pairs faster than the model serves them.</summary>
public enum OverflowMode
{
    /// <summary>Stop reading the stream until a pair finishes; HTTP/2 flow control slows that client, and only it.</summary>
    Wait,

    /// <summary>Answer the frame with FRAME_STATUS_CODE_DROPPED at once (it still becomes the next pair's reference).</summary>
    Drop,
}

/// <summary>Per-stream flow control. Bound from the <c>Streaming</c> section.</summary>
public sealed class StreamingOptions
{
    public const string Section = "Streaming";

    /// <summary>Pairs of one stream queued or running at once. Default 4.</summary>
    public int MaxPendingPairsPerStream { get; set; } = 4;

    /// <summary>What happens past <see cref="MaxPendingPairsPerStream"/>. Default <see cref="OverflowMode.Wait"/>.</summary>
    public OverflowMode Overflow { get; set; } = OverflowMode.Wait;
}

internal sealed class StreamingOptionsValidator : IValidateOptions<StreamingOptions>
{
    public ValidateOptionsResult Validate(string? name, StreamingOptions options) =>
        options.MaxPendingPairsPerStream is >= 1 and <= 1024
            ? ValidateOptionsResult.Success
            : ValidateOptionsResult.Fail($"Streaming:MaxPendingPairsPerStream must be 1..1024 (got {options.MaxPendingPairsPerStream}).");
}
