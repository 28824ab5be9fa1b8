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
    public ValidateOptionsResult Validate(string? name, BatchingOptions options)
    {
        var problems = new List<string>();
        if (options.MaxBatchSize is < 1 or > 256)
        {
            problems.Add($"Batching:MaxBatchSize must be 1..256 (got {options.MaxBatchSize}).");
        }

        if (!(options.MaxBatchDelayMs >= 0 && options.MaxBatchDelayMs <= 10_000))
        {
            problems.Add($"Batching:MaxBatchDelayMs must be 0..10000 milliseconds (got {options.MaxBatchDelayMs}).");
        }

        if (options.QueueCapacity < 1)
        {
            problems.Add($"Batching:QueueCapacity must be at least 1 (got {options.QueueCapacity}).");
        }

        return problems.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(problems);
    }
}
