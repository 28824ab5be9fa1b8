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

/// <summary>Input limits. Bound from the <c>Limits</c> section.</summary>
public sealed class LimitsOptions
{
    public const string Section = "Limits";

    /// <summary>Largest accepted width or height, raw or decoded, in pixels. Default 8192.</summary>
    public int MaxImageDimension { get; set; } = 8192;

    /// <summary>Largest gRPC message in bytes, both ways. Default 16 MiB (a 1920×1080 RGBA frame is 8.3 MB).</summary>
    public int MaxMessageBytes { get; set; } = 16 * 1024 * 1024;
}

internal sealed class StreamingOptionsValidator : IValidateOptions<StreamingOptions>
{
    public ValidateOptionsResult Validate(string? name, StreamingOptions options) =>
        options.MaxPendingPairsPerStream is >= 1 and <= 1024
            ? ValidateOptionsResult.Success
            : ValidateOptionsResult.Fail($"Streaming:MaxPendingPairsPerStream must be 1..1024 (got {options.MaxPendingPairsPerStream}).");
}

internal sealed class LimitsOptionsValidator : IValidateOptions<LimitsOptions>
{
    public ValidateOptionsResult Validate(string? name, LimitsOptions options)
    {
        var problems = new List<string>();
        if (options.MaxImageDimension is < 32 or > 65535)
        {
            problems.Add($"Limits:MaxImageDimension must be 32..65535 (got {options.MaxImageDimension}).");
        }

        if (options.MaxMessageBytes < 64 * 1024)
        {
            problems.Add($"Limits:MaxMessageBytes must be at least 65536 (got {options.MaxMessageBytes}).");
        }

        return problems.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(problems);
    }
}
