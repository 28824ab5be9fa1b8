namespace VideoMatch.Tests;

/// <summary>How long a test waits for the server, a client or another thread before it fails, with the reason.</summary>
internal static class Limits
{
    /// <summary>Any one call, stream or wait. Generous: the largest models here run on 2 CPU cores; only a hung test reaches it.</summary>
    public static readonly TimeSpan Call = TimeSpan.FromSeconds(120);

    /// <summary>
    /// One export of a fixture checkpoint by tools/export (PyTorch on CPU): the default config takes 94 s on a quiet
    /// 2-core machine and over 300 s at load average 15. Below test.sh's --blame-hang-timeout (12 min), so an export that
    /// runs out fails its test with this reason instead of the host being killed as hung.
    /// </summary>
    public static readonly TimeSpan Export = TimeSpan.FromMinutes(7);

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
                throw new TimeoutException($"Waited {Call.TotalSeconds:0} s (Limits.Call): {what}.");
            }

            await Task.Delay(10);
        }
    }
}
