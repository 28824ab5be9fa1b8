using System.Diagnostics;

namespace VideoMatch.Tests;

/// <summary>Child processes run to their exit within <see cref="Limits.Call"/>, their output collected.</summary>
internal static class ProcessRuns
{
    /// <summary>Starts <paramref name="start"/> (standard output and error redirected) and waits for its exit.</summary>
    /// <exception cref="TimeoutException">It ran past <see cref="Limits.Call"/>: killed, with what it wrote.</exception>
    public static async Task<(int ExitCode, string Output, string Errors)> ToExitAsync(ProcessStartInfo start)
    {
        start.RedirectStandardOutput = true;
        start.RedirectStandardError = true;
        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var errors = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(Limits.Call);
        try
        {
            await process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"{start.FileName} {string.Join(' ', start.ArgumentList)} did not exit within {Limits.Call.TotalSeconds:0} s; output: {await output}{await errors}");
        }

        return (process.ExitCode, await output, await errors);
    }
}
