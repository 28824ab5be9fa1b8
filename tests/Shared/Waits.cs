namespace VideoMatch.Tests;

/// <summary>Bounded waits for state another thread reaches: every wait ends, with the reason, at a fixed limit.</summary>
internal static class Waits
{
    /// <summary>How long any test waits for the server or a client before it fails.</summary>
    public static readonly TimeSpan Limit = TimeSpan.FromSeconds(30);

    /// <summary>Polls <paramref name="condition"/> until it holds; fails with <paramref name="what"/> at <see cref="Limit"/>.</summary>
    public static async Task UntilAsync(Func<bool> condition, string what)
    {
        var stopwatch = System.Diagnostics.Stopwatch.StartNew();
        while (!condition())
        {
            if (stopwatch.Elapsed > Limit)
            {
                throw new TimeoutException($"Waited {Limit.TotalSeconds:0} s: {what}.");
            }

            await Task.Delay(10);
        }
    }
}
