using VideoMatch.Engine;
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
    /// The rest are answered DROPPED, each naming the setting. 2 s later a call that has neither read nor written for
    /// 2 s (a client that stops reading, a body that never ends) is reset, so shutdown never waits on a stuck client;
    /// streams still delivering answers get up to 5 s more. The host's shutdown timeout is this plus 10 s. Default 10.
    /// </summary>
    public double ShutdownDrainSeconds { get; set; } = 10;

    // Read while services are registered (the host's shutdown timeout), before validation refuses an out-of-range
    // value with its message: clamped so that reading it cannot throw first.
    internal TimeSpan ShutdownDrain => TimeSpan.FromSeconds(double.IsFinite(ShutdownDrainSeconds) ? Math.Clamp(ShutdownDrainSeconds, 0, 3600) : 0);
}

internal sealed class StreamingOptionsValidator : IValidateOptions<StreamingOptions>
{
    public ValidateOptionsResult Validate(string? name, StreamingOptions options)
    {
        var problems = new List<string>();
        SettingRange.Check(problems, "Streaming:MaxPendingPairsPerStream", options.MaxPendingPairsPerStream, 1, 1024);

        if (!(options.ConfigTimeoutSeconds is > 0 and <= 3600))
        {
            problems.Add($"Streaming:ConfigTimeoutSeconds must be above 0 and at most 3600 (got {options.ConfigTimeoutSeconds}).");
        }

        SettingRange.Check(problems, "Streaming:ShutdownDrainSeconds", options.ShutdownDrainSeconds, 0, 3600, "seconds");

        return problems.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(problems);
    }
}
