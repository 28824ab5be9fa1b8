namespace VideoMatch.Tests;

/// <summary>How long a test waits for the server, a client or another thread before it fails, with the reason.</summary>
internal static class Limits
{
    /// <summary>Any one call, stream or wait. Generous: the largest models here run on 2 CPU cores; only a hung test reaches it.</summary>
    public static readonly TimeSpan Call = TimeSpan.FromSeconds(120);

    /// <summary>A gRPC deadline <see cref="Call"/> from now.</summary>
    public static DateTime Deadline => DateTime.UtcNow.Add(Call);

    /// <summary>A token cancelled <see cref="Call"/> from now (its source is left to the timer).</summary>
    public static CancellationToken Token() => new CancellationTokenSource(Call).Token;

    /// <summary>Polls <paramref name="condition"/> until it holds; fails with <paramref name="what"/> at <see cref="Call"/>.</summary>
    public static async Task UntilAsync(Func<bool> condition, string what)
    {
        var stopwatch = System.Diagnostics.Stopwatch.StartNew();
        while (!condition())
        {
            if (stopwatch.Elapsed > Call)
            {
                throw new TimeoutException($"Waited {Call.TotalSeconds:0} s: {what}.");
            }

            await Task.Delay(10);
        }
    }
}
