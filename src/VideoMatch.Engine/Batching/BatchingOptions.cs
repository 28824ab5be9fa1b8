using Microsoft.Extensions.Options;

namespace VideoMatch.Engine.Batching;

/// <summary>How pairs from all streams are grouped into model runs. Bound from the <c>Batching</c> section.</summary>
public sealed class BatchingOptions
{
    public const string Section = "Batching";

    /// <summary>A batch closes when it holds this many pairs. Default 8.</summary>
    public int MaxBatchSize { get; set; } = 8;

    /// <summary>…or when its oldest pair has waited this long, in milliseconds. Default 5 ms.</summary>
    public double MaxBatchDelayMs { get; set; } = 5;

    /// <summary>
    /// Pairs waiting for a batch, over all streams. When full, a stream's next pair waits for room (its reader
    /// pauses, and HTTP/2 flow control slows that client). Default 64.
    /// </summary>
    public int QueueCapacity { get; set; } = 64;

    public TimeSpan MaxBatchDelay => TimeSpan.FromMilliseconds(MaxBatchDelayMs);
}

/// <summary>Checks <see cref="BatchingOptions"/> at start.</summary>
public sealed class BatchingOptionsValidator : IValidateOptions<BatchingOptions>
{
    /// <summary>The largest batch the batcher forms.</summary>
    public const int MaxBatchSize = 256;

    public ValidateOptionsResult Validate(string? name, BatchingOptions options)
    {
        var problems = new List<string>();
        SettingRange.Check(problems, "Batching:MaxBatchSize", options.MaxBatchSize, 1, MaxBatchSize);
        SettingRange.Check(problems, "Batching:MaxBatchDelayMs", options.MaxBatchDelayMs, 0, 10_000, "milliseconds");
        SettingRange.Check(problems, "Batching:QueueCapacity", options.QueueCapacity, 1, 65_536, "pairs");

        return problems.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(problems);
    }
}
