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

    /// <summary>Seconds a new MatchStream may take to send its StreamConfig; then it ends with DEADLINE_EXCEEDED. Default 10.</summary>
    public double ConfigTimeoutSeconds { get; set; } = 10;

    /// <summary>
    /// At shutdown (SIGTERM) streams stop reading at once; pairs already read have this many seconds to be matched.
    /// The rest are answered DROPPED, each naming the setting, and any call still open after that (a client that
    /// stops reading, a body that never ends) is aborted, so shutdown never waits on a client. The host's shutdown
    /// timeout is this plus 5 s. Default 10.
    /// </summary>
    public double ShutdownDrainSeconds { get; set; } = 10;

    internal TimeSpan ConfigTimeout => TimeSpan.FromSeconds(ConfigTimeoutSeconds);

    internal TimeSpan ShutdownDrain => TimeSpan.FromSeconds(ShutdownDrainSeconds);
}

internal sealed class StreamingOptionsValidator : IValidateOptions<StreamingOptions>
{
    public ValidateOptionsResult Validate(string? name, StreamingOptions options)
    {
        var problems = new List<string>();
        if (options.MaxPendingPairsPerStream is < 1 or > 1024)
        {
            problems.Add($"Streaming:MaxPendingPairsPerStream must be 1..1024 (got {options.MaxPendingPairsPerStream}).");
        }

        if (!(options.ConfigTimeoutSeconds is > 0 and <= 3600))
        {
            problems.Add($"Streaming:ConfigTimeoutSeconds must be above 0 and at most 3600 (got {options.ConfigTimeoutSeconds}).");
        }

        if (!(options.ShutdownDrainSeconds is >= 0 and <= 3600))
        {
            problems.Add($"Streaming:ShutdownDrainSeconds must be 0..3600 (got {options.ShutdownDrainSeconds}).");
        }

        return problems.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(problems);
    }
}
